#if canImport(Glibc)
    import Glibc
#endif

/// What a polling lcore does after a round that found no work, on a host where it shares its
/// CPU with other busy threads (the one-machine test bed: two VNFs' workers and transfer
/// lcores, Open vSwitch and the delay lines on two cores). Yielding alone leaves every poller
/// runnable, and the scheduler then hands each a CPU only every few time slices: a Move's
/// channel frame waited up to 30 ms for its acknowledgement that way. So after `rounds` empty
/// rounds in a row the lcore sleeps `sleepNanoseconds` (a packet then waits that long at most
/// before it is polled); any work resets the count. Dedicated cores need neither (both off).
public struct IdleBackoff: Sendable {
    public enum Action: Equatable, Sendable {
        case none
        case yield
        case sleep(UInt64)
    }

    public let yield: Bool
    public let sleepNanoseconds: UInt64
    public let rounds: Int
    var idleRounds = 0

    public init(yield: Bool, sleepNanoseconds: UInt64 = 0, rounds: Int = 32) {
        self.yield = yield
        self.sleepNanoseconds = sleepNanoseconds
        self.rounds = max(1, rounds)
    }

    /// After a round: `busy` if it did any work. Returns what to do before the next round.
    @inline(__always)
    public mutating func after(busy: Bool) -> Action {
        if busy {
            idleRounds = 0
            return .none
        }
        idleRounds &+= 1
        if sleepNanoseconds > 0 && idleRounds >= rounds { return .sleep(sleepNanoseconds) }
        return yield || sleepNanoseconds > 0 ? .yield : .none
    }

    /// Does it (on the calling thread).
    @inline(__always)
    public mutating func pause(busy: Bool) {
        switch after(busy: busy) {
        case .none: break
        case .yield: sched_yield()
        case .sleep(let ns):
            var t = timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
            _ = nanosleep(&t, nil)
        }
    }
}
