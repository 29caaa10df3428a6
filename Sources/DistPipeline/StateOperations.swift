import DistFlow
import DistPacket
import DistPRADS
import DistState

/// What the control plane may ask of a worker's state (OpenNF's get/put/del for the per-flow
/// and multi-flow scopes). The worker performs it between bursts, on its own thread, so the
/// fast path takes no lock and no packet's update is lost or half-applied.
public enum StateRequest: Sendable {
    case flows(limit: Int)
    /// Where the filter's flows are in the table (for the transfer lcore, which marks them).
    case locate(FlowFilter)
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
    case importAssets([AssetState])
    case deleteAssets(FlowFilter)
    /// Installs an event rule, or removes it (nil).
    case events(EventRule?)
    /// The filter's flows grouped by the sub-prefix of `length` bits (over the 128-bit form)
    /// their address within `prefix` falls in (a split Move's parts).
    case groups(FlowFilter, prefix: IPPrefix, length: Int)
}

public enum StateResponse: Sendable {
    case flows([FlowEntry])
    case assets([AssetState])
    case count(Int)
    case located([(index: Int, key: FlowKey)])
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
        case .groups(let filter, let prefix, let length):
            var found: [IPPrefix: (flows: Int, packets: UInt64)] = [:]
            table.forEach { _, e in
                guard filter.matches(e.key) else { return true }
                // A flow with both ends within the prefix counts in its lower end's part.
                let at = prefix.contains(e.key.loAddr) ? e.key.loAddr : e.key.hiAddr
                let part = IPPrefix(covering: at, length: length)
                let sum = found[part] ?? (0, 0)
                found[part] = (sum.flows + 1, sum.packets &+ e.packetsToServer &+ e.packetsToClient)
                return true
            }
            return .groups(found.map { FlowGroup(prefix: $0.key, flows: $0.value.flows, packets: $0.value.packets) })
        case .locate(let filter):
            var out: [(index: Int, key: FlowKey)] = []
            table.forEach { i, e in
                if filter.matches(e.key) { out.append((i, e.key)) }
                return true
            }
            return .located(out)
        case .exportFlows(let filter, let lock):
            var out: [FlowEntry] = []
            table.forEach { i, e in
                guard filter.matches(e.key) else { return true }
                if lock { _ = table.transitionMark(at: i, from: .normal, to: .moving) }
                out.append(e)
                return true
            }
            return .flows(out)
        case .importFlows(let entries):
            // All or nothing: refuse up front what would not fit.
            let fresh = entries.filter { table.find($0.key) == nil }.count
            guard table.count + fresh <= table.capacity else {
                return .refused("flow table has room for \(table.capacity - table.count) more flows, \(fresh) offered")
            }
            for entry in entries { table.insert(entry) }
            return .count(entries.count)
        case .deleteFlows(let filter):
            var doomed: [Int] = []
            table.forEach { i, e in
                if filter.matches(e.key) { doomed.append(i) }
                return true
            }
            for i in doomed { table.remove(at: i) }
            return .count(doomed.count)
        case .forgetFlows(let keys):
            var n = 0
            for key in keys {
                if let i = table.find(key) {
                    table.remove(at: i)
                    n += 1
                }
            }
            return .count(n)
        case .exportAssets(let filter, let peers):
            guard let detector else { return .assets([]) }
            var wanted = Set(detector.assets.keys.filter { filter.matches(host: $0) })
            if peers {
                table.forEach { _, e in
                    if filter.matches(e.key) {
                        wanted.insert(e.key.loAddr)
                        wanted.insert(e.key.hiAddr)
                    }
                    return true
                }
            }
            let hosts = wanted.filter { detector.assets[$0] != nil }.sorted()
            return .assets(hosts.map { AssetState(address: $0, asset: detector.asset(at: $0)!) })
        case .exportPeers(let filter):
            guard let detector else { return .assets([]) }
            var wanted = Set<IPAddress>()
            table.forEach { _, e in
                if filter.matches(e.key) {
                    for a in [e.key.loAddr, e.key.hiAddr] where !filter.matches(host: a) { wanted.insert(a) }
                }
                return true
            }
            let hosts = wanted.filter { detector.assets[$0] != nil }.sorted()
            return .assets(hosts.map { AssetState(address: $0, asset: detector.asset(at: $0)!) })
        case .importAssets(let assets):
            guard let detector else { return .refused("detection is off on this instance") }
            for a in assets { detector.put(a.asset, at: a.address) }
            return .count(assets.count)
        case .events(let rule):
            // Flows locked for a Move that did not take them (the rule goes without their
            // state having been deleted) are this instance's again.
            if let old = eventRule, old.lateLocking, old.filter != rule?.filter || rule?.lateLocking != true {
                table.forEach { i, e in
                    if old.filter.matches(e.key) { _ = table.transitionMark(at: i, from: .moving, to: .normal) }
                    return true
                }
            }
            eventRule = rule
            return .count(rule == nil ? 0 : 1)
        case .deleteAssets(let filter):
            guard let detector else { return .count(0) }
            let hosts = detector.assets.keys.filter { filter.matches(host: $0) }
            for host in hosts { detector.removeAsset(at: host) }
            return .count(hosts.count)
        }
    }
}
