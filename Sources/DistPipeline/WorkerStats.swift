import DistFlow
import DistPacket

/// One worker's counters. Each worker writes only its own (cache-line aligned) copy; the main
/// lcore reads all of them and sums (DPDK l2fwd style: no shared writes, no atomics). Every
/// field is a naturally aligned 64-bit word, so a reader never sees a torn value.
public struct WorkerStats: Sendable {
    public var rxPackets: UInt64 = 0
    public var rxBytes: UInt64 = 0
    public var txPackets: UInt64 = 0
    /// Frames the port would not take and its TX backlog had no room for: freed and counted,
    /// never silent.
    public var txDropped: UInt64 = 0
    /// The most frames that waited at once for room in the port's TX queue.
    public var txBacklogHigh: UInt64 = 0
    public var bursts: UInt64 = 0
    public var loops: UInt64 = 0
    /// Frames by network layer (index: ``L3Kind`` raw value).
    public var l3 = InlineArray<8, UInt64>(repeating: 0)
    /// Frames by transport layer (index: ``L4Kind`` raw value).
    public var l4 = InlineArray<8, UInt64>(repeating: 0)
    /// Frames by parse outcome (index: ``ParseIssue`` raw value; 0 is "parsed whole").
    public var issues = InlineArray<32, UInt64>(repeating: 0)
    /// The flow table's own counters, copied by the worker every few loops.
    public var flows = FlowTableCounters()
    public var activeFlows: UInt64 = 0
    /// Detection: asset records learnt, payloads matched against signatures, matches cut at
    /// the PCRE2 match limit, and hosts in this worker's asset table.
    public var assetRecords: UInt64 = 0
    public var signatureRuns: UInt64 = 0
    public var matchLimitHits: UInt64 = 0
    public var assets: UInt64 = 0
    /// Hosts, and OS or service entries of a host, not learnt because a table was at its limit.
    public var assetsRefused: UInt64 = 0
    /// Hosts detection forgot to make room for new ones.
    public var assetsEvicted: UInt64 = 0
    /// Events: packets raised to the controller, packets held, packets that found the hold
    /// queue full (raised, not held: counted, never silent), and events the ring to the main
    /// lcore could not take.
    public var eventsRaised: UInt64 = 0
    public var eventsHeld: UInt64 = 0
    public var holdOverflow: UInt64 = 0
    public var eventsLost: UInt64 = 0
    /// Raised packets processed here after all, their controller gone before sending them on.
    public var eventsReplayed: UInt64 = 0
    /// Holds that ended in a paced release (``HoldQueue``).
    public var pacedReleases: UInt64 = 0
    /// DiST's Move: packets handed to the transfer lcore for the peer, frames the transfer ring
    /// could not take (freed, counted), channel frames sent, and imported flows refused (table
    /// full).
    public var redirected: UInt64 = 0
    public var transferDropped: UInt64 = 0
    public var channelFramesSent: UInt64 = 0
    /// Nanoseconds the transfer lcore spent in rounds that did work (a round the scheduler cut
    /// short counts whole): its load, as OVS's PMD statistics give a PMD's.
    public var transferBusyNanoseconds: UInt64 = 0
    /// Packets the transfer lcore handed this worker to process: a Move's redirected packets
    /// at its destination, or packets an aborted Move gave back at its source.
    public var delivered: UInt64 = 0
    public var importRefused: UInt64 = 0
    /// Copies an order-preserving Move dropped (the other instance processes the packet), and
    /// in-band control packets taken off the wire.
    public var duplicatesDropped: UInt64 = 0
    public var markers: UInt64 = 0
    /// In-band control packets of the Move in force without its token: forged, dropped.
    public var markersForged: UInt64 = 0
    /// Order-preserving gates whose in-band control packet never came (opened at the Move's end).
    public var gatesClosedLate: UInt64 = 0
    /// Worker handoff: packets this worker received for flows another worker owns and handed
    /// to it, packets other workers handed to this one, and packets dropped because the ring
    /// to their owner was full (counted; no state touched, as if the port had dropped them).
    public var handedOff: UInt64 = 0
    public var handoffReceived: UInt64 = 0
    public var handoffRingFull: UInt64 = 0

    public init() {}

    /// Counts a received burst of `count` frames and `bytes` bytes.
    @inlinable @inline(__always)
    public mutating func countBurst(_ count: Int, bytes: UInt64) {
        rxPackets &+= UInt64(count)
        rxBytes &+= bytes
        bursts &+= 1
    }

    /// Counts one parsed frame by network layer, transport layer and parse outcome.
    @inlinable @inline(__always)
    public mutating func count(_ info: PacketInfo) {
        // The enums' raw values are below the arrays' sizes by construction.
        l3[unchecked: Int(info.l3.rawValue)] &+= 1
        l4[unchecked: Int(info.l4.rawValue)] &+= 1
        issues[unchecked: Int(info.issue.rawValue)] &+= 1
    }

    /// Field-wise sum, for totals over workers.
    public static func + (a: WorkerStats, b: WorkerStats) -> WorkerStats {
        var s = a
        s.rxPackets &+= b.rxPackets
        s.rxBytes &+= b.rxBytes
        s.txPackets &+= b.txPackets
        s.txDropped &+= b.txDropped
        s.txBacklogHigh = max(s.txBacklogHigh, b.txBacklogHigh)
        s.bursts &+= b.bursts
        s.loops &+= b.loops
        for i in 0..<8 {
            s.l3[i] &+= b.l3[i]
            s.l4[i] &+= b.l4[i]
        }
        for i in 0..<32 { s.issues[i] &+= b.issues[i] }
        s.flows.created &+= b.flows.created
        s.flows.expired &+= b.flows.expired
        s.flows.removed &+= b.flows.removed
        s.flows.tableFull &+= b.flows.tableFull
        s.flows.markedPackets &+= b.flows.markedPackets
        s.activeFlows &+= b.activeFlows
        s.assetRecords &+= b.assetRecords
        s.signatureRuns &+= b.signatureRuns
        s.matchLimitHits &+= b.matchLimitHits
        s.assetsRefused &+= b.assetsRefused
        s.assetsEvicted &+= b.assetsEvicted
        s.assets &+= b.assets
        s.eventsRaised &+= b.eventsRaised
        s.eventsHeld &+= b.eventsHeld
        s.holdOverflow &+= b.holdOverflow
        s.eventsLost &+= b.eventsLost
        s.eventsReplayed &+= b.eventsReplayed
        s.pacedReleases &+= b.pacedReleases
        s.redirected &+= b.redirected
        s.transferDropped &+= b.transferDropped
        s.channelFramesSent &+= b.channelFramesSent
        s.transferBusyNanoseconds &+= b.transferBusyNanoseconds
        s.delivered &+= b.delivered
        s.importRefused &+= b.importRefused
        s.duplicatesDropped &+= b.duplicatesDropped
        s.markers &+= b.markers
        s.markersForged &+= b.markersForged
        s.gatesClosedLate &+= b.gatesClosedLate
        s.handedOff &+= b.handedOff
        s.handoffReceived &+= b.handoffReceived
        s.handoffRingFull &+= b.handoffRingFull
        return s
    }

    /// Frames that parsed with some issue (all reasons but "parsed whole").
    public var framesWithIssues: UInt64 {
        var total: UInt64 = 0
        for i in 1..<32 { total &+= issues[i] }
        return total
    }
}
