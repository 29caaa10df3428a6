import DistPacket

/// The canonical bidirectional key of a flow: protocol, both endpoints ordered so that the
/// lower (address, port) comes first, and the VLAN tags. Both directions of a flow map to
/// the same key; ``FlowKey/canonical(_:)`` also says which direction a packet travels.
///
/// A tunnelled flow (an IP packet inside an IP packet) is the inner packets' flow between two
/// tunnel ends: `loAddr`, `hiAddr` and `proto` are the outer header's (what a switch matches and
/// a NIC hashes, so filters and owners follow them), `innerLo` and `innerHi` the inner
/// endpoints on the same sides, with their ports and `innerProto`.
public struct FlowKey: Hashable, Sendable, Codable, CustomStringConvertible, BitwiseCopyable {
    public var loAddr: IPAddress
    public var hiAddr: IPAddress
    public var loPort: UInt16
    public var hiPort: UInt16
    public var proto: UInt8
    /// A tunnelled flow's inner protocol and endpoints (zero when not tunnelled). (In this
    /// order the key takes 80 bytes, no padding.)
    public var innerProto: UInt8
    public var tunnel: TunnelKind
    /// Outer VLAN id in bits 12..23, inner in bits 0..11 (see ``PacketInfo/vlanKey``).
    public var vlanKey: UInt32
    public var innerLo: IPAddress
    public var innerHi: IPAddress

    @inlinable
    public init(
        loAddr: IPAddress, hiAddr: IPAddress, loPort: UInt16, hiPort: UInt16, proto: UInt8, vlanKey: UInt32,
        inner: (lo: IPAddress, hi: IPAddress, proto: UInt8, tunnel: TunnelKind)? = nil
    ) {
        self.loAddr = loAddr
        self.hiAddr = hiAddr
        self.loPort = loPort
        self.hiPort = hiPort
        self.proto = proto
        self.vlanKey = vlanKey
        innerLo = inner?.lo ?? .zero
        innerHi = inner?.hi ?? .zero
        innerProto = inner?.proto ?? 0
        tunnel = inner?.tunnel ?? .none
    }

    @inlinable public var isTunnelled: Bool { tunnel != .none }

    /// The hosts the flow's packets can teach detection about: its endpoints, and a tunnelled
    /// flow's inner endpoints too.
    public var hosts: [IPAddress] { isTunnelled ? [loAddr, hiAddr, innerLo, innerHi] : [loAddr, hiAddr] }

    /// Whether the endpoints are in order (as ``canonical(_:)`` puts them): lower (address,
    /// port) first; a tunnelled flow by its outer addresses, then its inner ones.
    @inlinable public var isCanonical: Bool {
        if loAddr != hiAddr { return loAddr < hiAddr }
        if isTunnelled && innerLo != innerHi { return innerLo < innerHi }
        return loPort <= hiPort
    }

    /// The key of a parsed packet, and whether the packet goes from the low endpoint to the
    /// high one; `frame` is the frame parsed (a tunnel's outer addresses are read from it).
    /// Only meaningful when `info.hasFlow`.
    @inlinable @inline(__always)
    public static func canonical(_ info: PacketInfo, frame: UnsafeRawPointer) -> (key: FlowKey, fromLo: Bool) {
        if info.tunnel != .none { return tunnelled(info, outer: info.outerAddresses(in: frame)) }
        return canonical(info)
    }

    /// The flow a frame belongs to (nil: none the table tracks; not IP, or cut short).
    public static func of(_ frame: ArraySlice<UInt8>) -> FlowKey? {
        frame.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return nil }
            var info = PacketInfo()
            PacketParser.parse(base, length: raw.count, into: &info)
            return info.hasFlow ? canonical(info, frame: base).key : nil
        }
    }

    public static func of(_ frame: [UInt8]) -> FlowKey? { of(frame[...]) }

    /// The key of a packet outside any tunnel (see ``canonical(_:frame:)``).
    @inlinable @inline(__always)
    public static func canonical(_ info: PacketInfo) -> (key: FlowKey, fromLo: Bool) {
        canonical(
            src: info.src, dst: info.dst, srcPort: info.srcPort, dstPort: info.dstPort, proto: info.ipProto,
            vlanKey: info.vlanKey)
    }

    /// The key of a packet outside any tunnel, from its header fields.
    @inlinable @inline(__always)
    public static func canonical(
        src: IPAddress, dst: IPAddress, srcPort: UInt16, dstPort: UInt16, proto: UInt8, vlanKey: UInt32
    ) -> (key: FlowKey, fromLo: Bool) {
        let srcFirst = src < dst || (src == dst && srcPort <= dstPort)
        if srcFirst {
            return (
                FlowKey(loAddr: src, hiAddr: dst, loPort: srcPort, hiPort: dstPort, proto: proto, vlanKey: vlanKey),
                true
            )
        }
        return (
            FlowKey(loAddr: dst, hiAddr: src, loPort: dstPort, hiPort: srcPort, proto: proto, vlanKey: vlanKey), false
        )
    }

    /// A tunnelled packet's key (see ``canonical(_:frame:)``).
    @inlinable
    public static func tunnelled(
        _ info: PacketInfo, outer: (src: IPAddress, dst: IPAddress)
    ) -> (key: FlowKey, fromLo: Bool) {
        let srcFirst =
            outer.src != outer.dst
            ? outer.src < outer.dst
            : info.src != info.dst ? info.src < info.dst : info.srcPort <= info.dstPort
        if srcFirst {
            return (
                FlowKey(
                    loAddr: outer.src, hiAddr: outer.dst, loPort: info.srcPort, hiPort: info.dstPort,
                    proto: info.outerProto, vlanKey: info.vlanKey,
                    inner: (info.src, info.dst, info.ipProto, info.tunnel)), true
            )
        }
        return (
            FlowKey(
                loAddr: outer.dst, hiAddr: outer.src, loPort: info.dstPort, hiPort: info.srcPort,
                proto: info.outerProto, vlanKey: info.vlanKey,
                inner: (info.dst, info.src, info.ipProto, info.tunnel)), false
        )
    }

    /// A 64-bit hash of the key under `seed` (a flow table's ``FlowTable/hashSeed``: secret
    /// and random per process, so that traffic cannot be made of keys that collide). Symmetric
    /// by construction (the key is canonical), so both directions land in the same slot. Three
    /// 64x64->128 multiplies (wyhash's mixing, the seed in each), no table.
    @inlinable @inline(__always)
    public func hashValue64(seed: UInt64) -> UInt64 {
        @inline(__always) func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
            let r = a.multipliedFullWidth(by: b)
            return r.high ^ r.low
        }
        let tail = UInt64(loPort) << 48 | UInt64(hiPort) << 32 | UInt64(proto) << 24 | UInt64(vlanKey & 0xFF_FFFF)
        // A tunnelled key's inner endpoints (zero otherwise) enter with the outer ones on their
        // side: within one tunnel (fixed outer ends) distinct inner ends stay distinct before
        // the multiply, so its flows' hashes cannot be made to collide. (Without a branch: a
        // test for tunnels cost 26 instructions a packet, the compiler computing both arms.)
        let kind = UInt64(innerProto) << 8 | UInt64(tunnel.rawValue)
        let a = mix(
            loAddr.hi ^ innerLo.hi ^ 0xA076_1D64_78BD_642F ^ seed, loAddr.lo ^ innerLo.lo ^ 0xE703_7ED1_A0B4_28DB)
        let b = mix(
            hiAddr.hi ^ innerHi.hi ^ 0x8EBC_6AF0_9C88_C6E3 ^ kind, hiAddr.lo ^ innerHi.lo ^ 0x5899_65CC_7537_4CC3 ^ seed
        )
        return mix(a ^ tail ^ 0x1D8E_4E27_C47D_124F, b ^ 0x9E37_79B9_7F4A_7C15 ^ seed.byteSwapped)
    }

    /// Equality without branches: one OR of XORs over every word of the key.
    @inlinable @inline(__always)
    public static func == (a: FlowKey, b: FlowKey) -> Bool {
        let addresses =
            (a.loAddr.hi ^ b.loAddr.hi) | (a.loAddr.lo ^ b.loAddr.lo)
            | (a.hiAddr.hi ^ b.hiAddr.hi) | (a.hiAddr.lo ^ b.hiAddr.lo)
        let rest =
            UInt64(a.loPort ^ b.loPort) | UInt64(a.hiPort ^ b.hiPort) << 16
            | UInt64(a.proto ^ b.proto) << 32 | UInt64(a.innerProto ^ b.innerProto) << 40
            | UInt64(a.tunnel.rawValue ^ b.tunnel.rawValue) << 48
        let inner =
            (a.innerLo.hi ^ b.innerLo.hi) | (a.innerLo.lo ^ b.innerLo.lo)
            | (a.innerHi.hi ^ b.innerHi.hi) | (a.innerHi.lo ^ b.innerHi.lo)
        return addresses | rest | inner | UInt64(a.vlanKey ^ b.vlanKey) == 0
    }

    public var description: String {
        let vlan = "vlan \(vlanKey >> 12)/\(vlanKey & 0xFFF)"
        guard isTunnelled else { return "\(proto) \(loAddr.text):\(loPort) <-> \(hiAddr.text):\(hiPort) \(vlan)" }
        return "\(innerProto) \(innerLo.text):\(loPort) <-> \(innerHi.text):\(hiPort) in \(proto) \(loAddr.text) <-> "
            + "\(hiAddr.text) \(vlan)"
    }
}

/// A packet's flow key, direction and hash, computed once per packet so that a burst can
/// prefetch every packet's slot and entry before any lookup waits on memory.
public struct FlowProbe: Sendable, BitwiseCopyable {
    public var key: FlowKey
    public var hash: UInt64
    public var fromLo: Bool

    /// `seed`: the flow table's (``FlowTable/hashSeed``); `frame`: the frame parsed.
    @inlinable @inline(__always)
    public init(_ info: PacketInfo, frame: UnsafeRawPointer, seed: UInt64) {
        // The two kinds apart, each key hashed where it is made: the common key's zero inner
        // endpoints then fold away from its hash (merged first, they cost 30 instructions a
        // packet).
        if _fastPath(info.tunnel == .none) {
            self.init(info, seed: seed)
        } else {
            self = FlowProbe.tunnelled(info, frame: frame, seed: seed)
        }
    }

    /// ``init(_:frame:seed:)`` of the parse at `info`, read field by field where it lies: a
    /// parse just written by the parser, copied whole into a probe's arguments, made the fast
    /// path wait for the parser's small stores to reach the copy's wide loads.
    @inlinable @inline(__always)
    public init(parse info: UnsafePointer<PacketInfo>, frame: UnsafeRawPointer, seed: UInt64) {
        if _fastPath(info.pointee.tunnel == .none) {
            (key, fromLo) = FlowKey.canonical(
                src: info.pointee.src, dst: info.pointee.dst, srcPort: info.pointee.srcPort,
                dstPort: info.pointee.dstPort, proto: info.pointee.ipProto, vlanKey: info.pointee.vlanKey)
            hash = key.hashValue64(seed: seed)
        } else {
            self = FlowProbe.tunnelled(parse: info, frame: frame, seed: seed)
        }
    }

    @inline(never) @usableFromInline
    static func tunnelled(parse info: UnsafePointer<PacketInfo>, frame: UnsafeRawPointer, seed: UInt64) -> FlowProbe {
        tunnelled(info.pointee, frame: frame, seed: seed)
    }

    @inline(never) @usableFromInline
    static func tunnelled(_ info: PacketInfo, frame: UnsafeRawPointer, seed: UInt64) -> FlowProbe {
        let (key, fromLo) = FlowKey.tunnelled(info, outer: info.outerAddresses(in: frame))
        return FlowProbe(key: key, hash: key.hashValue64(seed: seed), fromLo: fromLo)
    }

    /// A probe from its parts: `hash` must be `key.hashValue64(seed:)` under the seed of the
    /// table it probes.
    @inlinable @inline(__always)
    public init(key: FlowKey, hash: UInt64, fromLo: Bool) {
        self.key = key
        self.hash = hash
        self.fromLo = fromLo
    }

    /// The probe of a packet outside any tunnel.
    @inlinable @inline(__always)
    public init(_ info: PacketInfo, seed: UInt64) {
        let (key, fromLo) = FlowKey.canonical(info)
        self.key = key
        self.fromLo = fromLo
        hash = key.hashValue64(seed: seed)
    }
}
