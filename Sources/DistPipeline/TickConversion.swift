/// Nanoseconds from a count of clock ticks (the TSC's, on the lcores), without a trap: a
/// count read behind its base (a TSC another core or a hypervisor stepped back) wraps to a
/// huge number whose product would not fit a `UInt64`; it reads as no time at all.
public enum TickConversion {
    @inlinable @inline(__always)
    public static func nanoseconds(ticks: UInt64, perTick: Double) -> UInt64 {
        let ns = Double(ticks) * perTick
        // (Also false for NaN, from a rate nobody measured.)
        return ns >= 0 && ns < 1.8e19 ? UInt64(ns) : 0
    }
}
