import DistFlow
import DistMove
import DistOpenFlow
import NIOCore
import NIOEmbedded
import Testing

@testable import DistController

/// The switch across its connections: a switch that comes back (after a restart, with an
/// empty flow table) gets every rule the Moves put in force, including those changed while it
/// was away; a Move hears that it went away.
@Suite struct SwitchLinkTests {
    let loop = EmbeddedEventLoop()

    func connection() -> (SwitchConnection, EmbeddedChannel) {
        let channel = EmbeddedChannel(loop: loop)
        return (SwitchConnection(channel: channel, log: { _ in }), channel)
    }

    /// The messages written to `channel` since the last call.
    func written(_ channel: EmbeddedChannel) throws -> [OFMessage] {
        var out: [OFMessage] = []
        while let b = try channel.readOutbound(as: ByteBuffer.self) {
            out.append(try OFMessage.decode(Array(b.readableBytesView)))
        }
        return out
    }

    func flowMods(_ messages: [OFMessage]) -> [OFFlowMod] {
        messages.compactMap { if case .flowMod(_, let m) = $0 { m } else { nil } }
    }

    @Test func aSwitchThatComesBackGetsTheMovesRules() throws {
        let link = SwitchLink(loop: loop, log: { _ in })
        var wentAway = 0
        link.onDisconnect = { wentAway += 1 }
        let (first, firstChannel) = connection()
        link.use(first)
        // Nothing to install yet; the switch's table is read, and the rules an earlier
        // controller's Moves left there are taken over (not the base or channel rules).
        guard case .flowStatsRequest(let x)? = try written(firstChannel).first else {
            Issue.record("the switch's table was not read")
            return
        }
        let match = try SwitchRules.matches(for: try FlowFilter(parsing: "nw_src=10.0.0.0/8"), inPort: 1)[0]
        let earlier = SwitchRules.flowMod(
            try SwitchRules.matches(for: try FlowFilter(parsing: "nw_src=192.168.0.0/16"), inPort: 1)[0], to: [12],
            priority: 100, cookie: 0x99)
        var base = OFFlowMod()
        base.priority = 10
        base.match = OFMatch([.inPort(1)])
        var channelRule = base
        channelRule.cookie = SwitchLink.channelCookie
        first.received(.flowStatsReply(xid: x, flows: [earlier, base], more: true))
        first.received(.flowStatsReply(xid: x, flows: [channelRule], more: false))
        #expect(link.table.rules == [earlier])
        let toB = SwitchRules.flowMod(match, to: [12], priority: 100, cookie: 7)
        #expect(link.flowMod(toB) != 0)
        #expect(flowMods(try written(firstChannel)) == [toB])

        first.wentAway("closed by the switch")
        link.gone(first)
        #expect(wentAway == 1 && link.closed)
        // Changed while the switch is away: kept, not sent; a PACKET_OUT is dropped and counted.
        #expect(link.flowMod(SwitchRules.redirect(cookie: 7, to: [11])) == 0)
        link.packetOut([1, 2, 3], port: 11)
        #expect(link.packetOutsDropped == 1)
        let sentBefore = link.counters.messagesSent

        let (second, secondChannel) = connection()
        link.use(second)
        var back = toB
        back.instructions = SwitchRules.redirect(cookie: 7, to: [11]).instructions
        let messages = try written(secondChannel)
        #expect(flowMods(messages) == [earlier, back], "the rules as they stand now, not as they were")
        if case .barrierRequest? = messages.last {} else { Issue.record("no barrier after the rules: \(messages)") }
        #expect(link.counters.messagesSent == sentBefore + 3, "counts go on across connections")
        // A connection that closes but is not the one in use is no news.
        first.wentAway("again")
        link.gone(first)
        #expect(wentAway == 1 && !link.closed)
    }

    @Test func withoutASwitchBarriersFailAtOnce() {
        let link = SwitchLink(loop: loop, log: { _ in })
        var failed = false
        link.barrier(covering: []).whenFailure { _ in failed = true }
        #expect(failed)
    }
}
