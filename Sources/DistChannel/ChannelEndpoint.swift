import Crypto

/// One end of a reliable, authenticated channel for one Move: frames in one sequence space
/// (state chunks and redirected packets alike, so a flow's packets are never applied before
/// its state), a sliding window, retransmission on timeout and on selective-ack gaps, an RTT
/// estimate (RFC 6298), acks piggybacked on data or sent alone. No I/O and no clock of its own:
/// the owner hands it received frames and the time, and puts on the wire what it returns, so
/// the same code runs on the transfer lcore and in tests on bytes.
public final class ChannelEndpoint {
    public struct Config: Sendable {
        /// Frames in flight at most.
        public var window = 256
        public var initialRTO: UInt64 = 20_000_000
        public var minRTO: UInt64 = 2_000_000
        public var maxRTO: UInt64 = 1_000_000_000
        /// Retransmissions of one frame before the channel gives up.
        public var maxRetransmissions = 12
        /// A frame unacknowledged this long (ns) since it was first sent: the channel gives up.
        public var giveUpAfter: UInt64 = 2_000_000_000
        /// Later frames acknowledged before a missing one is sent again (fast retransmit).
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
    public let config: Config
    let key: SymmetricKey
    public private(set) var state = State.open
    public private(set) var counters = Counters()

    // Sending.
    var nextSequence: UInt32 = 1
    var waiting: [(kind: ChannelFrame.Kind, payload: [UInt8])] = []
    var waitingHead = 0
    struct InFlight {
        var frame: ChannelFrame
        var sentAt: UInt64
        var firstSentAt: UInt64
        var retries: Int
        var sacked: Bool
        var fastRetransmitted: Bool
        /// Send again at the next poll (a gap the peer's selective acks showed).
        var resendNow = false
    }
    var inFlight: [UInt32: InFlight] = [:]
    var lowestUnacked: UInt32 = 1
    var srtt: Double?
    var rttvar = 0.0
    public private(set) var rto: UInt64

    // Receiving.
    /// Every sequence number up to this one is in.
    var received: UInt32 = 0
    var early: [UInt32: ChannelFrame] = [:]
    var ackOwed = false

    public init(moveID: UInt64, key: SymmetricKey, config: Config = Config()) {
        self.moveID = moveID
        self.key = key
        self.config = config
        rto = config.initialRTO
    }

    /// Queues a message for the peer (sent as the window allows, in order).
    public func send(_ kind: ChannelFrame.Kind, _ payload: [UInt8]) {
        precondition(kind != .ack, "acks are the channel's own")
        waiting.append((kind, payload))
    }

    /// Nothing queued, nothing unacknowledged.
    public var idle: Bool { waitingHead == waiting.count && inFlight.isEmpty }
    public var unacknowledged: Int { inFlight.count }
    /// Every message up to this sequence number has gone out at least once.
    public var sentThrough: UInt32 { nextSequence &- 1 }
    /// Every message up to this sequence number has reached the peer (cumulative ack).
    public var acknowledgedThrough: UInt32 { lowestUnacked &- 1 }
    /// The smoothed round-trip time, once measured (ns).
    public var smoothedRTT: UInt64? { srtt.map { UInt64($0) } }

    /// Takes a frame from the wire; returns the messages it completes, in order, each once.
    public func receive(_ bytes: [UInt8], now: UInt64) -> [ChannelFrame] {
        let frame: ChannelFrame
        do {
            frame = try ChannelFrame.decode(bytes, key: key)
        } catch {
            counters.rejected += 1
            return []
        }
        guard frame.moveID == moveID else {
            counters.foreign += 1
            return []
        }
        counters.framesReceived += 1
        acknowledged(frame.ack, sack: frame.sack, now: now)
        guard frame.kind != .ack else { return [] }
        if frame.kind == .abort {
            // Authenticated: it counts at once, whatever came before it was lost.
            if state == .open { state = .aborted("the peer gave up: " + String(decoding: frame.payload, as: UTF8.self)) }
            return []
        }
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

    func acknowledged(_ ack: UInt32, sack: UInt64, now: UInt64) {
        var newest: UInt32 = 0
        for seq in Array(inFlight.keys) {
            let covered = seq <= ack || (seq > ack && seq &- ack <= 64 && sack & (1 << UInt64(seq &- ack &- 1)) != 0)
            guard covered, let f = inFlight[seq] else { continue }
            if seq <= ack {
                inFlight[seq] = nil
            } else {
                inFlight[seq]?.sacked = true
            }
            if !f.sacked && f.retries == 0 { sample(now &- f.sentAt) }  // Karn: no samples from retransmissions
            newest = max(newest, seq)
        }
        if ack >= lowestUnacked { lowestUnacked = ack &+ 1 }
        // A frame several later ones overtook is lost, most likely: send it again now.
        guard newest > 0 else { return }
        for (seq, f) in inFlight where seq < newest && !f.sacked && !f.fastRetransmitted {
            let later = inFlight.values.filter { $0.sacked && $0.frame.sequence > seq }.count
            if later >= config.gapThreshold {
                inFlight[seq]?.fastRetransmitted = true
                inFlight[seq]?.resendNow = true
            }
        }
    }

    func sample(_ rtt: UInt64) {
        let r = Double(rtt)
        if let s = srtt {
            rttvar = 0.75 * rttvar + 0.25 * abs(s - r)
            srtt = 0.875 * s + 0.125 * r
        } else {
            srtt = r
            rttvar = r / 2
        }
        rto = min(config.maxRTO, max(config.minRTO, UInt64(srtt! + 4 * rttvar)))
    }

    /// What to put on the wire now: retransmissions that are due, new frames the window allows,
    /// and an ack if one is owed and no data frame carries it.
    public func poll(now: UInt64) -> [[UInt8]] {
        guard state == .open else { return [] }
        var out: [[UInt8]] = []
        let sack = sackBitmap()
        for seq in inFlight.keys.sorted() {
            guard var f = inFlight[seq], !f.sacked else { continue }
            let due = f.resendNow || now &- f.sentAt >= rto << UInt64(min(f.retries, 6))
            guard due else { continue }
            if f.retries >= config.maxRetransmissions || now &- f.firstSentAt >= config.giveUpAfter {
                state = .aborted("the peer acknowledged nothing of frame \(seq) after \(f.retries) retransmissions in \((now &- f.firstSentAt) / 1_000_000) ms")
                return []
            }
            f.retries += 1
            f.resendNow = false
            f.sentAt = now
            f.frame.ack = received
            f.frame.sack = sack
            inFlight[seq] = f
            counters.retransmissions += 1
            out.append(f.frame.encoded(key: key))
        }
        while waitingHead < waiting.count && inFlight.count < config.window {
            let (kind, payload) = waiting[waitingHead]
            waiting[waitingHead].payload = []
            waitingHead += 1
            let frame = ChannelFrame(kind: kind, moveID: moveID, sequence: nextSequence, ack: received, sack: sack, payload: payload)
            inFlight[nextSequence] = InFlight(frame: frame, sentAt: now, firstSentAt: now, retries: 0, sacked: false,
                                              fastRetransmitted: false)
            nextSequence &+= 1
            out.append(frame.encoded(key: key))
        }
        if waitingHead == waiting.count {
            waiting = []
            waitingHead = 0
        }
        if ackOwed {
            if out.isEmpty {
                out.append(ChannelFrame(kind: .ack, moveID: moveID, sequence: 0, ack: received, sack: sack).encoded(key: key))
            }
            ackOwed = false
        }
        counters.framesSent += out.count
        return out
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
        let frame = ChannelFrame(kind: .abort, moveID: moveID, sequence: nextSequence, ack: received, sack: sackBitmap(),
                                 payload: Array(reason.utf8.prefix(512)))
        // It takes no sequence number of its own (the peer acts on it at once).
        return frame.encoded(key: key)
    }
}
