import Atomics
import Dispatch

#if canImport(Glibc)
    import Glibc
#endif

/// A worker's quiescent-state counter (the idea of DPDK's `rte_rcu_qsbr`): the worker bumps it
/// between bursts, where it holds no reference into its flow table's entries; another thread
/// that changed a flow's mark waits until the counter moves, and from then on every burst the
/// worker processes sees the mark. The worker never waits for anyone.
public final class QuiescentCounter: @unchecked Sendable {
    let counter = UnsafeAtomic<UInt64>.create(0)

    public init() {}
    deinit { counter.destroy() }

    /// Worker side, between bursts. Sequentially consistent: a full fence with the marks the
    /// other thread set before it read the counter.
    @inline(__always)
    public func quiescent(_ round: UInt64) {
        counter.store(round, ordering: .sequentiallyConsistent)
    }

    /// The rounds the worker has begun.
    public var rounds: UInt64 { counter.load(ordering: .sequentiallyConsistent) }

    /// Waits until every counter has moved past what it read on entry: every burst that might
    /// not have seen a mark set before the call is over. False after `timeout` nanoseconds
    /// (a worker stopped or stuck).
    /// `meanwhile` runs between looks (the transfer lcore empties its rings there).
    public static func waitForAll(
        _ counters: [QuiescentCounter], timeout: UInt64, meanwhile: () -> Void = {}
    ) -> Bool {
        let before = counters.map { $0.rounds }
        let start = DispatchTime.now().uptimeNanoseconds
        var spins = 0
        while zip(counters, before).contains(where: { $0.rounds == $1 }) {
            if DispatchTime.now().uptimeNanoseconds - start > timeout { return false }
            meanwhile()
            spins += 1
            if spins > 64 { sched_yield() }
        }
        return true
    }
}
