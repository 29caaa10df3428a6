import CDistIntrinsics

#if canImport(Glibc)
    import Glibc
#endif

/// Little-endian appender. (A byte at a time: appending a field's raw bytes went through
/// `append(contentsOf:)`'s generic path, several times slower.)
struct ByteWriter {
    var out: [UInt8]
    @inline(__always) mutating func u8(_ v: UInt8) { out.append(v) }
    @inline(__always) mutating func u16(_ v: UInt16) {
        out.append(UInt8(truncatingIfNeeded: v))
        out.append(UInt8(truncatingIfNeeded: v >> 8))
    }
    @inline(__always) mutating func u32(_ v: UInt32) {
        u16(UInt16(truncatingIfNeeded: v))
        u16(UInt16(truncatingIfNeeded: v >> 16))
    }
    @inline(__always) mutating func u64(_ v: UInt64) {
        u32(UInt32(truncatingIfNeeded: v))
        u32(UInt32(truncatingIfNeeded: v >> 32))
    }
    /// LEB128: seven bits a byte, low first, the top bit set on every byte but the last.
    mutating func varint(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }
    /// Its UTF-8 bytes, at most 65,535 (cut before a character that would not fit whole, so
    /// that what is written is UTF-8 still), after their count.
    mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { bytes in
            var n = min(bytes.count, Int(UInt16.max))
            while n < bytes.count && n > 0 && bytes[n] & 0xC0 == 0x80 { n -= 1 }
            u16(UInt16(n))
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[..<n]))
        }
    }
}

/// Bounds-checked little-endian reader: every read past the end is an error, never a trap.
package struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0
    var remaining: Int { bytes.count - offset }

    package init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    @inline(__always)
    mutating func take(_ n: Int) throws(StateCodecError) -> Int {
        guard remaining >= n else { throw .malformed("field runs past the end of the chunk") }
        defer { offset += n }
        return offset
    }

    mutating func u8() throws(StateCodecError) -> UInt8 { bytes[try take(1)] }
    mutating func u16() throws(StateCodecError) -> UInt16 {
        UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: try take(2), as: UInt16.self))
    }
    mutating func u32() throws(StateCodecError) -> UInt32 {
        UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: try take(4), as: UInt32.self))
    }
    mutating func u64() throws(StateCodecError) -> UInt64 {
        UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: try take(8), as: UInt64.self))
    }
    /// A LEB128 varint of at most 10 bytes that fits 64 bits, in its shortest form.
    mutating func varint() throws(StateCodecError) -> UInt64 {
        var value: UInt64 = 0
        for i in 0..<10 {
            let byte = try u8()
            if i == 9 && byte > 1 { throw .malformed("varint past 64 bits") }
            value |= UInt64(byte & 0x7F) << UInt64(7 * i)
            if byte & 0x80 == 0 {
                guard byte != 0 || i == 0 else { throw .malformed("varint not in its shortest form") }
                return value
            }
        }
        throw .malformed("varint longer than 10 bytes")
    }
    package mutating func string() throws(StateCodecError) -> String {
        let n = Int(try u16())
        let at = try take(n)
        // Decoding repairs what is not UTF-8; the same bytes back mean there was nothing to
        // repair. (`String(validating:)` took a generic, byte-by-byte path: a tenth of a Move's
        // CPU time went there.)
        let raw = UnsafeRawBufferPointer(rebasing: bytes[at..<(at + n)])
        var s = String(decoding: raw.assumingMemoryBound(to: UInt8.self), as: UTF8.self)
        let same = s.withUTF8 { $0.count == n && (n == 0 || memcmp($0.baseAddress!, raw.baseAddress!, n) == 0) }
        guard same else { throw .malformed("string is not UTF-8") }
        return s
    }
}

/// CRC-32C (Castagnoli): detects corruption of a chunk's payload.
public enum CRC32C {
    static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    /// The CPU computes it (SSE 4.2), 8 bytes an instruction: the table, a byte a lookup, was a
    /// tenth of a Move's CPU time at both ends.
    static let hardware = dist_crc32c_hardware() != 0

    public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        if hardware, let base = bytes.baseAddress {
            return dist_crc32c(0xFFFF_FFFF, base.assumingMemoryBound(to: UInt8.self), bytes.count) ^ 0xFFFF_FFFF
        }
        return bytewise(bytes)
    }

    /// The same, a table lookup a byte (CPUs without the instruction, and the tests' reference).
    package static func bytewise(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { t in
            for b in bytes { crc = t[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
        }
        return crc ^ 0xFFFF_FFFF
    }
}
