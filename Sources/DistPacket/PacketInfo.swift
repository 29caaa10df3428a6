import CDistIntrinsics

/// What the parser learned about one frame. Filled in place by ``PacketParser/parse(_:length:into:)``
/// so that the fast path reuses one value per worker and allocates nothing.
///
/// Offsets are from the first byte of the frame. Addresses are 128-bit big-endian numbers;
/// IPv4 addresses are stored IPv4-mapped (`::ffff:a.b.c.d`) so one key type serves both families.
public struct PacketInfo: Sendable, Equatable {
    /// The network layer found (after any VLAN tags).
    public var l3: L3Kind = .none
    /// The transport layer found inside the IP packet.
    public var l4: L4Kind = .none
    /// The first thing that stopped or limited parsing; `.none` when the frame parsed whole.
    public var issue: ParseIssue = .none

    /// Number of 802.1Q / 802.1ad tags (0, 1 or 2 are parsed; more is an issue).
    public var vlanCount: UInt8 = 0
    /// Outer VLAN id in bits 12..23 and inner VLAN id in bits 0..11 (0 when untagged).
    public var vlanKey: UInt32 = 0
    /// EtherType after the VLAN tags (or the 802.3 length field for LLC frames).
    public var etherType: UInt16 = 0

    public var l3Offset: UInt16 = 0
    public var l4Offset: UInt16 = 0
    public var payloadOffset: UInt16 = 0
    public var payloadLength: UInt16 = 0

    /// IP protocol number (the last next-header for IPv6); 0 when not IP.
    public var ipProto: UInt8 = 0
    /// IPv4 TTL or IPv6 hop limit.
    public var ttl: UInt8 = 0
    public var fragment: FragmentKind = .none
    /// An IP packet inside an IP packet (IP-in-IP, IPv6-in-IP, GRE): then `src`, `dst`, the
    /// ports, `ipProto`, `ttl`, `ipLength`, `fragment` and the transport layer are the inner
    /// packet's, and `l3Offset` stays the outer header's, whose addresses (what a switch
    /// matches) ``outerAddresses(in:)`` reads. (The value stays within 64 bytes, a cache line,
    /// that the parser clears and the fast path copies per packet without a call to memcpy.)
    public var tunnel: TunnelKind = .none
    /// IPv4 total length or IPv6 payload length + 40, as written in the header.
    public var ipLength: UInt16 = 0

    public var src = IPAddress.zero
    public var dst = IPAddress.zero
    /// Transport ports (TCP/UDP); 0 for other protocols and for later fragments.
    public var srcPort: UInt16 = 0
    public var dstPort: UInt16 = 0
    /// TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10, URG 0x20, ECE, CWR).
    public var tcpFlags: UInt8 = 0
    /// The outer header's protocol, and where the inner IP header starts, in a tunnel (see
    /// ``tunnel``; 0 otherwise).
    public var outerProto: UInt8 = 0
    public var innerL3Offset: UInt16 = 0

    /// The IP header of the packet the flow is about: the inner one in a tunnel.
    @inlinable public var flowL3Offset: UInt16 { tunnel == .none ? l3Offset : innerL3Offset }

    /// A tunnelled packet's outer source and destination, from `frame` (the parsed frame).
    @inlinable
    public func outerAddresses(in frame: UnsafeRawPointer) -> (src: IPAddress, dst: IPAddress) {
        let o = Int(l3Offset)
        if etherType == 0x0800 { return (IPAddress(ipv4: frame.be32(o + 12)), IPAddress(ipv4: frame.be32(o + 16))) }
        return (
            IPAddress(hi: frame.be64(o + 8), lo: frame.be64(o + 16)),
            IPAddress(hi: frame.be64(o + 24), lo: frame.be64(o + 32))
        )
    }

    @inlinable public init() {}

    /// True when the frame carries an IP header whole, so it belongs to a flow.
    @inlinable public var hasFlow: Bool { l3 == .ipv4 || l3 == .ipv6 }

    /// True for the parse of a plain packet, what ``PacketParser`` takes in one straight pass:
    /// untagged Ethernet, IPv4 with a 20-byte header, not a fragment, not a tunnel, and a whole
    /// TCP or UDP header that agrees with the IP header's lengths (no issue).
    @inlinable public var isPlain: Bool {
        l3 == .ipv4 && vlanCount == 0 && l4Offset == 34 && issue == .none && fragment == .none && tunnel == .none
            && (l4 == .tcp || l4 == .udp)
    }
}

/// A 128-bit address, big-endian number order (so comparisons follow the textual order).
public struct IPAddress: Hashable, Comparable, Sendable, Codable, BitwiseCopyable {
    public var hi: UInt64
    public var lo: UInt64

    @inlinable public init(hi: UInt64, lo: UInt64) {
        self.hi = hi
        self.lo = lo
    }

    /// (Computed, not a stored global: a global's accessor is a call the fast path would make per key.)
    @inlinable public static var zero: IPAddress { IPAddress(hi: 0, lo: 0) }

    /// An IPv4 address (host-order value) as IPv4-mapped IPv6.
    @inlinable public init(ipv4 value: UInt32) {
        hi = 0
        lo = 0x0000_FFFF_0000_0000 | UInt64(value)
    }

    @inlinable public var isIPv4Mapped: Bool { hi == 0 && (lo >> 32) == 0x0000_FFFF }

    @inlinable public static func < (a: IPAddress, b: IPAddress) -> Bool {
        a.hi != b.hi ? a.hi < b.hi : a.lo < b.lo
    }

    /// The hash a `Dictionary` or `Set` of addresses takes (a detector's hosts: a lookup at
    /// every inspected packet): two 64x64->128 multiplies, the flow table's mixing
    /// (DistFlow's `FlowKey.hashValue64(seed:)`), rather than SipHash through a `Hasher` (about 120
    /// instructions a lookup). Keyed by a secret of the process (`dist_address_hash_key`) and
    /// the collection's seed (its storage's address), so traffic cannot be made of addresses
    /// that collide.
    @inlinable @inline(__always) public func _rawHashValue(seed: Int) -> Int {
        let s = UInt64(UInt(bitPattern: seed)) ^ dist_address_hash_key()
        let a = (hi ^ 0xA076_1D64_78BD_642F ^ s).multipliedFullWidth(by: lo ^ 0xE703_7ED1_A0B4_28DB)
        let b = (a.high ^ a.low ^ 0x8EBC_6AF0_9C88_C6E3).multipliedFullWidth(by: s ^ 0x5899_65CC_7537_4CC3)
        return Int(truncatingIfNeeded: b.high ^ b.low)
    }
}

public enum L3Kind: UInt8, Sendable, CaseIterable {
    case none, arp, ipv4, ipv6, other
}

public enum L4Kind: UInt8, Sendable, CaseIterable {
    /// No transport header (not IP, header missing, or IPv6 "no next header").
    case none
    case tcp, udp, icmp, icmpv6
    /// A non-first IP fragment: no transport header in this frame.
    case fragment
    /// Any other IP protocol (IGMP, GRE, PGM, IP-in-IP, ESP...).
    case other
}

/// How an inner IP packet was carried (see ``PacketInfo/tunnel``).
public enum TunnelKind: UInt8, Sendable, CaseIterable, Codable, BitwiseCopyable {
    case none
    /// IPv4 or IPv6 straight inside IPv4 or IPv6 (protocols 4, 94 and 41).
    case ipInIP
    /// GRE version 0 carrying IPv4 or IPv6.
    case gre
}

public enum FragmentKind: UInt8, Sendable {
    case none, first, later
}

/// Why parsing stopped early or found something inconsistent. Every frame gets exactly one
/// value (`.none` when nothing was wrong) so per-reason counters always add up to the total.
public enum ParseIssue: UInt8, Sendable, CaseIterable {
    case none = 0
    /// Shorter than an Ethernet header.
    case truncatedEthernet
    /// A VLAN tag cut short.
    case truncatedVLAN
    /// More than two VLAN tags.
    case tooManyVLANTags
    /// An 802.3 length field (LLC/SNAP frame): not parsed further.
    case llcFrame
    /// An EtherType the parser does not handle (PPPoE, LLDP, EAPOL...).
    case unknownEtherType
    case truncatedARP
    case truncatedIPv4
    case badIPv4Version
    case badIPv4HeaderLength
    /// IPv4 total length smaller than its header, or larger than the frame.
    case badIPv4TotalLength
    case truncatedIPv6
    case badIPv6Version
    /// IPv6 payload length larger than the frame.
    case badIPv6PayloadLength
    case truncatedIPv6Extension
    case tooManyIPv6Extensions
    case truncatedTCP
    case badTCPDataOffset
    case truncatedUDP
    case badUDPLength
    case truncatedICMP

    /// A stable snake_case name for counters and JSON.
    public var name: String {
        switch self {
        case .none: "ok"
        case .truncatedEthernet: "truncated_ethernet"
        case .truncatedVLAN: "truncated_vlan"
        case .tooManyVLANTags: "too_many_vlan_tags"
        case .llcFrame: "llc_frame"
        case .unknownEtherType: "unknown_ethertype"
        case .truncatedARP: "truncated_arp"
        case .truncatedIPv4: "truncated_ipv4"
        case .badIPv4Version: "bad_ipv4_version"
        case .badIPv4HeaderLength: "bad_ipv4_header_length"
        case .badIPv4TotalLength: "bad_ipv4_total_length"
        case .truncatedIPv6: "truncated_ipv6"
        case .badIPv6Version: "bad_ipv6_version"
        case .badIPv6PayloadLength: "bad_ipv6_payload_length"
        case .truncatedIPv6Extension: "truncated_ipv6_extension"
        case .tooManyIPv6Extensions: "too_many_ipv6_extensions"
        case .truncatedTCP: "truncated_tcp"
        case .badTCPDataOffset: "bad_tcp_data_offset"
        case .truncatedUDP: "truncated_udp"
        case .badUDPLength: "bad_udp_length"
        case .truncatedICMP: "truncated_icmp"
        }
    }
}
