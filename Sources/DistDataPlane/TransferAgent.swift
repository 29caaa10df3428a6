#if canImport(Glibc)
import Glibc
#endif
import Atomics
import CDPDKShim
import Crypto
import DistChannel
import DistFlow
import DistMove
import DistPacket
import DistPipeline
import DistState
import DistTransfer

/// One Move out of this instance, as the controller ordered it (`movePerFlow`).
public struct MoveOrder: Sendable {
    public var moveID: UInt64
    public var filter: FlowFilter
    public var perFlow = true
    public var multiFlow = true
    /// The instance's counters as the Move began (all-flows state), or nil.
    public var counters: InstanceCounters?
    /// "ng", "lf" or "op".
    public var guarantee: String
    public var lateLocking = false
    public var earlyRelease = false
    /// The switch goes first: the flows stay here until the in-band control packet, then their
    /// state moves (the destination holds the switch's packets meanwhile).
    public var redirectFirst = false
    public var destination: ChannelAddress

    public init(moveID: UInt64, filter: FlowFilter, guarantee: String, destination: ChannelAddress) {
        self.moveID = moveID
        self.filter = filter
        self.guarantee = guarantee
        self.destination = destination
    }
}

/// What the transfer lcore tells the controller about a Move (through the main lcore):
/// `moveStateSent` once every state is at the destination, `moveComplete` at the end.
public struct MoveNotice: Sendable {
    public var moveID: UInt64
    public var type: String
    public var outcome: String
    public var reason: String?
    public var counters: [String: Int]
}

/// The transfer lcore: DiST's Move, peer to peer over the data port. As the source it marks the
/// moved flows (per-worker quiescent-state counters tell when every worker has seen a mark),
/// reads and serializes their state, and sends it with the flows' redirected packets over the
/// channel; as the destination it authenticates, orders and decodes what comes, and hands
/// state and packets to the workers in that order. The workers never wait for it.
public final class TransferAgent: @unchecked Sendable {
    public let local: ChannelAddress
    let key: SymmetricKey
    let plane: DataPlane
    let links: [TransferLink]
    public let lcore: UInt32
    public let maxPayload: Int
    /// Orders from the main lcore, and notices back to it.
    public let orders = SPSCRing<MoveOrder>(capacity: 64)
    public let notices = SPSCRing<MoveNotice>(capacity: 256)
    /// All-flows counters a Move brought here, for the main lcore to add.
    public let importedCounters = SPSCRing<InstanceCounters>(capacity: 64)
    /// Frames that were not channel frames of a known Move, or did not authenticate.
    public private(set) var rejectedFrames = 0
    /// Redirected packets that reached this lcore after their Move ended (processed here).
    public private(set) var strayRedirects = 0
    /// Redirected packets that reached it after an order-preserving Move ended (copies of what
    /// the destination got from the switch: dropped).
    public private(set) var duplicatesDropped = 0

    final class Outgoing {
        let order: MoveOrder
        let session: TransferSource
        var candidates: [(worker: Int, index: Int, key: FlowKey)] = []
        var next = 0
        var stateSequence: UInt32 = 0
        var stateSentNotified = false
        /// Redirect-first: the opening message's sequence number, whether the controller heard
        /// the destination holds, whether the export began (at the IBC).
        var openSequence: UInt32 = 0
        var readyNotified = false
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
        var lateRedirects = 0
        /// OP: packets redirected after the in-band control packet (copies the destination
        /// gets from the switch), dropped here.
        var duplicatesDropped = 0
        let started: UInt64
        var markWaitNanoseconds: UInt64 = 0
        /// When (since `started`) the flows were listed and the export began, and when the
        /// last state was queued on the channel (0: not yet).
        var exportBegan: UInt64 = 0
        var stateQueued: UInt64 = 0
        /// The workers' count of frames the ring to the transfer lcore could not take, at start.
        var ringFullAtStart: UInt64 = 0
        init(order: MoveOrder, session: TransferSource, started: UInt64) {
            self.order = order
            self.session = session
            self.started = started
        }
        var guarded: Bool { order.guarantee != "ng" }
        var ordered: Bool { order.guarantee == "op" }
    }

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
        /// The flows imported so far, by worker (forgotten if the Move is given up).
        var imported: [[FlowKey]] = []
        init(_ s: TransferDestination) { session = s }
    }

    var outgoing: Outgoing?
    /// Moves out that completed, and when: kept 2 s to acknowledge the destination's summary
    /// again (the acknowledgement that went with the completion may be lost on the way, and a
    /// destination that never hears it would give the Move up).
    var finished: [UInt64: (move: Outgoing, since: UInt64)] = [:]
    /// The last Move out was order-preserving and completed: what the workers redirected
    /// before its rule went are copies the destination got from the switch.
    var completedOrdered = false
    /// That Move, and when it completed: its `discard` rule goes 2 s later (the switch's
    /// second phase is long in force by then), so traffic sent here again is processed.
    var discarding: (moveID: UInt64, since: UInt64)?
    var incoming: [UInt64: Incoming] = [:]
    /// Deliveries a worker's ring did not take within a million tries (a worker stuck).
    public private(set) var pushDropped = 0
    /// The longest a delivery waited for room in a worker's ring (ns).
    public private(set) var pushWaitMaxNs: UInt64 = 0
    /// Channel frames not sent, and packets not handed to a worker, because the mbuf pool was
    /// empty (counted: the channel retransmits a frame; a packet is lost and said so).
    public private(set) var transmitNoMbuf = 0
    public private(set) var processNoMbuf = 0
    /// The fewest free mbufs seen in the pool while a Move was under way here.
    public private(set) var poolLowWater: UInt32 = .max
    let scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: 65536)
    static let batch = 256
    /// Where every Move's channel decisions go, line by line (``ChannelEndpoint/trace``), if anywhere.
    let traceFile: UnsafeMutablePointer<FILE>?

    /// `traceFile`: a file to append every Move's channel trace to (see ``ChannelEndpoint/trace``).
    public init(plane: DataPlane, lcore: UInt32, local: ChannelAddress, key: SymmetricKey, mtu: Int = 9000,
                traceFile path: String? = nil) throws {
        if let path {
            guard let file = fopen(path, "a") else {
                throw TransferAgentError.traceFile(path, String(cString: strerror(errno)))
            }
            traceFile = file
        } else {
            traceFile = nil
        }
        self.plane = plane
        self.lcore = lcore
        self.local = local
        self.key = key
        links = plane.workers.map { $0.transfer! }
        maxPayload = min(ChannelFrame.maxPayload, mtu - 28 - ChannelFrame.overhead)
    }

    deinit {
        scratch.deallocate()
        if let traceFile { fclose(traceFile) }
    }

    /// The trace of one Move's end of the channel: lines `move ID in|out MS EVENT`, MS since it began here.
    func tracer(_ moveID: UInt64, _ direction: String, since: UInt64) -> ((UInt64, String) -> Void)? {
        guard let file = traceFile else { return nil }
        return { now, event in
            let us = (now &- since) / 1000, fraction = String(us % 1000)
            fputs("move \(moveID) \(direction) \(us / 1000).\(String(repeating: "0", count: 3 - fraction.count) + fraction) \(event)\n", file)
        }
    }

    // MARK: - The loop

    func run() -> Int32 {
        let clock = plane.clock
        var idle = plane.config.idleBackoff
        while !plane.stopFlag.load(ordering: .relaxed) {
            var busy = false
            orders.drain { order in
                busy = true
                start(order, now: clock.now())
            }
            for (w, link) in links.enumerated() {
                link.toTransfer.drain { frame in
                    busy = true
                    take(frame, from: w, now: clock.now())
                }
            }
            if let move = outgoing { busy = advance(move, now: clock.now()) || busy }
            // (Only after work: a read of the pool's count walks every lcore's cache.)
            if busy && (outgoing != nil || !incoming.isEmpty) { samplePool() }
            busy = pollSessions(now: clock.now()) || busy
            // (A sleep of tens of microseconds is far below the channel's pacing and timers.)
            idle.pause(busy: busy)
        }
        return 0
    }

    // MARK: - Source

    func start(_ order: MoveOrder, now: UInt64) {
        guard outgoing == nil else {
            notice(order.moveID, "moveComplete", "refused", "another Move is leaving this instance", [:])
            return
        }
        let session = TransferSource(moveID: order.moveID, key: key, maxPayload: maxPayload)
        session.endpoint.trace = tracer(order.moveID, "out", since: now)
        let move = Outgoing(order: order, session: session, started: now)
        move.ringFullAtStart = ringFull
        outgoing = move
        completedOrdered = false
        session.open(filter: "\(order.filter)", switchTraffic: move.ordered ? .gate : move.guarded ? .hold : .process,
                     replyTo: local.description)
        move.openSequence = session.messagesQueued
        if move.guarded {
            // Redirect from now on the filter's marked flows and the flows unknown here.
            let rule = EventRule(filter: order.filter, action: .redirect, lateLocking: true, moveID: order.moveID,
                                 ordered: move.ordered)
            guard everyWorker(.events(rule)) else { return abort(move, "a worker did not take the redirect rule", now: now) }
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
            guard sendHosts(move, request: lateHosts ? .exportPeers(order.filter) : .exportAssets(order.filter, peers: true)) else {
                return abort(move, "a worker did not export its hosts", now: now)
            }
        }
        if order.perFlow {
            for w in links.indices {
                guard case .located(let found)? = ask(.locate(order.filter), worker: w) else {
                    return abort(move, "worker \(w) did not list its flows", now: now)
                }
                move.candidates += found.map { (w, $0.index, $0.key) }
            }
        }
        move.exportBegan = plane.clock.now() &- move.started
        // Without late locking every flow is marked at once; with it, a batch at a time.
        if !order.lateLocking || !move.guarded { exportBatch(move, count: move.candidates.count, now: now) }
    }

    /// Marks up to `count` flows, waits until every worker has seen the marks, and serializes
    /// their state. Packets of these flows the workers redirect from now on come after it.
    func exportBatch(_ move: Outgoing, count: Int, now: UInt64) {
        let end = min(move.candidates.count, move.next + count)
        guard move.next < end else { return }
        let part = move.candidates[move.next..<end]
        move.next = end
        let table = { (w: Int) in self.plane.workers[w].table }
        if move.guarded {
            var marked = [Bool](repeating: false, count: part.count)
            for (i, c) in part.enumerated() { marked[i] = table(c.worker).transitionMark(at: c.index, from: .normal, to: .moving) }
            guard waitForWorkers(move, now: now) else { return abort(move, "a worker did not pass a quiescent point within 1 s", now: now) }
            for (i, c) in part.enumerated() where marked[i] {
                let e = table(c.worker).entry(at: c.index)
                if e.inUse && e.key == c.key { move.session.add(.perFlow(e)) }
            }
        } else {
            // NG: a snapshot the worker takes itself; its packets go on being processed here.
            for w in Set(part.map { $0.worker }) {
                if case .flows(let entries)? = ask(.exportFlows(move.order.filter, lock: false), worker: w) {
                    for e in entries { move.session.add(.perFlow(e)) }
                }
            }
            move.next = move.candidates.count
        }
    }

    /// Waits until every worker has started a new poll round (each burst after that sees the
    /// marks set before). False after 1 s (a worker stopped or stuck).
    func waitForWorkers(_ move: Outgoing, now: UInt64) -> Bool {
        let start = plane.clock.now()
        guard QuiescentCounter.waitForAll(links.map { $0.quiescent }, timeout: 1_000_000_000) else { return false }
        move.markWaitNanoseconds += plane.clock.now() &- start
        return true
    }

    /// One step of the Move out. Returns whether it did anything.
    func advance(_ move: Outgoing, now: UInt64) -> Bool {
        let session = move.session
        if case .aborted(let why) = session.endpoint.state {
            abort(move, "channel to \(move.order.destination.ipText): \(why)", now: now)
            return true
        }
        if move.guarded && !move.copiesNotified && session.copiesArrive {
            // The switch's datapath sends the moved traffic to the destination now (OP: a copy
            // of it): the in-band control packet may go.
            move.copiesNotified = true
            notice(move.order.moveID, move.ordered ? "moveDuplicating" : "moveSwitched", move.ordered ? "duplicating" : "switched", nil, [:])
        }
        if move.ibcDrain == nil && !move.ibcSeen && move.ibcFirstAt != 0 && now &- move.ibcFirstAt > 1_000_000_000 {
            // A queue that got no copy of the IBC in 1 s (no copy hashed to it): go on without it.
            move.ibcQueuesMissing = links.count - move.ibcWorkers.count
            startDrain(move, now: now)
        }
        if let seen = move.ibcDrain,
           links.indices.allSatisfy({ links[$0].drained.load(ordering: .acquiring) > seen[$0] }) || now &- move.ibcDrainSince > 1_000_000_000 {
            if move.ibcDrainGeneration == 0 && now &- move.ibcDrainSince <= 1_000_000_000 {
                move.ibcDrainGeneration = 1
                move.ibcDrain = links.map { $0.quiescent.rounds }
                return true
            }
            // (A worker that never drains in 1 s is stuck or flooded: the Move goes on without it.)
            for (w, link) in links.enumerated() { link.toTransfer.drain { take($0, from: w, now: now) } }
            passed(move, now: now)
            return true
        }
        if !move.exportStarted {
            // Redirect-first: once the destination holds, the controller may update the switch.
            guard !move.readyNotified, session.endpoint.acknowledgedThrough >= move.openSequence else { return false }
            move.readyNotified = true
            notice(move.order.moveID, "moveReady", "ready", nil, counters(move, now: now))
            return true
        }
        if move.next < move.candidates.count {
            exportBatch(move, count: Self.batch, now: now)
            if move.next == move.candidates.count { finishExport(move) }
            return true
        }
        if move.stateSequence == 0 { finishExport(move) }
        if !move.stateSentNotified && session.endpoint.acknowledgedThrough >= move.stateSequence {
            if !move.guarded {
                // NG: nothing more comes; the report waits for the destination's summary.
                session.end()
                guard session.complete else { return false }
            }
            move.stateSentNotified = true
            // Redirect-first: the controller is waiting for the end, not for this.
            if move.order.redirectFirst { return true }
            // NG ends here for the source (the controller deletes the state after the update).
            notice(move.order.moveID, move.guarded ? "moveStateSent" : "moveComplete", move.guarded ? "state-sent" : "completed",
                   nil, counters(move, now: now))
            if !move.guarded { finish(move, now: now) }
            return true
        }
        if move.ibcSeen && session.complete {
            // Every packet the source got is at the destination: the flows are gone from here.
            _ = everyWorker(.deleteFlows(move.order.filter))
            if move.order.multiFlow { _ = everyWorker(.deleteAssets(move.order.filter)) }
            // OP: the switch may still send copies here (its first phase sends to both); the
            // destination processes them.
            _ = everyWorker(.events(move.ordered ? EventRule(filter: move.order.filter, action: .discard, moveID: move.order.moveID) : nil))
            completedOrdered = move.ordered
            if move.ordered { discarding = (move.order.moveID, now) }
            notice(move.order.moveID, "moveComplete", "completed", nil, counters(move, now: now))
            finish(move, now: now)
            return true
        }
        return false
    }

    /// The Move out is done; its channel lingers to answer the destination.
    func finish(_ move: Outgoing, now: UInt64) {
        outgoing = nil
        finished[move.order.moveID] = (move, now)
    }

    /// Hosts (`request`: the filter's, those at the other end of its flows), merged across
    /// workers, to the destination.
    func sendHosts(_ move: Outgoing, request: StateRequest) -> Bool {
        var merged: [IPAddress: AssetState] = [:]
        for w in links.indices {
            guard case .assets(let assets)? = ask(request, worker: w) else { return false }
            for a in assets { merged[a.address] = merged[a.address].map { AssetState(address: a.address, asset: $0.asset.merged(with: a.asset)) } ?? a }
        }
        for address in merged.keys.sorted() { move.session.add(.multiFlow(merged[address]!)) }
        return true
    }

    func finishExport(_ move: Outgoing) {
        // With late locking, flows went on updating their hosts here until marked: the hosts
        // within the filter go now, final (every flow touching them is marked; the
        // destination merges them with what its early-released flows found).
        if move.order.multiFlow && move.order.lateLocking && move.guarded {
            _ = sendHosts(move, request: .exportAssets(move.order.filter, peers: false))
        }
        move.session.flushState()
        move.session.release()
        move.stateSequence = move.session.messagesQueued
        move.stateQueued = plane.clock.now() &- move.started
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
    func abort(_ move: Outgoing, _ reason: String, now: UInt64) {
        var peerGaveUp = false
        if case .aborted(let why) = move.session.endpoint.state { peerGaveUp = why.hasPrefix("the peer gave up") }
        let silent = move.session.endpoint.state != .open && !peerGaveUp
        if move.session.endpoint.state == .open || silent {
            // Sent even to a silent peer: if it comes back, it learns the Move is over.
            let bye = move.session.endpoint.abortFrame((silent ? "keep: " : "discard: ") + reason)
            transmit(ChannelDatagram.build(from: local, to: move.order.destination, payload: bye))
        }
        _ = everyWorker(.events(nil))
        var c = counters(move, now: now)
        if silent {
            // What never went out is this instance's to process; what went out is in doubt.
            c["packetsInDoubt"] = move.session.inDoubt
            var back = 0
            for frame in move.session.unsent() where process(frame) { back += 1 }
            c["packetsReprocessed"] = back
        } else {
            var back = 0
            for frame in move.session.unprocessed() where process(frame) { back += 1 }
            c["packetsReprocessed"] = back
        }
        notice(move.order.moveID, "moveComplete", "aborted", reason, c)
        outgoing = nil
    }

    /// Frames the workers' rings to this lcore could not take (dropped there, counted).
    var ringFull: UInt64 { plane.workers.reduce(0) { $0 &+ $1.statsSlot.pointee.transferDropped } }

    func counters(_ move: Outgoing, now: UInt64) -> [String: Int] {
        let s = move.session.counters, e = move.session.endpoint.counters
        var c: [String: Int] = [
            "perFlowStates": s.perFlowStates, "multiFlowStates": s.multiFlowStates, "allFlowsStates": s.allFlowsStates,
            "stateFrames": s.stateFrames,
            "stateBytes": s.stateBytes, "packetsRedirected": s.packetsRedirected, "redirectedBytes": s.redirectedBytes,
            "packetsTooLarge": s.packetsTooLarge, "packetsInParts": s.packetsInParts, "statesInParts": s.statesInParts, "packetFrames": s.packetFrames, "serializeNs": Int(s.serializeNanoseconds), "framesSent": e.framesSent,
            "framesReceived": e.framesReceived, "retransmissions": e.retransmissions, "rejected": e.rejected,
            "timeouts": e.timeouts, "fastRecoveries": e.fastRecoveries, "spuriousTimeouts": e.spuriousTimeouts,
            "congestionWindow": Int(move.session.endpoint.congestionWindow),
            "lateRedirects": move.lateRedirects, "markWaitNs": Int(move.markWaitNanoseconds),
            "exportBeganNs": Int(move.exportBegan), "stateQueuedNs": Int(move.stateQueued),
            "elapsedNs": Int(now &- move.started), "rttNs": Int(move.session.endpoint.smoothedRTT ?? 0),
            "ringFull": Int(ringFull &- move.ringFullAtStart), "ibcQueuesMissing": move.ibcQueuesMissing, "duplicatesDropped": move.duplicatesDropped,
            "transmitNoMbuf": transmitNoMbuf, "processNoMbuf": processNoMbuf, "pushWaitMaxNs": Int(pushWaitMaxNs),
        ]
        if let d = move.session.summary {
            c["dstPerFlowStates"] = d.perFlowStates
            c["dstMultiFlowStates"] = d.multiFlowStates
            c["dstPackets"] = d.packets
            c["dstBuffered"] = d.buffered
            c["dstMaxBuffered"] = d.maxBuffered
            c["dstOverflow"] = d.overflow
            c["deserializeNs"] = Int(d.deserializeNanoseconds)
        }
        return c
    }

    // MARK: - Frames from the workers

    func take(_ frame: TransferFrame, from worker: Int, now: UInt64) {
        let n = Int(dist_mbuf_copy(frame.mbuf, scratch, 65536))
        dist_mbuf_free(frame.mbuf)
        let bytes = Array(UnsafeBufferPointer(start: scratch, count: n))
        if frame.redirected {
            redirected(bytes, from: worker, now: now)
        } else {
            channel(bytes, now: now)
        }
    }

    func redirected(_ bytes: [UInt8], from worker: Int, now: UInt64) {
        if outgoing == nil && completedOrdered {
            duplicatesDropped += 1
            return
        }
        guard let move = outgoing, move.guarded else {
            // Redirected before the Move's rule went (it ended or aborted) and still in the
            // ring: this instance's to process, the rule being gone.
            strayRedirects += 1
            _ = process(bytes)
            return
        }
        if let marker = InBandControl.marker(in: bytes), marker.moveID == move.order.moveID {
            // (Further copies of it change nothing.)
            guard !move.ibcSeen && move.ibcDrain == nil else { return }
            if links.count == 1 { return passed(move, now: now) }
            if move.ordered {
                // Each queue is cut at its own copy: the workers drop what comes after it.
                move.ibcWorkers.insert(worker)
                if move.ibcFirstAt == 0 { move.ibcFirstAt = now }
                guard move.ibcWorkers.count == links.count else { return }
            }
            // Packets the switch sent before it may still wait in the other workers' queues.
            startDrain(move, now: now)
            return
        }
        if move.ibcSeen && move.ordered {
            // After the marker, the switch sends the destination these packets itself.
            move.duplicatesDropped += 1
            return
        }
        if !move.session.redirect(bytes) { move.lateRedirects += 1 }
    }

    /// Waits for rounds of every worker that found no queue full (see ``Outgoing/ibcDrain``).
    func startDrain(_ move: Outgoing, now: UInt64) {
        move.ibcDrain = links.map { $0.quiescent.rounds }
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

    func channel(_ bytes: [UInt8], now: UInt64) {
        guard let (from, payload) = ChannelDatagram.parse(bytes, to: local), payload.count >= 12 else {
            rejectedFrames += 1
            return
        }
        let moveID = payload[4..<12].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        if let move = outgoing.flatMap({ $0.order.moveID == moveID ? $0 : nil }) ?? finished[moveID]?.move {
            move.session.receive(payload, now: now)
            return
        }
        if incoming[moveID] == nil {
            // A Move this instance has not seen: only a frame that authenticates opens it.
            guard let f = try? ChannelFrame.decode(payload, key: key), f.kind != .ack, f.kind != .abort else {
                rejectedFrames += 1
                return
            }
            let session = TransferDestination(moveID: moveID, key: key)
            session.endpoint.trace = tracer(moveID, "in", since: now)
            incoming[moveID] = Incoming(session)
        }
        guard let move = incoming[moveID] else { return }
        // Until the opening message says where the source listens (its VLAN, say), replies go
        // where the frame came from.
        if move.peer == nil || !move.opened { move.peer = from }
        move.lastHeard = now
        for delivery in move.session.receive(payload, now: now) { hand(delivery, move) }
    }

    /// Destination: state and packets to the workers they belong to, in order.
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
            move.copiesBefore = switchArrivals(gated: move.gated)
            let rule = EventRule(filter: filter, action: move.gated ? .gate : .hold, moveID: move.session.endpoint.moveID)
            for w in links.indices { push(.rule(rule), to: w) }
        case .end:
            if move.gated && move.holding {
                // The switch's packets go on after its in-band control packet (now, or when it comes).
                move.holding = false
                for w in links.indices { push(.sourceEnded(move.session.endpoint.moveID), to: w) }
            }
            unhold(move)
        case .flows(let entries):
            var byWorker = [[FlowEntry]](repeating: [], count: links.count)
            for e in entries { byWorker[owner(e.key)].append(e) }
            if move.imported.isEmpty { move.imported = Array(repeating: [], count: links.count) }
            for (w, part) in byWorker.enumerated() where !part.isEmpty {
                push(.flows(part), to: w)
                move.imported[w] += part.map { $0.key }
            }
        case .assets(let assets):
            for w in links.indices { push(.assets(assets), to: w) }
        case .counters(let c):
            if !importedCounters.push(c) { rejectedFrames += 1 }
        case .packet(let frame):
            _ = process(frame)
        }
    }

    /// The switch's packets of the Move's flows go on (after every redirected one).
    func unhold(_ move: Incoming) {
        guard move.holding else { return }
        move.holding = false
        for w in links.indices { push(.rule(nil), to: w) }
    }

    /// Hands a packet to the worker its flow belongs to, to be processed and forwarded.
    @discardableResult
    func process(_ frame: [UInt8]) -> Bool {
        guard let m = frame.withUnsafeBufferPointer({ dist_mbuf_from_bytes(plane.pool.pointer, $0.baseAddress, UInt32($0.count)) }) else {
            processNoMbuf += 1
            return false
        }
        push(.process(m), to: RedirectBuffer.key(of: frame).map(owner) ?? 0)
        return true
    }

    func owner(_ key: FlowKey) -> Int { plane.ownership.owner(of: key) }

    /// Waits for room: the worker empties its ring every round.
    func push(_ item: WorkerDelivery, to worker: Int) {
        guard !links[worker].toWorker.push(item) else { return }
        let since = plane.clock.now()
        defer { pushWaitMaxNs = max(pushWaitMaxNs, plane.clock.now() &- since) }
        var spins = 0
        while !links[worker].toWorker.push(item) {
            spins += 1
            if spins > 1_000_000 {
                pushDropped += 1
                return
            }
            sched_yield()
        }
    }

    func transmit(_ frame: [UInt8]) {
        guard let m = frame.withUnsafeBufferPointer({ dist_mbuf_from_bytes(plane.pool.pointer, $0.baseAddress, UInt32($0.count)) }) else {
            transmitNoMbuf += 1
            return
        }
        push(.transmit(m), to: 0)
    }

    /// Notes how many mbufs the pool has left (while a Move is under way).
    func samplePool() {
        poolLowWater = min(poolLowWater, plane.pool.available)
    }

    func pollSessions(now: UInt64) -> Bool {
        var any = false
        if let d = discarding, now &- d.since > 2_000_000_000 {
            discarding = nil
            for w in links.indices { push(.closeGate(d.moveID), to: w) }
        }
        for move in [outgoing].compactMap({ $0 }) + finished.values.map({ $0.move }) {
            for f in move.session.poll(now: now) {
                transmit(ChannelDatagram.build(from: local, to: move.order.destination, payload: f))
                any = true
            }
        }
        for (id, f) in finished where now &- f.since > 2_000_000_000 { finished[id] = nil }
        for (id, move) in incoming {
            if let before = move.copiesBefore, move.holding, switchArrivals(gated: move.gated) > before {
                move.copiesBefore = nil
                move.session.copiesArriving()
            }
            // Replies go back where the source is (the channel's first frame said).
            // Replies wait for the opening message when the source's VLAN is not known yet.
            if move.opened || local.vlan == nil {
                for f in move.session.poll(now: now) {
                    if let peer = move.peer { transmit(ChannelDatagram.build(from: local, to: peer, payload: f)) }
                    any = true
                }
            }
            // A source silent for 5 s mid-Move is gone: what it sent here is given up.
            if !move.session.complete && move.session.endpoint.state == .open && now &- move.lastHeard > 5_000_000_000 {
                _ = move.session.endpoint.abort("the source fell silent", now: now)
            }
            if move.session.complete || move.session.endpoint.state != .open || move.session.failure != nil {
                if move.finishedAt == nil {
                    move.finishedAt = now
                    incomingEnded(id, move)
                    // Aborted or broken. Redirected packets held here: processed when the source
                    // gave up on hearing from us ("keep"), dropped when it takes them back. Then
                    // what the switch sent here goes on (the end does this otherwise).
                    if case .aborted(let why) = move.session.endpoint.state, why.hasPrefix("the peer gave up: keep") {
                        for frame in move.session.takeHeld() { _ = process(frame) }
                    } else if move.session.endpoint.state != .open || move.session.failure != nil {
                        _ = move.session.takeHeld()
                    }
                    var peerGaveUp = false
                    if case .aborted(let why) = move.session.endpoint.state { peerGaveUp = why.hasPrefix("the peer gave up") }
                    if !move.session.complete && (!move.session.ended || peerGaveUp) {
                        // Given up: the source has its flows back; copies here would go stale.
                        // (After the source's end and this end's summary, the flows are this
                        // instance's unless the source says otherwise: its acknowledgement of the
                        // summary may be all that was lost.)
                        for (w, keys) in move.imported.enumerated() where !keys.isEmpty { push(.forget(keys), to: w) }
                        move.imported = []
                    }
                    unhold(move)
                }
                // Kept a while to answer retransmissions of the end, then forgotten (with an
                // order-preserving gate whose in-band control packet was lost on the way).
                if now &- move.finishedAt! > 2_000_000_000 {
                    if move.gated { for w in links.indices { push(.closeGate(id), to: w) } }
                    incoming[id] = nil
                }
            }
        }
        return any
    }

    // MARK: - Workers

    func ask(_ request: StateRequest, worker: Int) -> StateResponse? {
        plane.perform(request, on: plane.workers[worker], timeout: 1.0)
    }

    func everyWorker(_ request: StateRequest) -> Bool {
        var ok = true
        for w in links.indices {
            switch ask(request, worker: w) {
            case nil, .refused?: ok = false
            default: break
            }
        }
        return ok
    }

    /// The switch's packets of a Move in the workers took so far (their counters, read as the
    /// main lcore reads them): `gated`, the copies of an order-preserving Move's traffic they
    /// dropped before its in-band control packet; else the packets they held.
    func switchArrivals(gated: Bool) -> UInt64 {
        plane.workers.reduce(0) { $0 &+ (gated ? $1.statsSlot.pointee.duplicatesDropped : $1.statsSlot.pointee.eventsHeld) }
    }

    /// A Move in has ended: how (for the instance's log; the controller hears from the source).
    func incomingEnded(_ id: UInt64, _ move: Incoming) {
        var reason: String?
        if case .aborted(let why) = move.session.endpoint.state { reason = why }
        if let failure = move.session.failure { reason = failure }
        let e = move.session.endpoint.counters
        notice(id, "incomingEnded", move.session.complete ? "completed" : move.session.ended ? "ended" : "given up", reason,
               ["framesReceived": e.framesReceived, "delivered": e.delivered, "duplicates": e.duplicates,
                "rejected": e.rejected, "outOfWindow": e.outOfWindow, "retransmissions": e.retransmissions,
                "pushDropped": pushDropped, "pushWaitMaxNs": Int(pushWaitMaxNs), "transmitNoMbuf": transmitNoMbuf,
                "processNoMbuf": processNoMbuf, "poolLowWater": Int(poolLowWater == .max ? plane.pool.available : poolLowWater)])
    }

    func notice(_ id: UInt64, _ type: String, _ outcome: String, _ reason: String?, _ counters: [String: Int]) {
        if let traceFile {
            fputs("move \(id) notice \(type) \(outcome)\(reason.map { ": " + $0 } ?? "")\n", traceFile)
            fflush(traceFile)
        }
        _ = notices.push(MoveNotice(moveID: id, type: type, outcome: outcome, reason: reason, counters: counters))
    }
}

public enum TransferAgentError: Error, CustomStringConvertible {
    case traceFile(String, String)
    public var description: String {
        switch self {
        case .traceFile(let path, let why): "--channel-trace: cannot open \(path): \(why)"
        }
    }
}
