import DistPacket
import Testing

/// One level of IP tunnel: the inner packet is the packet, the outer header's addresses and
/// protocol kept; anything not one whole inner header of the named version stays the outer
/// packet's.
@Suite struct ParserTunnelTests {
    typealias F = Fixtures
    static let outerA: UInt32 = 0xC612_0001  // 198.18.0.1
    static let outerB: UInt32 = 0xC612_0002
    static let innerA: UInt32 = 0xC613_0101  // 198.19.1.1
    static let innerB: UInt32 = 0xC613_0202

    static func innerTCP() -> [UInt8] {
        F.ipv4(proto: 6, src: innerA, dst: innerB, payload: F.tcp(sport: 40000, dport: 80, flags: 0x02))
    }

    static func innerV6UDP() -> [UInt8] {
        F.ipv6(next: 17, src: F.v6a, dst: F.v6b, payload: F.udp(sport: 5353, dport: 53, payload: [1, 2, 3]))
    }

    func expectInnerTCP(_ info: PacketInfo, outerProto: UInt8, tunnel: TunnelKind = .ipInIP) {
        #expect(info.tunnel == tunnel)
        #expect(info.outerProto == outerProto)
        #expect(info.l3 == .ipv4 && info.l4 == .tcp && info.issue == .none)
        #expect(info.src == IPAddress(ipv4: Self.innerA) && info.dst == IPAddress(ipv4: Self.innerB))
        #expect(info.srcPort == 40000 && info.dstPort == 80 && info.ipProto == 6 && info.tcpFlags == 0x02)
        #expect(info.l3Offset == 14)
        #expect(info.flowL3Offset == info.innerL3Offset && info.innerL3Offset > 14)
    }

    @Test func ipv4InIPv4ByEitherProtocolNumber() {
        for proto: UInt8 in [4, 94] {
            let frame =
                F.ethernet(0x0800) + F.ipv4(proto: proto, src: Self.outerA, dst: Self.outerB, payload: Self.innerTCP())
            let info = PacketParser.parse(frame)
            expectInnerTCP(info, outerProto: proto)
            let outer = frame.withUnsafeBytes { info.outerAddresses(in: $0.baseAddress!) }
            #expect(outer.src == IPAddress(ipv4: Self.outerA) && outer.dst == IPAddress(ipv4: Self.outerB))
            #expect(info.innerL3Offset == 34)
        }
    }

    @Test func ipv6InIPv4AndBothInIPv6() {
        let sixInFour = PacketParser.parse(
            F.ethernet(0x0800) + F.ipv4(proto: 41, src: Self.outerA, dst: Self.outerB, payload: Self.innerV6UDP()))
        #expect(sixInFour.tunnel == .ipInIP && sixInFour.l3 == .ipv6 && sixInFour.l4 == .udp)
        #expect(sixInFour.srcPort == 5353 && sixInFour.dstPort == 53 && sixInFour.payloadLength == 3)
        let fourInSix = PacketParser.parse(
            F.ethernet(0x86DD) + F.ipv6(next: 4, src: F.v6a, dst: F.v6b, payload: Self.innerTCP()))
        expectInnerTCP(fourInSix, outerProto: 4)
        #expect(fourInSix.innerL3Offset == 54)
        let frame = F.ethernet(0x86DD) + F.ipv6(next: 41, src: F.v6b, dst: F.v6a, payload: Self.innerV6UDP())
        let sixInSix = PacketParser.parse(frame)
        let outer = frame.withUnsafeBytes { sixInSix.outerAddresses(in: $0.baseAddress!) }
        #expect(sixInSix.tunnel == .ipInIP && sixInSix.l4 == .udp && outer.src.lo == 2 && outer.dst.lo == 1)
    }

    @Test func greWithItsOptionalFields() {
        // Flags: none; checksum (C); key (K); key and sequence (K, S).
        for (flags, extra) in [(UInt8(0), 0), (0x80, 4), (0x20, 4), (0x30, 8)] {
            let gre = [flags, 0] + F.be16(0x0800) + [UInt8](repeating: 0xEE, count: extra)
            let info = PacketParser.parse(
                F.ethernet(0x0800)
                    + F.ipv4(proto: 47, src: Self.outerA, dst: Self.outerB, payload: gre + Self.innerTCP()))
            expectInnerTCP(info, outerProto: 47, tunnel: .gre)
            #expect(info.innerL3Offset == UInt16(38 + extra))
        }
        let v6 = PacketParser.parse(
            F.ethernet(0x0800)
                + F.ipv4(
                    proto: 47, src: Self.outerA, dst: Self.outerB, payload: [0, 0] + F.be16(0x86DD) + Self.innerV6UDP())
        )
        #expect(v6.tunnel == .gre && v6.l3 == .ipv6 && v6.l4 == .udp)
    }

    @Test func whatIsNotFollowed() {
        func outer(_ proto: UInt8, _ payload: [UInt8], fragmentField: UInt16 = 0) -> PacketInfo {
            PacketParser.parse(
                F.ethernet(0x0800)
                    + F.ipv4(
                        proto: proto, src: Self.outerA, dst: Self.outerB, payload: payload, fragmentField: fragmentField
                    ))
        }
        let cases: [(String, PacketInfo)] = [
            ("the wrong inner version", outer(41, Self.innerTCP())),
            ("an inner header cut short", outer(4, Array(Self.innerTCP().prefix(12)))),
            ("a first fragment", outer(4, Self.innerTCP(), fragmentField: 0x2000)),
            ("GRE with routing", outer(47, [0x40, 0] + F.be16(0x0800) + [0, 0, 0, 0] + Self.innerTCP())),
            ("GRE version 1", outer(47, [0x20, 1] + F.be16(0x0800) + [0, 0, 0, 0] + Self.innerTCP())),
            ("GRE carrying Ethernet", outer(47, [0, 0] + F.be16(0x6558) + F.ethernet(0x0800) + Self.innerTCP())),
            ("a tunnel in a tunnel", outer(4, F.ipv4(proto: 4, src: 1, dst: 2, payload: Self.innerTCP()))),
        ]
        for (why, info) in cases.prefix(6) {
            #expect(info.tunnel == .none && info.l3 == .ipv4 && info.src == IPAddress(ipv4: Self.outerA), "\(why)")
            #expect(info.hasFlow, "\(why): still the outer packet's flow")
        }
        let nested = cases[6].1
        #expect(nested.tunnel == .ipInIP && nested.ipProto == 4 && nested.l4 == .other, "one level only")
        #expect(nested.src == IPAddress(ipv4: 1))
    }

    @Test func everyCutOfATunnelledFrameParsesWithoutTrapping() {
        let frame =
            F.ethernet(0x0800)
            + F.ipv4(
                proto: 47, src: Self.outerA, dst: Self.outerB,
                payload: [0x30, 0] + F.be16(0x86DD) + [0, 0, 0, 1, 0, 0, 0, 2] + Self.innerV6UDP())
        for n in 0...frame.count {
            let info = PacketParser.parse(Array(frame.prefix(n)))
            #expect(Int(info.payloadOffset) <= max(n, 14) && Int(info.l4Offset) <= max(n, 14))
        }
    }
}
