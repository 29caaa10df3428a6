#if canImport(Glibc)
    import Glibc
#endif

/// A signature's regular expression that is a plain string of bytes, perhaps anchored at the
/// start of the payload (`^`): found by `memchr` and comparisons, with the same result as PCRE2
/// under PRADS's options (case-sensitive, not multi-line, bytes not UTF-8). A list made only of
/// such patterns (Debian's udp-service.sig: DNS answers and syslog priorities) needs neither a
/// Hyperscan scan nor PCRE2: about 1,000 instructions a payload less, and every UDP payload
/// within PRADS's limits is matched.
package struct LiteralPattern: Equatable {
    package let bytes: [UInt8]
    package let anchored: Bool

    /// The pattern's literal, or nil when it has anything else: a metacharacter, a class escape
    /// (`\d`), an escape other than `\xHH` and an escaped symbol, or nothing to find.
    package init?(_ pattern: String) {
        var source = Array(pattern.utf8)[...]
        anchored = source.first == UInt8(ascii: "^")
        if anchored { source = source.dropFirst() }
        var bytes: [UInt8] = []
        while let byte = source.popFirst() {
            switch byte {
            case UInt8(ascii: "\\"):
                guard let escaped = source.popFirst() else { return nil }
                if escaped == UInt8(ascii: "x") {
                    // PCRE2 reads at most two hex digits after \x; fewer (or \x{...}) is left to it.
                    guard source.count >= 2, let high = Self.hex(source[source.startIndex]),
                        let low = Self.hex(source[source.startIndex + 1])
                    else { return nil }
                    bytes.append(high << 4 | low)
                    source = source.dropFirst(2)
                } else if escaped < 0x80, !Self.isAlphanumeric(escaped) {
                    bytes.append(escaped)  // an escaped symbol stands for itself
                } else {
                    return nil
                }
            case UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "$"), UInt8(ascii: "|"), UInt8(ascii: "("),
                UInt8(ascii: ")"), UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "{"), UInt8(ascii: "}"),
                UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "?"):
                return nil
            default:
                bytes.append(byte)
            }
        }
        guard !bytes.isEmpty else { return nil }
        self.bytes = bytes
    }

    /// Where the pattern first occurs in `subject` (PCRE2's group 0), or nil.
    package func firstMatch(in subject: UnsafeRawBufferPointer) -> Range<Int>? {
        guard let base = subject.baseAddress, subject.count >= bytes.count else { return nil }
        return bytes.withUnsafeBytes { needle -> Range<Int>? in
            if anchored {
                return memcmp(base, needle.baseAddress!, needle.count) == 0 ? 0..<needle.count : nil
            }
            // Each place its first byte occurs (memchr), then the rest compared: a payload is at
            // most PRADS's 1,604 bytes and a signature's string a few dozen.
            let first = Int32(bytes[0])
            var start = 0
            while start <= subject.count - needle.count,
                let hit = memchr(base + start, first, subject.count - needle.count + 1 - start)
            {
                start = UnsafeRawPointer(hit) - base
                if memcmp(hit, needle.baseAddress!, needle.count) == 0 { return start..<start + needle.count }
                start += 1
            }
            return nil
        }
    }

    private static func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    private static func isAlphanumeric(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z"))
            || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
    }
}
