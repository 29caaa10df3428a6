import Crypto
import Foundation

/// One frame of DiST's data-plane channel (VNF to VNF, carried in UDP), on bytes:
///
///     magic "DC" (2) | version (1) | type (1) | move id (8) | nonce (8) | sequence (4)
///     | cumulative ack (4) | selective-ack bitmap (8) | payload length (2) | payload | tag (16)
///
/// All integers big-endian. The cumulative ack is the highest sequence number received with
/// every earlier one; bit i of the bitmap says sequence `ack + 1 + i` was received too. The
/// nonce is the Move's, drawn at random by its source. The tag is HMAC-SHA256, under the
/// channel's key, over the sender's and the receiver's channel ids and then everything before
/// it, truncated to 16 bytes (see ``Binding``): a frame authenticates only for its own Move, its
/// own direction and its own pair of instances.
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

    /// What a frame is bound to besides its bytes: the Move's nonce (carried in the header), and
    /// who sends it to whom (covered by the tag, not carried: the receiver knows both). A frame
    /// recorded in one Move fails in any other (another nonce), one reflected back to its
    /// sender fails there (the ids swap), one replayed to a third instance fails at it.
    public struct Binding: Sendable, Equatable {
        public var nonce: UInt64
        /// Channel ids: an instance's IPv4 address and UDP port (`ip << 16 | port`).
        public var sender: UInt64
        public var receiver: UInt64
        public init(nonce: UInt64, sender: UInt64, receiver: UInt64) {
            self.nonce = nonce
            self.sender = sender
            self.receiver = receiver
        }
        /// The other direction's.
        public var reversed: Binding { Binding(nonce: nonce, sender: receiver, receiver: sender) }
        /// Bound to nothing but the key (tests and tools; the Move engine binds every channel).
        public static let unbound = Binding(nonce: 0, sender: 0, receiver: 0)
    }

    public static let magic: [UInt8] = [0x44, 0x43]  // "DC"
    /// 2: the `copies` and `packets` kinds; 3: `packetPart`; 4: `statePart`; 5: the nonce and
    /// the binding. A peer of another version fails every frame's
    /// decoding (counted as rejected) from the first, before anything has moved; the
    /// controller refuses a Move between instances that report different versions.
    public static let version: UInt8 = 5
    public static let headerSize = 38
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
        /// A frame of another Move (or a recording of an earlier one with the same id).
        case otherNonce

        public var description: String {
            switch self {
            case .truncated(let n): "frame of \(n) bytes is shorter than a header and tag"
            case .badMagic: "not a DiST channel frame (magic)"
            case .wrongVersion(let v): "channel version \(v), expected \(ChannelFrame.version)"
            case .unknownKind(let k): "unknown frame type \(k)"
            case .lengthMismatch(let d, let a): "payload length says \(d), frame holds \(a)"
            case .badTag: "authentication tag does not verify"
            case .otherNonce: "the frame's nonce is not this Move's"
            }
        }
    }

    /// The frame's bytes, tagged under `key` for `binding` (its nonce goes in the header).
    public func encoded(key: SymmetricKey, binding: Binding = .unbound) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.overhead + payload.count)
        out += Self.magic
        out.append(Self.version)
        out.append(kind.rawValue)
        Self.append(moveID, 8, to: &out)
        Self.append(binding.nonce, 8, to: &out)
        Self.append(UInt64(sequence), 4, to: &out)
        Self.append(UInt64(ack), 4, to: &out)
        Self.append(sack, 8, to: &out)
        out.append(UInt8(payload.count >> 8))
        out.append(UInt8(payload.count & 0xFF))
        out += payload
        out += Self.tag(out[...], key: key, binding: binding)
        return out
    }

    static func append(_ value: UInt64, _ bytes: Int, to out: inout [UInt8]) {
        for i in (0..<bytes).reversed() { out.append(UInt8(truncatingIfNeeded: value >> UInt64(8 * i))) }
    }

    static func tag(_ bytes: ArraySlice<UInt8>, key: SymmetricKey, binding: Binding) -> [UInt8] {
        var ids: [UInt8] = []
        ids.reserveCapacity(16)
        append(binding.sender, 8, to: &ids)
        append(binding.receiver, 8, to: &ids)
        var mac = HMAC<SHA256>(key: key)
        mac.update(data: ids)
        mac.update(data: bytes)
        return Array(mac.finalize().prefix(tagSize))
    }

    /// The nonce a frame carries (nil: too short to be a frame): a destination reads it from a
    /// Move's first frame, before it can check anything.
    public static func nonce(in bytes: [UInt8]) -> UInt64? {
        guard bytes.count >= overhead else { return nil }
        return bytes[12..<20].reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// Decodes and authenticates a frame for `binding`; any fault is an error naming it.
    public static func decode(_ bytes: [UInt8], key: SymmetricKey, binding: Binding = .unbound) throws(DecodeError) -> ChannelFrame {
        guard bytes.count >= overhead else { throw .truncated(bytes.count) }
        guard bytes[0] == magic[0], bytes[1] == magic[1] else { throw .badMagic }
        guard bytes[2] == version else { throw .wrongVersion(bytes[2]) }
        let length = Int(bytes[36]) << 8 | Int(bytes[37])
        guard length == bytes.count - overhead else { throw .lengthMismatch(declared: length, actual: bytes.count - overhead) }
        guard nonce(in: bytes) == binding.nonce else { throw .otherNonce }
        let body = bytes[0..<(headerSize + length)]
        let expected = tag(body, key: key, binding: binding)
        // Constant-time comparison of the tags.
        var diff: UInt8 = 0
        for (a, b) in zip(expected, bytes[(headerSize + length)...]) { diff |= a ^ b }
        guard diff == 0 else { throw .badTag }
        guard let kind = Kind(rawValue: bytes[3]) else { throw .unknownKind(bytes[3]) }
        func be(_ from: Int, _ n: Int) -> UInt64 { bytes[from..<(from + n)].reduce(0) { $0 << 8 | UInt64($1) } }
        return ChannelFrame(kind: kind, moveID: be(4, 8), sequence: UInt32(be(20, 4)), ack: UInt32(be(24, 4)), sack: be(28, 8),
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
