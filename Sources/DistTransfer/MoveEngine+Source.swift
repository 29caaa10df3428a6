import DistChannel
import DistFlow
import DistMove
import DistPacket
import DistPipeline
import DistState

extension MoveEngine {
    /// A Move out of this instance.
    final class Outgoing {
        let order: MoveOrder
        let session: TransferSource
        var candidates: [(worker: Int, index: Int, key: FlowKey)] = []
        /// Late locking lists the flows a slice a step: the worker asked next and the table
        /// position its slice starts at (nil: every worker's flows are listed).
        var locating: (worker: Int, from: Int)?
        var next = 0
        var stateSequence: UInt32 = 0
        var stateSentNotified = false
        /// When the state was all at the destination, and when the switch's traffic was seen
        /// reaching it (0: not yet): the controller's steps are due from then.
        var stateSentAt: UInt64 = 0
        var switchedAt: UInt64 = 0
        /// The Move ended without its in-band control packet (the controller stopped).
        var ibcMissing = false
        /// Being given up on this end's word: why, when the destination was asked to give it
        /// up first, and when the request last went (see ``MoveEngine/giveUp(_:_:now:)``).
        var giveUp: (reason: String, since: UInt64, sent: UInt64)?
        /// Redirect-first: the opening message's sequence number, whether the controller heard
        /// the destination holds, whether the export began (at the IBC).
        var openSequence: UInt32 = 0
        var readyNotified = false
        var readyAt: UInt64 = 0
        var exportStarted = false
        var ibcSeen = false
        /// OP: the controller heard that the destination gets the switch's copies.
        var copiesNotified = false
        /// With several workers, once the IBC has come: each worker's round then; it counts
        /// once every worker has had two later rounds that drained their queues (the first
        /// takes in what reached a queue before the IBC, the second what that round handed to
        /// another worker).
        var ibcDrain: [UInt64]?
        var ibcDrainSince: UInt64 = 0
        var ibcDrainGeneration = 0
        /// OP with several workers: the workers whose queue had its copy of the IBC (each
        /// queue is cut in its own order), and when the first came.
        var ibcWorkers = Set<Int>()
        var ibcFirstAt: UInt64 = 0
        /// Queues whose copy had not come 1 s after the first (the Move went on without it).
        var ibcQueuesMissing = 0
        /// OP: the copies of the IBC seen (each the switch sent on to both VNFs at once), of
        /// how many (their marker says).
        var ibcCopiesSeen = 0
        var ibcCopies = 1
        var ibcCopiesMissing = 0
        var lateRedirects = 0
        /// OP: packets redirected after the in-band control packet (copies the destination
        /// gets from the switch), dropped here.
        var duplicatesDropped = 0
        let started: UInt64
        var markWaitNanoseconds: UInt64 = 0
        /// Late locking: the batches marked so far.
        var batches = 0
        /// When (since `started`) the flows were listed and the export began, and when the
        /// last state was queued on the channel (0: not yet).
        var exportBegan: UInt64 = 0
        var stateQueued: UInt64 = 0
        /// The workers' count of frames the ring to the engine could not take, at start.
        var ringFullAtStart: UInt64 = 0
        /// Late locking's final hosts, a slice a step: the worker asked next (all have answered
        /// once it is the worker count), after which address, what several workers' slices
        /// merge into.
        var hostWorker = 0
        var hostsAfter: IPAddress?
        var hostsMerged: [IPAddress: AssetState] = [:]
        init(order: MoveOrder, session: TransferSource, started: UInt64) {
            self.order = order
            self.session = session
            self.started = started
        }
        var guarded: Bool { order.guarantee != "ng" }
        var ordered: Bool { order.guarantee == "op" }
    }

    /// Starts a Move out (one at a time: a second is refused, said so in a notice).
    public func start(_ order: MoveOrder, now: UInt64) {
        guard outgoing == nil else {
            notice(order.moveID, "moveComplete", "refused", "another Move is leaving this instance", [:])
            return
        }
        let binding = ChannelFrame.Binding(nonce: order.nonce, sender: local.id, receiver: order.destination.id)
        let session = TransferSource(
            moveID: order.moveID, key: key, binding: binding, maxPayload: maxPayload, compress: compressStates)
        session.endpoint.trace = tracer(order.moveID, "out", since: now)
        let move = Outgoing(order: order, session: session, started: now)
        move.ringFullAtStart = host.ringFull()
        outgoing = move
        completedOrdered = false
        session.open(
            filter: "\(order.filter)", switchTraffic: move.ordered ? .gate : move.guarded ? .hold : .process,
            replyTo: local.description)
        move.openSequence = session.messagesQueued
        if move.guarded {
            // Redirect from now on the filter's marked flows and the flows unknown here.
            let rule = EventRule(
                filter: order.filter, action: .redirect, lateLocking: true, moveID: order.moveID,
                ordered: move.ordered, ibcToken: ibcToken(order.moveID, nonce: order.nonce))
            guard everyWorker(.events(rule)) else {
                return abort(move, "a worker did not take the redirect rule", now: now)
            }
        }
        if order.earlyRelease || !move.guarded { session.release() }
        // Redirect-first: the flows stay here until the switch has moved their traffic.
        if !order.redirectFirst { beginExport(move, now: now) }
    }

    /// Lists the flows to move (and sends the hosts); without late locking marks and reads them all.
    func beginExport(_ move: Outgoing, now: UInt64) {
        let order = move.order
        move.exportStarted = true
        if let c = order.counters { move.session.add(.allFlows(c)) }
        if order.multiFlow {
            // With late locking the filter's own hosts go once, final, when every flow is
            // marked (``finishExport``); now only those at the other end of its flows.
            let lateHosts = order.lateLocking && move.guarded
            guard
                sendHosts(
                    move, request: lateHosts ? .exportPeers(order.filter) : .exportAssets(order.filter, peers: true))
            else {
                return abort(move, "a worker did not export its hosts", now: now)
            }
        }
        if order.perFlow { move.locating = (0, 0) }
        // With late locking the flows are listed a slice a step, then marked a batch at a
        // time; without it every flow is listed and marked at once.
        guard !order.lateLocking || !move.guarded else { return }
        while move.locating != nil {
            guard listFlows(move) else { return abort(move, "a worker did not list its flows", now: now) }
        }
        move.exportBegan = host.now() &- move.started
        exportBatch(move, count: move.candidates.count, now: now)
    }

    /// One slice (``locateSlice`` flows) of the flows to move, from the worker whose turn it
    /// is; false if it did not answer.
    func listFlows(_ move: Outgoing) -> Bool {
        guard let (w, from) = move.locating else { return true }
        let request = StateRequest.locate(move.order.filter, from: from, limit: locateSlice)
        guard case .located(let found, let next)? = host.ask(request, worker: w) else { return false }
        move.candidates += found.map { (w, $0.index, $0.key) }
        move.locating = next.map { (w, $0) } ?? (w + 1 < host.workerCount ? (w + 1, 0) : nil)
        return true
    }

    /// Marks up to `count` flows, waits until every worker has seen the marks, and serializes
    /// their state. Packets of these flows the workers redirect from now on come after it.
    func exportBatch(_ move: Outgoing, count: Int, now: UInt64) {
        let end = min(move.candidates.count, move.next + count)
        guard move.next < end else { return }
        let part = move.candidates[move.next..<end]
        move.next = end
        if move.guarded {
            move.batches += 1
            var marked = [Bool](repeating: false, count: part.count)
            for (i, c) in part.enumerated() {
                marked[i] = host.table(c.worker).transitionMark(at: c.index, from: .normal, to: .moving)
            }
            let waitStart = host.now()
            guard host.waitForQuiescence(timeout: Self.workerPatience) else {
                return abort(move, "a worker did not pass a quiescent point within 1 s", now: now)
            }
            move.markWaitNanoseconds += host.now() &- waitStart
            for (i, c) in part.enumerated() where marked[i] {
                let e = host.table(c.worker).entry(at: c.index)
                if e.inUse && e.key == c.key { move.session.add(.perFlow(e)) }
            }
        } else {
            // NG: a snapshot the worker takes itself; its packets go on being processed here.
            for w in Set(part.map { $0.worker }) {
                if case .flows(let entries)? = host.ask(.exportFlows(move.order.filter, lock: false), worker: w) {
                    for e in entries { move.session.add(.perFlow(e)) }
                }
            }
            move.next = move.candidates.count
        }
    }

    /// One step of the Move out. Returns whether it did anything.
    func advance(_ move: Outgoing, now: UInt64) -> Bool {
        let session = move.session
        if abortIfChannelBroke(move, now: now) { return true }
        if let asked = move.giveUp { return askAgain(move, asked, now: now) }
        if move.guarded && !move.copiesNotified && session.copiesArrive {
            // The switch's datapath sends the moved traffic to the destination now (OP: a copy
            // of it): the in-band control packet may go.
            move.copiesNotified = true
            move.switchedAt = now
            notice(
                move.order.moveID, move.ordered ? "moveDuplicating" : "moveSwitched",
                move.ordered ? "duplicating" : "switched", nil, [:])
        }
        if advanceDrain(move, now: now) { return true }
        if overdue(move, now: now) { return true }
        if move.session.bytesKept > keptLimit {
            // The channel carries less than the workers redirect: the Move ends before the
            // packets it keeps fill the memory; the destination says what it processed and
            // this instance processes the rest.
            giveUp(
                move, "the channel falls behind: \(move.session.bytesKept >> 20) MB of redirected packets kept",
                now: now)
            return true
        }
        if !move.exportStarted {
            // Redirect-first: once the destination holds, the controller may update the switch.
            guard !move.readyNotified, session.endpoint.acknowledgedThrough >= move.openSequence else { return false }
            move.readyNotified = true
            move.readyAt = now
            notice(move.order.moveID, "moveReady", "ready", nil, counters(move, now: now))
            return true
        }
        if move.locating != nil {
            guard listFlows(move) else {
                abort(move, "a worker did not list its flows", now: now)
                return true
            }
            if move.locating == nil { move.exportBegan = host.now() &- move.started }
            return true
        }
        if move.next < move.candidates.count {
            // (Batches that doubled to 2,048 or 16,384 cut the waits for the workers from 936 to
            // 33-200 ms on 100,000 flows, but marked the flows sooner: twice the packets went
            // through the transfer lcore, its ring held the mbuf pool while it serialized a
            // batch, and the DPDK test bed lost two to four times as many at the source's
            // port. See docs/testbed-dpdk.md.)
            exportBatch(move, count: Self.batch, now: now)
            return true
        }
        if move.stateSequence == 0 {
            finishExport(move)
            return true
        }
        if !move.stateSentNotified && session.endpoint.acknowledgedThrough >= move.stateSequence {
            return stateSent(move, now: now)
        }
        if move.ibcSeen && session.complete {
            completed(move, now: now)
            return true
        }
        return false
    }

    /// A Move the controller stopped driving (it died, or lost the switch) ends here on its
    /// own, `order.patience` after the controller's next step was due (the state at the
    /// destination; redirect-first: the destination holding):
    /// - no sign that the switch sends the moved traffic elsewhere (the destination has not
    ///   seen it): the Move is given up, and the flows are this instance's again;
    /// - LF, the switch's traffic reaches the destination but no in-band control packet came:
    ///   it ends as if it had (what the switch sent here before its update has long arrived),
    ///   so that the destination lets go of the switch's packets it holds.
    /// OP once the switch copies the traffic to both waits for the controller (an abort then
    /// would have both VNFs process the copies, an end would have neither): no packet waits
    /// meanwhile (the destination drops its copies, this instance redirects its own).
    /// Returns whether it did anything.
    func overdue(_ move: Outgoing, now: UInt64) -> Bool {
        let redirectFirst = move.order.redirectFirst
        guard move.guarded, redirectFirst ? move.readyNotified : move.stateSentNotified, !move.ibcSeen,
            move.ibcDrain == nil, move.ibcFirstAt == 0
        else { return false }
        let patience = move.order.patience
        if move.copiesNotified {
            guard !move.ordered, now &- move.switchedAt > patience else { return false }
            move.ibcMissing = true
            passed(move, now: now)
            return true
        }
        guard now &- (redirectFirst ? move.readyAt : move.stateSentAt) > patience else { return false }
        giveUp(
            move,
            "the controller did not update the switch within \(Double(patience) / 1e9) s of "
                + (redirectFirst ? "the destination's holding" : "the state's arrival"), now: now)
        return true
    }

    /// Gives the Move up if its channel did (the destination fell silent or gave up).
    func abortIfChannelBroke(_ move: Outgoing, now: UInt64) -> Bool {
        guard case .aborted(let why) = move.session.endpoint.state else { return false }
        abort(move, move.giveUp?.reason ?? "channel to \(move.order.destination.ipText): \(why)", now: now)
        return true
    }

    /// Gives the Move up on this end's word (the controller's, or its patience): the
    /// destination is asked to give it up first, and its answer (an abort that acknowledges
    /// what it received) tells which redirected packets it processed, so that this end
    /// processes exactly the others. Meanwhile the flows are redirected as before (their
    /// order holds). A destination already silent, or a Move with nothing sent yet, ends at once.
    func giveUp(_ move: Outgoing, _ reason: String, now: UInt64) {
        guard move.session.endpoint.state == .open, move.session.endpoint.sentThrough > 0 else {
            return abort(move, reason, now: now)
        }
        move.giveUp = (reason, now, now)
        transmit(move.session.endpoint.abortFrame(MoveEngine.askToGiveUp + reason), to: move.order.destination)
    }

    /// While the destination is asked to give the Move up: the request again every 50 ms,
    /// and after 1 s without an answer the Move ends as with a silent destination (what went
    /// out is its to process). Returns whether it did anything.
    func askAgain(_ move: Outgoing, _ asked: (reason: String, since: UInt64, sent: UInt64), now: UInt64) -> Bool {
        if now &- asked.since > Self.workerPatience {
            abort(move, asked.reason + " (the destination did not answer)", now: now, destinationSilent: true)
            return true
        }
        guard now &- asked.sent > 50_000_000 else { return false }
        move.giveUp?.sent = now
        transmit(move.session.endpoint.abortFrame(MoveEngine.askToGiveUp + asked.reason), to: move.order.destination)
        return true
    }

    /// With several workers, after the IBC: the wait for every worker's queues to drain (and,
    /// OP, for every queue's copy of the IBC). Returns whether it did anything.
    func advanceDrain(_ move: Outgoing, now: UInt64) -> Bool {
        if move.ibcDrain == nil && !move.ibcSeen && move.ibcFirstAt != 0 && now &- move.ibcFirstAt > Self.workerPatience
        {
            // A queue that got no copy of the IBC in 1 s (no copy hashed to it), or a copy that
            // never came back from the switch: go on without it.
            move.ibcQueuesMissing = host.workerCount - move.ibcWorkers.count
            move.ibcCopiesMissing = move.ibcCopies - move.ibcCopiesSeen
            startDrain(move, now: now)
        }
        guard let seen = move.ibcDrain else { return false }
        let drained = host.drainedRounds()
        let late = now &- move.ibcDrainSince > Self.workerPatience
        guard late || drained.indices.allSatisfy({ drained[$0] > seen[$0] }) else { return false }
        if move.ibcDrainGeneration == 0 && !late {
            move.ibcDrainGeneration = 1
            move.ibcDrain = host.rounds()
            return true
        }
        // (A worker that never drains in 1 s is stuck or flooded: the Move goes on without it.)
        host.takeWorkerFrames(self, now: now)
        passed(move, now: now)
        return true
    }

    /// Every state is at the destination. Returns whether the step did anything.
    func stateSent(_ move: Outgoing, now: UInt64) -> Bool {
        if !move.guarded {
            // NG: nothing more comes; the report waits for the destination's summary.
            move.session.end()
            guard move.session.complete else { return false }
        }
        move.stateSentNotified = true
        move.stateSentAt = now
        // Redirect-first: the controller is waiting for the end, not for this.
        if move.order.redirectFirst { return true }
        // NG ends here for the source (the controller deletes the state after the update).
        notice(
            move.order.moveID, move.guarded ? "moveStateSent" : "moveComplete",
            move.guarded ? "state-sent" : "completed",
            nil, counters(move, now: now))
        if !move.guarded { finish(move, now: now) }
        return true
    }

    /// Every packet the source got is at the destination: the flows are gone from here.
    func completed(_ move: Outgoing, now: UInt64) {
        _ = everyWorker(.deleteFlows(move.order.filter))
        if move.order.multiFlow { _ = everyWorker(.deleteAssets(move.order.filter)) }
        // OP: the switch may still send copies here (its first phase sends to both); the
        // destination processes them.
        _ = everyWorker(
            .events(
                move.ordered
                    ? EventRule(
                        filter: move.order.filter, action: .discard, moveID: move.order.moveID,
                        ibcToken: ibcToken(move.order.moveID, nonce: move.order.nonce)) : nil))
        completedOrdered = move.ordered
        if move.ordered { discarding = (move.order.moveID, now) }
        let why =
            move.ibcMissing
            ? "no in-band control packet within \(Double(move.order.patience) / 1e9) s of the switch update: "
                + "ended without it"
            : nil
        notice(move.order.moveID, "moveComplete", "completed", why, counters(move, now: now))
        finish(move, now: now)
    }

    /// The Move out is done; its channel lingers to answer the destination.
    func finish(_ move: Outgoing, now: UInt64) {
        outgoing = nil
        finished[move.order.moveID] = (move, now)
    }

    /// The export's end, a step at a time: with late locking, flows went on updating their
    /// hosts here until marked, so the hosts within the filter go now, final (every flow
    /// touching them is marked; the destination merges them with what its early-released flows
    /// found), a slice a step (``sendFinalHostSlice``); then the state is complete.
    func finishExport(_ move: Outgoing) {
        if move.order.multiFlow && move.order.lateLocking && move.guarded && move.hostWorker < host.workerCount {
            guard let done = sendFinalHostSlice(move) else {
                return abort(move, "a worker did not export its hosts", now: host.now())
            }
            guard done else { return }
        }
        move.session.flushState()
        move.session.release()
        move.stateSequence = move.session.messagesQueued
        move.stateQueued = host.now() &- move.started
        // Redirect-first: the IBC came before the export began; nothing follows the state.
        if move.order.redirectFirst { move.session.end() }
    }

    /// Gives the Move up: the flows are this instance's again (unmarked, the rule gone). Who
    /// processes the packets already redirected depends on why:
    /// - the destination stopped answering: it may only be slow, and would process late what
    ///   it has; taking them back could apply them twice. They stay its ("keep"), and the
    ///   report counts them as in doubt (lost only if it really died);
    /// - anything else (the destination gave up, a worker here failed): the destination drops
    ///   what it holds ("discard") and the source processes every packet the destination had
    ///   not, so each is processed once.
    func abort(_ move: Outgoing, _ reason: String, now: UInt64, destinationSilent: Bool = false) {
        var peerGaveUp = false
        if case .aborted(let why) = move.session.endpoint.state { peerGaveUp = why.hasPrefix("the peer gave up") }
        let silent = destinationSilent || (move.session.endpoint.state != .open && !peerGaveUp)
        if move.session.endpoint.state == .open || silent {
            // Sent even to a silent peer: if it comes back, it learns the Move is over.
            transmit(
                move.session.endpoint.abortFrame((silent ? "keep: " : "discard: ") + reason), to: move.order.destination
            )
        }
        _ = everyWorker(.events(nil))
        var c = counters(move, now: now)
        var back = 0
        if silent {
            // What never went out is this instance's to process; what went out is in doubt.
            c["packetsInDoubt"] = move.session.inDoubt
            for frame in move.session.unsent() where process(frame[...]) { back += 1 }
        } else {
            for frame in move.session.unprocessed() where process(frame[...]) { back += 1 }
        }
        c["packetsReprocessed"] = back
        notice(move.order.moveID, "moveComplete", "aborted", reason, c)
        outgoing = nil
    }

    func counters(_ move: Outgoing, now: UInt64) -> [String: Int] {
        let s = move.session.counters
        let e = move.session.endpoint.counters
        var c: [String: Int] = [
            "perFlowStates": s.perFlowStates, "multiFlowStates": s.multiFlowStates, "allFlowsStates": s.allFlowsStates,
            "stateFrames": s.stateFrames, "stateBytes": s.stateBytes, "stateBytesSent": s.stateBytesSent,
            "compressedFrames": s.compressedFrames, "packetBytesSent": s.packetBytesSent,
            "packetsRedirected": s.packetsRedirected,
            "redirectedBytes": s.redirectedBytes, "packetsTooLarge": s.packetsTooLarge,
            "packetsInParts": s.packetsInParts,
            "statesInParts": s.statesInParts, "packetFrames": s.packetFrames,
            "serializeNs": Int(clamping: s.serializeNanoseconds),
            "framesSent": e.framesSent, "framesReceived": e.framesReceived, "retransmissions": e.retransmissions,
            "rejected": e.rejected, "timeouts": e.timeouts, "fastRecoveries": e.fastRecoveries,
            "spuriousTimeouts": e.spuriousTimeouts,
            "congestionWindow": Int(min(move.session.endpoint.congestionWindow, 1e15)),
            "lateRedirects": move.lateRedirects, "markBatches": move.batches,
            "markWaitNs": Int(clamping: move.markWaitNanoseconds),
            "exportBeganNs": Int(clamping: move.exportBegan), "stateQueuedNs": Int(clamping: move.stateQueued),
            "elapsedNs": Int(clamping: now &- move.started),
            "rttNs": Int(clamping: move.session.endpoint.smoothedRTT ?? 0),
            "ringFull": Int(clamping: host.ringFull() &- move.ringFullAtStart),
            "ibcQueuesMissing": move.ibcQueuesMissing, "ibcCopiesMissing": move.ibcCopiesMissing,
            "duplicatesDropped": move.duplicatesDropped, "ibcMissing": move.ibcMissing ? 1 : 0,
        ]
        c.merge(host.diagnostics()) { mine, _ in mine }
        if let d = move.session.summary {
            c["dstPerFlowStates"] = d.perFlowStates
            c["dstMultiFlowStates"] = d.multiFlowStates
            c["dstPackets"] = d.packets
            c["dstBuffered"] = d.buffered
            c["dstMaxBuffered"] = d.maxBuffered
            c["dstOverflow"] = d.overflow
            c["deserializeNs"] = Int(clamping: d.deserializeNanoseconds)
        }
        return c
    }
}
