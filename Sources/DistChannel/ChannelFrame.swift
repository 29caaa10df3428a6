import Crypto
import DistPacket
import Foundation

/// One frame of DiST's data-plane channel (VNF to VNF, carried in UDP), on bytes:
///
///     magic "DC" (2) | version (1) | type (1) | move id (8) | nonce (8) | counter (8)
///     | sequence (4) | cumulative ack (4) | selective-ack bitmap (8) | payload length (2)
///     | payload, encrypted | tag (16)
///
/// All integers big-endian. The cumulative ack is the highest sequence number received with
/// every earlier one; bit i of the bitmap says sequence `ack + 1 + i` was received too. The
/// nonce is the Move's, drawn at random by its source; the counter numbers the sender's
/// transmissions (a resent frame gets a new one). The payload is sealed with AES-256-GCM under
/// the key of the frame's Move and direction (``ChannelCipher``), the header authenticated with
/// it: a frame opens only for its own Move, its own direction and its own pair of instances.
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
    /// the binding; 6: AES-GCM. A peer of another version fails every frame's
    /// decoding (counted as rejected) from the first, before anything has moved; the
    /// controller refuses a Move between instances that report different versions.
    public static let version: UInt8 = 6
    public static let headerSize = 46
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

    public init(kind: Kind, moveID: UInt64, sequence: UInt32, ack: UInt32 = 0, sack: UInt64 = 0, payload: [UInt8] = [])
    {
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

    /// The frame sealed for the wire: the payload encrypted and the whole authenticated under
    /// `cipher`'s sending key, as transmission `counter` of that key (each counter once: it makes
    /// the AES-GCM nonce).
    public func sealed(with cipher: ChannelCipher, counter: UInt64) -> [UInt8] {
        var header: [UInt8] = []
        // (Room for the ciphertext and tag too: the header becomes the frame.)
        header.reserveCapacity(Self.headerSize + payload.count + 16)
        header += Self.magic
        header.append(Self.version)
        header.append(kind.rawValue)
        BigEndian.append(moveID, count: 8, to: &header)
        BigEndian.append(cipher.binding.nonce, count: 8, to: &header)
        BigEndian.append(counter, count: 8, to: &header)
        BigEndian.append(UInt64(sequence), count: 4, to: &header)
        BigEndian.append(UInt64(ack), count: 4, to: &header)
        BigEndian.append(sack, count: 8, to: &header)
        header.append(UInt8(payload.count >> 8))
        header.append(UInt8(payload.count & 0xFF))
        // (Sealing fails only for a nonce of the wrong size.)
        let box = try! AES.GCM.seal(
            payload, using: cipher.sendingKey, nonce: Self.gcmNonce(counter), authenticating: header)
        header.append(contentsOf: box.ciphertext)
        header.append(contentsOf: box.tag)
        return header
    }

    /// The same, deriving the keys for this one frame (tests and tools; an endpoint keeps its
    /// ``ChannelCipher``).
    public func encoded(key: SymmetricKey, binding: Binding = .unbound, counter: UInt64 = 1) -> [UInt8] {
        sealed(with: ChannelCipher(key: key, binding: binding), counter: counter)
    }

    static func gcmNonce(_ counter: UInt64) -> AES.GCM.Nonce {
        var bytes: [UInt8] = [0, 0, 0, 0]
        BigEndian.append(counter, count: 8, to: &bytes)
        return try! AES.GCM.Nonce(data: bytes)
    }

    /// The nonce a frame carries (nil: too short to be a frame): a destination reads it from a
    /// Move's first frame, before it can check anything.
    public static func nonce(in bytes: [UInt8]) -> UInt64? {
        guard bytes.count >= overhead else { return nil }
        return BigEndian.value(bytes[12..<20])
    }

    /// Opens a frame sealed by `cipher`'s peer; any fault is an error naming it.
    public static func opened(_ bytes: [UInt8], with cipher: ChannelCipher) throws(DecodeError) -> ChannelFrame {
        guard bytes.count >= overhead else { throw .truncated(bytes.count) }
        guard bytes[0] == magic[0], bytes[1] == magic[1] else { throw .badMagic }
        guard bytes[2] == version else { throw .wrongVersion(bytes[2]) }
        let length = Int(bytes[44]) << 8 | Int(bytes[45])
        guard length == bytes.count - overhead else {
            throw .lengthMismatch(declared: length, actual: bytes.count - overhead)
        }
        guard nonce(in: bytes) == cipher.binding.nonce else { throw .otherNonce }
        func be(_ from: Int, _ n: Int) -> UInt64 { BigEndian.value(bytes[from..<(from + n)]) }
        let payload: [UInt8]
        do {
            let box = try AES.GCM.SealedBox(
                nonce: gcmNonce(be(20, 8)), ciphertext: bytes[headerSize..<(headerSize + length)],
                tag: bytes[(headerSize + length)...])
            payload = Array(try AES.GCM.open(box, using: cipher.receivingKey, authenticating: bytes[0..<headerSize]))
        } catch {
            throw .badTag
        }
        guard let kind = Kind(rawValue: bytes[3]) else { throw .unknownKind(bytes[3]) }
        return ChannelFrame(
            kind: kind, moveID: be(4, 8), sequence: UInt32(be(28, 4)), ack: UInt32(be(32, 4)), sack: be(36, 8),
            payload: payload)
    }

    /// The same, for a frame bound by `binding` (its sender to its receiver), deriving the keys
    /// for this one frame.
    public static func decode(_ bytes: [UInt8], key: SymmetricKey, binding: Binding = .unbound) throws(DecodeError)
        -> ChannelFrame
    {
        try opened(bytes, with: ChannelCipher(key: key, binding: binding.reversed))
    }
}

/// The keys of one end of a Move's channel: one for what it sends and one for what it receives,
/// each derived (HKDF-SHA256) from the channel's key, the Move's nonce and the direction, so that
/// no two Moves or directions share a key, and a frame opens only for its own Move, direction and
/// pair of instances. AES-256-GCM under them keeps state and packets confidential on the wire.
public struct ChannelCipher {
    /// This end's frames: the Move's nonce, this end as the sender, the peer as the receiver.
    public let binding: ChannelFrame.Binding
    let sendingKey: SymmetricKey
    let receivingKey: SymmetricKey

    public init(key: SymmetricKey, binding: ChannelFrame.Binding) {
        self.binding = binding
        sendingKey = Self.derive(key, binding)
        receivingKey = Self.derive(key, binding.reversed)
    }

    static func derive(_ key: SymmetricKey, _ binding: ChannelFrame.Binding) -> SymmetricKey {
        var info = Array("DiST channel \(ChannelFrame.version)".utf8)
        var salt: [UInt8] = []
        BigEndian.append(binding.sender, count: 8, to: &info)
        BigEndian.append(binding.receiver, count: 8, to: &info)
        BigEndian.append(binding.nonce, count: 8, to: &salt)
        return HKDF<SHA256>.deriveKey(inputKeyMaterial: key, salt: salt, info: info, outputByteCount: 32)
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
            throw Problem(
                description:
                    "channel key \(path): mode \(String(mode, radix: 8)) lets others read it; chmod 600 \(path)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Problem(description: "channel key \(path): cannot read it")
        }
        guard data.count >= 32 else {
            throw Problem(description: "channel key \(path): \(data.count) bytes; 32 or more needed")
        }
        return SymmetricKey(data: data)
    }
}
