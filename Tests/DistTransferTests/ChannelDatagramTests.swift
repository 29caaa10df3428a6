import DistChannel
import DistPacket
import DistTransfer
import Foundation
import Testing

@Suite struct ChannelDatagramTests {
    let a = ChannelAddress(mac: [2, 0, 0, 0, 0, 1], ip: 0xC612_6401, port: 7400)
    let b = ChannelAddress(mac: [2, 0, 0, 0, 0, 2], ip: 0xC612_6402, port: 7400)

    @Test func aDatagramRoundTripsAndParsesAsUDP() throws {
        let payload = Array(0..<200).map { UInt8($0) }
        let frame = ChannelDatagram.build(from: a, to: b, payload: payload)
        let parsed = try #require(ChannelDatagram.parse(frame, to: b))
        #expect(parsed.payload == payload)
        #expect(parsed.from == a)
        let info = PacketParser.parse(frame)
        #expect(info.l4 == .udp && info.dstPort == 7400 && info.issue == .none)
        #expect(ChannelDatagram.parse(frame, to: a) == nil)  // not to us
        var otherPort = b
        otherPort.port = 7401
        #expect(ChannelDatagram.parse(frame, to: otherPort) == nil)
        var badSum = frame
        badSum[24] ^= 1
        #expect(ChannelDatagram.parse(badSum, to: b) == nil)
        #expect(ChannelDatagram.parse(Array(frame.prefix(40)), to: b) == nil)
        var tagged = frame
        tagged.insert(contentsOf: [0x81, 0x00, 0x00, 0x05], at: 12)
        #expect(ChannelDatagram.parse(tagged, to: b)?.payload == payload)
        // To an end with a VLAN, the frame carries its tag (and still parses).
        var onVLAN = b
        onVLAN.vlan = 3902
        let viaVLAN = ChannelDatagram.build(from: a, to: onVLAN, payload: payload)
        #expect(Array(viaVLAN[12..<16]) == [0x81, 0x00, 0x0F, 0x3E])
        #expect(ChannelDatagram.parse(viaVLAN, to: b)?.payload == payload)
        #expect(PacketParser.parse(viaVLAN).dstPort == 7400)
    }

    /// A Move's destination must be a configured peer; a peer given with its Ethernet address
    /// or VLAN admits only those.
    @Test func onlyConfiguredPeersAreAdmittedAsDestinations() throws {
        let peers = ChannelPeers([
            ChannelAddress("198.18.100.2:7400#3902")!, ChannelAddress("198.18.100.3:7400@02:00:00:00:00:03")!,
        ])
        #expect(peers.admit(ChannelAddress("198.18.100.2:7400@02:aa:00:00:00:02#3902")!))
        #expect(!peers.admit(ChannelAddress("198.18.100.2:7400@02:aa:00:00:00:02")!))
        #expect(!peers.admit(ChannelAddress("198.18.100.2:7401#3902")!))
        #expect(peers.admit(ChannelAddress("198.18.100.3:7400@02:00:00:00:00:03#7")!))
        #expect(!peers.admit(ChannelAddress("198.18.100.3:7400@02:00:00:00:00:04")!))
        #expect(!peers.admit(ChannelAddress("203.0.113.9:7400")!))
        #expect(!ChannelPeers().admit(ChannelAddress("198.18.100.2:7400")!))
    }

    @Test func addressesParseFromText() {
        #expect(ChannelAddress("198.18.100.1:7400")?.ip == 0xC612_6401)
        #expect(ChannelAddress("198.18.100.1:7400@02:00:00:00:00:09")?.mac == [2, 0, 0, 0, 0, 9])
        let tagged = ChannelAddress("198.18.100.1:7400@02:00:00:00:00:09#3901")
        #expect(tagged?.vlan == 3901 && tagged?.description == "198.18.100.1:7400@02:00:00:00:00:09#3901")
        #expect(ChannelAddress("198.18.100.1:7400#0") == nil && ChannelAddress("198.18.100.1:7400#4095") == nil)
        for bad in ["198.18.100.1", "198.18.100:7400", "198.18.100.1:0", "1.2.3.4:7400@zz", "x:1"] {
            #expect(ChannelAddress(bad) == nil, "\(bad)")
        }
    }
}
