import DistFlow
import DistPRADS
import DistPacket
import DistPipeline
import Testing

/// `--capture-time`: what detection learns is dated by each packet's stamp (a capture's time,
/// 0 included), and by the clock where a packet has none; a packet handed to the worker that
/// owns its flow keeps its stamp.
@Suite struct CaptureTimeTests {
    static func dates(stamp: UInt64?, handedOff: Bool = false) throws -> [UInt64] {
        let signatures = try PRADSSignatures.load(directory: "/etc/prads")
        let stats = UnsafeMutablePointer<WorkerStats>.allocate(capacity: 1)
        stats.initialize(to: WorkerStats())
        defer { stats.deallocate() }
        let detector = Detector(signatures: signatures)
        var dates: [UInt64] = []
        detector.onRecord = { dates.append($0.discovered) }
        let path = FastPath(table: FlowTable(capacity: 64), stats: stats, detector: detector)
        let stamps = UnsafeMutablePointer<UInt64>.allocate(capacity: 32)
        defer { stamps.deallocate() }
        stamps.initialize(repeating: stamp ?? .max, count: 32)
        path.stamps = stamps
        let clock: UInt64 = 1_800_000_000_000_000_000
        // mix-a's first SYN (a fingerprint for detection to log).
        let frame = FastPathTests.frames.map(\.bytes).first {
            let info = PacketParser.parse($0)
            return info.l4 == .tcp && info.tcpFlags == 0x02
        }!
        frame.withUnsafeBufferPointer { b in
            var data: [UnsafePointer<UInt8>?] = [b.baseAddress]
            var segments = [UInt16(frame.count)]
            var lengths = [UInt32(frame.count)]
            if handedOff {
                // As the receiving worker stages it for the owner, then the owner processes it.
                var info = PacketInfo()
                PacketParser.parse(b.baseAddress!, length: frame.count, into: &info)
                var packet = HandoffPacket(
                    probe: FlowProbe(info, frame: b.baseAddress!, seed: path.table.hashSeed), info: info,
                    frame: b.baseAddress!, packet: nil, packetLength: lengths[0], segmentLength: segments[0], port: 0)
                packet.stampSeconds = stamp.map { UInt32($0 / 1_000_000_000) } ?? .max
                _ = path.processHandedOff(&packet, count: 1, now: clock)
            } else {
                _ = path.process(count: 1, data: &data, segmentLengths: &segments, packetLengths: &lengths, now: clock)
            }
        }
        return dates
    }

    @Test func detectionDatesByThePacketsStamp() throws {
        #expect(try Self.dates(stamp: 1_700_000_000_250_000_000) == [1_700_000_000])
        #expect(try Self.dates(stamp: 0) == [0], "a capture may be dated 0")
        #expect(try Self.dates(stamp: nil) == [1_800_000_000], "no stamp: the clock")
        #expect(try Self.dates(stamp: 1_700_000_000_250_000_000, handedOff: true) == [1_700_000_000])
        #expect(try Self.dates(stamp: nil, handedOff: true) == [1_800_000_000])
    }
}
