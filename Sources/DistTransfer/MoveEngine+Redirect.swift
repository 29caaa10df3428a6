import DistChannel
import DistFlow
import DistMove
import DistPacket
import DistPipeline
import DistState

/// The source's side of a Move, packet by packet: what the workers redirect goes over the
/// channel, and the in-band control packet, once every queue has had it, ends the redirection.
extension MoveEngine {
    /// A frame a worker sent here, kept as bytes: a redirected packet or a channel frame.
    public func workerFrame(_ bytes: [UInt8], from worker: Int, redirected: Bool, now: UInt64) {
        if redirected {
            bytes.withUnsafeBytes { self.redirected($0, from: worker, now: now) }
        } else {
            channel(bytes, now: now)
        }
    }

    /// A packet of a moving flow a worker redirected here (or the Move's in-band control packet).
    /// Its bytes are read here, not kept: the channel's next frame takes its one copy.
    public func redirected(_ bytes: UnsafeRawBufferPointer, from worker: Int, now: UInt64) {
        if outgoing == nil && completedOrdered {
            duplicatesDropped += 1
            return
        }
        guard let move = outgoing, move.guarded else {
            // Redirected before the Move's rule went (it ended or aborted) and still in the
            // ring: this instance's to process, the rule being gone; but an in-band control
            // packet is never traffic (a Move given up as its IBC came ends so).
            strayRedirects += 1
            if InBandMarker.find(in: bytes) == nil { _ = process(Array(bytes)[...]) }
            return
        }
        if let marker = InBandMarker.find(in: bytes), marker.moveID == move.order.moveID {
            guard marker.token == ibcToken(move.order.moveID, nonce: move.order.nonce) else {
                // (Not the controller's: the switch's rules did not move, whatever it says.)
                markersForged += 1
                return
            }
            // (A Move being given up ends so, whatever comes late.)
            if move.giveUp == nil { ibc(move, from: worker, copies: Int(marker.phase), now: now) }
            return
        }
        if abortIfChannelBroke(move, now: now) {
            // The channel takes nothing more: this packet is this instance's again, after
            // those the abort gave back.
            strayRedirects += 1
            _ = process(Array(bytes)[...])
            return
        }
        if move.ibcSeen && move.ordered {
            // After the marker, the switch sends the destination these packets itself.
            move.duplicatesDropped += 1
            return
        }
        if !move.session.redirect(bytes) { move.lateRedirects += 1 }
    }

    /// The Move's in-band control packet came through worker `worker` (OP: one of `copies`).
    func ibc(_ move: Outgoing, from worker: Int, copies: Int, now: UInt64) {
        // (Further copies of it change nothing.)
        guard !move.ibcSeen && move.ibcDrain == nil else { return }
        if move.ordered {
            // Each queue is cut at its own copy: the workers drop what comes after it. The
            // Move ends only once the switch has sent on every copy: until then a queue of the
            // destination may still wait for its own, and the switch must go on sending it the
            // packets before that copy (the controller changes the switch's rules at the end).
            move.ibcWorkers.insert(worker)
            move.ibcCopiesSeen += 1
            move.ibcCopies = max(1, copies)
            if move.ibcFirstAt == 0 { move.ibcFirstAt = now }
            guard move.ibcWorkers.count == host.workerCount && move.ibcCopiesSeen >= move.ibcCopies else { return }
        }
        if host.workerCount == 1 { return passed(move, now: now) }
        // Packets the switch sent before it may still wait in the other workers' queues.
        startDrain(move, now: now)
    }

    /// Waits for rounds of every worker that found no queue full (see ``Outgoing/ibcDrain``).
    func startDrain(_ move: Outgoing, now: UInt64) {
        move.ibcDrain = host.rounds()
        move.ibcDrainSince = now
        move.ibcDrainGeneration = 0
    }

    /// The IBC has come (through every worker): the switch sends the moved traffic elsewhere
    /// now, and every packet of it this instance will get is here.
    func passed(_ move: Outgoing, now: UInt64) {
        move.ibcDrain = nil
        move.ibcSeen = true
        if move.order.redirectFirst {
            // Every packet of the flows before it was processed here: their state is final.
            if !move.exportStarted { beginExport(move, now: now) }
        } else {
            move.session.end()
        }
    }
}
