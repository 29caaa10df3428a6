/// Network byte order, written and read: the one helper every module's wire code uses (frames
/// built for the switch, the channel's datagrams and headers, OpenFlow, RSS input).
public enum BigEndian {
    @inlinable
    public static func bytes(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(truncatingIfNeeded: v)] }

    @inlinable
    public static func bytes(_ v: UInt32) -> [UInt8] {
        [
            UInt8(v >> 24), UInt8(truncatingIfNeeded: v >> 16), UInt8(truncatingIfNeeded: v >> 8),
            UInt8(truncatingIfNeeded: v),
        ]
    }

    /// The low `count` bytes of `v`, most significant first.
    @inlinable
    public static func bytes(_ v: UInt64, count: Int = 8) -> [UInt8] {
        (0..<count).reversed().map { UInt8(truncatingIfNeeded: v >> UInt64(8 * $0)) }
    }

    /// The low `count` bytes of `v`, most significant first, at `out`.
    @inlinable @inline(__always)
    public static func store(_ v: UInt64, count: Int, at out: UnsafeMutablePointer<UInt8>) {
        for i in 0..<count { out[i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(count - 1 - i))) }
    }

    /// Appends the low `count` bytes of `v`, most significant first.
    @inlinable
    public static func append(_ v: UInt64, count: Int, to out: inout [UInt8]) {
        for i in (0..<count).reversed() { out.append(UInt8(truncatingIfNeeded: v >> UInt64(8 * i))) }
    }

    @inlinable @inline(__always)
    public static func uint16(_ b: UnsafeRawBufferPointer, at o: Int) -> UInt16 { UInt16(b[o]) << 8 | UInt16(b[o + 1]) }

    @inlinable @inline(__always)
    public static func uint32(_ b: UnsafeRawBufferPointer, at o: Int) -> UInt32 {
        UInt32(b[o]) << 24 | UInt32(b[o + 1]) << 16 | UInt32(b[o + 2]) << 8 | UInt32(b[o + 3])
    }

    /// The bytes as one number, the first most significant (at most 8 of them).
    @inlinable
    public static func value<C: Collection>(_ bytes: C) -> UInt64 where C.Element == UInt8 {
        bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }
}

/// The Internet checksum (RFC 1071) of IPv4 headers and of UDP and TCP with their pseudo
/// header; 0 over bytes that carry a right one.
public enum InternetChecksum {
    public static func of(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < bytes.count {
            sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
            i += 2
        }
        if i < bytes.count { sum += UInt32(bytes[i]) << 8 }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        return ~UInt16(sum)
    }
}
