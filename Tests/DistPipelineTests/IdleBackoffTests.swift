import DistPipeline
import Testing

/// A polling lcore on a shared CPU: yields after an empty round, sleeps after many in a row.
@Suite struct IdleBackoffTests {
    @Test func sleepsOnlyAfterEnoughEmptyRoundsInARow() {
        var b = IdleBackoff(yield: true, sleepNanoseconds: 50_000, rounds: 4)
        #expect((0..<3).map { _ in b.after(busy: false) } == [.yield, .yield, .yield])
        #expect(b.after(busy: false) == .sleep(50_000))
        #expect(b.after(busy: false) == .sleep(50_000))
        // Work starts the count again.
        #expect(b.after(busy: true) == .none)
        #expect(b.after(busy: false) == .yield)
    }

    @Test func withoutASleepItOnlyYieldsOrSpins() {
        var yielding = IdleBackoff(yield: true)
        var spinning = IdleBackoff(yield: false)
        for _ in 0..<100 {
            #expect(yielding.after(busy: false) == .yield)
            #expect(spinning.after(busy: false) == .none)
        }
    }
}
