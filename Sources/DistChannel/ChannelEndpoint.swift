import Crypto

/// One end of a reliable, authenticated channel for one Move: frames in one sequence space
/// (state chunks and redirected packets alike, so a flow's packets are never applied before
/// its state), a sliding window, retransmission on timeout and on selective-ack gaps, an RTT
/// estimate (RFC 6298), acks piggybacked on data or sent alone. No I/O and no clock of its own:
/// the owner hands it received frames and the time, and puts on the wire what it returns, so
/// the same code runs on the transfer lcore and in tests on bytes.
public final class ChannelEndpoint {
    public struct Config: Sendable {
        /// Frames in flight at most (the receiver's window).
        public var window = 256
        /// Congestion control: bytes in flight at the start, at least, and at most. The data
        /// link is shared with the VNFs' traffic, and a link's queue may be long (or, on the test
        /// bed, unbounded) and lose nothing; so the window follows the queueing delay (TCP
        /// Vegas) as well as loss (RFC 5681 with SACK loss recovery, RFC 6675).
        /// The initial window is ten frames of a 9000-byte MTU (TCP's IW10, in frames): about
        /// the bandwidth-delay product of a 100 Mbit/s path with a 7 ms round trip (the test
        /// bed's, through two delay lines and the switch). With four, a Move's first round trip
        /// carried 36 kB of its 200 kB of state and the link then idled for 7 ms.
        public var initialCongestionWindow = 90_000
        public var minimumCongestionWindow = 9_000
        public var maximumCongestionWindow = 4 << 20
        /// Bytes of its own the channel keeps queued on the path, once per round trip measured
        /// from the least round-trip time seen: below the low mark the window grows by a frame,
        /// above the high one it shrinks by one; slow start ends above the low mark.
        public var queuedLow = 18_000
        public var queuedHigh = 36_000
        /// A loss while the path queues less than `queuedHigh` of ours is taken as random (a
        /// corrupted or dropped frame on a path that is not full), not as congestion: the window
        /// shrinks to this share of itself, not to half the flight (TCP Veno's 4/5). On a path
        /// that drops one frame in ten at random, halving at each loss kept the window at two
        /// frames, below the rate of the packets a Move redirects, and the backlog grew for
        /// seconds. A queue that overflows is full: its losses still halve.
        public var randomLossFactor = 0.8
        /// Spreads the frames of a window over a round trip (at 2x cwnd/RTT in slow start,
        /// 1.25x after) instead of sending them back to back into the link's queue.
        public var pacing = true
        /// Before the first round trip is measured. The first frames of a Move take the
        /// switch's slow path (a new flow: Open vSwitch's upcall), and the peer's lcore may be
        /// busy: on the test bed the first round trip took up to 29 ms where later ones took 7,
        /// and a 20 ms timer fired for nothing.
        public var initialRTO: UInt64 = 100_000_000
        public var minRTO: UInt64 = 5_000_000
        public var maxRTO: UInt64 = 1_000_000_000
        /// Timeouts in a row double the timer up to this (or the RTO itself, when that is
        /// longer). The channel's path is a data-center or test bed link; after a timeout it
        /// sends one frame per timer, so a longer wait spares the path nothing, while on a path
        /// that drops frames at random, a chain of lost copies backed off to 8x the RTO held a
        /// Move's last frames for over half a second.
        public var maxBackedOffRTO: UInt64 = 100_000_000
        /// Tail-loss probes (see ``tailLossProbe(now:)``).
        public var tailLossProbes = true
        /// Retransmissions of one frame before the channel gives up, however little time they
        /// took. Over a lossy path every try of a frame can fail: at 30% loss each way, 12 tries
        /// all fail for about one frame in 3,000 (a Move's worth, in the channel's tests), 24
        /// for one in ten million. A dead peer is found by time anyway (`giveUpAfter`).
        public var maxRetransmissions = 24
        /// A frame unacknowledged this long (ns) since it was first sent, and retransmitted at
        /// least `minimumRetransmissions` times: the channel gives up. (The count matters on a
        /// path whose round trip grew long under load: its backed-off timer may resend a frame
        /// only three or four times in two seconds, and one unlucky frame at 10% loss then
        /// ended a Move whose peer was there all along.)
        public var giveUpAfter: UInt64 = 2_000_000_000
        public var minimumRetransmissions = 6
        /// A frame still unacknowledged when one sent this long (ns; a quarter of the round trip
        /// when that is more) after it has arrived is taken as lost and goes again.
        public var reorderingWindow: UInt64 = 500_000
        /// Or when this many frames after it have arrived (for frames sent together).
        public var gapThreshold = 3
        public init() {}
    }

    public enum State: Equatable, Sendable {
        case open
        /// The peer gave up, or this end did (no acknowledgement in time): why.
        case aborted(String)
    }

    public struct Counters: Equatable, Sendable {
        public var framesSent = 0
        public var retransmissions = 0
        /// Retransmission timeouts (each one shrinks the congestion window to one frame).
        public var timeouts = 0
        /// Tail-loss probes: frames sent (a new one, or the last again) when nothing was
        /// acknowledged for two round trips, before the timer ran out.
        public var probes = 0
        /// Losses found from the peer's selective acks (each episode halves the window, or takes
        /// a fifth off it when the path was not queueing: `randomLosses` of them).
        public var fastRecoveries = 0
        public var randomLosses = 0
        /// Timeouts found spurious (the original frame's acknowledgement came back sooner than
        /// any round trip after its retransmission could have): the window they took was given back.
        public var spuriousTimeouts = 0
        public var framesReceived = 0
        public var delivered = 0
        /// Data frames received again (their sequence number was already in): a duplicate or a replay.
        public var duplicates = 0
        /// Frames whose tag did not verify, or that were not channel frames at all.
        public var rejected = 0
        /// Frames of another move.
        public var foreign = 0
        /// Frames beyond the receive window.
        public var outOfWindow = 0
    }

    public let moveID: UInt64
    /// This end's keys (the Move's nonce, this end and the peer), and its transmissions so far
    /// (each frame it puts on the wire, resent ones too, takes the next counter).
    let cipher: ChannelCipher
    var transmissions: UInt64 = 0
    /// What this end's frames are bound to (the peer's are to its reverse).
    public var binding: ChannelFrame.Binding { cipher.binding }
    public let config: Config
    /// Every decision of the sender as it is taken, with the time: acknowledgements and what
    /// they showed, frames sent and resent and why, timeouts, and what held new frames back
    /// (for diagnosis: `dist-vnf --channel-trace`). Nil: none, and no cost but the check.
    public var trace: ((_ now: UInt64, _ event: String) -> Void)?
    /// What last held new frames back (traced when it changes).
    var heldBy = ""
    public private(set) var state = State.open
    public internal(set) var counters = Counters()

    // Sending.
    var nextSequence: UInt32 = 1
    var waiting: [(kind: ChannelFrame.Kind, payload: [UInt8])] = []
    var waitingHead = 0
    struct InFlight {
        var frame: ChannelFrame
        /// Bytes on the wire (the channel's header and tag included).
        var size: Int
        var sentAt: UInt64
        var firstSentAt: UInt64
        var retries: Int
        var sacked: Bool
        /// Taken as lost and waiting to go again (not counted in the pipe meanwhile).
        var lost = false
    }
    var inFlight: [UInt32: InFlight] = [:]
    var lowestUnacked: UInt32 = 1
    /// Lost frames waiting to go again, lowest first.
    var lostQueue: [UInt32] = []
    /// Bytes sent and neither acknowledged nor taken as lost (RFC 6675's pipe).
    public internal(set) var pipe = 0
    public internal(set) var congestionWindow: Double
    var slowStartThreshold = Double.infinity
    /// Until the cumulative ack passes this, a loss does not shrink the window again.
    var recoveryPoint: UInt32 = 0
    /// The retransmission timer: started when the oldest frame went, restarted by progress.
    var timerStart: UInt64 = 0
    /// Timeouts in a row: the timer runs for `rto << backoff`.
    var backoff = 0
    /// The first timeout of an episode: the frame it resent, when, and the window and
    /// threshold before it, to give back if the frame's acknowledgement shows the original had
    /// arrived (a peer or a path that stalled for a moment, not a loss).
    var undo: (seq: UInt32, at: UInt64, window: Double, threshold: Double, recoveryPoint: UInt32)?
    var nextSendAt: UInt64 = 0
    /// The last acknowledgement that delivered something, or the last new frame, whichever is
    /// later (the tail-loss probe's clock), and whether the probe went since.
    var lastProgress: UInt64 = 0
    var probed = false
    /// The send time of the latest-sent frame known to have arrived.
    var latestDeliveredSentAt: UInt64 = 0
    /// The least round-trip time seen (the path with nothing of ours queued), the least in
    /// this round, and the sequence number whose acknowledgement ends the round.
    var baseRTT = UInt64.max
    var roundRTT = UInt64.max
    /// Bytes of ours the path queued by the last round's least round trip (nil: not measured).
    var lastRoundQueued: Double?
    var roundEnd: UInt32 = 0
    var roundSamples = 0
    var srtt: Double?
    var rttvar = 0.0
    public internal(set) var rto: UInt64

    // Receiving.
    /// Every sequence number up to this one is in.
    var received: UInt32 = 0
    var early: [UInt32: ChannelFrame] = [:]
    var ackOwed = false

    public init(moveID: UInt64, key: SymmetricKey, binding: ChannelFrame.Binding = .unbound, config: Config = Config())
    {
        self.moveID = moveID
        cipher = ChannelCipher(key: key, binding: binding)
        self.config = config
        rto = config.initialRTO
        congestionWindow = Double(max(config.initialCongestionWindow, config.minimumCongestionWindow))
    }

    /// Queues a message for the peer (sent as the window allows, in order).
    public func send(_ kind: ChannelFrame.Kind, _ payload: [UInt8]) {
        precondition(kind != .ack, "acks are the channel's own")
        waiting.append((kind, payload))
    }

    /// Nothing queued, nothing unacknowledged.
    public var idle: Bool { waitingHead == waiting.count && inFlight.isEmpty }
    /// Messages queued that the windows have not let out yet.
    public var backlog: Int { waiting.count - waitingHead }
    public var unacknowledged: Int { inFlight.count }
    /// Every message up to this sequence number has gone out at least once.
    public var sentThrough: UInt32 { nextSequence &- 1 }
    /// Every message up to this sequence number has reached the peer (cumulative ack).
    public var acknowledgedThrough: UInt32 { lowestUnacked &- 1 }
    /// The smoothed round-trip time, once measured (ns).
    public var smoothedRTT: UInt64? { srtt.map { UInt64($0) } }
    var inRecovery: Bool { lowestUnacked <= recoveryPoint }

    /// Takes a frame from the wire; returns the messages it completes, in order, each once.
    public func receive(_ bytes: [UInt8], now: UInt64) -> [ChannelFrame] {
        let frame: ChannelFrame
        do {
            frame = try ChannelFrame.opened(bytes, with: cipher)
        } catch .otherNonce {
            counters.foreign += 1
            return []
        } catch {
            counters.rejected += 1
            return []
        }
        guard frame.moveID == moveID else {
            counters.foreign += 1
            return []
        }
        // An abort is numbered after everything its sender sent: within the window, like data.
        if frame.kind == .abort
            && !(frame.sequence > received && frame.sequence &- received <= UInt32(config.window) + 1)
        {
            counters.outOfWindow += 1
            return []
        }
        counters.framesReceived += 1
        acknowledged(frame.ack, sack: frame.sack, now: now)
        guard frame.kind != .ack else { return [] }
        if frame.kind == .abort {
            // Authenticated: it counts at once, whatever came before it was lost.
            if state == .open {
                state = .aborted("the peer gave up: " + String(decoding: frame.payload, as: UTF8.self))
            }
            return []
        }
        // Once given up, nothing more is received: what this end acknowledged is all it took
        // (its abort frame tells the peer so, however late it goes).
        guard state == .open else { return [] }
        ackOwed = true
        if frame.sequence <= received || early[frame.sequence] != nil {
            counters.duplicates += 1
            return []
        }
        guard frame.sequence &- received <= UInt32(config.window) else {
            counters.outOfWindow += 1
            return []
        }
        early[frame.sequence] = frame
        var out: [ChannelFrame] = []
        while let next = early.removeValue(forKey: received &+ 1) {
            received &+= 1
            out.append(next)
        }
        counters.delivered += out.count
        return out
    }

    /// What to put on the wire now: retransmissions that are due, new frames the windows and
    /// the pacing allow, and an ack if one is owed and no data frame carries it.
    public func poll(now: UInt64) -> [[UInt8]] {
        guard state == .open else { return [] }
        let timeoutFrame = timeout(now: now)
        guard state == .open else { return [] }
        var out: [[UInt8]] = timeoutFrame.map { [$0] } ?? []
        if timeoutFrame == nil, let probe = tailLossProbe(now: now) { out.append(probe) }
        let sack = sackBitmap()
        while let seq = lostQueue.first {
            guard let f = inFlight[seq] else {
                lostQueue.removeFirst()
                continue
            }
            // (The window, not the pacing: a frame found lost goes at once, as RFC 6675's first
            // retransmission does.)
            guard pipe == 0 || Double(pipe + f.size) <= congestionWindow else { break }
            lostQueue.removeFirst()
            if seq == lowestUnacked { timerStart = now }
            out.append(resend(seq, now: now, sack: sack))
            trace?(now, "resend \(seq) (lost), tries \(f.retries + 1), pipe \(pipe) cwnd \(Int(congestionWindow))")
        }
        while waitingHead < waiting.count && inFlight.count < config.window {
            let size = ChannelFrame.overhead + waiting[waitingHead].payload.count
            guard lostQueue.isEmpty, maysend(size, now: now) else { break }
            out.append(sendNext(now: now, sack: sack))
            lastProgress = now
            probed = false
        }
        traceHold(now: now)
        if waitingHead == waiting.count {
            waiting = []
            waitingHead = 0
        }
        if ackOwed {
            if out.isEmpty {
                out.append(seal(ChannelFrame(kind: .ack, moveID: moveID, sequence: 0, ack: received, sack: sack)))
            }
            ackOwed = false
        }
        counters.framesSent += out.count
        return out
    }

    /// When the retransmission timer has run out: the oldest frame again (or the channel given
    /// up, `state` aborted, and nil); nil too when it has not.
    func timeout(now: UInt64) -> [UInt8]? {
        if let (seq, oldest) = oldestOutstanding, now &- timerStart >= timer {
            if oldest.retries >= config.maxRetransmissions
                || (now &- oldest.firstSentAt >= config.giveUpAfter && oldest.retries >= config.minimumRetransmissions)
            {
                state = .aborted(
                    "the peer acknowledged nothing of frame \(seq) after \(oldest.retries) retransmissions in "
                        + "\((now &- oldest.firstSentAt) / 1_000_000) ms"
                )
                return nil
            }
            // Timeout: the window starts again from one frame, the timer backs off for the whole
            // channel (RFC 6298, 5681), and the oldest frame goes again at once. What its
            // acknowledgement shows lost (RACK) follows; nothing else goes twice on a guess.
            counters.timeouts += 1
            trace?(
                now,
                "timeout: resend \(seq) after \((now &- timerStart) / 1000)us (rto \(rto / 1000)us, backoff "
                    + "\(backoff)), tries \(oldest.retries + 1), cwnd \(Int(congestionWindow)) -> "
                    + "\(config.minimumCongestionWindow)"
            )
            if backoff == 0 && oldest.retries == 0 {
                undo = (seq, now, congestionWindow, slowStartThreshold, recoveryPoint)
            }
            slowStartThreshold = max(Double(pipe) / 2, 2 * Double(config.minimumCongestionWindow))
            congestionWindow = Double(config.minimumCongestionWindow)
            backoff = min(backoff + 1, 3)
            recoveryPoint = nextSequence &- 1
            timerStart = now
            nextSendAt = now
            return resend(seq, now: now, sack: sackBitmap())
        }
        return nil
    }

    /// Traces what holds the next frame back, when that changes.
    func traceHold(now: UInt64) {
        guard let trace else { return }
        var by = ""
        if let seq = lostQueue.first, let f = inFlight[seq] {
            by = pipe != 0 && Double(pipe + f.size) > congestionWindow ? "a resend: window" : ""
        } else if waitingHead < waiting.count {
            let size = ChannelFrame.overhead + waiting[waitingHead].payload.count
            by =
                inFlight.count >= config.window
                ? "receive window"
                : pipe != 0 && Double(pipe + size) > congestionWindow
                    ? "window" : !maysend(size, now: now) ? "pacing" : ""
        }
        if by != heldBy {
            heldBy = by
            trace(
                now,
                by.isEmpty
                    ? "not held" : "held by \(by) (pipe \(pipe) cwnd \(Int(congestionWindow)), \(backlog) waiting)")
        }
    }

    /// A tail-loss probe (RFC 8985, section 7), if one is due: frames are out, none is known lost,
    /// and nothing was acknowledged (and nothing new sent) for two smoothed round trips. A new
    /// frame goes if one waits and the receive window allows (whatever the congestion window),
    /// else the last frame sent goes again; the acknowledgement it draws shows what is missing,
    /// and RACK resends that. Without it, a lost frame that no later frame follows (a window of
    /// one or two after losses, or the Move's last frames) waited for the timer, and a
    /// timeout shrinks the window to one frame and backs the timer off: on a path that drops
    /// one frame in ten, such chains held a Move's last frames for hundreds of milliseconds.
    func tailLossProbe(now: UInt64) -> [UInt8]? {
        guard config.tailLossProbes, !probed, lostQueue.isEmpty, !inFlight.isEmpty, let s = srtt else { return nil }
        let pto = min(UInt64(2 * s) &+ (inFlight.count == 1 ? config.minRTO : 0), timer)
        guard now &- max(lastProgress, timerStart) >= pto else { return nil }
        probed = true
        counters.probes += 1
        // The timer runs again from the probe (RFC 8985, 7.3): its ack is a round trip away.
        let waited = now &- max(lastProgress, timerStart)
        timerStart = now
        if waitingHead < waiting.count && inFlight.count < config.window {
            trace?(now, "probe: a new frame after \(waited / 1000)us without an ack")
            return sendNext(now: now, sack: sackBitmap())
        }
        var seq = nextSequence &- 1
        while seq >= lowestUnacked, seq > 0 {
            if let f = inFlight[seq], !f.sacked {
                trace?(now, "probe: resend \(seq) after \(waited / 1000)us without an ack")
                return resend(seq, now: now, sack: sackBitmap())
            }
            seq &-= 1
        }
        return nil
    }

    /// The next waiting message, as a new frame on its way.
    func sendNext(now: UInt64, sack: UInt64) -> [UInt8] {
        let (kind, payload) = waiting[waitingHead]
        waiting[waitingHead].payload = []
        waitingHead += 1
        let size = ChannelFrame.overhead + payload.count
        let frame = ChannelFrame(
            kind: kind, moveID: moveID, sequence: nextSequence, ack: received, sack: sack, payload: payload)
        inFlight[nextSequence] = InFlight(
            frame: frame, size: size, sentAt: now, firstSentAt: now, retries: 0, sacked: false)
        nextSequence &+= 1
        sent(size, now: now)
        trace?(now, "send \(frame.sequence) \(kind) \(size) bytes, pipe \(pipe) cwnd \(Int(congestionWindow))")
        return seal(frame)
    }

    /// Frame `seq` again, now, with the latest acknowledgement: counted, back in the pipe.
    func resend(_ seq: UInt32, now: UInt64, sack: UInt64) -> [UInt8] {
        var f = inFlight[seq]!
        if f.lost { lostQueue.removeAll { $0 == seq } } else { pipe -= f.size }
        f.lost = false
        f.retries += 1
        f.sentAt = now
        f.frame.ack = received
        f.frame.sack = sack
        inFlight[seq] = f
        counters.retransmissions += 1
        sent(f.size, now: now)
        return seal(f.frame)
    }

    /// `frame` for the wire, as this end's next transmission.
    func seal(_ frame: ChannelFrame) -> [UInt8] {
        transmissions &+= 1
        return frame.sealed(with: cipher, counter: transmissions)
    }

    /// Bit i: sequence `received + 1 + i` is in (held early).
    func sackBitmap() -> UInt64 {
        var bits: UInt64 = 0
        for seq in early.keys where seq > received && seq &- received <= 64 {
            bits |= 1 << UInt64(seq &- received &- 1)
        }
        return bits
    }

    /// Gives the move up: tells the peer why (best effort) and stops.
    public func abort(_ reason: String, now: UInt64) -> [UInt8] {
        state = .aborted(reason)
        return abortFrame(reason)
    }

    /// An abort frame for the peer (also once this end has given up for another reason).
    public func abortFrame(_ reason: String) -> [UInt8] {
        let frame = ChannelFrame(
            kind: .abort, moveID: moveID, sequence: nextSequence, ack: received, sack: sackBitmap(),
            payload: Array(reason.utf8.prefix(512)))
        // It takes no sequence number of its own (the peer acts on it at once).
        return seal(frame)
    }
}
