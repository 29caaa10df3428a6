import DistFlow
import DistPRADS
import DistPacket
import DistPipeline
import Foundation
import Testing

/// The inspection limit on the data plane's path: a server whose banner comes after the 10th
/// packet of its direction (an FTP server's TLS handshake after `AUTH TLS` does) is learnt with
/// no limit, as prads 0.3.3 learns it, and not with the standard one, which spares every later
/// packet of the flow a signature run.
@Suite struct InspectionLimitTests {
    static func frame(from a: UInt8, to b: UInt8, _ sport: UInt16, _ dport: UInt16, flags: UInt8, payload: [UInt8])
        -> PcapFile.Frame
    {
        let tcp: [UInt8] =
            [UInt8(sport >> 8), UInt8(sport & 0xFF), UInt8(dport >> 8), UInt8(dport & 0xFF)]
            + [0, 0, 0, 1, 0, 0, 0, 1, 0x50, flags, 0xFF, 0xFF, 0, 0, 0, 0] + payload
        let length = 20 + tcp.count
        let ip: [UInt8] =
            [0x45, 0, UInt8(length >> 8), UInt8(length & 0xFF), 0, 1, 0x40, 0, 64, 6, 0, 0]
            + [198, 18, 0, a, 198, 18, 0, b]
        let bytes = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00] + ip + tcp
        return PcapFile.Frame(seconds: 1_600_000_000, fraction: 0, originalLength: UInt32(bytes.count), bytes: bytes)
    }

    /// A connection to port 22 whose server sends `before` packets of payload no signature
    /// matches, then its SSH banner.
    static func lateBanner(after before: Int) -> [PcapFile.Frame] {
        var frames = [
            frame(from: 1, to: 2, 40000, 22, flags: 0x02, payload: []),
            frame(from: 2, to: 1, 22, 40000, flags: 0x12, payload: []),
            frame(from: 1, to: 2, 40000, 22, flags: 0x10, payload: []),
        ]
        for _ in 0..<before {
            frames.append(frame(from: 2, to: 1, 22, 40000, flags: 0x18, payload: Array(repeating: 0x78, count: 40)))
        }
        frames.append(frame(from: 2, to: 1, 22, 40000, flags: 0x18, payload: Array("SSH-2.0-OpenSSH_8.4p1\r\n".utf8)))
        return frames
    }

    static func services(_ frames: [PcapFile.Frame], _ inspection: InspectionLimit) throws -> [String] {
        let detector = Detector(signatures: try PRADSSignatures.load(directory: "/etc/prads"), inspection: inspection)
        var learnt: [String] = []
        detector.onRecord = { if $0.kind == "SERVER" { learnt.append($0.info) } }
        let stats = UnsafeMutablePointer<WorkerStats>.allocate(capacity: 1)
        stats.initialize(to: WorkerStats())
        defer { stats.deallocate() }
        FastPath(table: FlowTable(capacity: 64), stats: stats, detector: detector).process(frames: frames)
        return learnt
    }

    @Test func aBannerAfterTheTenthPacketIsLearntOnlyWithoutTheLimit() throws {
        let banner = "ssh:OpenSSH 8.4p1 (Protocol 2.0)"
        // The server's 10th packet (its SYN+ACK first): within the standard limit.
        #expect(try Self.services(Self.lateBanner(after: 8), .standard).contains(banner))
        // Its 12th: past it.
        let late = Self.lateBanner(after: 10)
        #expect(try !Self.services(late, .standard).contains(banner))
        #expect(try Self.services(late, .unlimited).contains(banner))
        #expect(try Self.services(late, InspectionLimit(packets: 12, bytes: 500_000)).contains(banner))
    }
}
