import Atomics
import CDPDKShim
import DistFlow
import DistPipeline
import DistState

/// A frame a worker hands the transfer lcore: a channel frame for this instance, or a packet
/// of a flow moving away. The transfer lcore owns the mbuf from then on.
public struct TransferFrame: @unchecked Sendable {
    public var mbuf: OpaquePointer
    public var redirected: Bool
}

/// What the transfer lcore hands a worker, applied in this order: state coming in, packets to
/// process (redirected here by a peer, or given back after an aborted Move), and channel
/// frames to put on the wire.
public enum WorkerDelivery: @unchecked Sendable {
    case flows([FlowEntry])
    case assets([AssetState])
    case process(OpaquePointer)
    case transmit(OpaquePointer)
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

/// The lock-free link between one worker and the transfer lcore: a ring each way and the
/// worker's quiescent-state counter (it goes up once per poll round, between bursts; a flow
/// marked before the counter moved is seen marked by every later burst).
public final class TransferLink: @unchecked Sendable {
    public let toTransfer: SPSCRing<TransferFrame>
    public let toWorker = SPSCRing<WorkerDelivery>(capacity: 16384)
    public let quiescent = QuiescentCounter()
    /// Poll rounds in which no RX queue of the worker had a full burst waiting: after one, the
    /// worker has received every packet that reached its queues before the round began.
    public let drained = ManagedAtomic<UInt64>(0)

    /// `toTransfer`: how many mbufs the ring to the transfer lcore may hold (rounded up to a
    /// power of two).
    public init(toTransfer capacity: Int = 16384) {
        toTransfer = SPSCRing<TransferFrame>(capacity: capacity)
    }

}
