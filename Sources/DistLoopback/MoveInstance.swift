import Crypto
import DistChannel
import DistFlow
import DistPRADS
import DistPacket
import DistPipeline
import DistState
import DistTransfer

/// A DiST instance in one thread: real ``FastPath`` workers (their tables, rules and verdicts),
/// and a ``MoveEngine`` whose host this is. What the workers would do with each verdict on the
/// lcore is done here in place: forwarded frames are kept in `out` (in order), packets a rule
/// keeps wait in `held` until the rule lets them go, redirected and diverted frames go to the
/// engine at the next round, datagrams the engine sends wait in `wire` for its driver (a test, a
/// benchmark) to carry.
public final class MoveInstance: MoveHost {
    public let paths: [FastPath]
    public let stats: UnsafeMutablePointer<WorkerStats>
    public let ownership: FlowOwnership
    public let address: ChannelAddress
    public var clock: UInt64 = 1_000_000_000
    public var roundCount: UInt64 = 0
    /// Frames the network function forwarded, in the order it did.
    public var out: [[UInt8]] = []
    /// Per worker, what a hold or gate rule keeps, in arrival order.
    public var held: [[[UInt8]]]
    public var heldTotal: UInt64 = 0
    /// Channel datagrams the engine put on the wire.
    public var wire: [[UInt8]] = []
    public var notices: [MoveNotice] = []
    public var toEngine: [(frame: [UInt8], worker: Int, redirected: Bool)] = []
    public var engine: MoveEngine!

    /// `capacity` flows per worker; `detector` makes each worker's PRADS detection (none:
    /// flow tracking only).
    public init(
        workers: Int, address: String, capacity: Int = 1 << 12, detector: ((Int) -> Detector)? = nil
    ) {
        let local = ChannelAddress(address)!
        self.address = local
        ownership = FlowOwnership(workers: workers)
        let slots = UnsafeMutablePointer<WorkerStats>.allocate(capacity: workers)
        slots.initialize(repeating: WorkerStats(), count: workers)
        stats = slots
        let channel = (IPAddress(ipv4: local.ip), local.port)
        paths = (0..<workers).map { w in
            let path = FastPath(table: FlowTable(capacity: capacity), stats: slots + w, detector: detector?(w))
            path.channel = channel
            return path
        }
        held = Array(repeating: [], count: workers)
        engine = MoveEngine(local: self.address, key: SymmetricKey(data: [UInt8](repeating: 7, count: 32)), host: self)
    }

    /// One packet's pointer and lengths, as a worker's burst holds them (kept: no allocation
    /// per packet, as on DPDK).
    private let one = UnsafeMutablePointer<UnsafePointer<UInt8>?>.allocate(capacity: 1)
    private let oneSegment = UnsafeMutablePointer<UInt16>.allocate(capacity: 1)
    private let oneLength = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)

    deinit {
        stats.deallocate()
        one.deallocate()
        oneSegment.deallocate()
        oneLength.deallocate()
    }

    /// A frame from the switch, received by the worker that owns its flow (a NIC whose RSS
    /// agrees with the owner function), or by `worker`.
    public func receive(_ frame: [UInt8], worker: Int? = nil) {
        run(frame, on: worker ?? key(of: frame).map(owner) ?? 0, pastRules: false)
    }

    /// One poll round of every worker, then a step of the engine; the clock moves 1 ms.
    public func round() {
        round(at: clock + 1_000_000)
    }

    /// The same at time `now` (ns; a benchmark runs on the real clock).
    public func round(at now: UInt64) {
        clock = now
        roundCount += 1
        takeWorkerFrames(engine, now: clock)
        _ = engine.step(now: clock)
    }

    public func key(of frame: [UInt8]) -> FlowKey? { FlowKey.of(frame) }

    public func run(_ frame: [UInt8], on w: Int, pastRules: Bool) { run(frame[...], on: w, pastRules: pastRules) }

    /// The same for a packet that lies in a larger buffer (a channel frame's): it is read there
    /// and copied only where it is kept (sent, held, or for the engine), as a data plane copies
    /// it into an mbuf.
    public func run(_ frame: ArraySlice<UInt8>, on w: Int, pastRules: Bool) {
        let path = paths[w]
        let rule = path.eventRule
        if pastRules { path.eventRule = nil }
        defer { if pastRules { path.eventRule = rule } }
        let verdict = frame.withUnsafeBufferPointer { buffer -> FastPath.Verdict in
            one.pointee = buffer.baseAddress
            oneSegment.pointee = UInt16(clamping: buffer.count)
            oneLength.pointee = UInt32(buffer.count)
            _ = path.process(count: 1, data: one, segmentLengths: oneSegment, packetLengths: oneLength, now: clock)
            return path.verdicts[0]
        }
        switch verdict {
        case .forward, .raiseAndForward, .pass: out.append(Array(frame))
        case .redirect, .divert: toEngine.append((Array(frame), w, verdict == .redirect))
        case .hold:
            held[w].append(Array(frame))
            heldTotal += 1
        case .discard, .raiseAndDrop, .raiseAndHold, .handoff: break
        }
    }

    /// What a worker does when its rule changes: held packets go on, past every rule, once
    /// the rule in force holds nothing.
    public func ruleChanged(_ w: Int) {
        guard !(paths[w].eventRule?.holds ?? false) else { return }
        let frames = held[w]
        held[w] = []
        for f in frames { run(f, on: w, pastRules: true) }
    }

    // MARK: - MoveHost

    public var workerCount: Int { paths.count }
    public func now() -> UInt64 { clock }

    /// The rounds in which the engine asked a worker for a slice of hosts.
    public private(set) var slicesAsked: [UInt64] = []
    /// The rounds in which the engine asked a worker to list a slice of flows, and the worker.
    public private(set) var listingsAsked: [(round: UInt64, worker: Int)] = []

    public func ask(_ request: StateRequest, worker: Int) -> StateResponse? {
        if case .exportAssetsSlice = request { slicesAsked.append(roundCount) }
        if case .locate = request { listingsAsked.append((roundCount, worker)) }
        let response = paths[worker].perform(request)
        if case .events = request { ruleChanged(worker) }
        return response
    }

    public func deliver(_ delivery: MoveDelivery, to w: Int) -> Bool {
        let path = paths[w]
        switch delivery {
        case .flows(let entries): _ = path.perform(.importFlows(entries))
        case .assets(let assets): _ = path.perform(.importAssets(assets))
        case .process(let frame): run(frame, on: w, pastRules: true)
        case .rule(let rule):
            _ = path.perform(.events(rule))
            ruleChanged(w)
        case .sourceEnded(let id):
            if path.sourceEnded(moveID: id) { ruleChanged(w) }
        case .closeGate(let id):
            if let rule = path.eventRule, rule.action == .gate || rule.action == .discard, rule.moveID == id {
                _ = path.perform(.events(nil))
                ruleChanged(w)
            }
        case .forget(let keys): _ = path.perform(.forgetFlows(keys))
        }
        return true
    }

    public func transmit(_ datagram: [UInt8]) { wire.append(datagram) }
    public func table(_ worker: Int) -> FlowTable { paths[worker].table }
    /// The workers run between the engine's steps: every later packet sees the marks.
    public func waitForQuiescence(timeout: UInt64) -> Bool { true }
    public func rounds() -> [UInt64] { Array(repeating: roundCount, count: paths.count) }
    public func drainedRounds() -> [UInt64] { rounds() }

    public func takeWorkerFrames(_ engine: MoveEngine, now: UInt64) {
        let frames = toEngine
        toEngine = []
        for f in frames { engine.workerFrame(f.frame, from: f.worker, redirected: f.redirected, now: now) }
    }

    public func ringFull() -> UInt64 { 0 }
    public func switchArrivals(gated: Bool) -> UInt64 {
        gated ? (0..<paths.count).reduce(0) { $0 + stats[$1].duplicatesDropped } : heldTotal
    }
    public func owner(of key: FlowKey) -> Int { ownership.owner(of: key) }
    public func diagnostics() -> [String: Int] { [:] }
    public func notify(_ notice: MoveNotice) { notices.append(notice) }
    public func importCounters(_ counters: InstanceCounters) -> Bool { true }

    // MARK: - What the test reads

    public func flows(matching filter: FlowFilter) -> [FlowEntry] {
        var found: [FlowEntry] = []
        for path in paths {
            path.table.forEach { _, e in
                if filter.matches(e.key) { found.append(e) }
                return true
            }
        }
        return found
    }

    public func notice(_ type: String) -> MoveNotice? { notices.first { $0.type == type } }

    /// Runs rounds of this instance and `peer`, each one's frames delivered to the other (worker
    /// 0) between rounds, until this instance has noticed `type` or `rounds` have gone.
    public func exchange(with peer: MoveInstance, until type: String, rounds: Int) {
        for _ in 0..<rounds where notice(type) == nil {
            round()
            peer.round()
            for f in wire { peer.receive(f, worker: 0) }
            for f in peer.wire { receive(f, worker: 0) }
            wire = []
            peer.wire = []
        }
    }

    /// Starts a loss-free Move (PZ|LL|ER) of `filter`'s flows to `destination`, as a benchmark
    /// drives one: the switch is never updated, so the source's patience is made long enough
    /// that it does not give the Move up meanwhile.
    public func startLossFreeMove(filter: String, to destination: MoveInstance, multiFlow: Bool) {
        var order = MoveOrder(
            moveID: 1, filter: try! FlowFilter(parsing: filter), guarantee: "lf", destination: destination.address)
        order.multiFlow = multiFlow
        order.lateLocking = true
        order.earlyRelease = true
        order.patience = 600_000_000_000
        engine.start(order, now: clock)
    }
}
