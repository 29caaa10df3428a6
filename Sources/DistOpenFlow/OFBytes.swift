/// Big-endian writer for OpenFlow messages.
struct OFWriter {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { bytes += [UInt8(v >> 8), UInt8(v & 0xFF)] }
    mutating func u32(_ v: UInt32) {
        u16(UInt16(v >> 16))
        u16(UInt16(v & 0xFFFF))
    }
    mutating func u64(_ v: UInt64) {
        u32(UInt32(v >> 32))
        u32(UInt32(v & 0xFFFF_FFFF))
    }
    mutating func pad(_ n: Int) { bytes += [UInt8](repeating: 0, count: n) }
    mutating func padTo8(from start: Int) { pad((8 - (bytes.count - start) % 8) % 8) }
    mutating func set16(_ v: UInt16, at i: Int) {
        bytes[i] = UInt8(v >> 8)
        bytes[i + 1] = UInt8(v & 0xFF)
    }
}

/// Bounds-checked big-endian reader: reading past the end is an error, never a trap.
struct OFReader {
    let bytes: [UInt8]
    var at: Int
    let end: Int
    init(_ bytes: [UInt8], from: Int = 0, to: Int? = nil) {
        self.bytes = bytes
        at = from
        end = to ?? bytes.count
    }
    var remaining: Int { end - at }
    mutating func take(_ n: Int) throws -> Int {
        guard n >= 0, remaining >= n else { throw OFDecodeError("message cut short") }
        defer { at += n }
        return at
    }
    mutating func u8() throws -> UInt8 { bytes[try take(1)] }
    mutating func u16() throws -> UInt16 {
        let i = try take(2)
        return UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1])
    }
    mutating func u32() throws -> UInt32 { UInt32(try u16()) << 16 | UInt32(try u16()) }
    mutating func u64() throws -> UInt64 { UInt64(try u32()) << 32 | UInt64(try u32()) }
    mutating func raw(_ n: Int) throws -> [UInt8] {
        let i = try take(n)
        return Array(bytes[i..<(i + n)])
    }
    mutating func skip(_ n: Int) throws { _ = try take(n) }
}

/// Cuts a TCP byte stream from a switch into OpenFlow messages.
public struct OFStream {
    var buffer: [UInt8] = []
    /// Largest message accepted.
    public static let maxMessage = 65535

    public init() {}

    public mutating func append(_ bytes: [UInt8]) { buffer += bytes }

    /// The next whole message, nil when more bytes are needed; throws on a message that is not
    /// OpenFlow 1.3 (the connection should be closed: the stream cannot be resynchronised).
    public mutating func next() throws -> OFMessage? {
        guard buffer.count >= OpenFlow.headerSize else { return nil }
        let length = Int(buffer[2]) << 8 | Int(buffer[3])
        guard length >= OpenFlow.headerSize else { throw OFDecodeError("message length \(length)") }
        guard buffer.count >= length else { return nil }
        let message = Array(buffer[0..<length])
        buffer.removeFirst(length)
        return try OFMessage.decode(message)
    }
}
