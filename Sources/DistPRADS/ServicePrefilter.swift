import CHyperscan
import Synchronization

/// Which signatures of a list can match a payload, found in one scan (Hyperscan, every pattern
/// compiled in prefilter mode). A list of PRADS signatures is otherwise tried one regex after
/// another, and a payload that matches none (most of them) costs a PCRE2 match per signature:
/// about 140 on a server's first payload, two thirds of detection's instructions on fresh flows.
///
/// Prefilter mode never misses: a pattern Hyperscan reports may still fail PCRE2 (its unsupported
/// constructs are widened), one it does not report cannot match. So the matcher runs PCRE2, in
/// the list's order, on the reported signatures alone, and the first that matches is the one the
/// whole walk would have found. A pattern Hyperscan will not compile is reported for every
/// payload (``always``). Compiled once per list of patterns in a process (``shared(for:)``); a
/// scan needs scratch space of its own per thread (``Scanner``).
package final class ServicePrefilter: @unchecked Sendable {
    let database: OpaquePointer
    /// The signatures run for every payload, a bit per signature.
    let always: [UInt64]

    private init(database: OpaquePointer, always: [UInt64]) {
        self.database = database
        self.always = always
    }

    deinit { hs_free_database(database) }

    /// The prefilter of `patterns`, or nil when Hyperscan cannot run here (a CPU without SSSE3)
    /// or takes none of them.
    static func compile(_ patterns: [String]) -> ServicePrefilter? {
        guard !patterns.isEmpty, hs_valid_platform() == HS_SUCCESS else { return nil }
        let flags = UInt32(HS_FLAG_PREFILTER | HS_FLAG_SINGLEMATCH | HS_FLAG_ALLOWEMPTY)
        var always = [UInt64](repeating: 0, count: (patterns.count + 63) / 64)
        // Hyperscan reads a pattern as a C string: one with a NUL in it would be another pattern.
        var taken = patterns.indices.filter { !patterns[$0].utf8.contains(0) && Self.accepts(patterns[$0], flags) }
        // A pattern the analysis passes can still fail in the whole database: it goes, and the
        // rest is compiled again.
        while !taken.isEmpty {
            switch build(patterns, taken, flags) {
            case .built(let database):
                for i in Set(patterns.indices).subtracting(taken) { always[i / 64] |= 1 << UInt64(i % 64) }
                return ServicePrefilter(database: database, always: always)
            case .refused(let position):
                taken.remove(at: position)
            case .failed:
                return nil
            }
        }
        return nil
    }

    /// Whether Hyperscan's analysis takes the pattern.
    private static func accepts(_ pattern: String, _ flags: UInt32) -> Bool {
        var info: UnsafeMutablePointer<hs_expr_info_t>?
        var error: UnsafeMutablePointer<hs_compile_error_t>?
        guard hs_expression_info(pattern, flags, &info, &error) == HS_SUCCESS else {
            hs_free_compile_error(error)
            return false
        }
        free(info)
        return true
    }

    private enum Build {
        case built(OpaquePointer)
        /// Hyperscan refused the pattern at this position of the ones taken.
        case refused(Int)
        case failed
    }

    private static func build(_ patterns: [String], _ taken: [Int], _ flags: UInt32) -> Build {
        let strings = taken.map { strdup(patterns[$0]) }
        defer { strings.forEach { free($0) } }
        let expressions = strings.map { UnsafePointer($0) }
        let flagList = [UInt32](repeating: flags, count: taken.count)
        let ids = taken.map { UInt32($0) }
        var database: OpaquePointer?
        var error: UnsafeMutablePointer<hs_compile_error_t>?
        let rc = hs_compile_multi(
            expressions, flagList, ids, UInt32(taken.count), UInt32(HS_MODE_BLOCK), nil, &database, &error)
        if rc == HS_SUCCESS, let database { return .built(database) }
        let index = error.map { Int($0.pointee.expression) }
        hs_free_compile_error(error)
        guard let index, index >= 0, index < taken.count else { return .failed }
        return .refused(index)
    }

    /// Prefilters by their list's patterns (a process loads few lists; at most `cacheLimit` are
    /// kept). Workers that load the same signature files share one database.
    static func shared(for patterns: [String]) -> ServicePrefilter? {
        cache.withLock { cache in
            if let hit = cache.first(where: { $0.patterns == patterns }) { return hit.prefilter }
            let prefilter = compile(patterns)
            if cache.count >= cacheLimit { cache.removeFirst() }
            cache.append((patterns, prefilter))
            return prefilter
        }
    }

    static let cacheLimit = 16
    private static let cache = Mutex<[(patterns: [String], prefilter: ServicePrefilter?)]>([])

    /// One thread's scans of a prefilter's database.
    package final class Scanner {
        let prefilter: ServicePrefilter
        let scratch: OpaquePointer
        /// The last scan's candidates, a bit per signature: the scanner's own words, so that a
        /// scan neither copies nor retains an array.
        let candidates: UnsafeMutableBufferPointer<UInt64>

        init?(_ prefilter: ServicePrefilter) {
            var scratch: OpaquePointer?
            guard hs_alloc_scratch(prefilter.database, &scratch) == HS_SUCCESS, let scratch else { return nil }
            self.prefilter = prefilter
            self.scratch = scratch
            candidates = .allocate(capacity: prefilter.always.count)
            _ = candidates.initialize(from: prefilter.always)
        }

        deinit {
            hs_free_scratch(scratch)
            candidates.deallocate()
        }

        /// Marks in ``candidates`` the signatures that may match `payload` (and those always
        /// run). False when the scan failed: then every signature is a candidate.
        func scan(_ payload: UnsafeRawBufferPointer) -> Bool {
            prefilter.always.withUnsafeBufferPointer { always in
                for i in always.indices { candidates[i] = always[i] }
            }
            guard let base = payload.baseAddress, payload.count > 0, payload.count <= Int(UInt32.max) else {
                return false
            }
            let rc = hs_scan(
                prefilter.database, base.assumingMemoryBound(to: CChar.self), UInt32(payload.count), 0, scratch,
                { id, _, _, _, context in
                    let words = context!.assumingMemoryBound(to: UInt64.self)
                    words[Int(id / 64)] |= 1 << UInt64(id % 64)
                    return 0
                }, candidates.baseAddress)
            return rc == HS_SUCCESS
        }
    }
}

#if canImport(Glibc)
    import Glibc
#endif
