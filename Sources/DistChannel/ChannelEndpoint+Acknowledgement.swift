import Crypto

/// The sender's side of acknowledgements: what an ack delivers, which frames it shows lost
/// (RACK, RFC 8985, and RFC 6675's gap rule), the congestion window (slow start, a delay-based
/// step per round, halving once per loss episode), round-trip samples and pacing.
extension ChannelEndpoint {
    /// What one acknowledgement delivered.
    struct AckTally {
        var newly = 0
        /// When the last-sent of the frames this ack delivers went (RACK's clock, RFC 8985).
        var deliveredSentAt: UInt64 = 0
        /// One round-trip sample per ack, from the frame sent last (an ack that was lost makes
        /// the next one cover frames sent long before), and none from retransmissions (Karn).
        var rtt = UInt64.max
        /// An ack that acknowledges a retransmitted frame gives no sample at all (Karn, as
        /// Linux applies it): the frames it acknowledges with it waited behind the lost one,
        /// and a sample from them would count the recovery's time as the path's, inflating the
        /// timer, which slows the recovery, which inflates the next sample.
        var retransmittedAcked = false
        var highestSacked: UInt32 = 0
    }

    func acknowledged(_ ack: UInt32, sack: UInt64, now: UInt64) {
        // An ack of what was never sent acknowledges nothing beyond what was.
        let ack = min(ack, nextSequence &- 1)
        var tally = AckTally()
        takeCumulative(ack, now: now, into: &tally)
        takeSelective(sack, above: ack, now: now, into: &tally)
        undoSpuriousTimeout(ack, now: now)
        if tally.rtt != .max && !tally.retransmittedAcked { sample(tally.rtt) }
        if tally.newly > 0 {
            lastProgress = now
            probed = false
        }
        defer {
            if let trace {
                trace(
                    now,
                    "ack \(ack) sack \(String(sack, radix: 16)) newly \(tally.newly) rtt "
                        + "\(tally.rtt == .max ? -1 : Int(tally.rtt / 1000))us"
                        + (tally.retransmittedAcked ? " (a resent frame's)" : "")
                        + " pipe \(pipe) cwnd \(Int(congestionWindow)) srtt \(Int((srtt ?? 0) / 1000))us"
                        + " rto \(rto / 1000)us lost \(lostQueue)"
                )
            }
        }
        if tally.newly > 0 && !inRecovery && congestionWindow < slowStartThreshold {
            // Slow start (counting bytes, RFC 3465).
            congestionWindow = min(congestionWindow + Double(tally.newly), Double(config.maximumCongestionWindow))
        }
        if ack >= roundEnd && roundEnd > 0 { endOfRound() }
        let flightBefore = pipe
        // Once per loss episode the window halves; the lost frames go again at the next poll.
        guard markLosses(tally, now: now) else { return }
        lostQueue.sort()
        if !inRecovery { enterRecovery(flightBefore: flightBefore, now: now) }
    }

    /// The frames up to `ack` are delivered.
    func takeCumulative(_ ack: UInt32, now: UInt64, into tally: inout AckTally) {
        guard ack >= lowestUnacked else { return }
        for seq in lowestUnacked...ack {
            guard let f = inFlight.removeValue(forKey: seq) else { continue }
            if f.lost { lostQueue.removeAll { $0 == seq } }
            guard !f.sacked else { continue }
            tally.newly += f.size
            if unambiguous(f, now: now) { tally.deliveredSentAt = max(tally.deliveredSentAt, f.sentAt) }
            if !f.lost { pipe -= f.size }
            if f.retries == 0 { tally.rtt = min(tally.rtt, now &- f.sentAt) } else { tally.retransmittedAcked = true }
        }
        lowestUnacked = ack &+ 1
        timerStart = now
        backoff = 0
    }

    /// The frames the selective-ack bitmap names (bit i: frame `ack` + 1 + i) are delivered.
    func takeSelective(_ sack: UInt64, above ack: UInt32, now: UInt64, into tally: inout AckTally) {
        var bits = sack
        while bits != 0 {
            let i = UInt32(bits.trailingZeroBitCount)
            bits &= bits &- 1
            let seq = ack &+ 1 &+ i
            guard seq < nextSequence, var f = inFlight[seq] else { continue }
            tally.highestSacked = seq
            guard !f.sacked else { continue }
            f.sacked = true
            tally.newly += f.size
            if unambiguous(f, now: now) { tally.deliveredSentAt = max(tally.deliveredSentAt, f.sentAt) }
            if f.lost {
                f.lost = false
                lostQueue.removeAll { $0 == seq }
            } else {
                pipe -= f.size
            }
            if f.retries == 0 { tally.rtt = min(tally.rtt, now &- f.sentAt) }
            inFlight[seq] = f
        }
    }

    /// A timeout's retransmission acknowledged sooner than the quickest round trip seen: the
    /// original had arrived, not the copy, and the window the timeout took goes back.
    func undoSpuriousTimeout(_ ack: UInt32, now: UInt64) {
        guard let u = undo, ack >= u.seq || inFlight[u.seq]?.sacked == true else { return }
        undo = nil
        if baseRTT != .max && now &- u.at < baseRTT {
            counters.spuriousTimeouts += 1
            congestionWindow = max(congestionWindow, u.window)
            slowStartThreshold = u.threshold
            recoveryPoint = u.recoveryPoint
            backoff = 0
        }
    }

    /// Marks the frames this ack shows lost; whether there were any.
    func markLosses(_ tally: AckTally, now: UInt64) -> Bool {
        var found = false
        func lose(_ seq: UInt32, _ f: InFlight, _ why: @autoclosure () -> String) {
            trace?(now, "lost \(seq) (\(why()); sent \((now &- f.sentAt) / 1000)us ago, tries \(f.retries + 1))")
            inFlight[seq]!.lost = true
            pipe -= f.size
            lostQueue.append(seq)
            found = true
        }
        // A frame sent a while before one that has arrived is lost, most likely (RACK, RFC
        // 8985): a first transmission or a retransmission alike, so a lost retransmission costs
        // a round trip, not a timeout.
        if tally.deliveredSentAt > latestDeliveredSentAt {
            latestDeliveredSentAt = tally.deliveredSentAt
            let reordering = max(UInt64((srtt ?? 0) / 4), config.reorderingWindow)
            for (seq, f) in inFlight where !f.sacked && !f.lost && f.sentAt &+ reordering < latestDeliveredSentAt {
                lose(seq, f, "sent before one that arrived")
            }
        }
        // And a frame that several later ones overtook (RFC 6675; for frames that went out
        // together).
        var sackedAbove = 0
        var seq = tally.highestSacked
        while seq >= lowestUnacked && seq > 0 {
            if let f = inFlight[seq] {
                if f.sacked {
                    sackedAbove += 1
                } else if !f.lost && f.retries == 0 && sackedAbove >= config.gapThreshold {
                    lose(seq, f, "\(sackedAbove) later frames arrived")
                }
            }
            seq &-= 1
        }
        return found
    }

    /// A loss episode begins: the window shrinks, by less when the path showed little queue
    /// (the loss was random, not congestion).
    func enterRecovery(flightBefore: Int, now: UInt64) {
        counters.fastRecoveries += 1
        let queued = roundRTT != .max && baseRTT != .max ? queuedEstimate : lastRoundQueued
        if let queued, queued < Double(config.queuedHigh) {
            counters.randomLosses += 1
            slowStartThreshold = max(
                congestionWindow * config.randomLossFactor, 2 * Double(config.minimumCongestionWindow))
        } else {
            slowStartThreshold = max(Double(flightBefore) / 2, 2 * Double(config.minimumCongestionWindow))
        }
        congestionWindow = slowStartThreshold
        recoveryPoint = nextSequence &- 1
        trace?(
            now,
            "window \(Int(congestionWindow)) after a loss "
                + "(\(queued.map { "\(Int($0)) bytes queued" } ?? "queue not measured"))"
        )
    }

    /// Whether a frame that arrived tells when it was sent: a first transmission does; a
    /// retransmission not if its acknowledgement came sooner after the copy went than the least
    /// round trip seen (it was the original that arrived, sent long before). RACK (RFC 8985,
    /// step 2) takes the send time of what arrived as its clock: a copy's send time, taken for
    /// an original's, makes every frame sent before the copy look lost. (Before any round trip
    /// is measured there is nothing to tell them apart by: the copy is believed, and the initial
    /// timer is long enough that it is a copy of a frame really lost.)
    func unambiguous(_ f: InFlight, now: UInt64) -> Bool {
        f.retries == 0 || baseRTT == .max || now &- f.sentAt >= baseRTT
    }

    /// Once per round trip, after slow start: a frame more while little is queued, a frame
    /// less while much is.
    func endOfRound() {
        if roundRTT != .max && baseRTT != .max { lastRoundQueued = queuedEstimate }
        defer {
            roundEnd = nextSequence &- 1
            roundRTT = .max
            roundSamples = 0
        }
        guard roundRTT != .max, baseRTT != .max, !inRecovery, congestionWindow >= slowStartThreshold else { return }
        let queued = queuedEstimate
        let frame = Double(config.minimumCongestionWindow)
        if queued < Double(config.queuedLow) {
            congestionWindow = min(congestionWindow + frame, Double(config.maximumCongestionWindow))
        } else if queued > Double(config.queuedHigh) {
            congestionWindow = max(frame, congestionWindow - frame)
        }
    }

    /// Bytes of the window in the path's queues, by the least round-trip time of the round
    /// against the least ever (TCP Vegas's estimate).
    var queuedEstimate: Double {
        guard roundRTT != .max, baseRTT != .max, roundRTT > 0 else { return 0 }
        return congestionWindow * Double(roundRTT - min(baseRTT, roundRTT)) / Double(roundRTT)
    }

    func sample(_ rtt: UInt64) {
        baseRTT = min(baseRTT, rtt)
        roundRTT = min(roundRTT, rtt)
        roundSamples += 1
        // Slow start ends as soon as the queue builds (as HyStart's delay test), not a round
        // later, when the window has doubled again.
        if congestionWindow < slowStartThreshold && roundSamples >= 2 && queuedEstimate > Double(config.queuedLow) {
            congestionWindow = max(
                Double(config.minimumCongestionWindow),
                congestionWindow - queuedEstimate + Double(config.queuedLow))
            slowStartThreshold = congestionWindow
        }
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

    /// The retransmission timer's length: the RTO, backed off by timeouts in a row.
    var timer: UInt64 { backoff == 0 ? rto : max(rto, min(rto << UInt64(backoff), config.maxBackedOffRTO)) }

    /// The oldest frame neither acknowledged nor selectively acknowledged (the first gap,
    /// found at once unless a late ack selectively acknowledged it).
    var oldestOutstanding: (seq: UInt32, frame: InFlight)? {
        var seq = lowestUnacked
        while seq < nextSequence {
            if let f = inFlight[seq], !f.sacked { return (seq, f) }
            seq &+= 1
        }
        return nil
    }

    /// A frame of `size` bytes may go: the congestion window has room (one frame always may),
    /// and pacing allows it.
    func maysend(_ size: Int, now: UInt64) -> Bool {
        guard pipe == 0 || Double(pipe + size) <= congestionWindow else { return false }
        return !config.pacing || now >= nextSendAt
    }

    func sent(_ size: Int, now: UInt64) {
        if pipe == 0 && inFlight.count <= 1 { timerStart = now }
        if roundEnd == 0 { roundEnd = nextSequence &- 1 }
        pipe += size
        guard config.pacing, let s = srtt, s > 0 else { return }
        let gain = congestionWindow < slowStartThreshold ? 2.0 : 1.25
        let bytesPerNanosecond = gain * congestionWindow / s
        // Sending that polls came late for may go at once, up to a quarter of a round trip (at
        // least 100 us): where the lcore shares its CPU, polls come a millisecond apart, and a
        // credit of 100 us let one frame go a poll whatever the window (a 100,000-flow Move's
        // states trickled out at 4 MB/s behind a window that allowed 20).
        let credit = max(100_000, UInt64(s / 4))
        nextSendAt = max(nextSendAt, now &- min(now, credit)) &+ UInt64(Double(size) / bytesPerNanosecond)
    }
}
