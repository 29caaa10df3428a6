import CDistIntrinsics
import DistFlow
import DistPacket

/// A packet on its way to the worker that owns its flow, with what the receiver's parse found
/// that the owner needs (its flow, direction and hash, TCP flags, where its IP header starts),
/// so that the owner does not parse it again.
///
/// One cache line: each slot is written on the receiver's core and read on the owner's, so
/// every line of it crosses between the cores. An IPv4 flow outside tunnels (96% of mix-a's
/// frames) fits whole: its key's addresses, ports, protocol and VLANs. Any other flow's key
/// (IPv6, tunnels: 80 bytes) does not; the owner finds it by parsing the frame again
/// (``probe(seed:)``), one parse for those frames rather than a second line for every frame.
public struct HandoffPacket: @unchecked Sendable, BitwiseCopyable {
    /// The receiver's handle for the packet (dist-vnf: its mbuf), returned to it untouched.
    public var packet: OpaquePointer?
    public var frame: UnsafePointer<UInt8>
    /// The flow key's hash under the table's seed (``FlowProbe/hash``).
    public var hash: UInt64
    /// An IPv4 flow's key outside tunnels (``isCompact``): its low and high address and port.
    public var loAddr: UInt32
    public var hiAddr: UInt32
    public var loPort: UInt16
    public var hiPort: UInt16
    public var vlanKey: UInt32
    public var packetLength: UInt32
    /// Its receive time in seconds as its port stamped it (`.max`: none; detection dates by
    /// the second: see ``FastPath/stamps``).
    public var stampSeconds: UInt32 = .max
    public var segmentLength: UInt16
    /// The port it leaves by (the receiver's route).
    public var port: UInt16
    public var l3Offset: UInt16
    public var proto: UInt8
    /// TCP flags, for a TCP packet.
    public var tcpFlags: UInt8
    /// ``Flags``.
    @usableFromInline var flags: UInt8

    @usableFromInline enum Flags {
        @usableFromInline static let tcp: UInt8 = 1
        @usableFromInline static let fromLo: UInt8 = 2
        /// The key is in the slot; otherwise the owner parses the frame for it.
        @usableFromInline static let compact: UInt8 = 4
    }

    @inlinable @inline(__always)
    public init(
        probe: FlowProbe, info: borrowing PacketInfo, frame: UnsafePointer<UInt8>, packet: OpaquePointer?,
        packetLength: UInt32, segmentLength: UInt16, port: UInt16
    ) {
        self.packet = packet
        self.frame = frame
        hash = probe.hash
        let compact =
            probe.key.tunnel == .none && probe.key.loAddr.isIPv4Mapped && probe.key.hiAddr.isIPv4Mapped
        loAddr = UInt32(truncatingIfNeeded: probe.key.loAddr.lo)
        hiAddr = UInt32(truncatingIfNeeded: probe.key.hiAddr.lo)
        loPort = probe.key.loPort
        hiPort = probe.key.hiPort
        vlanKey = probe.key.vlanKey
        proto = probe.key.proto
        self.packetLength = packetLength
        self.segmentLength = segmentLength
        self.port = port
        l3Offset = info.flowL3Offset
        tcpFlags = info.tcpFlags
        flags =
            (info.l4 == .tcp ? Flags.tcp : 0) | (probe.fromLo ? Flags.fromLo : 0) | (compact ? Flags.compact : 0)
    }

    /// Writes what ``init(probe:info:frame:packet:packetLength:segmentLength:port:)`` makes
    /// (with `stampSeconds`) into `slot` as eight words streamed past the caches: the
    /// receiver does not wait for the slot's line to come back from the owner's core, which
    /// read it last. The ring's flush fences them before it publishes the slot.
    @inlinable @inline(__always)
    public static func stream(
        probe: borrowing FlowProbe, info: borrowing PacketInfo, frame: UnsafePointer<UInt8>, packet: OpaquePointer?,
        packetLength: UInt32, segmentLength: UInt16, port: UInt16, stampSeconds: UInt32,
        to slot: UnsafeMutablePointer<HandoffPacket>
    ) {
        let lo = probe.key.loAddr
        let hi = probe.key.hiAddr
        let compact = probe.key.tunnel == .none && lo.isIPv4Mapped && hi.isIPv4Mapped
        let flags =
            (info.l4 == .tcp ? Flags.tcp : 0) | (probe.fromLo ? Flags.fromLo : 0) | (compact ? Flags.compact : 0)
        // Little-endian words in the order of the stored properties (checked by a test).
        dist_stream_words(
            slot,
            UInt64(UInt(bitPattern: packet)),
            UInt64(UInt(bitPattern: frame)),
            probe.hash,
            lo.lo & 0xFFFF_FFFF | hi.lo << 32,
            UInt64(probe.key.loPort) | UInt64(probe.key.hiPort) << 16 | UInt64(probe.key.vlanKey) << 32,
            UInt64(packetLength) | UInt64(stampSeconds) << 32,
            UInt64(segmentLength) | UInt64(port) << 16 | UInt64(info.flowL3Offset) << 32
                | UInt64(probe.key.proto) << 48 | UInt64(info.tcpFlags) << 56,
            UInt64(flags))
    }

    public var isTCP: Bool { flags & Flags.tcp != 0 }

    /// Whether the flow's key travels in the slot (an IPv4 flow outside tunnels).
    public var isCompact: Bool { flags & Flags.compact != 0 }

    /// The probe the receiver made of the packet: from the slot, or (a flow whose key does not
    /// fit) by parsing the frame as the receiver did. `seed`: the owner's table's.
    @inlinable @inline(__always)
    public func probe(seed: UInt64) -> FlowProbe {
        guard isCompact else { return reparsed(seed: seed) }
        let key = FlowKey(
            loAddr: IPAddress(ipv4: loAddr), hiAddr: IPAddress(ipv4: hiAddr), loPort: loPort, hiPort: hiPort,
            proto: proto, vlanKey: vlanKey)
        return FlowProbe(key: key, hash: hash, fromLo: flags & Flags.fromLo != 0)
    }

    @inline(never) @usableFromInline
    func reparsed(seed: UInt64) -> FlowProbe {
        var info = PacketInfo()
        PacketParser.parse(UnsafeRawPointer(frame), length: Int(segmentLength), into: &info)
        return FlowProbe(info, frame: frame, seed: seed)
    }
}
