import CDistIntrinsics
import Foundation
import Testing

/// The CPU hints the fast path and the worker handoff rely on.
@Suite struct IntrinsicsTests {
    /// PREFETCHW is used where the CPU has it (Linux names the feature `3dnowprefetch`), and a
    /// read prefetch stands in where it does not: a CPU without it would fault on it.
    @Test func aWritePrefetchAsksForExclusiveLinesOnlyWhereTheCPUHasIt() throws {
        #if arch(x86_64) && os(Linux)
            let info = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
            let flags = info.split(separator: "\n").first { $0.hasPrefix("flags") } ?? ""
            let has = flags.split(separator: " ").contains("3dnowprefetch")
            #expect(dist_prefetchw_available() == (has ? 1 : 0))
        #endif
        let line = UnsafeMutableRawPointer.allocate(byteCount: 128, alignment: 64)
        defer { line.deallocate() }
        line.storeBytes(of: 42, as: Int.self)
        dist_prefetch_exclusive(line)
        dist_prefetch_exclusive(line + 64)
        #expect(line.load(as: Int.self) == 42)
    }
}
