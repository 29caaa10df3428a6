import DistFlow
import DistLoopback
import DistPacket
import Testing

/// The soak's traffic: every packet parses whole, UDP flows come back once a cycle, spoofed
/// sources are all distinct within theirs.
@Suite struct ChurnTrafficTests {
    static func parse(_ t: ChurnTraffic, _ n: UInt64) -> (PacketInfo, [UInt8]) {
        var bytes = [UInt8](repeating: 0, count: t.length(n))
        _ = bytes.withUnsafeMutableBytes { t.write(n, to: $0.baseAddress!) }
        var info = PacketInfo()
        bytes.withUnsafeBytes { PacketParser.parse($0.baseAddress!, length: $0.count, into: &info) }
        return (info, bytes)
    }

    @Test func flowsRepeatEachCycleAndSpoofedSourcesAreDistinct() {
        let t = ChurnTraffic(flows: 300_000, spoofed: 5_000, spoofEvery: 4, size: 100)
        var flows = Set<FlowKey>()
        var sources = Set<IPAddress>()
        for n in UInt64(0)..<20_000 {
            let (info, bytes) = Self.parse(t, n)
            #expect(info.issue == .none)
            if n % 4 == 3 {
                #expect(info.l3 == .ipv6 && info.l4 == .tcp && info.dstPort == 80)
                sources.insert(info.src)
            } else {
                #expect(info.l3 == .ipv4 && info.l4 == .udp && bytes.count == 100)
                // A valid IPv4 header checksum.
                #expect(InternetChecksum.of(Array(bytes[14..<34])) == 0)
                flows.insert(FlowKey.canonical(info).0)
            }
        }
        #expect(flows.count == 15_000)
        #expect(sources.count == 5_000)
        // Packet n and n + flows are of one flow (UDP), the cycle's length apart.
        let a = FlowKey.canonical(Self.parse(t, 0).0).0
        #expect(FlowKey.canonical(Self.parse(t, 300_000).0).0 == a)
        #expect(FlowKey.canonical(Self.parse(t, 1).0).0 != a)
    }

    @Test func flowsBeyondOneAddressRangeDifferByPort() {
        let t = ChurnTraffic(flows: 1_000_000, spoofed: 0, spoofEvery: 1, size: 64)
        let a = Self.parse(t, 5).0
        let b = Self.parse(t, 5 + 131_072).0
        #expect(a.src == b.src && a.srcPort != b.srcPort)
    }
}
