import Crypto
import DistChannel
import Foundation
import Testing

@Suite struct ChannelEndpointTests {
    /// Runs a move's messages from a to b over the links until both ends are idle, one gives
    /// up, or `limit` ns pass. Returns what b delivered, in order.
    static func run(
        _ messages: [[UInt8]], ab: inout Link, ba: inout Link, limit: UInt64 = 30_000_000_000,
        a: ChannelEndpoint, b: ChannelEndpoint, tick: UInt64 = 100_000
    ) -> [[UInt8]] {
        var end: UInt64 = 0
        return run(messages, ab: &ab, ba: &ba, limit: limit, a: a, b: b, tick: tick, end: &end)
    }

    static func run(
        _ messages: [[UInt8]], ab: inout Link, ba: inout Link, limit: UInt64 = 30_000_000_000,
        a: ChannelEndpoint, b: ChannelEndpoint, tick: UInt64 = 100_000, end: inout UInt64
    ) -> [[UInt8]] {
        for m in messages { a.send(.state, m) }
        var delivered: [[UInt8]] = []
        var now: UInt64 = 0
        defer { end = now }
        while now < limit {
            ab.carry(a.poll(now: now), now: now)
            ba.carry(b.poll(now: now), now: now)
            for f in ab.due(now) { delivered += b.receive(f, now: now).map { $0.payload } }
            for f in ba.due(now) { _ = a.receive(f, now: now) }
            if a.idle && ab.inTransit.isEmpty { break }
            if a.state != .open || b.state != .open { break }
            now += tick
        }
        return delivered
    }

    static func messages(_ n: Int, seed: UInt64) -> [[UInt8]] {
        var link = Link(seed: seed)
        return (0..<n).map { i in
            let size = 1 + Int(link.random() * 1400)
            return [UInt8(i & 0xFF), UInt8(i >> 8 & 0xFF)] + [UInt8](repeating: UInt8(i % 251), count: size)
        }
    }

    @Test(arguments: [
        (0.0, 0.0, 0.0, 0.0), (0.1, 0.0, 0.0, 0.0), (0.0, 0.2, 0.0, 0.0), (0.0, 0.0, 0.3, 0.0), (0.0, 0.0, 0.0, 0.1),
        (0.1, 0.1, 0.2, 0.05), (0.3, 0.05, 0.1, 0.05),
    ])
    func everythingArrivesOnceInOrder(drop: Double, duplicate: Double, reorder: Double, corrupt: Double) {
        for seed in [UInt64(1), 99, 12345] {
            var ab = Link(seed: seed)
            var ba = Link(seed: seed &* 7)
            (ab.drop, ab.duplicate, ab.reorder, ab.corrupt) = (drop, duplicate, reorder, corrupt)
            (ba.drop, ba.duplicate, ba.reorder, ba.corrupt) = (drop, duplicate, reorder, corrupt)
            let a = ChannelEndpoint(moveID: 5, key: key)
            let b = ChannelEndpoint(moveID: 5, key: key)
            let sent = Self.messages(2000, seed: seed)
            let got = Self.run(sent, ab: &ab, ba: &ba, a: a, b: b)
            #expect(a.state == .open && b.state == .open)
            #expect(got == sent, "drop \(drop) dup \(duplicate) reorder \(reorder) corrupt \(corrupt) seed \(seed)")
            #expect(a.idle)
            if drop > 0 { #expect(a.counters.retransmissions > 0) }
            if corrupt > 0 { #expect(b.counters.rejected + a.counters.rejected > 0) }
            if duplicate > 0 { #expect(b.counters.duplicates > 0) }
        }
    }

    @Test func aDeadLinkAbortsWithAReason() {
        var ab = Link(seed: 3)
        var ba = Link(seed: 4)
        ab.alive = false
        let a = ChannelEndpoint(moveID: 1, key: key)
        let b = ChannelEndpoint(moveID: 1, key: key)
        let got = Self.run(Self.messages(50, seed: 3), ab: &ab, ba: &ba, a: a, b: b)
        #expect(got.isEmpty)
        guard case .aborted(let why) = a.state else {
            Issue.record("not aborted")
            return
        }
        #expect(why.contains("retransmissions"))
    }

    @Test func replayedAndForeignFramesAreCountedNotDelivered() {
        let a = ChannelEndpoint(moveID: 1, key: key)
        let b = ChannelEndpoint(moveID: 1, key: key)
        a.send(.packets, [1, 2, 3])
        let frames = a.poll(now: 0)
        #expect(b.receive(frames[0], now: 1).map { $0.payload } == [[1, 2, 3]])
        #expect(b.receive(frames[0], now: 2).isEmpty)
        #expect(b.counters.duplicates == 1)
        let other = ChannelEndpoint(moveID: 2, key: key)
        other.send(.packets, [9])
        #expect(b.receive(other.poll(now: 0)[0], now: 3).isEmpty)
        #expect(b.counters.foreign == 1)
        let stranger = ChannelEndpoint(moveID: 1, key: SymmetricKey(data: [UInt8](repeating: 1, count: 32)))
        stranger.send(.packets, [9])
        #expect(b.receive(stranger.poll(now: 0)[0], now: 4).isEmpty)
        #expect(b.counters.rejected == 1 && b.counters.delivered == 1)
    }

    @Test func theWindowBoundsWhatIsInFlight() {
        var config = ChannelEndpoint.Config()
        config.window = 8
        let a = ChannelEndpoint(moveID: 1, key: key, config: config)
        for i in 0..<20 { a.send(.state, [UInt8(i)]) }
        #expect(a.poll(now: 0).count == 8)
        #expect(a.poll(now: 1).isEmpty && a.unacknowledged == 8)
    }

    @Test func anAbortReachesThePeer() {
        let a = ChannelEndpoint(moveID: 1, key: key)
        let b = ChannelEndpoint(moveID: 1, key: key)
        let frame = a.abort("state table full", now: 0)
        _ = b.receive(frame, now: 1)
        #expect(b.state == .aborted("the peer gave up: state table full"))
        // Even when what came before it never arrived.
        let c = ChannelEndpoint(moveID: 2, key: key)
        let d = ChannelEndpoint(moveID: 2, key: key)
        for i in 0..<5 { c.send(.state, [UInt8(i)]) }
        _ = c.poll(now: 0)  // lost on the way
        _ = d.receive(c.abort("the destination stopped answering", now: 1), now: 2)
        #expect(d.state == .aborted("the peer gave up: the destination stopped answering"))
    }

    /// State frames of up to 8.9 kB through a 100 Mbit/s link with 1 ms each way and a queue of
    /// 64 kB (a switch port's): the channel finds the rate the link gives instead of filling the
    /// queue, so it neither overflows it nor times out, and still keeps the link busy.
    @Test(arguments: [false, true])
    func theChannelTakesWhatABottleneckGives(pacing: Bool) {
        var ab = Link(seed: 21)
        var ba = Link(seed: 22)
        (ab.rate, ab.queueLimit, ab.delay, ba.delay) = (12.5e6 / 1e9, 64_000, 1_000_000, 1_000_000)
        var config = ChannelEndpoint.Config()
        config.pacing = pacing
        let a = ChannelEndpoint(moveID: 3, key: key, config: config)
        let b = ChannelEndpoint(moveID: 3, key: key, config: config)
        let sent = (0..<400).map { i in
            [UInt8(i & 0xFF), UInt8(i >> 8)] + [UInt8](repeating: UInt8(i % 251), count: 8_000)
        }
        var end: UInt64 = 0
        let got = Self.run(sent, ab: &ab, ba: &ba, a: a, b: b, tick: 20_000, end: &end)
        #expect(got == sent)
        // Slow start overshoots the queue once, at most: a few frames go again, none times out.
        #expect(ab.overflowed <= 8, "the queue overflowed \(ab.overflowed) times")
        #expect(
            a.counters.retransmissions <= 10 && a.counters.timeouts == 0,
            "\(a.counters.retransmissions) retransmissions, \(a.counters.timeouts) timeouts")
        // 3.2 MB at 12.5 MB/s is 257 ms on the wire: the channel keeps the link busy.
        #expect(end < 400_000_000, "took \(end / 1_000_000) ms")
    }

    /// With the link shared, a Move must not queue the VNFs' packets behind its own for long:
    /// what the channel keeps queued at the bottleneck stays near the path's bandwidth-delay
    /// product, not its window (256 frames, 2.3 MB).
    @Test func theChannelKeepsTheBottlenecksQueueShort() {
        var ab = Link(seed: 31)
        var ba = Link(seed: 32)
        (ab.rate, ab.delay, ba.delay) = (12.5e6 / 1e9, 1_000_000, 1_000_000)
        let a = ChannelEndpoint(moveID: 4, key: key)
        let b = ChannelEndpoint(moveID: 4, key: key)
        let sent = (0..<300).map { i in [UInt8(i & 0xFF), UInt8(i >> 8)] + [UInt8](repeating: 7, count: 8_000) }
        let got = Self.run(sent, ab: &ab, ba: &ba, a: a, b: b, tick: 20_000)
        #expect(got == sent)
        #expect(ab.mostQueued < 150_000, "\(ab.mostQueued) bytes queued at once")
        #expect(a.counters.timeouts == 0 && a.counters.retransmissions == 0)
    }

    /// A loss found from selective acks shrinks the window once for the episode: by half when
    /// the path was queueing the channel's frames (`queueing`: their round trip is twice the
    /// least seen), by a fifth when it was not (a random loss). A timeout shrinks it to one
    /// frame and backs the timer off for every frame, not each on its own.
    @Test(arguments: [false, true])
    func lossShrinksTheWindow(queueing: Bool) {
        var config = ChannelEndpoint.Config()
        config.tailLossProbes = false  // (the timer alone: probes have their own test)
        let a = ChannelEndpoint(moveID: 9, key: key, config: config)
        let b = ChannelEndpoint(moveID: 9, key: key)
        // A first exchange: the path's round trip is 4 ms.
        a.send(.state, [1])
        for f in a.poll(now: 0) { _ = b.receive(f, now: 2_000_000) }
        for f in b.poll(now: 2_000_000) { _ = a.receive(f, now: 4_000_000) }
        // Eight frames: the first at 3.5 ms, lost, the others every half millisecond from 5 ms.
        // Each comes back 4 ms after it went, or (queueing) 8 ms: the first ack shows the gap.
        var frames: [[UInt8]] = []
        for (i, t) in ([3_500_000] + (0..<7).map { 5_000_000 + UInt64($0) * 500_000 }).enumerated() {
            a.send(.state, [UInt8](repeating: UInt8(i), count: 4_000))
            frames += a.poll(now: t)
        }
        #expect(frames.count == 8)
        let before = a.congestionWindow
        var again: [[UInt8]] = []
        var now: UInt64 = 0
        var resentAt: UInt64 = 0
        for (i, f) in frames.enumerated().dropFirst() {
            let sent = 5_000_000 + UInt64(i - 1) * 500_000
            _ = b.receive(f, now: sent + 1_000_000)
            now = sent + (queueing ? 8_000_000 : 4_000_000)
            _ = a.receive(b.poll(now: sent + 1_000_000)[0], now: now)
            let out = a.poll(now: now)
            if !out.isEmpty && again.isEmpty { resentAt = now }
            again += out
        }
        #expect(a.counters.fastRecoveries == 1 && a.counters.randomLosses == (queueing ? 0 : 1))
        if queueing {
            #expect(
                a.congestionWindow < before / 2 + 1
                    && a.congestionWindow >= Double(a.config.minimumCongestionWindow * 2))
        } else {
            #expect(a.congestionWindow >= before * 0.8 && a.congestionWindow < before * 1.5)
        }
        #expect(again.count == 1 && a.counters.retransmissions == 1)
        // That one is lost too: the timer runs out, once for the channel.
        let rto = a.rto
        var sends: [UInt64] = []
        var timedOut: [[UInt8]] = []
        var t = now
        while sends.count < 2 && t < now + 100 * rto {
            t += 10_000
            let out = a.poll(now: t)
            if !out.isEmpty {
                sends.append(t)
                if timedOut.isEmpty { timedOut = out }
            }
        }
        #expect(a.counters.timeouts == 2 && sends.count == 2)
        #expect(
            sends[0] >= resentAt + rto && sends[0] < resentAt + rto + 20_000,
            "timeout at \(sends[0] - resentAt) ns, rto \(rto)")
        // The next timeout comes after twice the time.
        #expect(sends[1] >= sends[0] + 2 * rto && sends[1] < sends[0] + 2 * rto + 20_000)
        #expect(a.congestionWindow == Double(a.config.minimumCongestionWindow))
        // Its arrival repairs everything, and the window grows again.
        _ = b.receive(timedOut[0], now: 900_000_000)
        _ = a.receive(b.poll(now: 900_000_000)[0], now: 901_000_000)
        #expect(a.idle && a.acknowledgedThrough == 9)
    }

    /// The last frames of a burst are lost and nothing follows them: two round trips after the
    /// last ack, a tail-loss probe sends the last frame again, without touching the window; its
    /// ack shows the gap before it, and that frame goes again at once. Without probes, the
    /// timer finds the loss, later, and shrinks the window to one frame.
    @Test(arguments: [true, false])
    func aLostTailIsProbedBeforeTheTimerRunsOut(probes: Bool) {
        var config = ChannelEndpoint.Config()
        config.tailLossProbes = probes
        let a = ChannelEndpoint(moveID: 14, key: key, config: config)
        let b = ChannelEndpoint(moveID: 14, key: key)
        // Round trip 4 ms; five frames, the fourth and fifth lost.
        for i in 0..<5 { a.send(.state, [UInt8](repeating: UInt8(i), count: 1_000)) }
        var frames: [[UInt8]] = []
        var t: UInt64 = 0
        while frames.count < 5 {
            frames += a.poll(now: t)
            t += 100_000
        }
        for f in frames.prefix(3) {
            _ = b.receive(f, now: 2_000_000)
            for ack in b.poll(now: 2_000_000) { _ = a.receive(ack, now: 4_000_000) }
        }
        #expect(a.acknowledgedThrough == 3)
        let window = a.congestionWindow
        var now: UInt64 = 4_000_000
        var first: (at: UInt64, frames: [[UInt8]])?
        while first == nil && now < 2_000_000_000 {
            now += 100_000
            let out = a.poll(now: now)
            if !out.isEmpty { first = (now, out) }
        }
        guard let (at, out) = first else {
            Issue.record("nothing went again")
            return
        }
        let decoded = out.compactMap { try? ChannelFrame.decode($0, key: key) }
        if probes {
            // The probe: the last frame, two round trips (8 ms) after the last ack; the window as it was.
            #expect(at >= 12_000_000 && at < 12_200_000, "probe at \(at / 1000) us")
            #expect(decoded.map(\.sequence) == [5] && a.counters.probes == 1 && a.counters.timeouts == 0)
            #expect(a.congestionWindow == window)
            // Its ack shows the fourth missing: that one goes at once.
            _ = b.receive(out[0], now: at + 2_000_000)
            for ack in b.poll(now: at + 2_000_000) { _ = a.receive(ack, now: at + 4_000_000) }
            let resent = a.poll(now: at + 4_000_000).compactMap { try? ChannelFrame.decode($0, key: key) }
            #expect(resent.map(\.sequence) == [4] && a.counters.timeouts == 0)
            #expect(a.congestionWindow >= window * config.randomLossFactor)
        } else {
            #expect(at >= 4_000_000 + a.rto && decoded.map(\.sequence) == [4] && a.counters.timeouts == 1)
            #expect(a.congestionWindow == Double(config.minimumCongestionWindow))
        }
    }

    /// An acknowledgement that comes sooner after a retransmission than any round trip could
    /// be the original's: RACK does not take the copy's send time from it, so the frames sent
    /// after the original and before the copy are not taken for lost.
    @Test func anAckTooSoonForTheCopyDoesNotMakeTheOthersLost() {
        var config = ChannelEndpoint.Config()
        config.tailLossProbes = false
        let a = ChannelEndpoint(moveID: 15, key: key, config: config)
        let b = ChannelEndpoint(moveID: 15, key: key)
        // The path's round trip is 4 ms.
        a.send(.state, [1])
        for f in a.poll(now: 0) { _ = b.receive(f, now: 2_000_000) }
        for f in b.poll(now: 2_000_000) { _ = a.receive(f, now: 4_000_000) }
        // Five frames at 10 ms; the peer gets them all, and its acks stall past the timer.
        for i in 0..<5 { a.send(.state, [UInt8](repeating: UInt8(i), count: 1_000)) }
        var frames: [[UInt8]] = []
        var t: UInt64 = 10_000_000
        while frames.count < 5 {
            frames += a.poll(now: t)
            t += 10_000
        }
        var acks: [[UInt8]] = []
        for f in frames {
            _ = b.receive(f, now: 12_000_000)
            acks += b.poll(now: 12_000_000)
        }
        var copyAt: UInt64 = 0
        while copyAt == 0 && t < 1_000_000_000 {
            t += 10_000
            if !a.poll(now: t).isEmpty { copyAt = t }
        }
        #expect(a.counters.timeouts == 1 && a.counters.retransmissions == 1)
        // The first frame's ack comes 0.1 ms after its copy went: the original's.
        _ = a.receive(acks[0], now: copyAt + 100_000)
        #expect(a.poll(now: copyAt + 100_000).isEmpty)
        #expect(a.counters.retransmissions == 1, "frames taken for lost: \(a.counters.retransmissions - 1)")
        for ack in acks.dropFirst() { _ = a.receive(ack, now: copyAt + 200_000) }
        #expect(a.idle)
    }

    /// A first round trip of 29 ms (the switch's slow path for a new flow, as on the test bed)
    /// is not taken for a loss: the timer before any round trip is measured is 100 ms.
    @Test func aSlowFirstRoundTripIsNotALoss() {
        let a = ChannelEndpoint(moveID: 16, key: key)
        let b = ChannelEndpoint(moveID: 16, key: key)
        for i in 0..<4 { a.send(.state, [UInt8](repeating: UInt8(i), count: 1_000)) }
        let frames = a.poll(now: 0)
        #expect(frames.count == 4)
        for t in stride(from: UInt64(100_000), to: 29_000_000, by: 100_000) { #expect(a.poll(now: t).isEmpty) }
        for f in frames { _ = b.receive(f, now: 14_000_000) }
        for f in b.poll(now: 14_000_000) { _ = a.receive(f, now: 29_000_000) }
        #expect(a.idle && a.counters.retransmissions == 0 && a.counters.timeouts == 0)
    }

    /// Timeouts in a row back the timer off, up to `maxBackedOffRTO` (or the RTO itself when
    /// that is longer): on a short path a chain of lost copies costs tens of milliseconds, not
    /// eight times the RTO.
    @Test func theBackedOffTimerIsBounded() {
        var config = ChannelEndpoint.Config()
        config.initialRTO = 40_000_000
        config.maxBackedOffRTO = 100_000_000
        let a = ChannelEndpoint(moveID: 13, key: key, config: config)
        a.send(.state, [1])
        #expect(a.poll(now: 0).count == 1)
        // No round trip measured, so no probe: timeouts alone, at 40, +80, +100, +100 ms.
        var now: UInt64 = 0
        var at: [UInt64] = []
        while at.count < 4 && now < 1_000_000_000 {
            now += 1_000_000
            if !a.poll(now: now).isEmpty { at.append(now) }
        }
        #expect(at == [40_000_000, 120_000_000, 220_000_000, 320_000_000], "\(at)")
        #expect(a.counters.timeouts == 4 && a.counters.probes == 0)
    }

    /// A peer (or path) that stalls past the timer is not a loss: when the original frames'
    /// acknowledgement comes back sooner than any round trip after the retransmission could
    /// have, the window the timeout took is given back. An acknowledgement that could be the
    /// retransmission's is not taken for that.
    @Test(arguments: [(100_000 as UInt64, true), (3_000_000 as UInt64, false)])
    func aTimeoutThatWasNotALossIsUndone(ackAfterRetransmission: UInt64, spurious: Bool) {
        var config = ChannelEndpoint.Config()
        config.tailLossProbes = false  // (a probe would draw the stalled acks before the timer)
        let a = ChannelEndpoint(moveID: 10, key: key, config: config)
        let b = ChannelEndpoint(moveID: 10, key: key)
        // A first exchange: the path's round trip is 2 ms.
        a.send(.state, [1])
        for f in a.poll(now: 0) { _ = b.receive(f, now: 1_000_000) }
        for f in b.poll(now: 1_000_000) { _ = a.receive(f, now: 2_000_000) }
        #expect(a.idle)
        // Eight frames; the peer gets them and its acknowledgements stall.
        var frames: [[UInt8]] = []
        for i in 0..<8 {
            a.send(.state, [UInt8](repeating: UInt8(i), count: 4_000))
        }
        var t: UInt64 = 3_000_000
        while frames.count < 8 {
            frames += a.poll(now: t)
            t += 100_000
        }
        var acks: [[UInt8]] = []
        for f in frames {
            _ = b.receive(f, now: 4_000_000)
            acks += b.poll(now: 4_000_000)
        }
        let rto = a.rto
        var at = t
        var resent: [[UInt8]] = []
        while resent.isEmpty && at < t + 10 * rto {
            at += 100_000
            resent = a.poll(now: at)
        }
        #expect(a.counters.timeouts == 1 && resent.count == 1)
        #expect(a.congestionWindow == Double(a.config.minimumCongestionWindow))
        for ack in acks { _ = a.receive(ack, now: at + ackAfterRetransmission) }
        #expect(a.idle && a.acknowledgedThrough == 9)
        #expect(a.counters.spuriousTimeouts == (spurious ? 1 : 0))
        // Given back (less what the stall's queueing delay trims off a window in slow start).
        if spurious { #expect(a.congestionWindow >= 3 * Double(a.config.minimumCongestionWindow)) }
    }

    /// On a path whose round trip is long (here 300 ms), a lone frame lost four times in a row
    /// (its first copy, the tail-loss probe, and two timeouts' copies) takes its timer past two
    /// seconds: the channel goes on until it has resent the frame enough times, and gets it
    /// through.
    @Test func aSlowPathIsNotTakenForADeadPeer() throws {
        var ab = Link(seed: 41)
        var ba = Link(seed: 42)
        (ab.delay, ba.delay) = (150_000_000, 150_000_000)
        var config = ChannelEndpoint.Config()
        config.initialRTO = 1_000_000_000  // no timeout before the first round trip's sample
        let a = ChannelEndpoint(moveID: 12, key: key, config: config)
        let b = ChannelEndpoint(moveID: 12, key: key)
        let sent = Self.messages(2, seed: 12)
        var delivered: [[UInt8]] = []
        var lostCopies = 0
        var now: UInt64 = 0
        // The first message measures the round trip (the timer then starts near a second);
        // the next one's first four copies are lost.
        a.send(.state, sent[0])
        var queuedRest = false
        while now < 30_000_000_000 && !(queuedRest && a.idle && ab.inTransit.isEmpty) && a.state == .open {
            if !queuedRest && a.idle && now > 0 {
                for m in sent.dropFirst() { a.send(.state, m) }
                queuedRest = true
            }
            let out = a.poll(now: now).filter { bytes in
                guard let f = try? ChannelFrame.decode(bytes, key: key), f.sequence == 2, lostCopies < 4 else {
                    return true
                }
                lostCopies += 1
                return false
            }
            ab.carry(out, now: now)
            ba.carry(b.poll(now: now), now: now)
            for f in ab.due(now) { delivered += b.receive(f, now: now).map { $0.payload } }
            for f in ba.due(now) { _ = a.receive(f, now: now) }
            now += 1_000_000
        }
        #expect(a.state == .open, "\(a.state)")
        #expect(delivered == sent)
        #expect(lostCopies == 4 && a.counters.probes == 1 && a.counters.timeouts == 3)
        // It took more than the two seconds after which a frame alone used to end the channel.
        #expect(now > 2_500_000_000, "\(now / 1_000_000) ms")
    }
}
