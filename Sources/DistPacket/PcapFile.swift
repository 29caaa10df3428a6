/// Reads classic libpcap files (microsecond or nanosecond, either byte order): what tests,
/// tools and benchmarks feed the parser. Not used on the fast path.
public struct PcapFile: Sendable {
    public struct Frame: Sendable {
        /// Seconds and sub-second part as written (microseconds or nanoseconds; see `nanosecond`).
        public var seconds: UInt32
        public var fraction: UInt32
        /// Length on the wire (may exceed `bytes.count` when the capture was cut short).
        public var originalLength: UInt32
        public var bytes: [UInt8]

        public init(seconds: UInt32, fraction: UInt32, originalLength: UInt32, bytes: [UInt8]) {
            self.seconds = seconds
            self.fraction = fraction
            self.originalLength = originalLength
            self.bytes = bytes
        }
    }

    public enum Failure: Error, CustomStringConvertible, Equatable {
        case tooShort
        case badMagic(UInt32)
        case unsupportedLinkType(UInt32)
        case truncatedRecord(frame: Int)

        public var description: String {
            switch self {
            case .tooShort: "not a pcap file: shorter than its 24-byte header"
            case .badMagic(let m): "not a classic pcap file (magic 0x\(String(m, radix: 16)))"
            case .unsupportedLinkType(let t): "link type \(t) is not Ethernet (1)"
            case .truncatedRecord(let i): "record \(i) runs past the end of the file"
            }
        }
    }

    public var frames: [Frame]
    public var nanosecond: Bool
    public var linkType: UInt32

    /// Parses a whole pcap file held in memory.
    public init(bytes: [UInt8]) throws {
        guard bytes.count >= 24 else { throw Failure.tooShort }
        func le32(_ o: Int) -> UInt32 {
            UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24
        }
        let magic = le32(0)
        let swapped: Bool
        switch magic {
        case 0xA1B2_C3D4: (swapped, nanosecond) = (false, false)
        case 0xA1B2_3C4D: (swapped, nanosecond) = (false, true)
        case 0xD4C3_B2A1: (swapped, nanosecond) = (true, false)
        case 0x4D3C_B2A1: (swapped, nanosecond) = (true, true)
        default: throw Failure.badMagic(magic)
        }
        func field(_ o: Int) -> UInt32 { swapped ? le32(o).byteSwapped : le32(o) }
        linkType = field(20) & 0x0FFF_FFFF
        guard linkType == 1 else { throw Failure.unsupportedLinkType(linkType) }
        var frames: [Frame] = []
        var offset = 24
        while offset + 16 <= bytes.count {
            let captured = Int(field(offset + 8))
            guard offset + 16 + captured <= bytes.count else { throw Failure.truncatedRecord(frame: frames.count) }
            frames.append(
                Frame(
                    seconds: field(offset), fraction: field(offset + 4), originalLength: field(offset + 12),
                    bytes: Array(bytes[(offset + 16)..<(offset + 16 + captured)])))
            offset += 16 + captured
        }
        self.frames = frames
    }

    /// Writes frames as a classic microsecond pcap file image.
    public static func image(of frames: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        func put32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func put16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        put32(0xA1B2_C3D4)
        put16(2)
        put16(4)
        put32(0)
        put32(0)
        put32(65535)
        put32(1)
        for (i, frame) in frames.enumerated() {
            put32(UInt32(i / 1_000_000))
            put32(UInt32(i % 1_000_000))
            put32(UInt32(frame.count))
            put32(UInt32(frame.count))
            out.append(contentsOf: frame)
        }
        return out
    }
}
