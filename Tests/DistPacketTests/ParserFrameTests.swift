import DistPacket
import Testing

/// The parser on hand-built frames: one behaviour each.
@Suite struct ParserFrameTests {
    typealias F = Fixtures

    @Test func ipv4TCPWithOptionsGivesAddressesPortsFlagsAndPayload() {
        let payload: [UInt8] = Array("GET / HTTP/1.0\r\n".utf8)
        let frame =
            F.ethernet(0x0800)
            + F.ipv4(
                proto: 6, src: 0xC612_0001, dst: 0xC612_0002,
                payload: F.tcp(sport: 40000, dport: 80, flags: 0x18, payload: payload, optionWords: 3),
                options: [1, 1, 1, 0])
        let info = PacketParser.parse(frame)
        #expect(info.issue == .none)
        #expect(info.l3 == .ipv4 && info.l4 == .tcp)
        #expect(info.src == IPAddress(ipv4: 0xC612_0001) && info.dst == IPAddress(ipv4: 0xC612_0002))
        #expect(info.srcPort == 40000 && info.dstPort == 80 && info.tcpFlags == 0x18)
        #expect(info.l3Offset == 14 && info.l4Offset == 14 + 24)
        #expect(Int(info.payloadOffset) == 14 + 24 + 32 && Int(info.payloadLength) == payload.count)
        #expect(info.ttl == 64 && info.ipProto == 6)
    }

    @Test func ethernetPaddingIsNotPayload() {
        let frame =
            F.ethernet(0x0800) + F.ipv4(proto: 17, src: 1, dst: 2, payload: F.udp(sport: 53, dport: 5353, payload: [9]))
            + [UInt8](repeating: 0, count: 17)
        let info = PacketParser.parse(frame)
        #expect(info.issue == .none && info.l4 == .udp && info.payloadLength == 1)
    }

    @Test func singleAndDoubleVLANTagsAreParsedAndKeyed() {
        let inner = F.ipv4(proto: 17, src: 1, dst: 2, payload: F.udp(sport: 1, dport: 2, payload: []))
        let one = PacketParser.parse(F.ethernet(0x0800, vlans: [100]) + inner)
        #expect(one.vlanCount == 1 && one.vlanKey == 100 << 12 && one.l4 == .udp && one.l3Offset == 18)
        let two = PacketParser.parse(F.ethernet(0x0800, vlans: [7, 200], outerTPID: 0x88A8) + inner)
        #expect(two.vlanCount == 2 && two.vlanKey == (7 << 12 | 200) && two.l4 == .udp && two.l3Offset == 22)
        let three = PacketParser.parse(F.ethernet(0x0800, vlans: [1, 2, 3]) + inner)
        #expect(three.issue == .tooManyVLANTags)
    }

    @Test func ipv4FragmentsFirstHasPortsLaterHasNone() {
        let first = PacketParser.parse(
            F.ethernet(0x0800)
                + F.ipv4(
                    proto: 17, src: 1, dst: 2,
                    payload: F.udp(sport: 5000, dport: 6000, payload: [UInt8](repeating: 0, count: 100)),
                    fragmentField: 0x2000))
        #expect(first.fragment == .first && first.l4 == .udp && first.srcPort == 5000 && first.issue == .none)
        let later = PacketParser.parse(
            F.ethernet(0x0800)
                + F.ipv4(
                    proto: 17, src: 1, dst: 2,
                    payload: [UInt8](repeating: 0, count: 64), fragmentField: 0x0010))
        #expect(later.fragment == .later && later.l4 == .fragment && later.srcPort == 0 && later.payloadLength == 64)
        #expect(later.hasFlow)
    }

    @Test func ipv6ExtensionHeadersAreFollowedToTheTransport() {
        // Hop-by-hop (8 bytes) then destination options (16 bytes) then TCP.
        let hop: [UInt8] = [60, 0, 1, 4, 0, 0, 0, 0]
        let dest: [UInt8] = [6, 1] + [UInt8](repeating: 0, count: 14)
        let frame =
            F.ethernet(0x86DD)
            + F.ipv6(
                next: 0, src: F.v6a, dst: F.v6b,
                payload: hop + dest + F.tcp(sport: 1234, dport: 443, flags: 0x02))
        let info = PacketParser.parse(frame)
        #expect(info.issue == .none && info.l3 == .ipv6 && info.l4 == .tcp && info.ipProto == 6)
        #expect(info.srcPort == 1234 && info.dstPort == 443 && info.tcpFlags == 0x02)
        #expect(Int(info.l4Offset) == 14 + 40 + 24)
        #expect(info.src == IPAddress(hi: 0x2001_0db8_0000_0000, lo: 1))
    }

    @Test func ipv6FragmentHeaderDistinguishesFirstAndLater() {
        let firstHeader: [UInt8] = [17, 0, 0x00, 0x01, 0, 0, 0, 1]  // offset 0, M=1
        let first = PacketParser.parse(
            F.ethernet(0x86DD)
                + F.ipv6(
                    next: 44, src: F.v6a, dst: F.v6b,
                    payload: firstHeader + F.udp(sport: 9, dport: 10, payload: [1, 2, 3])))
        #expect(first.fragment == .first && first.l4 == .udp && first.srcPort == 9)
        let laterHeader: [UInt8] = [17, 0, 0x00, 0x18, 0, 0, 0, 1]  // offset 3 (x8)
        let later = PacketParser.parse(
            F.ethernet(0x86DD)
                + F.ipv6(
                    next: 44, src: F.v6a, dst: F.v6b,
                    payload: laterHeader + [1, 2, 3, 4]))
        #expect(later.fragment == .later && later.l4 == .fragment && later.ipProto == 17)
    }

    @Test func ipv6ExtensionChainTooLongIsAnIssue() {
        var chain: [UInt8] = []
        for _ in 0..<12 { chain += [60, 0, 0, 0, 0, 0, 0, 0] }
        let info = PacketParser.parse(F.ethernet(0x86DD) + F.ipv6(next: 60, src: F.v6a, dst: F.v6b, payload: chain))
        #expect(info.issue == .tooManyIPv6Extensions)
    }

    @Test func icmpAndICMPv6() {
        let v4 = PacketParser.parse(
            F.ethernet(0x0800) + F.ipv4(proto: 1, src: 1, dst: 2, payload: [8, 0, 0, 0, 0, 1, 0, 1]))
        #expect(v4.l4 == .icmp && v4.issue == .none)
        let v6 = PacketParser.parse(
            F.ethernet(0x86DD) + F.ipv6(next: 58, src: F.v6a, dst: F.v6b, payload: [128, 0, 0, 0]))
        #expect(v6.l4 == .icmpv6 && v6.issue == .none)
    }

    @Test func arpAndNonIPFrames() {
        let arp = F.ethernet(0x0806) + [0, 1, 8, 0, 6, 4, 0, 1] + [UInt8](repeating: 0, count: 20)
        #expect(PacketParser.parse(arp).l3 == .arp && PacketParser.parse(arp).issue == .none)
        #expect(PacketParser.parse(Array(arp.prefix(30))).issue == .truncatedARP)
        let llc = F.ethernet(0x0026) + [0x42, 0x42, 0x03]
        #expect(PacketParser.parse(llc).issue == .llcFrame)
        let pppoe = F.ethernet(0x8864) + [0x11, 0, 0, 1, 0, 2, 0, 0x21]
        #expect(PacketParser.parse(pppoe).issue == .unknownEtherType && !PacketParser.parse(pppoe).hasFlow)
    }

    @Test func malformedIPHeadersAreNamed() {
        var badVersion = F.ethernet(0x0800) + F.ipv4(proto: 6, src: 1, dst: 2, payload: [])
        badVersion[14] = 0x55
        #expect(PacketParser.parse(badVersion).issue == .badIPv4Version)
        var shortIHL = F.ethernet(0x0800) + F.ipv4(proto: 6, src: 1, dst: 2, payload: [])
        shortIHL[14] = 0x43
        #expect(PacketParser.parse(shortIHL).issue == .badIPv4HeaderLength)
        var longTotal =
            F.ethernet(0x0800) + F.ipv4(proto: 17, src: 1, dst: 2, payload: F.udp(sport: 1, dport: 2, payload: []))
        longTotal[16] = 0x05  // total length 1280+ > frame
        let info = PacketParser.parse(longTotal)
        #expect(info.issue == .badIPv4TotalLength && info.l4 == .udp && info.hasFlow)
        var badOffset =
            F.ethernet(0x0800) + F.ipv4(proto: 6, src: 1, dst: 2, payload: F.tcp(sport: 1, dport: 2, flags: 2))
        badOffset[14 + 20 + 12] = 0xF0  // data offset 60 > segment
        #expect(PacketParser.parse(badOffset).issue == .badTCPDataOffset)
        var v6 =
            F.ethernet(0x86DD)
            + F.ipv6(next: 17, src: F.v6a, dst: F.v6b, payload: F.udp(sport: 1, dport: 2, payload: []))
        v6[14] = 0x40
        #expect(PacketParser.parse(v6).issue == .badIPv6Version)
    }

    @Test func everyPrefixOfABuiltFrameParsesWithoutTrapping() {
        let frame =
            F.ethernet(0x86DD, vlans: [5, 6])
            + F.ipv6(
                next: 0, src: F.v6a, dst: F.v6b,
                payload: [6, 0, 1, 4, 0, 0, 0, 0] + F.tcp(sport: 1, dport: 2, flags: 0x12, payload: [1, 2, 3]))
        for cut in 0...frame.count {
            let info = PacketParser.parse(Array(frame.prefix(cut)))
            #expect(Int(info.payloadOffset) + Int(info.payloadLength) <= max(cut, Int(info.payloadOffset)))
            if cut < frame.count { #expect(info.issue != .none || info.l4 == .tcp) }
        }
        #expect(PacketParser.parse(frame).issue == .none)
    }

    @Test func pcapReaderRejectsGarbageWithAReason() {
        #expect(throws: PcapFile.Failure.tooShort) { try PcapFile(bytes: [1, 2, 3]) }
        #expect(throws: PcapFile.Failure.badMagic(0x0403_0201)) {
            try PcapFile(bytes: [1, 2, 3, 4] + [UInt8](repeating: 0, count: 20))
        }
        var image = PcapFile.image(of: [[1, 2, 3]])
        image.removeLast()
        #expect(throws: PcapFile.Failure.truncatedRecord(frame: 0)) { try PcapFile(bytes: image) }
        let round = try? PcapFile(bytes: PcapFile.image(of: [[1, 2, 3], [4]]))
        #expect(round?.frames.map(\.bytes) == [[1, 2, 3], [4]])
    }
}
