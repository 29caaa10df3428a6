import CPCRE2

/// A compiled PCRE2 pattern (JIT-compiled where the platform allows), as PRADS's service
/// signatures need: Perl-compatible syntax, byte subjects, captured groups.
///
/// Matching is bounded: every match runs under a match limit, so a payload built to make a
/// signature backtrack for ever costs at most that much and counts as no match. A `Regex` is
/// immutable and may be shared; the per-match scratch space lives in a ``Regex/Matcher``, one per
/// thread (each worker owns its matchers, so nothing is allocated per packet).
public final class Regex: @unchecked Sendable {
    public let pattern: String
    let code: OpaquePointer
    public let jit: Bool
    /// Match-limit steps allowed per match (PCRE2's `match_limit`).
    public static let defaultMatchLimit: UInt32 = 100_000

    public struct CompileError: Error, CustomStringConvertible, Equatable {
        public var message: String
        public var offset: Int
        public var description: String { "\(message) at offset \(offset)" }
    }

    /// Compiles `pattern` with PRADS's options (none: case-sensitive, `.` stops at newline).
    public init(_ pattern: String) throws {
        self.pattern = pattern
        var errorCode: Int32 = 0
        var errorOffset = 0
        let bytes = Array(pattern.utf8)
        let compiled = bytes.withUnsafeBufferPointer { buffer in
            pcre2_compile_8(buffer.baseAddress, buffer.count, 0, &errorCode, &errorOffset, nil)
        }
        guard let compiled else {
            throw CompileError(message: Regex.message(for: errorCode), offset: errorOffset)
        }
        code = compiled
        jit = pcre2_jit_compile_8(compiled, UInt32(PCRE2_JIT_COMPLETE)) == 0
    }

    deinit {
        pcre2_code_free_8(code)
    }

    static func message(for code: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = pcre2_get_error_message_8(code, &buffer, buffer.count)
        return n > 0 ? String(decoding: buffer[0..<Int(n)], as: UTF8.self) : "PCRE2 error \(code)"
    }

    /// What one match takes, as plain handles: a list of them is walked without a reference
    /// count per pattern (a ``Matcher`` keeps them alive).
    struct Handles: BitwiseCopyable {
        let code: OpaquePointer
        let data: OpaquePointer
        let context: OpaquePointer
        let jit: Bool

        /// PCRE2's result: the group count on a match, a negative code otherwise.
        func match(_ subject: UnsafeRawBufferPointer) -> Int32 {
            let base = subject.baseAddress?.assumingMemoryBound(to: UInt8.self)
            // An empty subject still needs a valid pointer; a byte on the stack will do.
            var byte: UInt8 = 0
            return withUnsafePointer(to: &byte) { empty in
                // A pattern JIT compiled takes PCRE2's fast path, without pcre2_match's checks
                // of options and subject (none apply here): a sixth of detection's time.
                jit
                    ? pcre2_jit_match_8(code, base ?? empty, base == nil ? 0 : subject.count, 0, 0, data, context)
                    : pcre2_match_8(code, base ?? empty, base == nil ? 0 : subject.count, 0, 0, data, context)
            }
        }

        static func gaveUp(_ rc: Int32) -> Bool {
            rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT || rc == PCRE2_ERROR_JIT_STACKLIMIT
        }
    }

    /// Per-thread match state: match data sized for this pattern's groups and a match context
    /// carrying the limits. Create one per worker and reuse it.
    public final class Matcher {
        public let regex: Regex
        let data: OpaquePointer
        let context: OpaquePointer
        /// Matches that hit the match limit (counted as no match).
        public private(set) var limitHits = 0

        public init(_ regex: Regex, matchLimit: UInt32 = Regex.defaultMatchLimit) {
            self.regex = regex
            data = pcre2_match_data_create_from_pattern_8(regex.code, nil)
            context = pcre2_match_context_create_8(nil)
            pcre2_set_match_limit_8(context, matchLimit)
            pcre2_set_depth_limit_8(context, 10_000)
        }

        deinit {
            pcre2_match_data_free_8(data)
            pcre2_match_context_free_8(context)
        }

        var handles: Handles { Handles(code: regex.code, data: data, context: context, jit: regex.jit) }

        /// Whether the pattern matches in `subject`; when it does, ``groupRange(_:in:)`` gives the groups.
        public func matches(_ subject: UnsafeRawBufferPointer) -> Bool {
            let rc = handles.match(subject)
            if Handles.gaveUp(rc) { limitHits += 1 }
            return rc >= 0
        }

        public func matches(_ bytes: [UInt8]) -> Bool {
            bytes.withUnsafeBytes { matches($0) }
        }

        /// Where group `n` of the last successful match lies in `subject` (the same bytes), or
        /// nil when the group did not take part or there is no such group.
        public func groupRange(_ n: Int, in subject: UnsafeRawBufferPointer) -> Range<Int>? {
            let count = Int(pcre2_get_ovector_count_8(data))
            guard n >= 0, n < count, let ovector = pcre2_get_ovector_pointer_8(data) else { return nil }
            let start = ovector[2 * n]
            let end = ovector[2 * n + 1]
            // PCRE2_UNSET is ~0: an unset group.
            guard start != Int.max, start != ~0, start <= end, end <= subject.count else { return nil }
            return start..<end
        }
    }
}
