import DistPRADS
import Foundation
import Testing

@Suite struct AssetLogTests {
    /// The header, then the records, a line each.
    @Test func writesTheHeaderThenEachRecord() throws {
        let path = NSTemporaryDirectory() + "asset-log-\(getpid()).log"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try AssetLog(path: path)
        #expect(log.write(["10.0.0.1,0,22,6,SERVER,[ssh:OpenSSH],0,1"], records: 1))
        log.close()
        #expect(
            try String(contentsOfFile: path, encoding: .utf8)
                == AssetRecord.header + "\n10.0.0.1,0,22,6,SERVER,[ssh:OpenSSH],0,1\n")
    }

    /// A full disk (/dev/full) stops the log, with the reason, and counts what it could not
    /// write; nothing traps.
    @Test func aFullDiskStopsTheLogAndCountsWhatItLost() throws {
        guard FileManager.default.fileExists(atPath: "/dev/full") else { return }
        let log = try AssetLog(path: "/dev/full")
        #expect(log.failure != nil)
        #expect(!log.write(["a", "b"], records: 2))
        #expect(!log.write(["c"], records: 1))
        #expect(log.lost == 3)
        log.close()
    }
}
