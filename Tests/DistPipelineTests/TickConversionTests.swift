import DistPipeline
import Testing

@Suite struct TickConversionTests {
    @Test func ticksBecomeNanosecondsAndATickCountBehindItsBaseReadsAsNone() {
        #expect(TickConversion.nanoseconds(ticks: 3_000_000_000, perTick: 1 / 3.0) == 1_000_000_000)
        // A TSC read before its base wraps: no trap, no time.
        #expect(TickConversion.nanoseconds(ticks: 0 &- 5, perTick: 1.5) == 0)
        #expect(TickConversion.nanoseconds(ticks: .max, perTick: 1e9) == 0)
        #expect(TickConversion.nanoseconds(ticks: 10, perTick: .nan) == 0)
    }
}
