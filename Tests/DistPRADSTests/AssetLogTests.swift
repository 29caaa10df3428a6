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

    /// A restart appends to what an earlier run logged, without a second header.
    @Test func aRestartAppends() throws {
        let path = NSTemporaryDirectory() + "asset-log-append-\(getpid()).log"
        defer { try? FileManager.default.removeItem(atPath: path) }
        for record in ["10.0.0.1,0,22,6,SERVER,[ssh:OpenSSH],0,1", "10.0.0.2,0,80,6,SERVER,[http:nginx],0,2"] {
            let log = try AssetLog(path: path)
            #expect(log.write([record], records: 1))
            log.close()
        }
        #expect(
            try String(contentsOfFile: path, encoding: .utf8)
                == AssetRecord.header + "\n10.0.0.1,0,22,6,SERVER,[ssh:OpenSSH],0,1\n"
                + "10.0.0.2,0,80,6,SERVER,[http:nginx],0,2\n")
    }

    /// After logrotate moved the file away, a reopen writes to a new file with its own header;
    /// what was written before stays in the moved one.
    @Test func aReopenStartsANewFileAfterARename() throws {
        let path = NSTemporaryDirectory() + "asset-log-rotate-\(getpid()).log"
        let rotated = path + ".1"
        defer {
            try? FileManager.default.removeItem(atPath: path)
            try? FileManager.default.removeItem(atPath: rotated)
        }
        let log = try AssetLog(path: path)
        #expect(log.write(["a"], records: 1))
        try FileManager.default.moveItem(atPath: path, toPath: rotated)
        #expect(log.write(["b"], records: 1))
        try log.reopen()
        #expect(log.write(["c"], records: 1))
        log.close()
        #expect(try String(contentsOfFile: rotated, encoding: .utf8) == AssetRecord.header + "\na\nb\n")
        #expect(try String(contentsOfFile: path, encoding: .utf8) == AssetRecord.header + "\nc\n")
    }

    /// A log stopped by a write error starts again on a reopen; a path that cannot be opened
    /// throws and leaves the log as it was.
    @Test func aReopenRestartsAStoppedLogOrThrows() throws {
        guard FileManager.default.fileExists(atPath: "/dev/full") else { return }
        let log = try AssetLog(path: "/dev/full")
        #expect(!log.write(["a"], records: 1))
        try log.reopen()
        #expect(log.failure != nil)  // (the header failed again: /dev/full stays full)
        #expect(log.lost == 1)
        log.close()
        let directory = NSTemporaryDirectory() + "asset-log-gone-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let kept = try AssetLog(path: directory + "/assets.log")
        try FileManager.default.removeItem(atPath: directory)
        #expect(throws: (any Error).self) { try kept.reopen() }
        #expect(kept.failure == nil)
        #expect(kept.write(["a"], records: 1))
        kept.close()
    }
}
