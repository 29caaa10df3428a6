import DistPacket

/// The canonical bidirectional key of a flow: protocol, both endpoints ordered so that the
/// lower (address, port) comes first, and the VLAN tags. Both directions of a flow map to
/// the same key; ``FlowKey/canonical(_:)`` also says which direction a packet travels.
public struct FlowKey: Hashable, Sendable, Codable, CustomStringConvertible, BitwiseCopyable {
    public var loAddr: IPAddress
    public var hiAddr: IPAddress
    public var loPort: UInt16
    public var hiPort: UInt16
    public var proto: UInt8
    /// Outer VLAN id in bits 12..23, inner in bits 0..11 (see ``PacketInfo/vlanKey``).
    public var vlanKey: UInt32

    @inlinable
    public init(loAddr: IPAddress, hiAddr: IPAddress, loPort: UInt16, hiPort: UInt16, proto: UInt8, vlanKey: UInt32) {
        self.loAddr = loAddr
        self.hiAddr = hiAddr
        self.loPort = loPort
        self.hiPort = hiPort
        self.proto = proto
        self.vlanKey = vlanKey
    }

    /// The key of a parsed packet, and whether the packet goes from the low endpoint to the
    /// high one. Only meaningful when `info.hasFlow`.
    @inlinable @inline(__always)
    public static func canonical(_ info: PacketInfo) -> (key: FlowKey, fromLo: Bool) {
        let srcFirst = info.src < info.dst || (info.src == info.dst && info.srcPort <= info.dstPort)
        if srcFirst {
            return (
                FlowKey(
                    loAddr: info.src, hiAddr: info.dst, loPort: info.srcPort, hiPort: info.dstPort,
                    proto: info.ipProto, vlanKey: info.vlanKey), true
            )
        }
        return (
            FlowKey(
                loAddr: info.dst, hiAddr: info.src, loPort: info.dstPort, hiPort: info.srcPort,
                proto: info.ipProto, vlanKey: info.vlanKey), false
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
        let a = mix(loAddr.hi ^ 0xA076_1D64_78BD_642F ^ seed, loAddr.lo ^ 0xE703_7ED1_A0B4_28DB)
        let b = mix(hiAddr.hi ^ 0x8EBC_6AF0_9C88_C6E3, hiAddr.lo ^ 0x5899_65CC_7537_4CC3 ^ seed)
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
            | UInt64(a.proto ^ b.proto) << 32
        return addresses | rest | UInt64(a.vlanKey ^ b.vlanKey) == 0
    }

    public var description: String {
        "\(proto) \(loAddr.text):\(loPort) <-> \(hiAddr.text):\(hiPort) vlan \(vlanKey >> 12)/\(vlanKey & 0xFFF)"
    }
}

/// A packet's flow key, direction and hash, computed once per packet so that a burst can
/// prefetch every packet's slot and entry before any lookup waits on memory.
public struct FlowProbe: Sendable, BitwiseCopyable {
    public var key: FlowKey
    public var hash: UInt64
    public var fromLo: Bool

    /// `seed`: the flow table's (``FlowTable/hashSeed``).
    @inlinable @inline(__always)
    public init(_ info: PacketInfo, seed: UInt64) {
        let (key, fromLo) = FlowKey.canonical(info)
        self.key = key
        self.fromLo = fromLo
        hash = key.hashValue64(seed: seed)
    }
}
