import DistFlow

/// What a VNF does with packets of flows matching an event filter (OpenNF's enableEvents):
/// every matching packet is raised to the controller as a packet event, and then
/// dropped locally (`drop`: the controller owns it now), held in order until the events are
/// disabled (`buffer`), or processed as usual (`process`).
public enum EventAction: String, Sendable, Codable, CaseIterable {
    case drop, buffer, process
    /// DiST's Move: packets of flows marked moving (or unknown here) go to the transfer lcore
    /// and over the channel to the peer; the others are processed here.
    case redirect
    /// DiST's destination during a Move: packets of the filter's flows from the switch wait
    /// here, unprocessed and not raised, until the redirected ones have all come.
    case hold
    /// DiST's destination during an order-preserving Move (the two-phase switch update): the
    /// switch's packets of the filter are copies of what the source redirects, and are
    /// dropped here, until the switch's in-band control packet for `moveID` comes; from it on
    /// they wait as with `hold` until the source's last redirected packet has come.
    case gate
    /// Packets of the filter are dropped here, not raised (counted): the source of an
    /// order-preserving Move after its in-band control packet, when whatever the switch still
    /// sends it is a copy of what the destination gets.
    case discard

    /// The actions a controller may ask for with enableEvents (the others belong to DiST's Move).
    public static let southbound: [EventAction] = [.drop, .buffer, .process]
}

public struct EventRule: Sendable, Equatable {
    public var filter: FlowFilter
    public var action: EventAction
    /// Late locking (OpenNF's LL): only packets of flows whose state was exported with a lock
    /// (marked moving), or of flows this instance has no state for, are raised; the others are
    /// still processed here until their state leaves.
    public var lateLocking: Bool
    /// `gate`: the Move whose in-band control packet opens it; whether that packet came from
    /// the switch; whether the source's last redirected packet came.
    public var moveID: UInt64
    ///
    /// With several workers the in-band control packet is a cut in each receiving queue's own
    /// order: `markerSeen` is the receiving worker's (its queue's copy came), `sourceEnded` the
    /// owner's (the held packets may go).
    public var markerSeen = false
    public var sourceEnded = false
    /// `redirect` for an order-preserving Move: after the in-band control packet `moveID` on a
    /// worker's queue, the switch's packets there are copies the destination processes
    /// (dropped, counted).
    public var ordered = false
    /// The token the Move's in-band control packets carry (see `InBandMarker.find(in:)`): a
    /// marker of `moveID` without it is a forgery, dropped and counted.
    public var ibcToken: UInt64 = 0
    public init(
        filter: FlowFilter, action: EventAction, lateLocking: Bool = false, moveID: UInt64 = 0, ordered: Bool = false,
        ibcToken: UInt64 = 0
    ) {
        self.filter = filter
        self.action = action
        self.lateLocking = lateLocking
        self.moveID = moveID
        self.ordered = ordered
        self.ibcToken = ibcToken
    }

    /// Whether the rule cuts each receiving queue at the Move's in-band control packet, before
    /// a packet goes to its flow's owner (the cut is in the queue's order, which only the
    /// receiving worker sees).
    @inlinable
    public var cutsAtMarker: Bool { action == .gate || action == .discard || (action == .redirect && ordered) }

    /// Whether the rule keeps the packets it matches until it goes (or, for `gate`, until the
    /// source's end).
    @inlinable
    public var holds: Bool { action == .buffer || action == .hold || (action == .gate && !sourceEnded) }
}
