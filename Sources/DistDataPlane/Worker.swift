import Atomics
import CDPDKShim
import CDistIntrinsics
import DistFlow
import DistPRADS
import DistPacket
import DistPipeline
import DistState

/// A packet raised to the controller: its bytes and the worker that saw it.
public struct PacketEvent: Sendable {
    public var frame: [UInt8]
    public var worker: Int
}

/// Where a worker's frames come from and go to: RX queue `queue` of `rx`, TX queue `queue` of `tx`.
public struct Route: Sendable, Equatable {
    public var rx: UInt16
    public var tx: UInt16
    public init(rx: UInt16, tx: UInt16) {
        self.rx = rx
        self.tx = tx
    }

    /// l2fwd's pairing: one port sends back out of itself; otherwise 0<->1, 2<->3, and an odd
    /// last port back out of itself.
    public static func pairs(portCount: UInt16) -> [Route] {
        (0..<portCount).map { p in
            let peer = p ^ 1
            return Route(rx: p, tx: peer < portCount ? peer : p)
        }
    }
}

/// One worker lcore: polls its RX queue on every port, runs each burst through the
/// ``FastPath`` (parse, count, track the flow), and forwards every frame, in the order received,
/// to the route's TX port. It owns its flow table and its statistics slot; it takes no lock and
/// allocates nothing per packet.
public final class Worker: @unchecked Sendable {
    public let index: Int
    public let lcore: UInt32
    public let queue: UInt16
    public let routes: [Route]
    public let table: FlowTable
    /// The PRADS detection this worker runs (its own asset table), if any.
    public let detector: Detector?
    /// Asset records on their way to the main lcore's log writer.
    public let records: RecordRing
    /// Where other threads ask for state operations: one mailbox per asking thread (the main
    /// lcore's southbound and admin requests, the transfer lcore's Move), so that neither waits
    /// behind the other's stream of requests.
    public let mailboxes = [WorkerMailbox(), WorkerMailbox()]
    /// The per-packet work, and the state operations the mailbox hands it.
    public let fastPath: FastPath
    /// The ports stamp what they receive, and detection dates by it (`--capture-time`).
    var stamping = false
    /// Packets raised as events, on their way to the main lcore (and the controller).
    public let events = SPSCRing<PacketEvent>(capacity: 16384)
    /// The link to the transfer lcore (DiST's Move), when there is one.
    public var transfer: TransferLink?
    /// Where the channel's frames the transfer lcore hands this worker leave.
    var channelPort: UInt16 = 0
    /// Worker handoff: the rings to and from every other worker (a constant: read per packet
    /// without an exclusivity check).
    let handoff: HandoffLinks<HandoffPacket>
    /// How many workers still receive from their ports (each takes one off as it stops); with
    /// several workers, a stopping worker serves its incoming rings until this is zero.
    var receiving: UnsafeAtomic<Int>?
    /// Whether this worker's ports copy received frames into mbufs on its own core
    /// (``Port/copyingReceiveDrivers``): a handed-off packet's mbuf, freed here, is reused by
    /// this worker's next receive, which then writes the frame's lines the other core wrote.
    var warmsReceiveBuffers = false
    /// Packets held by a `buffer`, `hold` or `gate` event rule, in arrival order, until the
    /// rule goes: copied out of their mbufs, so that a hold of a second or more (a Move over a
    /// lossy channel) cannot drain the pool the port receives into, the Move's own frames
    /// included. (Holding the mbufs did: 8,191 mbufs held at 10,000 pps, and the port stopped.)
    /// Released paced (see ``HoldQueue``).
    let held = HoldQueue(capacity: Worker.holdCapacity, byteCapacity: Worker.holdBytes)
    public static let holdCapacity = 131_072
    public static let holdBytes = 64 << 20
    /// How held packets go once their rule goes.
    let pacing: HoldQueue.Pacing
    /// The pool held packets go back into mbufs from.
    var pool: OpaquePointer?
    /// Housekeeping (expiry of `expiryBudget` entries, the mailbox, counters) every this many loops.
    let housekeepingInterval: UInt64 = 32
    let expiryBudget = 64

    /// This worker's statistics slot, read by the main lcore.
    let statsSlot: UnsafeMutablePointer<WorkerStats>
    let stopFlag: UnsafeAtomic<Bool>
    let clock: Clock

    /// What to do after a poll round that found nothing (shared-CPU hosts: yield, or sleep).
    let idle: IdleBackoff

    static let burstSize: UInt16 = 32
    /// Attempts to hand a burst's remainder to a full TX queue before it waits in ``backlog``.
    static let txRetries = 8
    /// What the TX queue had no room for (see ``TransmitBacklog``): 4,096 packets, four times a
    /// virtio or NIC queue, so that a Move's release of what it held is not dropped.
    let backlog = TransmitBacklog(capacity: 4096)
    /// The TX burst ``backlog`` sends with (this worker's queue, a few attempts).
    lazy var txSend: TransmitBacklog.Send = { [queue] port, packets, count in
        var sent = dist_tx_burst(port, queue, packets, UInt16(count))
        var tries = 0
        while Int(sent) < count && tries < Worker.txRetries {
            sent += dist_tx_burst(port, queue, packets + Int(sent), UInt16(count) - sent)
            tries += 1
        }
        return Int(sent)
    }

    init(
        index: Int, lcore: UInt32, queue: UInt16, routes: [Route], table: FlowTable, detector: Detector?,
        records: RecordRing, statsSlot: UnsafeMutablePointer<WorkerStats>, stopFlag: UnsafeAtomic<Bool>, clock: Clock,
        handoff: HandoffLinks<HandoffPacket>, idle: IdleBackoff = IdleBackoff(yield: false),
        pacing: HoldQueue.Pacing = HoldQueue.Pacing()
    ) {
        self.handoff = handoff
        self.idle = idle
        self.pacing = pacing
        self.detector = detector
        self.records = records
        fastPath = FastPath(table: table, stats: statsSlot, detector: detector)
        fastPath.handoff = handoff
        self.index = index
        self.lcore = lcore
        self.queue = queue
        self.routes = routes
        self.table = table
        self.statsSlot = statsSlot
        self.stopFlag = stopFlag
        self.clock = clock
    }

    /// The lcore's main loop; returns when the stop flag is set, after flushing.
    func run() -> Int32 {
        let burst = Burst(capacity: Int(Worker.burstSize), stamping: stamping)
        defer { burst.deallocate() }
        fastPath.stamps = burst.stamps
        let routeList = UnsafeMutableBufferPointer<Route>.allocate(capacity: routes.count)
        _ = routeList.initialize(from: routes)
        defer { routeList.deallocate() }
        let fastPath = self.fastPath
        let handoff = self.handoff
        // (Read once: the loop below looks at both every round.)
        let (controlMailbox, transferMailbox) = (mailboxes[0], mailboxes[1])
        let queue = self.queue
        let stop = stopFlag
        let clock = self.clock
        let interval = housekeepingInterval
        let budget = expiryBudget
        var loops: UInt64 = 0
        var idle = self.idle

        let link = transfer
        while !stop.load(ordering: .relaxed) {
            loops &+= 1
            link?.quiescent.quiescent(loops)
            if !backlog.isEmpty { flushBacklog() }
            var received = false
            var full = false
            if let link { received = deliver(link, burst) }
            // What other workers handed over is taken in after this round's own packets, its
            // lines asked for before: its slots now, its mbufs once the first own burst is in
            // (each then crosses from the other core while this one works).
            var (handed, _) = handoff.forEachPending { Worker.askForSlots($0) }
            for route in routeList {
                let n = dist_rx_burst(route.rx, queue, burst.packets, Worker.burstSize)
                if n == 0 { continue }
                received = true
                if n == Worker.burstSize { full = true }
                if handed {
                    let warm = warmsReceiveBuffers
                    _ = handoff.forEachPending { Worker.askForPackets($0, frames: warm) }
                    handed = false
                }
                burst.readMeta(Int(n))
                let events = burst.process(Int(n), through: fastPath, now: clock.now(), port: route.tx)
                let keep = events ? sortOut(burst, count: Int(n), port: route.tx) : n
                transmit(burst.packets, count: keep, port: route.tx)
            }
            let (took, more) = handoff.forEachPending { receiveHandoffs($0, burst) }
            if took { received = true }
            if more { full = true }
            // The mailboxes are looked at every round (a relaxed load each): a control-plane
            // request waits for one burst at most, however rounds are paced.
            if let (served, before) = controlMailbox.serve(fastPath) {
                switch served {
                case .events(let rule): ruleChanged(from: before, to: rule, burst)
                case .endEvents(let frames):
                    replay(frames, burst)
                    ruleChanged(from: before, to: nil, burst)
                default: break
                }
            }
            if let (served, before) = transferMailbox.serve(fastPath), case .events(let rule) = served {
                ruleChanged(from: before, to: rule, burst)
            }
            // (Held packets go once the TX queue has taken what waited for it.)
            if held.draining && backlog.isEmpty {
                drain(burst)
            }
            if loops % interval == 0 {
                fastPath.housekeeping(now: clock.now(), expiryBudget: budget)
                statsSlot.pointee.loops = loops
            }
            if !full, let link { link.drained.store(loops, ordering: .releasing) }
            // (A paced release counts as work: its next packets are due within microseconds.)
            idle.pause(busy: received || held.draining || !backlog.isEmpty)
        }
        // Stopping: what other workers handed over, then what events held, goes on (nothing
        // is dropped silently).
        finishHandoffs(burst)
        release(burst)
        for _ in 0..<1000 where !backlog.isEmpty {
            flushBacklog()
            usleep(100)
        }
        dropBacklog()
        fastPath.housekeeping(now: clock.now(), expiryBudget: 0)
        statsSlot.pointee.loops = loops
        return 0
    }

    /// After a burst with events: raises event packets to the main lcore, drops or holds them
    /// per their verdict, and packs the packets to forward at the front. Returns how many.
    func sortOut(_ burst: Burst, count: Int, port: UInt16) -> UInt16 {
        let packets = burst.packets
        let verdicts = fastPath.verdicts
        var keep = 0
        for i in 0..<count {
            let verdict = verdicts[i]
            // Most packets of a burst with events simply go on (those of a burst with handed-off
            // packets in it, above all): tested first.
            if verdict == .forward {
                packets[keep] = packets[i]
                keep += 1
                continue
            }
            // Staged for its owner by the fast path.
            if verdict == .handoff { continue }
            if verdict == .divert || verdict == .redirect {
                if let link = transfer, let m = packets[i],
                    link.toTransfer.push(TransferFrame(mbuf: m, redirected: verdict == .redirect))
                {
                    if verdict == .redirect { statsSlot.pointee.redirected &+= 1 }
                } else {
                    statsSlot.pointee.transferDropped &+= 1
                    dist_mbuf_free(packets[i])
                }
                continue
            }
            if verdict == .hold {
                // Not raised: when the hold queue is full it goes on unprocessed rather than
                // being dropped (counted).
                if !hold(packets[i], port: port) {
                    packets[keep] = packets[i]
                    keep += 1
                }
                continue
            }
            if verdict != .forward && verdict != .discard && verdict != .pass {
                let frame = Array(UnsafeBufferPointer(start: burst.data[i], count: Int(burst.segmentLengths[i])))
                if events.push(PacketEvent(frame: frame, worker: index)) {
                    statsSlot.pointee.eventsRaised &+= 1
                } else {
                    statsSlot.pointee.eventsLost &+= 1
                }
            }
            switch verdict {
            case .forward, .raiseAndForward, .pass:
                packets[keep] = packets[i]
                keep += 1
            case .divert, .redirect, .hold, .handoff:
                break
            case .discard:
                dist_mbuf_free(packets[i])
            case .raiseAndDrop:
                dist_mbuf_free(packets[i])
            case .raiseAndHold:
                // The hold queue full: the packet was raised; the controller's copy stands for it.
                if !hold(packets[i], port: port) { dist_mbuf_free(packets[i]) }
            }
        }
        handoff.flush(stats: statsSlot)
        return UInt16(keep)
    }

    /// Copies a packet to the hold queue and frees its mbuf; false (counted, the mbuf left to
    /// the caller) when the queue is full.
    @inline(__always)
    func hold(_ mbuf: OpaquePointer?, port: UInt16) -> Bool {
        let room = held.room()
        let length = room.map { Int(dist_mbuf_copy(mbuf, $0.baseAddress, UInt32(clamping: $0.count))) } ?? 0
        guard length > 0 else {
            statsSlot.pointee.holdOverflow &+= 1
            return false
        }
        held.commit(length: length, port: port, now: clock.now())
        dist_mbuf_free(mbuf)
        statsSlot.pointee.eventsHeld &+= 1
        return true
    }

    /// The event rule `before` gave way to `after`: when `after` holds nothing, what was held
    /// goes on, paced (``HoldQueue``) when no rule takes its place (the end of a Move's hold),
    /// at once when one does (its packets must not pass what was held).
    func ruleChanged(from before: EventRule?, to after: EventRule?, _ burst: Burst) {
        guard !Worker.holds(after) else { return }
        // (A gate past its source's end holds nothing more: it only drops copies before its
        // queue's in-band control packet, which are not the held packets' to follow.)
        if after == nil || after?.action == .gate, let before, Worker.holds(before), pacing.factor > 0,
            !held.draining || fastPath.drainFilter == before.filter
        {
            if held.startRelease(now: clock.now(), pacing: pacing) {
                fastPath.drainFilter = before.filter
                statsSlot.pointee.pacedReleases &+= 1
                drain(burst)
            }
            return
        }
        release(burst)
    }

    /// Processes and forwards every held packet, in the order they came, at once.
    func release(_ burst: Burst) {
        if !held.isEmpty { _ = held.startRelease(now: clock.now(), pacing: .immediate) }
        while held.draining {
            drain(burst)
        }
        fastPath.drainFilter = nil
    }

    /// Processes and forwards frames this worker raised and dropped that nobody sent on (their
    /// controller went away), in order, past every rule; a frame the pool has no mbuf for is
    /// dropped, counted.
    func replay(_ frames: [[UInt8]], _ burst: Burst) {
        guard let port = routes.first?.tx else { return }
        var i = 0
        while i < frames.count {
            var n = 0
            while n < Int(Worker.burstSize) && i < frames.count {
                let m = frames[i].withUnsafeBufferPointer {
                    dist_mbuf_from_bytes(pool, $0.baseAddress, UInt32($0.count))
                }
                i += 1
                guard let m else {
                    statsSlot.pointee.txDropped &+= 1
                    continue
                }
                burst.packets[n] = m
                n += 1
            }
            if n > 0 { processPastEveryRule(burst, count: n, port: port) }
        }
        statsSlot.pointee.eventsReplayed &+= UInt64(frames.count)
    }

    /// Processes and forwards the held packets the pace lets go now (one burst at most).
    func drain(_ burst: Burst) {
        let allowed = held.releasable(now: clock.now(), limit: Int(Worker.burstSize))
        guard allowed > 0, let port = held.first?.port else { return }
        var n = 0
        while n < allowed && held.entry(n).port == port {
            let h = held.entry(n)
            guard let m = dist_mbuf_from_bytes(pool, held.bytes + h.offset, UInt32(h.length)) else { break }
            burst.packets[n] = m
            n += 1
        }
        if n == 0 {
            // The pool is empty (it refills as the port sends): this one is dropped, counted.
            statsSlot.pointee.txDropped &+= 1
            held.dropFirst(1)
        } else {
            // These are past every rule (the one that held them went), the drain's filter too.
            // They were held at their flows' owner: nothing is handed off, but should a packet
            // be, sortOut sees it go.
            processPastEveryRule(burst, count: n, port: port)
            held.dropFirst(n)
        }
        if !held.draining { fastPath.drainFilter = nil }
    }

    /// Applies what the transfer lcore handed this worker, in order: state in, packets to
    /// process and forward (as if received), channel frames out. Returns whether there was any.
    func deliver(_ link: TransferLink, _ burst: Burst) -> Bool {
        // Every poll round comes here: nothing but two loads when there is nothing.
        guard !link.toWorker.isEmpty else { return false }
        let port = routes[0].tx
        var pending = 0
        var any = false
        func flush() {
            guard pending > 0 else { return }
            // Packets handed over by the transfer lcore are past every rule here.
            processPastEveryRule(burst, count: pending, port: port)
            statsSlot.pointee.delivered &+= UInt64(pending)
            pending = 0
        }
        link.toWorker.drain { item in
            any = true
            switch item {
            case .process(let m):
                burst.packets[pending] = m
                pending += 1
                if pending == Int(Worker.burstSize) { flush() }
            case .transmit(let m):
                flush()
                var one: OpaquePointer? = m
                transmit(&one, count: 1, port: channelPort)
                statsSlot.pointee.channelFramesSent &+= 1
            case .flows(let entries):
                flush()
                if case .refused = fastPath.perform(.importFlows(entries)) {
                    statsSlot.pointee.importRefused &+= UInt64(entries.count)
                }
            case .assets(let assets):
                flush()
                _ = fastPath.perform(.importAssets(assets))
            case .rule(let rule):
                // In order with the packets: a hold ends after the last redirected one.
                flush()
                let before = fastPath.eventRule
                _ = fastPath.perform(.events(rule))
                ruleChanged(from: before, to: rule, burst)
            case .sourceEnded(let id):
                flush()
                let before = fastPath.eventRule
                if fastPath.sourceEnded(moveID: id) {
                    ruleChanged(from: before, to: fastPath.eventRule, burst)
                }
            case .forget(let keys):
                flush()
                _ = fastPath.perform(.forgetFlows(keys))
            case .closeGate(let id):
                flush()
                if let rule = fastPath.eventRule, rule.action == .gate || rule.action == .discard, rule.moveID == id {
                    if rule.action == .gate { statsSlot.pointee.gatesClosedLate &+= 1 }
                    _ = fastPath.perform(.events(nil))
                    ruleChanged(from: rule, to: nil, burst)
                }
            }
        }
        flush()
        return any
    }

    /// Processes and sends the burst's first `count` packets (their mbufs in place) as if no
    /// event rule were in force, nor a paced release's filter: packets a rule already let go
    /// (held ones it released, redirected ones a Move brought).
    func processPastEveryRule(_ burst: Burst, count: Int, port: UInt16) {
        burst.readMeta(count)
        let rule = fastPath.eventRule
        let drain = fastPath.drainFilter
        fastPath.eventRule = nil
        fastPath.drainFilter = nil
        let events = burst.process(count, through: fastPath, now: clock.now(), port: port)
        fastPath.eventRule = rule
        fastPath.drainFilter = drain
        let keep = events ? sortOut(burst, count: count, port: port) : UInt16(count)
        transmit(burst.packets, count: keep, port: port)
    }

    /// Whether a rule keeps the packets the worker holds (else they go on when it comes in).
    static func holds(_ rule: EventRule?) -> Bool {
        rule?.holds ?? false
    }
}

#if canImport(Glibc)
    import Glibc
#endif
