import Crypto
import Foundation

/// One frame of DiST's data-plane channel (VNF to VNF, carried in UDP), on bytes:
///
///     magic "DC" (2) | version (1) | type (1) | move id (8) | sequence (4) | cumulative ack (4)
///     | selective-ack bitmap (8) | payload length (2) | payload | tag (16)
///
/// All integers big-endian. The cumulative ack is the highest sequence number received with
/// every earlier one; bit i of the bitmap says sequence `ack + 1 + i` was received too. The tag
/// is HMAC-SHA256 over everything before it, truncated to 16 bytes, under the channel's key.
public struct ChannelFrame: Equatable, Sendable {
    public enum Kind: UInt8, Sendable, CaseIterable {
        /// State chunks (many per frame).
        case state = 1
        // 2 was version 1's frame of one redirected packet (`packets` carries them since).
        /// The peer may process what it buffered for the move.
        case release = 3
        /// Nothing more comes for this move.
        case end = 4
        /// Acknowledgement only (no payload, no sequence number of its own).
        case ack = 5
        /// The sender gave the move up (the payload says why).
        case abort = 6
        /// The move's first message: what moves (flags, then the filter's text).
        case open = 7
        /// Destination to source: the switch's packets of the moved traffic have begun to
        /// arrive here (the update is in force in its datapath; order-preserving Moves: its
        /// first phase, the copies).
        case copies = 8
        /// Packets redirected to the peer, several in one frame: `u16 length` then the packet,
        /// repeated (those the source took from its workers in one round).
        case packets = 9
        /// A part of one redirected packet too large for a frame: a flags byte (bit 0: the last
        /// part) then the part's bytes. The parts of a packet go in consecutive frames.
        case packetPart = 10
        /// A part of one state chunk too large for a frame (a host with many services): a flags
        /// byte (bit 0: the last part) then the part's bytes. The parts go in consecutive frames.
        case statePart = 11
    }

    public static let magic: [UInt8] = [0x44, 0x43]  // "DC"
    /// 2: the `copies` and `packets` kinds; 3: `packetPart`; 4: `statePart`. A peer of another version fails every frame's
    /// decoding (counted as rejected) from the first, before anything has moved; the
    /// controller refuses a Move between instances that report different versions.
    public static let version: UInt8 = 4
    public static let headerSize = 30
    public static let tagSize = 16
    public static let overhead = headerSize + tagSize
    /// Largest payload (a frame must fit a 9000-byte MTU with IP and UDP headers).
    public static let maxPayload = 8900

    public var kind: Kind
    public var moveID: UInt64
    /// 0 for `ack` frames; data frames count from 1.
    public var sequence: UInt32
    public var ack: UInt32
    public var sack: UInt64
    public var payload: [UInt8]

    public init(kind: Kind, moveID: UInt64, sequence: UInt32, ack: UInt32 = 0, sack: UInt64 = 0, payload: [UInt8] = []) {
        self.kind = kind
        self.moveID = moveID
        self.sequence = sequence
        self.ack = ack
        self.sack = sack
        self.payload = payload
    }

    public enum DecodeError: Error, Equatable, CustomStringConvertible {
        case truncated(Int)
        case badMagic
        case wrongVersion(UInt8)
        case unknownKind(UInt8)
        case lengthMismatch(declared: Int, actual: Int)
        case badTag

        public var description: String {
            switch self {
            case .truncated(let n): "frame of \(n) bytes is shorter than a header and tag"
            case .badMagic: "not a DiST channel frame (magic)"
            case .wrongVersion(let v): "channel version \(v), expected \(ChannelFrame.version)"
            case .unknownKind(let k): "unknown frame type \(k)"
            case .lengthMismatch(let d, let a): "payload length says \(d), frame holds \(a)"
            case .badTag: "authentication tag does not verify"
            }
        }
    }

    /// The frame's bytes, tagged under `key`.
    public func encoded(key: SymmetricKey) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.overhead + payload.count)
        out += Self.magic
        out.append(Self.version)
        out.append(kind.rawValue)
        for i in (0..<8).reversed() { out.append(UInt8(truncatingIfNeeded: moveID >> UInt64(8 * i))) }
        for i in (0..<4).reversed() { out.append(UInt8(truncatingIfNeeded: sequence >> UInt32(8 * i))) }
        for i in (0..<4).reversed() { out.append(UInt8(truncatingIfNeeded: ack >> UInt32(8 * i))) }
        for i in (0..<8).reversed() { out.append(UInt8(truncatingIfNeeded: sack >> UInt64(8 * i))) }
        out.append(UInt8(payload.count >> 8))
        out.append(UInt8(payload.count & 0xFF))
        out += payload
        out += Self.tag(out[...], key: key)
        return out
    }

    static func tag(_ bytes: ArraySlice<UInt8>, key: SymmetricKey) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: bytes, using: key)).prefix(tagSize).map { $0 }
    }

    /// Decodes and authenticates a frame; any fault is an error naming it.
    public static func decode(_ bytes: [UInt8], key: SymmetricKey) throws(DecodeError) -> ChannelFrame {
        guard bytes.count >= overhead else { throw .truncated(bytes.count) }
        guard bytes[0] == magic[0], bytes[1] == magic[1] else { throw .badMagic }
        guard bytes[2] == version else { throw .wrongVersion(bytes[2]) }
        let length = Int(bytes[28]) << 8 | Int(bytes[29])
        guard length == bytes.count - overhead else { throw .lengthMismatch(declared: length, actual: bytes.count - overhead) }
        let body = bytes[0..<(headerSize + length)]
        let expected = tag(body, key: key)
        // Constant-time comparison of the tags.
        var diff: UInt8 = 0
        for (a, b) in zip(expected, bytes[(headerSize + length)...]) { diff |= a ^ b }
        guard diff == 0 else { throw .badTag }
        guard let kind = Kind(rawValue: bytes[3]) else { throw .unknownKind(bytes[3]) }
        func be(_ from: Int, _ n: Int) -> UInt64 { bytes[from..<(from + n)].reduce(0) { $0 << 8 | UInt64($1) } }
        return ChannelFrame(kind: kind, moveID: be(4, 8), sequence: UInt32(be(12, 4)), ack: UInt32(be(16, 4)), sack: be(20, 8),
                            payload: Array(bytes[headerSize..<(headerSize + length)]))
    }
}

/// The channel's key: 32 random bytes (or more) in a file only its owner may read.
public enum ChannelKey {
    public struct Problem: Error, CustomStringConvertible {
        public var description: String
    }

    /// Reads the key file; refuses one that others may read or write, or that is too short.
    public static func load(path: String) throws -> SymmetricKey {
        let attributes: [FileAttributeKey: Any]
        do {
            attributes = try FileManager.default.attributesOfItem(atPath: path)
        } catch {
            throw Problem(description: "channel key \(path): cannot read it (\(error.localizedDescription))")
        }
        if let mode = attributes[.posixPermissions] as? Int, mode & 0o077 != 0 {
            throw Problem(description: "channel key \(path): mode \(String(mode, radix: 8)) lets others read it; chmod 600 \(path)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Problem(description: "channel key \(path): cannot read it")
        }
        guard data.count >= 32 else { throw Problem(description: "channel key \(path): \(data.count) bytes; 32 or more needed") }
        return SymmetricKey(data: data)
    }
}
