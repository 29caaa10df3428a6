import CDPDKShim
import DistPipeline

#if canImport(Glibc)
    import Glibc
#endif

/// An error from DPDK or from setting the data plane up, with the failing step named.
public struct DataPlaneError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }

    /// "what: rte_strerror(errno)".
    static func dpdk(_ what: String, _ code: Int32) -> DataPlaneError {
        DataPlaneError("\(what): \(String(cString: dist_strerror(code)))")
    }
}

/// DPDK's Environment Abstraction Layer: started once per process, before anything else.
public enum EAL {
    /// Runs `rte_eal_init` with `arguments` (the program name first). Returns how many were consumed.
    @discardableResult
    public static func initialize(arguments: [String]) throws -> Int {
        var cStrings: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) }
        cStrings.append(nil)
        // EAL keeps pointers into argv (e.g. the program name), so the copies are never freed.
        let consumed = cStrings.withUnsafeMutableBufferPointer {
            dist_eal_init(Int32(arguments.count), $0.baseAddress)
        }
        guard consumed >= 0 else { throw DataPlaneError.dpdk("rte_eal_init", dist_errno()) }
        return Int(consumed)
    }

    public static func cleanup() {
        _ = dist_eal_cleanup()
    }

    public static var mainLcore: UInt32 { dist_main_lcore() }

    /// The worker lcores EAL was given (every enabled lcore but the main one), in order.
    public static var workerLcores: [UInt32] {
        var result: [UInt32] = []
        var lcore = dist_next_worker_lcore(-1)
        while lcore >= 0 {
            result.append(UInt32(lcore))
            lcore = dist_next_worker_lcore(lcore)
        }
        return result
    }

    public static func socket(of lcore: UInt32) -> Int32 { dist_lcore_socket(lcore) }
}

/// Wall-clock nanoseconds from the TSC: one `rdtsc` and a multiply per call.
public struct Clock: Sendable {
    public let tscHz: UInt64
    let baseTSC: UInt64
    let baseNanoseconds: UInt64
    let nanosecondsPerTick: Double

    public init() {
        tscHz = max(1, dist_tsc_hz())
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        baseTSC = dist_tsc()
        baseNanoseconds = UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
        nanosecondsPerTick = 1e9 / Double(tscHz)
    }

    @inline(__always)
    public func now() -> UInt64 {
        baseNanoseconds &+ TickConversion.nanoseconds(ticks: dist_tsc() &- baseTSC, perTick: nanosecondsPerTick)
    }
}
