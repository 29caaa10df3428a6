import DistFlow
import DistPRADS
import DistPacket
import DistState

/// What the control plane may ask of a worker's state (OpenNF's get/put/del for the per-flow
/// and multi-flow scopes). The worker performs it between bursts, on its own thread, so the
/// fast path takes no lock and no packet's update is lost or half-applied.
public enum StateRequest: Sendable {
    case flows(limit: Int)
    /// Where the filter's flows are in the table (for the transfer lcore, which marks them):
    /// at most `limit`, from table position `from` on; a large table is listed in slices, so
    /// that the worker polls its queues between them.
    case locate(FlowFilter, from: Int, limit: Int)
    /// With `lock`, exported flows are marked moving (late locking).
    case exportFlows(FlowFilter, lock: Bool)
    case importFlows([FlowEntry])
    case deleteFlows(FlowFilter)
    /// Removes these flows (a Move that brought them was given up).
    case forgetFlows([FlowKey])
    /// With `peers`, hosts at the other end of the filter's flows too.
    case exportAssets(FlowFilter, peers: Bool)
    /// Only the hosts at the other end of the filter's flows that the filter does not match
    /// (a late-locking Move sends the filter's own hosts once, final, at its end).
    case exportPeers(FlowFilter)
    /// The filter's own hosts after `after` (all, if nil), at most `limit`, in address order: a
    /// large export in slices, so that the worker polls its queues between them.
    case exportAssetsSlice(FlowFilter, after: IPAddress?, limit: Int)
    case importAssets([AssetState])
    case deleteAssets(FlowFilter)
    /// Installs an event rule, or removes it (nil).
    case events(EventRule?)
    /// Removes the event rule, and has the worker process and forward `replay` (frames it
    /// raised and dropped under it that the controller never sent on), in order, before any
    /// packet it receives after: the controller that took them is gone.
    case endEvents(replay: [[UInt8]])
    /// The filter's flows grouped by the sub-prefix of `length` bits (over the 128-bit form)
    /// their address within `prefix` falls in (a split Move's parts).
    case groups(FlowFilter, prefix: IPPrefix, length: Int)
}

public enum StateResponse: Sendable {
    case flows([FlowEntry])
    case assets([AssetState])
    case count(Int)
    /// The flows found, and the table position the next slice starts at (nil: the table's end).
    case located([(index: Int, key: FlowKey)], next: Int?)
    case groups([FlowGroup])
    /// The request was not applied at all, for this reason.
    case refused(String)
}

extension FastPath {
    /// Performs a state request on this worker's table and detector.
    public func perform(_ request: StateRequest) -> StateResponse {
        switch request {
        case .flows(let limit):
            var out: [FlowEntry] = []
            table.forEach { _, e in
                guard out.count < limit else { return false }
                out.append(e)
                return true
            }
            return .flows(out)
        case .groups(let filter, let prefix, let length): return .groups(groups(filter, within: prefix, length: length))
        case .locate(let filter, let from, let limit): return locate(filter, from: from, limit: limit)
        case .exportFlows(let filter, let lock):
            let found = matching(filter)
            let entries = found.map { table.entry(at: $0) }
            if lock { for i in found { _ = table.transitionMark(at: i, from: .normal, to: .moving) } }
            return .flows(entries)
        case .importFlows(let entries): return importFlows(entries)
        case .deleteFlows(let filter):
            let doomed = matching(filter)
            for i in doomed { table.remove(at: i) }
            return .count(doomed.count)
        case .forgetFlows(let keys):
            let found = Set(keys.compactMap { table.find($0) })
            for i in found { table.remove(at: i) }
            return .count(found.count)
        case .exportAssets(let filter, let peers):
            guard detector != nil else { return .assets([]) }
            return .assets(assets(hostsMatching(filter, peers: peers)))
        case .exportAssetsSlice(let filter, let after, let limit):
            guard let detector else { return .assets([]) }
            let hosts = detector.assets.keys.filter { a in filter.matches(host: a) && after.map { a > $0 } ?? true }
            // (The slice's hosts are selected, then sorted: sorting every host left at every
            // slice took 19% of a 100,000-flow Move's CPU time, on the worker.)
            return .assets(
                Self.smallest(max(1, limit), of: hosts).map { AssetState(address: $0, asset: detector.asset(at: $0)!) })
        case .exportPeers(let filter):
            guard detector != nil else { return .assets([]) }
            var wanted = Set<IPAddress>()
            for i in matching(filter) {
                let key = table.entry(at: i).key
                for a in key.hosts where !filter.matches(host: a) { wanted.insert(a) }
            }
            return .assets(assets(wanted))
        case .importAssets(let assets):
            guard let detector else { return .refused("detection is off on this instance") }
            for a in assets { detector.put(a.asset, at: a.address) }
            return .count(assets.count)
        case .events(let rule):
            setEventRule(rule)
            return .count(rule == nil ? 0 : 1)
        case .endEvents(let replay):
            // (The frames are the worker's to process: they need mbufs and a port.)
            setEventRule(nil)
            return .count(replay.count)
        case .deleteAssets(let filter):
            guard let detector else { return .count(0) }
            let hosts = detector.assets.keys.filter { filter.matches(host: $0) }
            for host in hosts { detector.removeAsset(at: host) }
            return .count(hosts.count)
        }
    }

    /// The `k` smallest of `values`, in order: a selection first (quickselect, random pivots:
    /// addresses are the traffic's to choose), then a sort of those `k` alone.
    package static func smallest<T: Comparable>(_ k: Int, of values: [T]) -> [T] {
        guard values.count > k else { return values.sorted() }
        guard k > 0 else { return [] }
        var a = values
        var lo = 0
        var hi = a.count - 1
        let target = k - 1
        while lo < hi {
            let pivot = a[Int.random(in: lo...hi)]
            var i = lo
            var j = hi
            while i <= j {
                while a[i] < pivot { i += 1 }
                while pivot < a[j] { j -= 1 }
                if i <= j {
                    a.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            // a[lo...j] <= pivot <= a[i...hi], and what lies between equals the pivot.
            if target <= j {
                hi = j
            } else if target >= i {
                lo = i
            } else {
                break
            }
        }
        return a[..<k].sorted()
    }

    /// The table indices of the flows `filter` matches.
    func matching(_ filter: FlowFilter) -> [Int] {
        var out: [Int] = []
        for i in 0..<table.capacity {
            let e = table.pointer(at: i)
            if e.pointee.inUse && filter.matches(e.pointee.key) { out.append(i) }
        }
        return out
    }

    /// A slice of ``matching(_:)`` with the keys, read in place (a flow's whole entry is not
    /// copied: listing 100,000 flows in one answer held the worker for 58 ms).
    func locate(_ filter: FlowFilter, from: Int, limit: Int) -> StateResponse {
        var found: [(index: Int, key: FlowKey)] = []
        found.reserveCapacity(min(max(limit, 1), table.count))
        var i = max(0, from)
        while i < table.capacity && found.count < max(limit, 1) {
            let e = table.pointer(at: i)
            if e.pointee.inUse && filter.matches(e.pointee.key) { found.append((i, e.pointee.key)) }
            i += 1
        }
        return .located(found, next: i < table.capacity ? i : nil)
    }

    /// The flows `filter` matches, counted by the part (of `length` bits) of `prefix` they fall in.
    func groups(_ filter: FlowFilter, within prefix: IPPrefix, length: Int) -> [FlowGroup] {
        var found: [IPPrefix: (flows: Int, packets: UInt64)] = [:]
        for i in matching(filter) {
            let e = table.entry(at: i)
            // A flow with both ends within the prefix counts in its lower end's part.
            let at = prefix.contains(e.key.loAddr) ? e.key.loAddr : e.key.hiAddr
            let part = IPPrefix(covering: at, length: length)
            let sum = found[part] ?? (0, 0)
            found[part] = (sum.flows + 1, sum.packets &+ e.packetsToServer &+ e.packetsToClient)
        }
        return found.map { FlowGroup(prefix: $0.key, flows: $0.value.flows, packets: $0.value.packets) }
    }

    /// All or nothing: what would not fit is refused up front.
    func importFlows(_ entries: [FlowEntry]) -> StateResponse {
        let fresh = entries.filter { table.find($0.key) == nil }.count
        guard table.count + fresh <= table.capacity else {
            return .refused("flow table has room for \(table.capacity - table.count) more flows, \(fresh) offered")
        }
        for entry in entries { table.insert(entry) }
        return .count(entries.count)
    }

    /// The hosts `filter` names, and with `peers` the ends of the flows it matches.
    func hostsMatching(_ filter: FlowFilter, peers: Bool) -> Set<IPAddress> {
        guard let detector else { return [] }
        var wanted = Set(detector.assets.keys.filter { filter.matches(host: $0) })
        if peers {
            for i in matching(filter) {
                let key = table.entry(at: i).key
                wanted.formUnion(key.hosts)
            }
        }
        return wanted
    }

    /// The detector's state of those of `hosts` it knows, in address order.
    func assets(_ hosts: Set<IPAddress>) -> [AssetState] {
        guard let detector else { return [] }
        return hosts.filter { detector.assets[$0] != nil }.sorted().map {
            AssetState(address: $0, asset: detector.asset(at: $0)!)
        }
    }

    /// Flows locked for a Move that did not take them (the rule goes without their state having
    /// been deleted) are this instance's again.
    func setEventRule(_ rule: EventRule?) {
        if let old = eventRule, old.lateLocking, old.filter != rule?.filter || rule?.lateLocking != true {
            for i in matching(old.filter) { _ = table.transitionMark(at: i, from: .moving, to: .normal) }
        }
        eventRule = rule
    }
}
