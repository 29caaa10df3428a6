#if canImport(Glibc)
    import Glibc
#endif

/// An IPv4 or IPv6 prefix such as `10.0.0.0/8` or `2001:db8::/32` (a bare address is a /32 or
/// /128). IPv4 prefixes apply to IPv4-mapped addresses, as the flow table stores them.
public struct IPPrefix: Sendable, Hashable, CustomStringConvertible {
    public var address: IPAddress
    /// Prefix length over the 128-bit form (an IPv4 /8 is 96 + 8).
    public var length: Int
    /// Written without a length (a single address): shown so again.
    let bare: Bool

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let parsed = IPAddress(text: String(parts[0])) else { return nil }
        let v4 = parsed.isIPv4Mapped
        var bits = v4 ? 32 : 128
        if parts.count == 2 {
            guard let n = Int(parts[1]), n >= 0, n <= bits else { return nil }
            bits = n
        }
        address = parsed
        length = v4 ? 96 + bits : bits
        bare = parts.count == 1
    }

    /// As written, addresses in canonical form. (Computed, not kept: a prefix holds no
    /// reference, so the event rules that carry prefixes copy without reference counting on
    /// the fast path.)
    public var text: String {
        bare ? address.text : "\(address.text)/\(address.isIPv4Mapped ? max(0, length - 96) : length)"
    }

    public var description: String { text }

    /// The prefix holding exactly one address.
    public init(exactly a: IPAddress) {
        address = a
        length = 128
        bare = false
    }

    /// The prefix of `length` bits (over the 128-bit form) that holds `a`, in canonical text.
    public init(covering a: IPAddress, length: Int) {
        func mask(_ bits: Int) -> UInt64 { bits <= 0 ? 0 : bits >= 64 ? ~0 : ~0 << UInt64(64 - bits) }
        let bits = max(0, min(128, length))
        var masked = IPAddress(hi: a.hi & mask(bits), lo: a.lo & mask(bits - 64))
        if a.isIPv4Mapped {
            masked.hi = a.hi
            masked.lo = (a.lo & 0xFFFF_FFFF_0000_0000) | (a.lo & 0xFFFF_FFFF & mask(bits - 64))
        }
        address = masked
        self.length = bits
        bare = false
    }

    /// Whether `a` lies within the prefix.
    public func contains(_ a: IPAddress) -> Bool {
        func mask(_ bits: Int) -> UInt64 { bits <= 0 ? 0 : bits >= 64 ? ~0 : ~0 << UInt64(64 - bits) }
        let hiMask = mask(length)
        let loMask = mask(length - 64)
        return a.hi & hiMask == address.hi & hiMask && a.lo & loMask == address.lo & loMask
    }
}

extension IPAddress {
    /// The address as text: dotted quad for IPv4 (stored IPv4-mapped), else IPv6 as
    /// `inet_ntop` writes it (RFC 5952), as PRADS's log does.
    public var text: String {
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<8 {
            bytes[i] = UInt8(truncatingIfNeeded: hi >> UInt64(56 - 8 * i))
            bytes[8 + i] = UInt8(truncatingIfNeeded: lo >> UInt64(56 - 8 * i))
        }
        var buffer = [CChar](repeating: 0, count: 64)
        let v4 = isIPv4Mapped
        let ok =
            bytes.withUnsafeBytes { raw in
                inet_ntop(
                    v4 ? AF_INET : AF_INET6, v4 ? raw.baseAddress! + 12 : raw.baseAddress, &buffer,
                    socklen_t(buffer.count))
            } != nil
        return ok ? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
    }

    /// Parses dotted-quad IPv4 (stored IPv4-mapped) or IPv6 text.
    public init?(text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self.init(ipv4: UInt32(bigEndian: v4.s_addr))
            return
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        self.init(
            hi: bytes[0..<8].reduce(0) { $0 << 8 | UInt64($1) }, lo: bytes[8..<16].reduce(0) { $0 << 8 | UInt64($1) })
    }
}
