import DistFlow
import DistPacket
import DistState
import Testing

/// A tunnelled flow: keyed by its tunnel's ends and its inner endpoints, both directions alike;
/// filtered as a switch sees it (the outer header); carried whole by the state codec.
@Suite struct TunnelledFlowTests {
    static let tunnelA = IPAddress(ipv4: 0xC612_0001)  // 198.18.0.1
    static let tunnelB = IPAddress(ipv4: 0xC612_0002)
    static let hostX = IPAddress(hi: 0x2001_0DB8_0000_0000, lo: 0x10)  // behind B
    static let hostY = IPAddress(hi: 0x2001_0DB8_0000_0000, lo: 0x20)  // behind A

    /// A packet from inner `src` to `dst`, carried from tunnel end `from` to `to`.
    static func info(
        _ src: IPAddress, _ dst: IPAddress, sport: UInt16, dport: UInt16, from _: IPAddress, to _: IPAddress
    )
        -> PacketInfo
    {
        var i = PacketInfo()
        i.l3 = .ipv6
        i.l4 = .tcp
        i.ipProto = 6
        i.src = src
        i.dst = dst
        i.srcPort = sport
        i.dstPort = dport
        i.tunnel = .ipInIP
        i.outerProto = 41
        return i
    }

    static func canonical(_ i: PacketInfo, from: IPAddress = tunnelB, to: IPAddress = tunnelA) -> (
        key: FlowKey, fromLo: Bool
    ) {
        i.tunnel == .none ? FlowKey.canonical(i) : FlowKey.tunnelled(i, outer: (from, to))
    }

    static let there = info(hostX, hostY, sport: 40000, dport: 443, from: tunnelB, to: tunnelA)
    static let back = info(hostY, hostX, sport: 443, dport: 40000, from: tunnelA, to: tunnelB)

    @Test func bothDirectionsShareOneKeyAndInnerFlowsDiffer() {
        let (k1, fromLo1) = Self.canonical(Self.there)
        let (k2, fromLo2) = Self.canonical(Self.back, from: Self.tunnelA, to: Self.tunnelB)
        #expect(k1 == k2 && fromLo1 != fromLo2)
        #expect(k1.hashValue64(seed: 7) == k2.hashValue64(seed: 7))
        #expect(
            k1.loAddr == Self.tunnelA && k1.innerLo == Self.hostY && k1.loPort == 443,
            "inner ends on their tunnel's side")
        #expect(k1.proto == 41 && k1.innerProto == 6 && k1.isTunnelled && k1.isCanonical)
        var other = Self.there
        other.srcPort = 40001
        let k3 = Self.canonical(other).key
        #expect(k3 != k1 && k3.hashValue64(seed: 7) != k1.hashValue64(seed: 7))
        var plain = Self.there
        plain.tunnel = .none
        let k4 = Self.canonical(plain).key
        #expect(!k4.isTunnelled && k4 != k1 && k4.loAddr == Self.hostX)
        #expect(Set(k1.hosts) == [Self.tunnelA, Self.tunnelB, Self.hostX, Self.hostY])
    }

    @Test func filtersMatchTheOuterHeader() throws {
        let key = Self.canonical(Self.there).key
        #expect(try FlowFilter(parsing: "nw_src=198.18.0.2").matches(key))
        #expect(try FlowFilter(parsing: "nw_proto=41,nw_dst=198.18.0.0/24").matches(key))
        #expect(
            try !FlowFilter(parsing: "nw_src=2001:db8::10").matches(key), "the inner address is not what a switch sees")
        #expect(try !FlowFilter(parsing: "nw_proto=6").matches(key))
        #expect(try !FlowFilter(parsing: "nw_proto=41,tp_dst=443").matches(key), "the outer header has no ports")
    }

    @Test func theCodecCarriesTheInnerEndpoints() throws {
        for v4Inside in [false, true] {
            var i = Self.there
            if v4Inside {
                i.src = IPAddress(ipv4: 0x0A00_0001)
                i.dst = IPAddress(ipv4: 0x0A00_0002)
                i.tunnel = .gre
                i.outerProto = 47
            }
            var e = FlowEntry(key: Self.canonical(i).key, hash: 0, clientIsLo: false, now: 5)
            e.packetsToServer = 3
            let chunk = StateChunk.perFlow(e)
            #expect(try StateCodec.decode(StateCodec.encode(chunk)) == chunk)
            // A peer that reads version 1 alone gets version 2 (it refuses it whole).
            let asked1 = StateCodec.encode(chunk, format: 1)
            #expect(asked1[2] == 2)
            #expect(try StateCodec.decode(asked1) == chunk)
            // The client is its tunnel's end (what filters match), with the host inside apart.
            #expect(e.client.addr == Self.tunnelB && e.server.addr == Self.tunnelA)
            #expect(e.innerClient == (v4Inside ? IPAddress(ipv4: 0x0A00_0001) : Self.hostX))
        }
    }

    @Test func aForgedTunnelIsRefused() throws {
        let e = FlowEntry(key: Self.canonical(Self.there).key, hash: 0, clientIsLo: true, now: 5)
        let good = StateCodec.encode(.perFlow(e))
        // The tunnel kind follows flags (1), addresses (8: both ends IPv4), ports and protocol (5).
        #expect(good[12] & 8 != 0 && good[12 + 14] == TunnelKind.ipInIP.rawValue)
        for (offset, value) in [(12 + 14, UInt8(0)), (12 + 14, 9), (12, good[12] & ~8 | 16)] {
            var payload = Array(good[12...])
            payload[offset - 12] = value
            var chunk = Array(good[0..<12]) + payload
            let crc = payload.withUnsafeBytes { CRC32C.checksum($0) }
            for i in 0..<4 { chunk[8 + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i))) }
            #expect(throws: StateCodecError.self) { try StateCodec.decode(chunk) }
        }
    }
}
