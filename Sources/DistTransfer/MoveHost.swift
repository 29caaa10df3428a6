import DistFlow
import DistPipeline
import DistState

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
    /// How long the source waits for the controller's next step once its state has gone (the
    /// switch's update, then the in-band control packet) before it ends the Move itself (ns;
    /// see ``MoveEngine/overdue(_:now:)``).
    public var patience: UInt64 = MoveOrder.defaultPatience
    public static let defaultPatience: UInt64 = 3_000_000_000
    /// The Move's channel nonce (see `ChannelFrame.Binding`), drawn at random; its in-band
    /// control packets carry a token made from it (``MoveEngine/ibcToken(key:moveID:nonce:)``).
    public var nonce = UInt64.random(in: 1...UInt64.max)

    public init(moveID: UInt64, filter: FlowFilter, guarantee: String, destination: ChannelAddress) {
        self.moveID = moveID
        self.filter = filter
        self.guarantee = guarantee
        self.destination = destination
    }
}

/// What the main lcore asks of the transfer lcore's Move engine.
public enum MoveCommand: Sendable {
    case start(MoveOrder)
    /// Southbound `abortMove` (see ``MoveEngine/abort(moveID:reason:now:peerGone:)``).
    case abort(moveID: UInt64, reason: String, peerGone: Bool)
}

/// What the Move engine tells the controller about a Move (through the main lcore):
/// `moveStateSent` once every state is at the destination, `moveComplete` at the end.
public struct MoveNotice: Sendable {
    public var moveID: UInt64
    public var type: String
    public var outcome: String
    public var reason: String?
    public var counters: [String: Int]

    public init(moveID: UInt64, type: String, outcome: String, reason: String?, counters: [String: Int]) {
        self.moveID = moveID
        self.type = type
        self.outcome = outcome
        self.reason = reason
        self.counters = counters
    }
}

/// What the Move engine hands one worker, applied there in this order: state coming in,
/// packets to process (redirected here by a peer, or given back after an aborted Move), rules.
public enum MoveDelivery: Sendable {
    case flows([FlowEntry])
    case assets([AssetState])
    /// A packet to process and forward as if received (its flow's owner gets it).
    case process(ArraySlice<UInt8>)
    /// An event rule to install (nil: none), in order with the rest.
    case rule(EventRule?)
    /// The last packet the source of order-preserving Move `id` redirected is processed:
    /// the `gate` rule opens for the switch's packets (at once if its in-band control packet
    /// came, else when it comes).
    case sourceEnded(UInt64)
    /// Order-preserving Move `id` is over here: a `gate` rule of it still in force (its
    /// in-band control packet never came) goes, and the switch's packets go on; so does the
    /// source's `discard` rule, once the switch's copies have stopped.
    case closeGate(UInt64)
    /// Flows a Move brought that was given up: the source has them back.
    case forget([FlowKey])
}

/// The instance a ``MoveEngine`` runs in, as the engine sees it: its workers (their tables,
/// their quiescent points, the state operations they serve), the wire, and the control plane.
/// dist-vnf's transfer lcore implements it over DPDK; tests implement it over in-process
/// ``FastPath`` workers.
public protocol MoveHost: AnyObject {
    /// How many workers the instance runs.
    var workerCount: Int { get }
    /// Now, on the clock the engine's times are on (ns).
    func now() -> UInt64
    /// Performs a state request on a worker between its bursts; nil when it did not answer.
    func ask(_ request: StateRequest, worker: Int) -> StateResponse?
    /// Hands a worker something to apply, in order with what came before. False when it could
    /// not (a packet without an mbuf for it, a worker that does not take it): counted there.
    @discardableResult
    func deliver(_ delivery: MoveDelivery, to worker: Int) -> Bool
    /// Puts a channel datagram (a whole Ethernet frame) on the wire.
    func transmit(_ datagram: [UInt8])
    /// Worker `worker`'s flow table (the engine marks moving flows in it and reads them).
    func table(_ worker: Int) -> FlowTable
    /// Waits until every worker has started a new poll round (each burst after it sees marks set
    /// before). False after `timeout` ns: a worker stopped or stuck.
    func waitForQuiescence(timeout: UInt64) -> Bool
    /// Each worker's count of poll rounds so far.
    func rounds() -> [UInt64]
    /// Each worker's last round that found no queue with a full burst waiting (see the OP
    /// drain: after one, it has received everything that reached its queues before it began).
    func drainedRounds() -> [UInt64]
    /// Hands the engine every frame the workers have redirected or diverted to it so far.
    func takeWorkerFrames(_ engine: MoveEngine, now: UInt64)
    /// The workers' count of frames their rings to the engine could not take.
    func ringFull() -> UInt64
    /// The switch's packets of a Move the workers took so far: `gated`, the copies of an
    /// order-preserving Move's traffic they dropped before its in-band control packet; else
    /// the packets they held.
    func switchArrivals(gated: Bool) -> UInt64
    /// The worker that owns a flow.
    func owner(of key: FlowKey) -> Int
    /// The host's own counters, for the notice that ends a Move in.
    func diagnostics() -> [String: Int]
    /// A notice to the controller that ordered the Move.
    func notify(_ notice: MoveNotice)
    /// All-flows counters a Move brought, for the instance to add. False when not taken.
    func importCounters(_ counters: InstanceCounters) -> Bool
}
