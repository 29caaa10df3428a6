import DistFlow
import DistPRADS
import DistPacket
import DistState

/// The state of an instance made of one or more workers, each holding its own flow table and
/// asset table: reads gather from every worker (a host two workers know is merged), writes go
/// where the state belongs (a flow to one worker, a host's asset to every worker, as any of
/// them may see it), and a write refused by one worker is undone on the others.
public final class PipelineStateStore: StateStore {
    public let workers: Int
    public var workerCount: Int { workers }
    let ownership: FlowOwnership
    let perform: (StateRequest, Int) -> StateResponse?
    let totals: () -> InstanceCounters
    var imported = InstanceCounters()
    var baseline = InstanceCounters()

    /// `perform(request, worker)` runs a request on one worker (nil: it did not answer);
    /// `totals` reads the instance's counters.
    public init(
        workers: Int, perform: @escaping (StateRequest, Int) -> StateResponse?,
        totals: @escaping () -> InstanceCounters
    ) {
        self.workers = workers
        ownership = FlowOwnership(workers: workers)
        self.perform = perform
        self.totals = totals
    }

    /// A store over one in-process pipeline (it processes replayed frames as a worker would,
    /// with nothing to send them on).
    public convenience init(_ fastPath: FastPath) {
        self.init(
            workers: 1,
            perform: { request, _ in
                let response = fastPath.perform(request)
                if case .endEvents(let replay) = request {
                    fastPath.process(
                        frames: replay.map {
                            PcapFile.Frame(seconds: 0, fraction: 0, originalLength: UInt32($0.count), bytes: $0)
                        })
                }
                return response
            },
            totals: { InstanceCounters(fastPath.stats.pointee) })
    }

    func ask(_ request: StateRequest, _ worker: Int) throws -> StateResponse {
        guard let response = perform(request, worker) else {
            throw StateStoreError("worker \(worker) did not answer (stopped or stuck)")
        }
        if case .refused(let why) = response { throw StateStoreError("worker \(worker): \(why)") }
        return response
    }

    func count(_ request: StateRequest, _ worker: Int) throws -> Int {
        guard case .count(let n) = try ask(request, worker) else { throw StateStoreError("unexpected reply") }
        return n
    }

    /// The worker a flow belongs to (``FlowOwnership``, as the fast path and Moves decide).
    public func worker(for key: FlowKey) -> Int {
        ownership.owner(of: key)
    }

    public func exportFlows(_ filter: FlowFilter, lock: Bool = false) throws -> [FlowEntry] {
        var out: [FlowEntry] = []
        for w in 0..<workers {
            guard case .flows(let entries) = try ask(.exportFlows(filter, lock: lock), w) else {
                throw StateStoreError("unexpected reply")
            }
            out += entries
        }
        return out
    }

    public func importFlows(_ entries: [FlowEntry]) throws -> Int {
        var byWorker = [[FlowEntry]](repeating: [], count: workers)
        for e in entries { byWorker[worker(for: e.key)].append(e) }
        var done: [Int] = []
        for w in 0..<workers where !byWorker[w].isEmpty {
            do {
                _ = try count(.importFlows(byWorker[w]), w)
                done.append(w)
            } catch {
                // Undo what the other workers took: nothing half-imported.
                for d in done { _ = try? count(.forgetFlows(byWorker[d].map { $0.key }), d) }
                throw error
            }
        }
        return entries.count
    }

    public func deleteFlows(_ filter: FlowFilter) throws -> Int {
        try (0..<workers).reduce(0) { $0 + (try count(.deleteFlows(filter), $1)) }
    }

    public func exportAssets(_ filter: FlowFilter, peers: Bool = false) throws -> [AssetState] {
        var merged: [IPAddress: Detector.Asset] = [:]
        for w in 0..<workers {
            guard case .assets(let assets) = try ask(.exportAssets(filter, peers: peers), w) else {
                throw StateStoreError("unexpected reply")
            }
            for a in assets { merged[a.address] = merged[a.address].map { $0.merged(with: a.asset) } ?? a.asset }
        }
        return merged.keys.sorted().map { AssetState(address: $0, asset: merged[$0]!) }
    }

    public func importAssets(_ assets: [AssetState]) throws -> Int {
        for w in 0..<workers { _ = try count(.importAssets(assets), w) }
        return assets.count
    }

    public func deleteAssets(_ filter: FlowFilter) throws -> Int {
        var hosts = 0
        for w in 0..<workers { hosts = max(hosts, try count(.deleteAssets(filter), w)) }
        return hosts
    }

    public func exportCounters() -> InstanceCounters {
        totals() - baseline + imported
    }

    public func importCounters(_ counters: InstanceCounters) {
        imported = imported + counters
    }

    /// `counters` left this instance (a Move took them): they no longer count here; what came
    /// since stays.
    public func exportedCounters(_ counters: InstanceCounters) {
        baseline = baseline + counters
    }

    public func resetCounters() {
        baseline = totals()
        imported = InstanceCounters()
    }

    public func flowGroups(_ filter: FlowFilter, length: Int) throws -> [FlowGroup] {
        guard let prefix = filter.splitPrefix else {
            throw StateStoreError("the filter has not one IP prefix and nothing else")
        }
        guard length > prefix.length, length <= 128 else {
            throw StateStoreError("the parts' prefix length is not longer than the filter's")
        }
        var merged: [IPPrefix: FlowGroup] = [:]
        for w in 0..<workers {
            guard case .groups(let found) = try ask(.groups(filter, prefix: prefix, length: length), w) else {
                throw StateStoreError("unexpected reply")
            }
            for g in found {
                var sum = merged[g.prefix] ?? FlowGroup(prefix: g.prefix, flows: 0, packets: 0)
                sum.flows += g.flows
                sum.packets &+= g.packets
                merged[g.prefix] = sum
            }
        }
        return merged.values.sorted { $0.prefix.address < $1.prefix.address }
    }

    public func setEvents(_ rule: EventRule?) throws {
        for w in 0..<workers { _ = try ask(.events(rule), w) }
    }

    public func endEvents(replaying frames: [(worker: Int, frame: [UInt8])]) throws {
        var byWorker = [[[UInt8]]](repeating: [], count: workers)
        for f in frames { byWorker[min(max(f.worker, 0), workers - 1)].append(f.frame) }
        for w in 0..<workers { _ = try ask(.endEvents(replay: byWorker[w]), w) }
    }
}

extension InstanceCounters {
    /// The all-flows part of a worker's counters.
    public init(_ s: WorkerStats) {
        self.init()
        packets = s.rxPackets
        bytes = s.rxBytes
        flowsCreated = s.flows.created
        flowsExpired = s.flows.expired
        assets = s.assets
        records = s.assetRecords
        byTransport = (0..<8).map { s.l4[$0] }
    }
}
