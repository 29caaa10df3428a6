import Crypto
import DistChannel
import DistFlow
import DistMove
import DistState
import Foundation

/// What one Move's destination reports back to its source at the end (in the channel's last
/// message), and the source on to the controller.
public struct DestinationSummary: Sendable, Equatable {
    public var perFlowStates = 0
    public var multiFlowStates = 0
    public var allFlowsStates = 0
    public var packets = 0
    /// Packets that waited for the release (or for a state) before being processed.
    public var buffered = 0
    /// Most packets waiting at once.
    public var maxBuffered = 0
    /// Packets that found the buffer full: processed at once, out of turn (never dropped).
    public var overflow = 0
    public var deserializeNanoseconds: UInt64 = 0

    public init() {}

    var fields: [UInt64] {
        [
            UInt64(perFlowStates), UInt64(multiFlowStates), UInt64(allFlowsStates), UInt64(packets), UInt64(buffered),
            UInt64(maxBuffered), UInt64(overflow), deserializeNanoseconds,
        ]
    }

    public func encoded() -> [UInt8] {
        fields.flatMap { v in (0..<8).reversed().map { UInt8(truncatingIfNeeded: v >> UInt64(8 * $0)) } }
    }

    public init?(decoding bytes: [UInt8]) {
        guard bytes.count == 64 else { return nil }
        let v = (0..<8).map { i in bytes[(i * 8)..<(i * 8 + 8)].reduce(UInt64(0)) { $0 << 8 | UInt64($1) } }
        guard v[0..<7].allSatisfy({ $0 <= UInt64(Int32.max) }) else { return nil }
        perFlowStates = Int(v[0])
        multiFlowStates = Int(v[1])
        allFlowsStates = Int(v[2])
        packets = Int(v[3])
        buffered = Int(v[4])
        maxBuffered = Int(v[5])
        overflow = Int(v[6])
        deserializeNanoseconds = v[7]
    }
}

/// Redirected packets packed into one channel payload: `u16 length` then the packet, repeated.
public enum PacketPacking {
    public static func unpack(_ payload: [UInt8]) -> [[UInt8]]? { slices(payload)?.map { Array($0) } }

    /// The same as slices of `payload` (each holds it, none copies it).
    public static func slices(_ payload: [UInt8]) -> [ArraySlice<UInt8>]? {
        var out: [ArraySlice<UInt8>] = []
        var at = 0
        while at < payload.count {
            guard at + 2 <= payload.count else { return nil }
            let n = Int(payload[at]) << 8 | Int(payload[at + 1])
            at += 2
            guard n > 0, at + n <= payload.count else { return nil }
            out.append(payload[at..<(at + n)])
            at += n
        }
        return out.isEmpty ? nil : out
    }
}

/// State chunks packed into channel payloads: `u16 length` then the chunk, repeated.
public enum StatePacking {
    public static func unpack(_ payload: [UInt8]) throws -> [StateChunk] {
        var out: [StateChunk] = []
        var at = 0
        while at < payload.count {
            guard at + 2 <= payload.count else {
                throw StateCodecError.truncated(needed: 2, available: payload.count - at)
            }
            let n = Int(payload[at]) << 8 | Int(payload[at + 1])
            at += 2
            guard at + n <= payload.count else {
                throw StateCodecError.truncated(needed: n, available: payload.count - at)
            }
            out.append(try StateCodec.decode(Array(payload[at..<(at + n)])))
            at += n
        }
        return out
    }
}

/// The source's side of one Move over the channel: it packs state chunks into frames up to
/// the payload limit, sends redirected packets in the same sequence space (after every state
/// queued before them), tells the destination when it may process what it buffered, and
/// ends the Move. No I/O and no clock: the transfer lcore (or a test) moves the bytes.
public final class TransferSource {
    public let endpoint: ChannelEndpoint
    public let maxPayload: Int
    var pending: [UInt8] = []
    /// Redirected packets not yet handed to the channel (`PacketPacking`), and how many.
    var pendingPackets: [UInt8] = []
    var pendingPacketCount = 0
    /// Messages handed to the channel so far (message n goes out with sequence n + 1).
    var messages: UInt32 = 0
    /// The sequence number of the release message (0: not sent).
    public private(set) var releaseSequence: UInt32 = 0
    public private(set) var endSent = false
    public private(set) var summary: DestinationSummary?
    /// Order-preserving Moves: the destination said the switch's copies reach it.
    public private(set) var copiesArrive = false
    /// The messages of redirected packets from `redirectedHead` on, as they went to the channel
    /// (an abort gives back the packets the destination did not process). Those it processed
    /// (delivered after the release) are forgotten as their acknowledgements come: at a million
    /// packets a second a Move must not keep each one to its end. A message's payload is the
    /// one the channel holds for retransmission: keeping it costs no copy.
    var redirected: [KeptPackets] = []
    var redirectedHead = 0
    /// Packets in `redirected[redirectedHead...]`.
    var keptCount = 0
    var keptMessageBytes = 0
    /// Redirected packets kept for a possible abort.
    public var packetsKept: Int { keptCount + pendingPacketCount }
    /// Their bytes (what a Move whose channel falls behind holds in memory).
    public var bytesKept: Int { keptMessageBytes + pendingPackets.count }

    struct KeptPackets {
        var sequence: UInt32
        /// Packed (`u16 length` then the packet, repeated), or one packet that went in parts.
        var bytes: [UInt8]
        var packed: Bool
        var count: Int
        var packets: [[UInt8]] { packed ? PacketPacking.unpack(bytes) ?? [] : [bytes] }
    }

    public struct Counters: Sendable, Equatable {
        public var perFlowStates = 0
        public var multiFlowStates = 0
        public var allFlowsStates = 0
        public var stateFrames = 0
        public var stateBytes = 0
        public var packetsRedirected = 0
        public var redirectedBytes = 0
        /// States too large for one channel frame, sent in parts (``ChannelFrame/Kind/statePart``).
        public var statesInParts = 0
        /// Redirected packets too large for one channel frame, sent in parts (``ChannelFrame/Kind/packetPart``).
        public var packetsInParts = 0
        /// Redirected packets that could not go at all (over 65,535 bytes; none of the data
        /// plane's mbufs holds one).
        public var packetsTooLarge = 0
        /// Frames the redirected packets went in.
        public var packetFrames = 0
        /// Encoding and compressing the states.
        public var serializeNanoseconds: UInt64 = 0
        /// Frames of states or packets that went compressed, and the bytes of every state
        /// frame's and packets frame's payload as it went (``stateBytes`` and
        /// ``redirectedBytes``: before compression).
        public var compressedFrames = 0
        public var stateBytesSent = 0
        public var packetBytesSent = 0
    }
    public private(set) var counters = Counters()

    /// `binding`: the Move's nonce, this instance's channel id and the destination's.
    /// `compress`: states go in compressed frames (``ChannelFrame/Kind/stateCompressed``).
    public init(
        moveID: UInt64, key: SymmetricKey, binding: ChannelFrame.Binding = .unbound,
        maxPayload: Int = ChannelFrame.maxPayload, compress: Bool = true,
        config: ChannelEndpoint.Config = ChannelEndpoint.Config()
    ) {
        endpoint = ChannelEndpoint(moveID: moveID, key: key, binding: binding, config: config)
        self.maxPayload = min(maxPayload, ChannelFrame.maxPayload)
        compressor = compress ? StateCompressor() : nil
        // (Compressed, a first pack of three frames' worth: states shrink three to ten times.)
        packLimit = compress ? 3 * self.maxPayload : self.maxPayload
    }

    /// Compresses frames of states, if they go compressed.
    let compressor: StateCompressor?
    /// States packed (uncompressed bytes) before they go: a frame's payload, or, compressed,
    /// what the last frames' ratio says will fit one frame once compressed.
    var packLimit: Int
    /// The most state bytes packed for one compressed frame (a destination inflates no more).
    public static let largestPack = 8 * ChannelFrame.maxPayload

    /// The Move's first message: the filter, and what the destination does with the packets
    /// the switch sends it for these flows until the end. `replyTo` is where the destination
    /// answers (the source's channel address, VLAN included).
    public func open(filter: String, switchTraffic: SwitchTraffic, replyTo: String = "") {
        let from = Array(replyTo.utf8.prefix(255))
        queue(.open, [switchTraffic.rawValue, UInt8(from.count)] + from + Array(filter.utf8))
    }

    /// Queues one state (serialized now, packed with the next ones). A state too large for a
    /// frame goes in parts, in frames of their own (``ChannelFrame/Kind/statePart``).
    public func add(_ chunk: StateChunk) {
        let start = DispatchTime.now().uptimeNanoseconds
        // Encoded in place, after its length (a frame's worth reserved at once: an array per
        // state, grown as it was written, then copied, was a fifth of the source's work);
        // taken out again in the rare case it does not fit.
        if pending.isEmpty { pending.reserveCapacity(packLimit) }
        let at = pending.count
        pending += [0, 0]
        StateCodec.encode(chunk, into: &pending)
        let size = pending.count - at - 2
        counters.serializeNanoseconds += DispatchTime.now().uptimeNanoseconds - start
        if 2 + size > maxPayload || pending.count > packLimit {
            let bytes = Array(pending[(at + 2)...])
            pending.removeSubrange(at...)
            flushState()
            if 2 + size > maxPayload {
                counters.stateFrames += queueInParts(.statePart, bytes)
                counters.stateBytes += size
                counters.stateBytesSent += size
                counters.statesInParts += 1
            } else {
                pending.reserveCapacity(packLimit)
                pending += [UInt8(size >> 8), UInt8(size & 0xFF)] + bytes
            }
        } else {
            pending[at] = UInt8(size >> 8)
            pending[at + 1] = UInt8(size & 0xFF)
        }
        switch chunk {
        case .perFlow: counters.perFlowStates += 1
        case .multiFlow: counters.multiFlowStates += 1
        case .allFlows: counters.allFlowsStates += 1
        }
    }

    /// Sends the states packed so far: compressed, in as few frames as they fit (halved at a
    /// state's boundary until each half does), or as they are where they do not compress.
    public func flushState() {
        guard !pending.isEmpty else { return }
        counters.stateBytes += pending.count
        if compressor != nil {
            let start = DispatchTime.now().uptimeNanoseconds
            let sent = counters.stateBytesSent
            sendCompressed(0..<pending.count)
            counters.serializeNanoseconds += DispatchTime.now().uptimeNanoseconds - start
            // Packs as much as this pack's ratio says fits a frame, with a margin: the ratio
            // moves slowly (from flows to hosts), and a pack that does not fit costs one more
            // compression of each half.
            let ratio = Double(pending.count) / Double(max(1, counters.stateBytesSent - sent))
            packLimit = min(Self.largestPack, max(maxPayload, Int(Double(maxPayload) * 0.9 * ratio)))
        } else {
            sendPlain(0..<pending.count)
        }
        pending = []
    }

    /// The packed states in `range` (whole states) compressed in one frame, or in two halves
    /// if they do not fit one, and so on; a state that does not compress goes as it is.
    func sendCompressed(_ range: Range<Int>) {
        if let packed = compressor!.compress(pending[range], limit: maxPayload), packed.count < range.count {
            counters.stateFrames += 1
            counters.compressedFrames += 1
            counters.stateBytesSent += packed.count
            queue(.stateCompressed, packed)
            return
        }
        let middle = Self.frameEnd(pending, from: range.lowerBound, limit: range.count / 2)
        guard middle > range.lowerBound, middle < range.upperBound else { return sendPlain(range) }
        sendCompressed(range.lowerBound..<middle)
        sendCompressed(middle..<range.upperBound)
    }

    /// The packed states in `range` as they are, in as many frames as they fill.
    func sendPlain(_ range: Range<Int>) {
        var at = range.lowerBound
        while at < range.upperBound {
            let end = Self.frameEnd(pending, from: at, limit: min(maxPayload, range.upperBound - at))
            counters.stateFrames += 1
            counters.stateBytesSent += end - at
            queue(.state, Array(pending[at..<end]))
            at = end
        }
    }

    /// Where a frame of the packed states from `at` ends: after the last whole state that fits
    /// `limit` bytes (every packed state fits a frame alone, and goes even past `limit`).
    static func frameEnd(_ packed: [UInt8], from at: Int, limit: Int) -> Int {
        var end = at
        while end < packed.count {
            let next = end + 2 + (Int(packed[end]) << 8 | Int(packed[end + 1]))
            if next - at > limit && end > at { break }
            end = next
        }
        return end
    }

    /// Queues `bytes` in consecutive frames of `kind`, each a flags byte (bit 0: the last part)
    /// and as much as fits; returns how many frames.
    func queueInParts(_ kind: ChannelFrame.Kind, _ bytes: [UInt8]) -> Int {
        var at = 0
        var frames = 0
        while at < bytes.count {
            let end = min(bytes.count, at + maxPayload - 1)
            queue(kind, [end == bytes.count ? 1 : 0] + bytes[at..<end])
            frames += 1
            at = end
        }
        return frames
    }

    func queue(_ kind: ChannelFrame.Kind, _ payload: [UInt8]) {
        // Redirected packets still packing go first: they came before this message.
        if kind != .packets { flushPackets() }
        endpoint.send(kind, payload)
        messages += 1
    }

    /// Sends a packet of a moved flow to the destination, after every state queued before it.
    /// Packets redirected between two polls share a frame (``flushPackets()``): at 10,000
    /// packets a second a
    /// frame each was more frames than the channel could carry over a path that drops 10% of
    /// them. A packet too large for a frame goes in parts, in frames of their own. Returns
    /// false when it cannot go (empty, over 65,535 bytes, or the Move has ended).
    @discardableResult
    public func redirect(_ packet: UnsafeRawBufferPointer) -> Bool {
        guard !endSent, endpoint.state == .open else { return false }
        guard packet.count <= Self.largestPacket, packet.count > 0 else {
            counters.packetsTooLarge += 1
            return false
        }
        flushState()
        if packet.count > maxPayload - 2 {
            let frame = Array(packet)
            // (`queue` sends the packets packed so far first.)
            counters.packetFrames += queueInParts(.packetPart, frame)
            // Processed at the destination once its last part is in.
            redirected.append(KeptPackets(sequence: messages, bytes: frame, packed: false, count: 1))
            keptCount += 1
            keptMessageBytes += frame.count
            counters.packetsInParts += 1
        } else {
            if pendingPackets.count + 2 + packet.count > maxPayload { flushPackets() }
            // (A frame's worth at once: grown packet by packet, it was copied at each doubling.)
            if pendingPackets.isEmpty { pendingPackets.reserveCapacity(maxPayload) }
            pendingPackets.append(UInt8(packet.count >> 8))
            pendingPackets.append(UInt8(packet.count & 0xFF))
            pendingPackets.append(contentsOf: packet)
            pendingPacketCount += 1
        }
        counters.packetsRedirected += 1
        counters.redirectedBytes += packet.count
        return true
    }

    @discardableResult
    public func redirect(_ frame: [UInt8]) -> Bool { frame.withUnsafeBytes { redirect($0) } }

    /// The largest packet the channel takes (an IPv4 packet's limit with its link header, and
    /// more than one mbuf of the data plane holds).
    public static let largestPacket = 65_535

    /// Hands the redirected packets packed so far to the channel, as one frame.
    public func flushPackets() {
        guard pendingPacketCount > 0 else { return }
        let payload = pendingPackets
        let count = pendingPacketCount
        pendingPackets = []
        pendingPacketCount = 0
        counters.packetFrames += 1
        // Packets of the same flows share much of their headers: compressed, a frame of the
        // DPDK test bed's flows took a sixth of its bytes, one of mix-a's mixed traffic five
        // sixths; one that saves less goes as it is. (Kept as they are, for an abort.)
        if let compressor, let packed = compressor.compress(payload, limit: payload.count - payload.count / 8) {
            counters.compressedFrames += 1
            counters.packetBytesSent += packed.count
            queue(.packetsCompressed, packed)
        } else {
            counters.packetBytesSent += payload.count
            queue(.packets, payload)
        }
        redirected.append(KeptPackets(sequence: messages, bytes: payload, packed: true, count: count))
        keptCount += count
        keptMessageBytes += payload.count
    }

    /// The destination may process the packets it holds, and those that follow, as they come.
    public func release() {
        guard releaseSequence == 0 else { return }
        flushState()
        queue(.release, [])
        releaseSequence = messages
    }

    /// Nothing more comes: the destination answers with its summary.
    public func end() {
        guard !endSent else { return }
        flushState()
        release()
        queue(.end, [])
        endSent = true
    }

    /// Every message delivered and the destination's summary in.
    public var complete: Bool { endSent && endpoint.idle && summary != nil }
    /// Messages handed to the channel so far (the last one's sequence number).
    public var messagesQueued: UInt32 { messages }

    public func receive(_ bytes: [UInt8], now: UInt64) {
        for frame in endpoint.receive(bytes, now: now) {
            if frame.kind == .end { summary = DestinationSummary(decoding: frame.payload) }
            if frame.kind == .copies { copiesArrive = true }
        }
        forgetProcessed()
    }

    /// What to put on the wire now. The packets redirected since the last poll go in one frame
    /// when the channel has nothing else waiting; while it has (its window is full), they
    /// keep packing until a frame is full, so that a channel that cannot keep up carries full
    /// frames rather than a queue of small ones (at 10,000 packets a second over a path that
    /// drops 10% of its frames, a frame per poll carried 4 packets on average, and the
    /// backlog held the Move for seconds).
    public func poll(now: UInt64) -> [[UInt8]] {
        var out = endpoint.poll(now: now)
        if pendingPacketCount > 0 && endpoint.backlog == 0 {
            flushPackets()
            out += endpoint.poll(now: now)
        }
        return out
    }

    /// Drops the redirected packets the destination has processed: acknowledged, and at or
    /// after the release (neither ``unprocessed()`` nor ``unsent()`` can return them).
    func forgetProcessed() {
        let delivered = endpoint.acknowledgedThrough
        guard releaseSequence != 0, releaseSequence <= delivered else { return }
        while redirectedHead < redirected.count && redirected[redirectedHead].sequence <= delivered {
            keptCount -= redirected[redirectedHead].count
            keptMessageBytes -= redirected[redirectedHead].bytes.count
            redirectedHead += 1
        }
        // (Compacted when the dead prefix is the larger part: each message moves at most once.)
        if redirectedHead >= 64 && redirectedHead * 2 >= redirected.count {
            redirected.removeFirst(redirectedHead)
            redirectedHead = 0
        }
    }

    /// After the destination fell silent: redirected packets that went out and whose fate this
    /// end cannot know (not known to be processed there).
    public var inDoubt: Int {
        let sent = endpoint.sentThrough
        let unprocessed = unprocessedMessages().reduce(0) { $0 + $1.count }
        return unprocessed - redirected[redirectedHead...].filter { $0.sequence > sent }.reduce(0) { $0 + $1.count }
    }

    /// Redirected packets that never went out (still queued when the Move ended): only this end
    /// can process them.
    public func unsent() -> [[UInt8]] {
        let sent = endpoint.sentThrough
        return redirected[redirectedHead...].filter { $0.sequence > sent }.flatMap { $0.packets } + packing()
    }

    /// After an abort: the redirected packets the destination did not process (not delivered,
    /// or delivered before the release and so only buffered there), in order.
    public func unprocessed() -> [[UInt8]] {
        unprocessedMessages().flatMap { $0.packets } + packing()
    }

    /// The kept messages the destination has not processed.
    func unprocessedMessages() -> [KeptPackets] {
        let delivered = endpoint.acknowledgedThrough
        // The destination processes what it got once the release is in; before, it only holds.
        let releaseIn = releaseSequence != 0 && releaseSequence <= delivered
        return redirected[redirectedHead...].filter { !(releaseIn && $0.sequence <= delivered) }
    }

    /// The packets still packing for the next message.
    func packing() -> [[UInt8]] { pendingPacketCount == 0 ? [] : PacketPacking.unpack(pendingPackets) ?? [] }
}
