import DistOpenFlow
import Testing

/// OpenFlow 1.3 messages on bytes.
@Suite struct OpenFlowCodecTests {
    static let flowMod: OFFlowMod = {
        var f = OFFlowMod()
        f.cookie = 0xD157
        f.priority = 100
        f.idleTimeout = 0
        f.match = OFMatch([
            .inPort(1), .ethType(0x0800), .ipv4Source(0xC612_0000, mask: 0xFFFF_0000), .ipProto(6), .tcpDestination(80),
        ])
        f.instructions = [.applyActions([.output(port: 2), .output(port: OpenFlow.portController, maxLength: 128)])]
        return f
    }()

    static let messages: [OFMessage] = [
        .hello(xid: 1, body: []),
        .error(xid: 2, type: 1, code: 2, data: [4, 0, 0, 8, 0, 0, 0, 9]),
        .echoRequest(xid: 3, data: [1, 2, 3]),
        .echoReply(xid: 3, data: [1, 2, 3]),
        .featuresRequest(xid: 4),
        .featuresReply(
            xid: 4, datapathID: 0x0000_1234_5678_9ABC, buffers: 0, tables: 254, auxiliaryID: 0, capabilities: 0x4F),
        .portDescriptionRequest(xid: 5),
        .portDescriptionReply(
            xid: 5,
            ports: [
                OFPort(number: 1, hardwareAddress: [2, 0, 0, 0, 0, 1], name: "veth-vnf1"),
                OFPort(number: 0xFFFF_FFFE, hardwareAddress: [2, 0, 0, 0, 0, 2], name: "br0", state: 1),
            ], more: false),
        .flowMod(xid: 6, flowMod),
        .packetIn(
            xid: 0,
            OFPacketIn(
                totalLength: 60, reason: 0, tableID: 0, cookie: 7, match: OFMatch([.inPort(3)]),
                data: [UInt8](repeating: 0xAB, count: 60))),
        .packetOut(xid: 7, OFPacketOut(actions: [.output(port: 2)], data: [UInt8](repeating: 0xCD, count: 64))),
        .barrierRequest(xid: 8),
        .barrierReply(xid: 8),
        .flowStatsRequest(xid: 10),
        .flowStatsReply(xid: 10, flows: [flowMod, OFFlowMod()], more: true),
        .other(xid: 9, type: 12, body: [1, 2, 3, 4, 5, 6, 7, 8]),
    ]

    @Test func everyMessageRoundTrips() throws {
        for message in Self.messages {
            let bytes = message.encoded()
            #expect(bytes[0] == 4 && Int(bytes[2]) << 8 | Int(bytes[3]) == bytes.count)
            #expect(try OFMessage.decode(bytes) == message, "\(message)")
        }
    }

    @Test func helloAndBarrierHaveTheSpecifiedBytes() {
        #expect(OFMessage.hello(xid: 1, body: []).encoded() == [4, 0, 0, 8, 0, 0, 0, 1])
        #expect(OFMessage.barrierRequest(xid: 0x0102_0304).encoded() == [4, 20, 0, 8, 1, 2, 3, 4])
        // A flow-mod's match is padded to 8 bytes; its length counts the header and the fields only.
        let bytes = OFMessage.flowMod(xid: 1, Self.flowMod).encoded()
        #expect(Array(bytes[48..<52]) == [0, 1, 0, 4 + 8 + 6 + 12 + 5 + 6])
        #expect(bytes.count % 8 == 0)
    }

    /// OFPMP_FLOW as the specification lays it out: a request for every rule of every table,
    /// and a reply's entries (48 bytes before the match).
    @Test func flowStatsHaveTheSpecifiedLayout() throws {
        let request = OFMessage.flowStatsRequest(xid: 1).encoded()
        #expect(request.count == 16 + 32 + 8)
        #expect(Array(request[8..<12]) == [0, 1, 0, 0] && request[16] == 0xFF)
        let reply = OFMessage.flowStatsReply(xid: 2, flows: [Self.flowMod], more: false).encoded()
        let entry = Array(reply[16...])
        #expect(Int(entry[0]) << 8 | Int(entry[1]) == entry.count)
        #expect(Array(entry[12..<14]) == [0, 100], "priority")
        #expect(Array(entry[24..<32]) == [0, 0, 0, 0, 0, 0, 0xD1, 0x57], "cookie")
        #expect(Array(entry[48..<50]) == [0, 1], "the match")
        // An entry whose length runs past the message is an error, not a crash.
        var cut = reply
        cut[16] = 0xFF
        #expect(throws: OFDecodeError.self) { try OFMessage.decode(cut) }
    }

    @Test func aStreamCutsMessagesWhereverTheBytesArrive() throws {
        var all: [UInt8] = []
        for m in Self.messages { all += m.encoded() }
        var stream = OFStream()
        var decoded: [OFMessage] = []
        var i = 0
        while i < all.count {
            let n = min(7, all.count - i)
            stream.append(Array(all[i..<(i + n)]))
            i += n
            while let m = try stream.next() { decoded.append(m) }
        }
        #expect(decoded == Self.messages)
    }

    @Test func damagedMessagesAreRefusedNeverTrap() {
        for message in Self.messages {
            let bytes = message.encoded()
            for cut in 0..<bytes.count {
                #expect(throws: OFDecodeError.self) { try OFMessage.decode(Array(bytes.prefix(cut))) }
            }
            var state: UInt64 = 0x2545_F491_4F6C_DD1D
            for _ in 0..<200 {
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                var flipped = bytes
                flipped[Int(state % UInt64(bytes.count))] ^= UInt8(truncatingIfNeeded: 1 << (state >> 32 % 8))
                _ = try? OFMessage.decode(flipped)  // an error or a message: never a trap
            }
        }
        #expect(throws: OFDecodeError.self) { try OFMessage.decode([1, 0, 0, 8, 0, 0, 0, 1, 9]) }
        var stream = OFStream()
        stream.append([4, 0, 0, 2, 0, 0, 0, 0])
        #expect(throws: OFDecodeError.self) { try stream.next() }
    }
}
