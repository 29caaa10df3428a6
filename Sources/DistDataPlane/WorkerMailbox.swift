import Atomics
import DistFlow

/// How another thread asks a worker for something only the worker may touch (its flow table),
/// without a lock: the asker writes the request and flips `state` to `requested`; the worker
/// sees it between bursts (one relaxed load per loop), does the work, and flips it to `done`.
public final class WorkerMailbox: @unchecked Sendable {
    public enum Request: Sendable {
        case flows(limit: Int)
    }

    static let idle = 0, requested = 1, working = 2, done = 3
    let state = ManagedAtomic<Int>(0)
    var request: Request = .flows(limit: 0)
    var flows: [FlowEntry] = []

    public init() {}

    /// Asker side: posts `request` and waits (sleeping) up to `timeout` seconds for the answer.
    /// Returns nil if the worker did not answer in time (it is stopped or stuck).
    public func ask(_ request: Request, timeout: Double) -> [FlowEntry]? {
        guard state.load(ordering: .acquiring) == WorkerMailbox.idle else { return nil }
        self.request = request
        state.store(WorkerMailbox.requested, ordering: .releasing)
        var waited = 0.0
        while state.load(ordering: .acquiring) != WorkerMailbox.done {
            if waited >= timeout {
                // Take the request back unless the worker has claimed it (then it will finish).
                if state.compareExchange(expected: WorkerMailbox.requested, desired: WorkerMailbox.idle,
                                         ordering: .acquiringAndReleasing).exchanged {
                    return nil
                }
            }
            usleep(1000)
            waited += 0.001
        }
        let result = flows
        flows = []
        state.store(WorkerMailbox.idle, ordering: .releasing)
        return result
    }

    /// Worker side: answers a pending request, if any. Cheap when there is none.
    @inline(__always)
    func serve(_ table: FlowTable) {
        guard state.load(ordering: .relaxed) == WorkerMailbox.requested else { return }
        // Claim it, so that an asker giving up cannot withdraw it while the worker is at it.
        guard state.compareExchange(expected: WorkerMailbox.requested, desired: WorkerMailbox.working,
                                    ordering: .acquiringAndReleasing).exchanged else { return }
        switch request {
        case .flows(let limit):
            var result: [FlowEntry] = []
            result.reserveCapacity(min(limit, table.count))
            table.forEach { _, entry in
                guard result.count < limit else { return false }
                result.append(entry)
                return true
            }
            flows = result
        }
        state.store(WorkerMailbox.done, ordering: .releasing)
    }
}

#if canImport(Glibc)
import Glibc
#endif
