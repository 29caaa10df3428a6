import DistChannel
import DistFlow
import DistMove
import DistState

extension MoveEngine {
    /// A Move into this instance.
    final class Incoming {
        let session: TransferDestination
        var finishedAt: UInt64?
        var peer: ChannelAddress?
        /// The workers hold the switch's packets of the Move's flows until its end (`gated`:
        /// drop them until the switch's in-band control packet, and hold those after it).
        var holding = false
        var gated = false
        /// The workers' count of the switch's packets of the Move's flows (`gated`: copies
        /// dropped; else held) when the rule went up; more than it means the switch's datapath
        /// sends them here (the source hears so, and tells the controller).
        var copiesBefore: UInt64?
        /// When the source was last heard (a Move whose source went silent is given up).
        var lastHeard: UInt64 = 0
        /// The opening message came (and `peer` is the address it gave).
        var opened = false
        /// The flows imported so far, by worker, and those of the redirected packets processed
        /// here (new flows among them start here): forgotten if the Move is given up.
        var imported: [[FlowKey]] = []
        var redirectedFlows = Set<FlowKey>()
        init(_ s: TransferDestination) { session = s }
        var id: UInt64 { session.endpoint.moveID }
    }

    /// A channel frame of a Move this instance is not the source of.
    func received(_ payload: [UInt8], moveID: UInt64, from: ChannelAddress, now: UInt64) {
        if incoming[moveID] == nil {
            // A Move this instance has not seen: only its opening message, authenticated for
            // this pair of instances under the nonce it carries, opens it; a Move that was here
            // before does not open again (a recording of it).
            let binding = ChannelFrame.Binding(
                nonce: ChannelFrame.nonce(in: payload) ?? 0, sender: local.id, receiver: from.id)
            guard let f = try? ChannelFrame.decode(payload, key: key, binding: binding.reversed), f.kind == .open,
                f.sequence == 1
            else {
                rejectedFrames += 1
                return
            }
            guard !seenIncoming.contains(moveID) else {
                replaysRefused += 1
                return
            }
            let session = TransferDestination(moveID: moveID, key: key, binding: binding)
            session.endpoint.trace = tracer(moveID, "in", since: now)
            incoming[moveID] = Incoming(session)
            rememberIncoming(moveID)
            notice(moveID, "incomingStarted", "open", nil, [:])
        }
        guard let move = incoming[moveID] else { return }
        let authentic = move.session.endpoint.counters.framesReceived
        let deliveries = move.session.receive(payload, now: now)
        // Nothing changes for a frame that did not authenticate for this Move.
        guard move.session.endpoint.counters.framesReceived != authentic else {
            rejectedFrames += 1
            return
        }
        // Until the opening message says where the source listens (its VLAN, say), replies go
        // where the frame came from.
        if move.peer == nil || !move.opened { move.peer = from }
        move.lastHeard = now
        for delivery in deliveries { hand(delivery, move) }
        // The source asks this end to give the Move up: it does (see ``ended(_:)``), and says
        // so with what it received, however often it is asked.
        if case .aborted(let why) = move.session.endpoint.state, why.hasPrefix("the peer gave up: " + Self.askToGiveUp),
            let peer = move.peer
        {
            transmit(move.session.endpoint.abortFrame("given up as asked"), to: peer)
        }
    }

    /// Remembers a Move that came here, so that a recording of it cannot open it again (the
    /// last ``rememberedMoves`` of them).
    func rememberIncoming(_ moveID: UInt64) {
        seenIncoming.insert(moveID)
        seenOrder.append(moveID)
        if seenOrder.count > Self.rememberedMoves { seenIncoming.remove(seenOrder.removeFirst()) }
    }

    /// State and packets to the workers they belong to, in order.
    func hand(_ delivery: TransferDestination.Delivery, _ move: Incoming) {
        switch delivery {
        case .open(let text, let traffic, let replyTo):
            if let address = ChannelAddress(replyTo) {
                move.peer = address
                move.opened = true
            }
            guard traffic != .process, let filter = try? FlowFilter(parsing: text) else { return }
            move.holding = true
            move.gated = traffic == .gate
            move.copiesBefore = host.switchArrivals(gated: move.gated)
            toEveryWorker(
                .rule(
                    EventRule(
                        filter: filter, action: move.gated ? .gate : .hold, moveID: move.id,
                        ibcToken: ibcToken(move.id, nonce: move.session.endpoint.binding.nonce))))
        case .end:
            if move.gated && move.holding {
                // The switch's packets go on after its in-band control packet (now, or when it comes).
                move.holding = false
                toEveryWorker(.sourceEnded(move.id))
            }
            unhold(move)
        case .flows(let entries):
            var byWorker = [[FlowEntry]](repeating: [], count: host.workerCount)
            for e in entries { byWorker[host.owner(of: e.key)].append(e) }
            if move.imported.isEmpty { move.imported = Array(repeating: [], count: host.workerCount) }
            for (w, part) in byWorker.enumerated() where !part.isEmpty {
                host.deliver(.flows(part), to: w)
                move.imported[w] += part.map { $0.key }
            }
        case .assets(let assets):
            toEveryWorker(.assets(assets))
        case .counters(let c):
            if !host.importCounters(c) { rejectedFrames += 1 }
        case .packet(let frame):
            let key = FlowKey.of(frame)
            if let key { move.redirectedFlows.insert(key) }
            _ = process(frame, key: key)
        }
    }

    /// The switch's packets of the Move's flows go on (after every redirected one).
    func unhold(_ move: Incoming) {
        guard move.holding else { return }
        move.holding = false
        toEveryWorker(.rule(nil))
    }

    /// The channels' timers and frames, the Moves' ends. Returns whether anything went out.
    func pollSessions(now: UInt64) -> Bool {
        var any = false
        if let d = discarding, now &- d.since > Self.linger {
            discarding = nil
            toEveryWorker(.closeGate(d.moveID))
        }
        for move in [outgoing].compactMap({ $0 }) + finished.values.map({ $0.move }) {
            for f in move.session.poll(now: now) {
                transmit(f, to: move.order.destination)
                any = true
            }
        }
        for (id, f) in finished where now &- f.since > Self.linger { finished[id] = nil }
        for (id, move) in incoming {
            if let before = move.copiesBefore, move.holding, host.switchArrivals(gated: move.gated) > before {
                move.copiesBefore = nil
                move.session.copiesArriving()
            }
            // Replies go back where the source is (the channel's first frame said); they wait
            // for the opening message when the source's VLAN is not known yet.
            if move.opened || local.vlan == nil {
                for f in move.session.poll(now: now) {
                    if let peer = move.peer { transmit(f, to: peer) }
                    any = true
                }
            }
            // A source silent for 5 s mid-Move is gone: what it sent here is given up.
            if !move.session.complete && move.session.endpoint.state == .open && now &- move.lastHeard > Self.silence {
                _ = move.session.endpoint.abort("the source fell silent", now: now)
            }
            if move.session.complete || move.session.endpoint.state != .open || move.session.failure != nil {
                if move.finishedAt == nil {
                    move.finishedAt = now
                    ended(move)
                }
                // Kept a while to answer retransmissions of the end, then forgotten (with an
                // order-preserving gate whose in-band control packet was lost on the way).
                if now &- move.finishedAt! > Self.linger {
                    if move.gated { toEveryWorker(.closeGate(id)) }
                    incoming[id] = nil
                }
            }
        }
        return any
    }

    /// A Move in has ended (completed, aborted or broken).
    func ended(_ move: Incoming) {
        incomingEnded(move)
        var peerGaveUp = false
        var keep = false
        if case .aborted(let why) = move.session.endpoint.state {
            peerGaveUp = why.hasPrefix("the peer gave up")
            keep = why.hasPrefix("the peer gave up: keep")
        }
        // Redirected packets held here: processed when the source gave up on hearing from us
        // ("keep"), dropped when it takes them back. Then what the switch sent here goes on
        // (the end does this otherwise).
        if keep {
            for frame in move.session.takeHeld() { _ = process(frame) }
        } else if move.session.endpoint.state != .open || move.session.failure != nil {
            _ = move.session.takeHeld()
        }
        if !move.session.complete && (!move.session.ended || peerGaveUp) {
            // Given up: the source has its flows back; copies here would go stale. (After the
            // source's end and this end's summary, the flows are this instance's unless the
            // source says otherwise: its acknowledgement of the summary may be all that was lost.)
            var byWorker = move.imported.isEmpty ? Array(repeating: [], count: host.workerCount) : move.imported
            let imported = Set(move.imported.joined())
            for key in move.redirectedFlows where !imported.contains(key) { byWorker[host.owner(of: key)].append(key) }
            for (w, keys) in byWorker.enumerated() where !keys.isEmpty { host.deliver(.forget(keys), to: w) }
            move.imported = []
            move.redirectedFlows = []
        }
        unhold(move)
    }

    /// How a Move in ended, for the instance's log (the controller hears from the source).
    func incomingEnded(_ move: Incoming) {
        var reason: String?
        if case .aborted(let why) = move.session.endpoint.state { reason = why }
        if let failure = move.session.failure { reason = failure }
        let e = move.session.endpoint.counters
        var c = [
            "framesReceived": e.framesReceived, "delivered": e.delivered, "duplicates": e.duplicates,
            "rejected": e.rejected, "outOfWindow": e.outOfWindow, "retransmissions": e.retransmissions,
        ]
        c.merge(host.diagnostics()) { mine, _ in mine }
        notice(
            move.id, "incomingEnded", move.session.complete ? "completed" : move.session.ended ? "ended" : "given up",
            reason, c)
    }
}
