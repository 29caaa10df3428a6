import Atomics
import Dispatch
import DistFlow
import DistState

/// How another thread asks a worker for something only the worker may touch (its flow table,
/// its assets), without a lock: the asker claims the mailbox (`idle` to `posting`, one
/// compare-exchange, so that of two askers only one writes its request), writes the request and
/// flips `state` to `requested`; the worker sees it between bursts (one relaxed load per loop),
/// does the work, and flips it to `done`; the asker takes the answer and frees the mailbox.
/// Several threads ask (the main lcore for the southbound API, the transfer lcore for a Move):
/// each waits its turn, within its timeout.
public final class WorkerMailbox: @unchecked Sendable {
    static let idle = 0, requested = 1, working = 2, done = 3, posting = 4
    let state = ManagedAtomic<Int>(0)
    var request: StateRequest = .flows(limit: 0)
    var response: StateResponse = .count(0)

    public init() {}

    /// Asker side: posts `request` and waits (sleeping) up to `timeout` seconds for the answer.
    /// Returns nil if the worker did not answer in time (it is stopped or stuck).
    public func ask(_ request: StateRequest, timeout: Double) -> StateResponse? {
        let start = DispatchTime.now().uptimeNanoseconds
        var spins = 0
        // Another asker's request goes first.
        while !state.compareExchange(
            expected: WorkerMailbox.idle, desired: WorkerMailbox.posting,
            ordering: .acquiring
        ).exchanged {
            if Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 >= timeout { return nil }
            spins += 1
            if spins < 1000 { sched_yield() } else { usleep(100) }
        }
        self.request = request
        state.store(WorkerMailbox.requested, ordering: .releasing)
        // A worker answers within one housekeeping interval (microseconds): yield first, and
        // only then sleep in short steps (a sleep is rounded up to the scheduler's tick).
        spins = 0
        while state.load(ordering: .acquiring) != WorkerMailbox.done {
            let waited = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if waited >= timeout {
                // Take the request back unless the worker has claimed it (then it will finish).
                if state.compareExchange(
                    expected: WorkerMailbox.requested, desired: WorkerMailbox.idle,
                    ordering: .acquiringAndReleasing
                ).exchanged {
                    return nil
                }
            }
            spins += 1
            if spins < 1000 { sched_yield() } else { usleep(100) }
        }
        let result = response
        response = .count(0)
        state.store(WorkerMailbox.idle, ordering: .releasing)
        return result
    }

    /// Worker side: answers a pending request, if any, and returns it (nil when there was
    /// none). Cheap when there is none.
    /// Returns the request served and the event rule in force before it.
    @inline(__always) @discardableResult
    public func serve(_ fastPath: FastPath) -> (request: StateRequest, ruleBefore: EventRule?)? {
        guard state.load(ordering: .relaxed) == WorkerMailbox.requested else { return nil }
        // Claim it, so that an asker giving up cannot withdraw it while the worker is at it.
        guard
            state.compareExchange(
                expected: WorkerMailbox.requested, desired: WorkerMailbox.working,
                ordering: .acquiringAndReleasing
            ).exchanged
        else { return nil }
        let served = request
        let before = fastPath.eventRule
        response = fastPath.perform(request)
        state.store(WorkerMailbox.done, ordering: .releasing)
        return (served, before)
    }
}

#if canImport(Glibc)
    import Glibc
#endif
