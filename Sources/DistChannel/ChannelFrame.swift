import CDistCipher
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
        /// State chunks as in ``state``, the payload compressed (one Zstandard frame that
        /// declares its size).
        case stateCompressed = 12
        /// Redirected packets as in ``packets``, the payload compressed (the same way).
        case packetsCompressed = 13
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
        let length = payload.count
        return [UInt8](unsafeUninitializedCapacity: Self.overhead + length) { frame, count in
            let out = frame.baseAddress!
            out[0] = Self.magic[0]
            out[1] = Self.magic[1]
            out[2] = Self.version
            out[3] = kind.rawValue
            BigEndian.store(moveID, count: 8, at: out + 4)
            BigEndian.store(cipher.binding.nonce, count: 8, at: out + 12)
            BigEndian.store(counter, count: 8, at: out + 20)
            BigEndian.store(UInt64(sequence), count: 4, at: out + 28)
            BigEndian.store(UInt64(ack), count: 4, at: out + 32)
            BigEndian.store(sack, count: 8, at: out + 36)
            BigEndian.store(UInt64(length), count: 2, at: out + 44)
            let iv = Self.gcmNonce(counter)
            let sealed = payload.withUnsafeBufferPointer { plain in
                cipher.sealer.seal(
                    iv: iv, header: UnsafeBufferPointer(start: out, count: Self.headerSize), plain: plain,
                    into: out + Self.headerSize)
            }
            // (Sealing fails only when the C library cannot allocate or the length exceeds an int.)
            precondition(sealed, "AES-GCM sealing failed")
            count = Self.overhead + length
        }
    }

    /// The same, deriving the keys for this one frame (tests and tools; an endpoint keeps its
    /// ``ChannelCipher``).
    public func encoded(key: SymmetricKey, binding: Binding = .unbound, counter: UInt64 = 1) -> [UInt8] {
        sealed(with: ChannelCipher(key: key, binding: binding), counter: counter)
    }

    /// AES-GCM's 12-byte nonce: four zero bytes, then the transmission counter.
    package static func gcmNonce(_ counter: UInt64) -> [UInt8] {
        var bytes: [UInt8] = [0, 0, 0, 0]
        BigEndian.append(counter, count: 8, to: &bytes)
        return bytes
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
        var opened = false
        let payload = [UInt8](unsafeUninitializedCapacity: length) { plain, count in
            opened = bytes.withUnsafeBufferPointer { frame in
                cipher.opener.open(
                    iv: gcmNonce(be(20, 8)), header: UnsafeBufferPointer(rebasing: frame[0..<headerSize]),
                    sealed: UnsafeBufferPointer(rebasing: frame[headerSize..<(headerSize + length)]),
                    tag: frame.baseAddress! + headerSize + length, into: plain.baseAddress)
            }
            count = opened ? length : 0
        }
        guard opened else { throw .badTag }
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
    let sealer: GCMContext
    let opener: GCMContext

    public init(key: SymmetricKey, binding: ChannelFrame.Binding) {
        self.binding = binding
        sealer = GCMContext(key: Self.derive(key, binding), sealing: true)
        opener = GCMContext(key: Self.derive(key, binding.reversed), sealing: false)
    }

    package static func derive(_ key: SymmetricKey, _ binding: ChannelFrame.Binding) -> SymmetricKey {
        var info = Array("DiST channel \(ChannelFrame.version)".utf8)
        var salt: [UInt8] = []
        BigEndian.append(binding.sender, count: 8, to: &info)
        BigEndian.append(binding.receiver, count: 8, to: &info)
        BigEndian.append(binding.nonce, count: 8, to: &salt)
        return HKDF<SHA256>.deriveKey(inputKeyMaterial: key, salt: salt, info: info, outputByteCount: 32)
    }
}

/// One direction's AES-256-GCM key, expanded once (OpenSSL's EVP context); it seals or opens
/// frame after frame with a new IV each. Not for two threads at once: an endpoint owns it.
final class GCMContext: @unchecked Sendable {
    private let context: OpaquePointer
    let sealing: Bool

    init(key: SymmetricKey, sealing: Bool) {
        self.sealing = sealing
        let made = key.withUnsafeBytes { dist_gcm_new($0.bindMemory(to: UInt8.self).baseAddress, sealing ? 1 : 0) }
        // (Fails only when the C library cannot allocate a few hundred bytes.)
        guard let made else { fatalError("AES-256-GCM: OpenSSL could not make a context") }
        context = made
    }

    deinit { dist_gcm_free(context) }

    /// Encrypts `plain` to `into` and writes the tag after it; `header` is authenticated too.
    func seal(
        iv: [UInt8], header: UnsafeBufferPointer<UInt8>, plain: UnsafeBufferPointer<UInt8>,
        into: UnsafeMutablePointer<UInt8>
    ) -> Bool {
        dist_gcm_seal(
            context, iv, header.baseAddress, header.count, plain.baseAddress, plain.count, into,
            into + plain.count) == 1
    }

    /// Decrypts `sealed` to `into`; true only when `tag` verifies over it and `header`.
    func open(
        iv: [UInt8], header: UnsafeBufferPointer<UInt8>, sealed: UnsafeBufferPointer<UInt8>,
        tag: UnsafePointer<UInt8>, into: UnsafeMutablePointer<UInt8>?
    ) -> Bool {
        dist_gcm_open(context, iv, header.baseAddress, header.count, sealed.baseAddress, sealed.count, tag, into) == 1
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
