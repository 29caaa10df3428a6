import DistFlow
import DistPRADS
import DistPacket

/// Where the control plane reads and writes an instance's state, whatever holds it (the
/// workers of a running data plane, or a single in-process pipeline). Each call applies
/// wholly or not at all.
public protocol StateStore: AnyObject {
    /// The flows matching `filter`; with `lock`, each exported flow is also marked moving, so a
    /// late-locking event rule raises its packets from then on (OpenNF's LL).
    func exportFlows(_ filter: FlowFilter, lock: Bool) throws -> [FlowEntry]
    func importFlows(_ entries: [FlowEntry]) throws -> Int
    func deleteFlows(_ filter: FlowFilter) throws -> Int
    /// The assets of hosts within the filter's prefixes; with `peers`, also of every host at
    /// the other end of a flow the filter matches (their traffic with the moved flows goes
    /// where those flows go, so a Move copies what is known of them).
    func exportAssets(_ filter: FlowFilter, peers: Bool) throws -> [AssetState]
    func importAssets(_ assets: [AssetState]) throws -> Int
    func deleteAssets(_ filter: FlowFilter) throws -> Int
    func exportCounters() -> InstanceCounters
    func importCounters(_ counters: InstanceCounters)
    func resetCounters()
    /// Installs (or with nil removes, releasing held packets) the event rule on every worker.
    func setEvents(_ rule: EventRule?) throws
    /// Removes the event rule; first each worker processes and forwards the frames `replaying`
    /// gives it (raised there and dropped, never sent on by the controller), in their order,
    /// before any packet it receives after.
    func endEvents(replaying: [(worker: Int, frame: [UInt8])]) throws
    /// The filter's flows by sub-prefix of `length` bits of its one prefix (a split Move's parts).
    func flowGroups(_ filter: FlowFilter, length: Int) throws -> [FlowGroup]
    /// Worker cores, each with its own tables (an order-preserving Move needs one).
    var workerCount: Int { get }
}

/// Flows of one sub-prefix, and the packets they have seen.
public struct FlowGroup: Sendable, Equatable {
    public var prefix: IPPrefix
    public var flows: Int
    public var packets: UInt64
    public init(prefix: IPPrefix, flows: Int, packets: UInt64) {
        self.prefix = prefix
        self.flows = flows
        self.packets = packets
    }
}

/// A store refused or could not complete a request.
public struct StateStoreError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension InstanceCounters {
    /// Field-wise sum.
    public static func + (a: InstanceCounters, b: InstanceCounters) -> InstanceCounters {
        var c = a
        c.packets &+= b.packets
        c.bytes &+= b.bytes
        c.flowsCreated &+= b.flowsCreated
        c.flowsExpired &+= b.flowsExpired
        c.assets &+= b.assets
        c.records &+= b.records
        let n = max(a.byTransport.count, b.byTransport.count)
        c.byTransport = (0..<n).map { i in
            (i < a.byTransport.count ? a.byTransport[i] : 0) &+ (i < b.byTransport.count ? b.byTransport[i] : 0)
        }
        return c
    }

    /// Field-wise difference (never below zero).
    public static func - (a: InstanceCounters, b: InstanceCounters) -> InstanceCounters {
        func d(_ x: UInt64, _ y: UInt64) -> UInt64 { x > y ? x - y : 0 }
        var c = a
        c.packets = d(a.packets, b.packets)
        c.bytes = d(a.bytes, b.bytes)
        c.flowsCreated = d(a.flowsCreated, b.flowsCreated)
        c.flowsExpired = d(a.flowsExpired, b.flowsExpired)
        c.assets = d(a.assets, b.assets)
        c.records = d(a.records, b.records)
        c.byTransport = a.byTransport.enumerated().map {
            d($0.element, $0.offset < b.byTransport.count ? b.byTransport[$0.offset] : 0)
        }
        return c
    }
}
