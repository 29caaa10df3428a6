import DistFlow
import DistPRADS
import DistPacket
import DistPipeline
import Foundation
import Testing

/// Detection inside tunnels, as PRADS does it: mix-a's IP packets carried through one tunnel
/// (IPv4 inside by protocol 94, IPv6 by 41, over IPv4 or IPv6) teach the data plane what they
/// teach PRADS's own decoding, flow by inner flow; through GRE, which PRADS does not read
/// into, nothing, while the inner flows are still tracked.
@Suite struct TunnelDetectionTests {
    static let frames: [PcapFile.Frame] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("traces/mix-a.pcap")
        guard let data = try? Data(contentsOf: url), let file = try? PcapFile(bytes: [UInt8](data)) else { return [] }
        return Array(file.frames.prefix(6_000))
    }()

    /// `none`: the frame's IP packet as it is, without a VLAN tag (as each tunnel carries it).
    enum Carrier { case none, ipv4, ipv6, gre }

    /// `frame`'s IP packet inside an outer header from tunnel end A (mix-a's local network,
    /// 192.168.0.0/16, is behind it) to end B, or back; nil for a frame that is not IP.
    static func wrapped(_ frame: PcapFile.Frame, _ carrier: Carrier) -> PcapFile.Frame? {
        let b = frame.bytes
        guard b.count > 34 else { return nil }
        var l3 = 14
        var type = Int(b[12]) << 8 | Int(b[13])
        if type == 0x8100 {
            l3 = 18
            type = Int(b[16]) << 8 | Int(b[17])
        }
        guard type == 0x0800 || type == 0x86DD else { return nil }
        let inner = Array(b[l3...])
        // Each host is behind one tunnel end (by its address's last byte): both directions of
        // a flow take the same tunnel, each its own way.
        let (srcLast, dstLast) = type == 0x0800 ? (inner[15], inner[19]) : (inner[23], inner[39])
        let src: [UInt8] = [198, 18, 0, 1 + srcLast & 1]
        let dst: [UInt8] = [198, 18, 0, 1 + dstLast & 1]
        if carrier == .none {
            return PcapFile.Frame(
                seconds: frame.seconds, fraction: frame.fraction,
                originalLength: frame.originalLength - UInt32(l3 - 14),
                bytes: Array(b[0..<12]) + [UInt8(type >> 8), UInt8(type & 0xFF)] + inner)
        }
        var payload = inner
        var proto: UInt8 = type == 0x0800 ? 94 : 41
        if carrier == .gre {
            payload = [0, 0, UInt8(type >> 8), UInt8(type & 0xFF)] + inner
            proto = 47
        }
        var outer: [UInt8]
        let length = payload.count
        if carrier == .ipv6 {
            func v6(_ x: [UInt8]) -> [UInt8] { [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 8) + x }
            outer = [0x60, 0, 0, 0, UInt8(length >> 8), UInt8(length & 0xFF), proto, 64] + v6(src) + v6(dst)
        } else {
            let total = 20 + length
            outer = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 0, 0x40, 0, 64, proto, 0, 0] + src + dst
        }
        let ethernet = Array(b[0..<12]) + (carrier == .ipv6 ? [0x86, 0xDD] : [0x08, 0x00])
        let bytes = ethernet + outer + payload
        let growth = bytes.count - b.count
        return PcapFile.Frame(
            seconds: frame.seconds, fraction: frame.fraction,
            originalLength: UInt32(Int(frame.originalLength) + growth), bytes: bytes)
    }

    static func facts(_ record: AssetRecord) -> String {
        "\(record.asset),\(record.port),\(record.kind),\(record.info)"
    }

    /// What PRADS's decoding (the reference engine) and the data plane learn from `frames`,
    /// how many flows the data plane tracked, and how many packets its detection decoded.
    static func learnt(_ frames: [PcapFile.Frame]) throws -> (
        reference: Set<String>, dataPlane: Set<String>, flows: UInt64, decoded: Int
    ) {
        let signatures = try PRADSSignatures.load(directory: "/etc/prads")
        let engine = PRADSEngine(signatures: signatures)
        var reference = Set<String>()
        engine.onRecord = { reference.insert(facts($0)) }
        for f in frames {
            engine.process(frame: f.bytes, wireLength: Int(f.originalLength), timestamp: UInt64(f.seconds))
        }
        let stats = UnsafeMutablePointer<WorkerStats>.allocate(capacity: 1)
        stats.initialize(to: WorkerStats())
        defer { stats.deallocate() }
        let detector = Detector(signatures: signatures)
        var dataPlane = Set<String>()
        detector.onRecord = { dataPlane.insert(facts($0)) }
        let path = FastPath(table: FlowTable(capacity: 1 << 14), stats: stats, detector: detector)
        path.process(frames: frames)
        return (reference, dataPlane, path.table.counters.created, detector.counters.packets)
    }

    @Test(arguments: [Carrier.ipv4, .ipv6])
    func throughAnIPTunnelTheDataPlaneLearnsWhatPRADSDoes(_ carrier: Carrier) throws {
        let plain = try Self.learnt(Self.frames.compactMap { Self.wrapped($0, .none) })
        let tunnelled = try Self.learnt(Self.frames.compactMap { Self.wrapped($0, carrier) })
        #expect(tunnelled.reference.count > 100, "the reference learns through the tunnel")
        #expect(
            tunnelled.dataPlane == tunnelled.reference,
            Comment(
                rawValue: "only the data plane's: \(tunnelled.dataPlane.subtracting(tunnelled.reference).sorted()), "
                    + "only the reference's: \(tunnelled.reference.subtracting(tunnelled.dataPlane).sorted())"))
        #expect(tunnelled.flows == plain.flows, "one flow per inner flow")
    }

    @Test func throughGRENothingIsLearntAndTheInnerFlowsAreTracked() throws {
        let plain = try Self.learnt(Self.frames.compactMap { Self.wrapped($0, .none) })
        let gre = try Self.learnt(Self.frames.compactMap { Self.wrapped($0, .gre) })
        #expect(gre.reference.isEmpty && gre.dataPlane.isEmpty)
        #expect(gre.flows == plain.flows)
    }
}
