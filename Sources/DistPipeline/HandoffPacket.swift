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
        let compact = Self.isCompact(l3: info.l3, tunnel: info.tunnel)
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

    /// Whether the key of a flow so parsed fits the slot: an IPv4 packet outside tunnels, whose
    /// key is its two addresses (mapped), ports, protocol and VLANs.
    @inlinable @inline(__always)
    static func isCompact(l3: L3Kind, tunnel: TunnelKind) -> Bool {
        l3 == .ipv4 && tunnel == .none
    }

    /// Writes what ``init(probe:info:frame:packet:packetLength:segmentLength:port:)`` makes
    /// (with `stampSeconds`) of the probe and parse where they lie into `slot`, as eight words
    /// streamed past the caches: the receiver does not wait for the slot's line to come back
    /// from the owner's core, which read it last. The ring's flush fences them before it
    /// publishes the slot.
    @inlinable @inline(__always)
    public static func stream(
        probe: UnsafePointer<FlowProbe>, info: UnsafePointer<PacketInfo>, frame: UnsafePointer<UInt8>,
        packet: OpaquePointer?, packetLength: UInt32, segmentLength: UInt16, port: UInt16, stampSeconds: UInt32,
        to slot: UnsafeMutablePointer<HandoffPacket>
    ) {
        // (The tunnel read once for both: through `flowL3Offset`, 6 instructions more a packet.)
        let tunnel = info.pointee.tunnel
        let compact = isCompact(l3: info.pointee.l3, tunnel: tunnel)
        let l3Offset = tunnel == .none ? info.pointee.l3Offset : info.pointee.innerL3Offset
        let flags =
            (info.pointee.l4 == .tcp ? Flags.tcp : 0) | (probe.pointee.fromLo ? Flags.fromLo : 0)
            | (compact ? Flags.compact : 0)
        // Little-endian words in the order of the stored properties (checked by a test).
        dist_stream_words(
            slot,
            UInt64(UInt(bitPattern: packet)),
            UInt64(UInt(bitPattern: frame)),
            probe.pointee.hash,
            probe.pointee.key.loAddr.lo & 0xFFFF_FFFF | probe.pointee.key.hiAddr.lo << 32,
            UInt64(probe.pointee.key.loPort) | UInt64(probe.pointee.key.hiPort) << 16
                | UInt64(probe.pointee.key.vlanKey) << 32,
            UInt64(packetLength) | UInt64(stampSeconds) << 32,
            UInt64(segmentLength) | UInt64(port) << 16 | UInt64(l3Offset) << 32
                | UInt64(probe.pointee.key.proto) << 48 | UInt64(info.pointee.tcpFlags) << 56,
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
