import DistControl
import DistFlow
import DistOpenFlow
import NIOCore
import NIOEmbedded
import Testing

@testable import DistController

@Suite struct ControllerConfigTests {
    @Test func aVNFIsNameAddressAndSwitchPort() throws {
        let v = try ControllerConfig.VNF(parsing: "vnf1=198.19.1.2:7001@11")
        #expect(v == ControllerConfig.VNF(name: "vnf1", host: "198.19.1.2", port: 7001, switchPort: 11))
        let v6 = try ControllerConfig.VNF(parsing: "b=[2001:db8::1]:7002@12")
        #expect(v6.host == "2001:db8::1" && v6.port == 7002)
        for bad in [
            "vnf1", "vnf1=host@11", "=1.2.3.4:7001@11", "a=1.2.3.4:0@11", "a=1.2.3.4:7001@x", "a=1.2.3.4:70000@1",
            "a=:7001@3",
        ] {
            #expect(throws: ControllerError.self, "\(bad)") { try ControllerConfig.VNF(parsing: bad) }
        }
    }

    @Test func namesAreUniqueAndTheDefaultExists() {
        let a = ControllerConfig.VNF(name: "a", host: "127.0.0.1", port: 1, switchPort: 1)
        #expect(throws: ControllerError.self) {
            try Controller(config: ControllerConfig(vnfs: [a, a], northboundPath: "/tmp/x"), log: { _ in })
        }
        #expect(throws: ControllerError.self) {
            try Controller(
                config: ControllerConfig(vnfs: [a], northboundPath: "/tmp/x", defaultVNF: "b"), log: { _ in })
        }
    }
}

@Suite struct FramingTests {
    @Test func southboundFramesComeWholeWhateverTheSegments() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(LengthPrefixedDecoder(maxFrame: 1000)))
        let bodies: [[UInt8]] = [Array("{\"type\":\"ack\"}".utf8), [], Array(repeating: 0x41, count: 999)]
        var stream: [UInt8] = []
        for b in bodies { stream += [0, 0, UInt8(b.count >> 8), UInt8(b.count & 0xFF)] + b }
        // Fed a byte or a few at a time.
        var at = 0
        var step = 1
        while at < stream.count {
            let end = min(stream.count, at + step)
            try channel.writeInbound(ByteBuffer(bytes: stream[at..<end]))
            at = end
            step = step % 7 + 1
        }
        for b in bodies { #expect(try channel.readInbound(as: [UInt8].self) == b) }
        #expect(try channel.readInbound(as: [UInt8].self) == nil)
    }

    @Test func anOversizedSouthboundFrameIsAnError() {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(LengthPrefixedDecoder(maxFrame: 10)))
        #expect(throws: ControllerError.self) { try channel.writeInbound(ByteBuffer(bytes: [0, 0, 0, 11])) }
    }

    @Test func openFlowMessagesAreCutAtTheirLength() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(OpenFlowDecoder()))
        let messages: [OFMessage] = [
            .hello(xid: 1, body: []), .echoRequest(xid: 2, data: [1, 2, 3]), .barrierReply(xid: 3),
        ]
        let bytes = messages.flatMap { $0.encoded() }
        try channel.writeInbound(ByteBuffer(bytes: bytes[0..<5]))
        #expect(try channel.readInbound(as: OFMessage.self) == nil)
        try channel.writeInbound(ByteBuffer(bytes: bytes[5...]))
        for m in messages { #expect(try channel.readInbound(as: OFMessage.self) == m) }
        // A length below the header's is not OpenFlow: the connection cannot go on.
        #expect(throws: ControllerError.self) { try channel.writeInbound(ByteBuffer(bytes: [4, 0, 0, 4, 0, 0, 0, 1])) }
    }

    @Test func northboundLinesAndTheirLimit() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(LineDecoder()))
        try channel.writeInbound(ByteBuffer(string: "{\"command\":\"vnfs\"}\n{\"comm"))
        #expect(try channel.readInbound(as: String.self) == "{\"command\":\"vnfs\"}")
        #expect(try channel.readInbound(as: String.self) == nil)
        try channel.writeInbound(ByteBuffer(string: "and\":1}\n"))
        #expect(try channel.readInbound(as: String.self) == "{\"command\":1}")
        let long = EmbeddedChannel(handler: ByteToMessageHandler(LineDecoder()))
        #expect(throws: ControllerError.self) {
            try long.writeInbound(ByteBuffer(bytes: [UInt8](repeating: 0x61, count: LineDecoder.maxLine + 1)))
        }
    }
}

@Suite struct SplitMoveTests {
    static let groups: [SouthboundReply.FlowGroup] = [
        .init(prefix: "10.0.0.0/16", flows: 40, packets: 900),
        .init(prefix: "10.1.0.0/16", flows: 3, packets: 5000),
        .init(prefix: "10.2.0.0/16", flows: 3, packets: 70),
        .init(prefix: "10.9.0.0/16", flows: 12, packets: 70),
    ]

    @Test func partsGoFewestStatesOrMostPacketsFirst() throws {
        let filter = try FlowFilter(parsing: "nw_src=10.0.0.0/8")
        let byState = try SplitMove.order(Self.groups, of: filter, by: .state)
        #expect(
            byState.map { "\($0.filter)" } == [
                "nw_src=10.1.0.0/16", "nw_src=10.2.0.0/16", "nw_src=10.9.0.0/16", "nw_src=10.0.0.0/16",
            ])
        let byTraffic = try SplitMove.order(Self.groups, of: filter, by: .traffic)
        #expect(
            byTraffic.map { "\($0.filter)" } == [
                "nw_src=10.1.0.0/16", "nw_src=10.0.0.0/16", "nw_src=10.2.0.0/16", "nw_src=10.9.0.0/16",
            ])
        // A destination prefix stays a destination prefix.
        let dst = try SplitMove.order([Self.groups[0]], of: FlowFilter(parsing: "nw_dst=10.0.0.0/8"), by: .state)
        #expect("\(dst[0].filter)" == "nw_dst=10.0.0.0/16")
        for bad in [
            SouthboundReply.FlowGroup(prefix: "10.0.0.300/16", flows: 1, packets: 1),
            .init(prefix: "10.0.0.0/16", flows: -1, packets: 1), .init(prefix: "", flows: 1, packets: 1),
        ] {
            #expect(throws: ControllerError.self) { try SplitMove.order([bad], of: filter, by: .state) }
        }
    }
}

/// The switch connection's keepalive is no Move's traffic: a Move's report counts only what it
/// caused.
@Suite struct SwitchKeepaliveTests {
    @Test func echoesAreAnsweredAndNotCounted() throws {
        let channel = EmbeddedChannel()
        let sw = SwitchConnection(channel: channel, log: { _ in })
        sw.received(.echoRequest(xid: 7, data: [1, 2]))
        #expect(sw.counters.messagesReceived == 0 && sw.counters.messagesSent == 0)
        let written = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(try OFMessage.decode(Array(written.readableBytesView)) == .echoReply(xid: 7, data: [1, 2]))
        sw.received(.barrierReply(xid: 9))
        #expect(sw.counters.messagesReceived == 1)
        #expect(sw.counters.kinds == ["from switch BARRIER_REPLY": 1])
    }

    /// Neither is its news of a port (Open vSwitch sent two during a 100,000-flow Move): logged.
    @Test func portStatusIsLoggedAndNotCounted() throws {
        var lines: [String] = []
        let sw = SwitchConnection(channel: EmbeddedChannel(), log: { lines.append($0) })
        var port: [UInt8] = [0, 0, 0, 11, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1, 0, 0]
        port += Array("dtb-v1".utf8) + [UInt8](repeating: 0, count: 10)
        port += [0, 0, 0, 0, 0, 0, 0, 1] + [UInt8](repeating: 0, count: 24)
        let message = OFMessage.other(xid: 0, type: 12, body: [2, 0, 0, 0, 0, 0, 0, 0] + port)
        sw.received(try OFMessage.decode(message.encoded()))
        #expect(sw.counters.messagesReceived == 0 && sw.counters.kinds.isEmpty)
        #expect(lines == ["switch: port 11 dtb-v1 modified (link down)"])
    }
}

/// PACKET_OUTs wait for their pace in a queue of bounded bytes: what would go beyond is dropped
/// and counted, what it holds goes out in order.
@Suite struct PacketOutQueueTests {
    @Test func aFullQueueDropsAndCounts() throws {
        let channel = EmbeddedChannel()
        let sw = SwitchConnection(channel: channel, log: { _ in })
        sw.packetOutRate = 1000  // one a millisecond: the rest wait
        sw.packetOutLimitBytes = 300
        for i in 0..<5 { sw.packetOut([UInt8](repeating: UInt8(i), count: 100), port: 2) }
        // The first went at once; three wait (300 bytes); the fifth did not fit.
        #expect(sw.queuedPacketOuts == 3)
        #expect(sw.packetOutsDropped == 1)
        var sent: [UInt8] = []
        for _ in 0..<4 {
            while let b = try channel.readOutbound(as: ByteBuffer.self) {
                if case .packetOut(_, let p) = try OFMessage.decode(Array(b.readableBytesView)) {
                    sent.append(p.data[0])
                }
            }
            channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        }
        #expect(sent == [0, 1, 2, 3])
        #expect(sw.queuedPacketOuts == 0)
        // Room again.
        sw.packetOut([9], port: 2)
        #expect(sw.packetOutsDropped == 1)
    }
}

extension PacketOutQueueTests {
    /// Tags come back as their PACKET_OUTs leave, slice by slice (an opennf-mode Move tells its
    /// source only what has left: what still waits would be lost with a controller that dies).
    @Test func tagsComeBackAsTheirPacketOutsLeave() throws {
        let channel = EmbeddedChannel()
        let sw = SwitchConnection(channel: channel, log: { _ in })
        sw.packetOutRate = 2000  // two a millisecond
        var told: [[UInt64]] = []
        sw.onPacketOutsSent = { told.append($0) }
        var batch: [(frame: [UInt8], tag: UInt64?)] = []
        for i in 0..<5 { batch.append(([UInt8(i)], i == 2 ? nil : UInt64(10 + i))) }
        sw.packetOuts(batch, port: 2)
        #expect(told == [[10, 11]])
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(told == [[10, 11], [13]])
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        #expect(told == [[10, 11], [13], [14]])
        #expect(sw.queuedPacketOuts == 0)
    }
}

/// A dist Move between instances of different channel versions is refused before it starts.
@Suite struct ChannelVersionTests {
    @Test func differentVersionsAreRefusedWithBothNames() {
        #expect(DistModeMove.channelMismatch(("vnf1", 2), ("vnf2", 2)) == nil)
        let why = DistModeMove.channelMismatch(("vnf1", 2), ("vnf2", nil))
        #expect(why?.contains("vnf1 speaks DiST channel version 2 and vnf2 version 1") == true)
    }
}
