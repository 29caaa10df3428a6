/// Parses Ethernet frames: Ethernet II, 802.1Q and QinQ, ARP, IPv4 (options, fragments),
/// IPv6 (extension headers, fragments), TCP, UDP, ICMP and ICMPv6, and one level of IP tunnel
/// (IPv4 and IPv6 in IPv4 and in IPv6, GRE carrying either): the inner packet is parsed as the
/// packet, the outer header's addresses kept (``PacketInfo/tunnel``).
///
/// The parser never reads past `length`, never traps on any input, and never allocates. A frame
/// it cannot parse whole still gets a ``PacketInfo`` saying how far it got and why it stopped
/// (``ParseIssue``); the caller forwards every frame regardless.
public enum PacketParser {
    /// Largest number of VLAN tags parsed (802.1ad outer + 802.1Q inner).
    public static let maxVLANTags = 2
    /// Largest number of IPv6 extension headers followed before giving up.
    public static let maxIPv6Extensions = 8

    /// Parses `length` bytes at `base` into `info` (which is fully overwritten).
    @inlinable
    public static func parse(_ base: UnsafeRawPointer, length: Int, into info: inout PacketInfo) {
        if _fastPath(parseCommon(base, length: length, into: &info)) { return }
        parseAny(base, length: length, into: &info)
    }

    /// The most common frame in one straight pass: untagged Ethernet, IPv4 without options
    /// and not a fragment, carrying TCP or UDP whose header is whole and whose lengths agree
    /// with the IP header's. It fills `info` as ``parseAny(_:length:into:)`` does for such a
    /// frame (checked on every frame of mix-a and by the parser's fuzz target), with a third
    /// of its instructions; false for any other frame, with `info` untouched.
    @inlinable @inline(__always)
    package static func parseCommon(_ base: UnsafeRawPointer, length: Int, into info: inout PacketInfo) -> Bool {
        guard length >= 42, base.be16(12) == 0x0800, base.load(fromByteOffset: 14, as: UInt8.self) == 0x45 else {
            return false
        }
        let totalLength = Int(base.be16(16))
        // Neither more fragments nor an offset (don't-fragment may be set).
        guard totalLength >= 28, 14 + totalLength <= length, base.be16(20) & 0x3FFF == 0 else { return false }
        let proto = base.load(fromByteOffset: 23, as: UInt8.self)
        let available = totalLength - 20
        let l4: L4Kind
        let payloadOffset: Int
        let payloadLength: Int
        var tcpFlags: UInt8 = 0
        if proto == 6 {
            guard available >= 20 else { return false }
            let dataOffset = Int(base.load(fromByteOffset: 46, as: UInt8.self) >> 4) * 4
            guard dataOffset >= 20, dataOffset <= available else { return false }
            l4 = .tcp
            tcpFlags = base.load(fromByteOffset: 47, as: UInt8.self)
            payloadOffset = 34 + dataOffset
            payloadLength = available - dataOffset
        } else if proto == 17 {
            let udpLength = Int(base.be16(38))
            guard udpLength >= 8, udpLength <= available else { return false }
            l4 = .udp
            payloadOffset = 42
            payloadLength = udpLength - 8
        } else {
            return false
        }
        info = PacketInfo()
        info.l3 = .ipv4
        info.l4 = l4
        info.etherType = 0x0800
        info.l3Offset = 14
        info.l4Offset = 34
        info.payloadOffset = UInt16(truncatingIfNeeded: payloadOffset)
        info.payloadLength = UInt16(truncatingIfNeeded: payloadLength)
        info.ipProto = proto
        info.ttl = base.load(fromByteOffset: 22, as: UInt8.self)
        info.ipLength = UInt16(truncatingIfNeeded: totalLength)
        info.src = IPAddress(ipv4: base.be32(26))
        info.dst = IPAddress(ipv4: base.be32(30))
        info.srcPort = base.be16(34)
        info.dstPort = base.be16(36)
        info.tcpFlags = tcpFlags
        return true
    }

    /// Parses any frame (see ``parse(_:length:into:)``).
    @inlinable
    package static func parseAny(_ base: UnsafeRawPointer, length: Int, into info: inout PacketInfo) {
        info = PacketInfo()
        guard length >= 14 else {
            info.issue = .truncatedEthernet
            return
        }
        var offset = 12
        var etherType = base.be16(12)
        // VLAN tags: 802.1Q (0x8100), 802.1ad (0x88A8), and the old QinQ 0x9100.
        while etherType == 0x8100 || etherType == 0x88A8 || etherType == 0x9100 {
            if Int(info.vlanCount) == maxVLANTags {
                info.issue = .tooManyVLANTags
                info.etherType = etherType
                return
            }
            guard length >= offset + 6 else {
                info.issue = .truncatedVLAN
                return
            }
            let vid = UInt32(base.be16(offset + 2) & 0x0FFF)
            info.vlanKey = (info.vlanKey << 12) | vid
            info.vlanCount &+= 1
            offset += 4
            etherType = base.be16(offset)
        }
        // A single tag is the outer tag: keep the outer id in bits 12..23.
        if info.vlanCount == 1 { info.vlanKey <<= 12 }
        offset += 2
        info.etherType = etherType
        info.l3Offset = UInt16(truncatingIfNeeded: offset)

        switch etherType {
        case 0x0800:
            parseIPv4(base, length: length, at: offset, into: &info)
        case 0x86DD:
            parseIPv6(base, length: length, at: offset, into: &info)
        case 0x0806:
            // ARP for Ethernet/IPv4 is 28 bytes; other hardware types are at least 8.
            info.l3 = .arp
            if length < offset + 8 {
                info.issue = .truncatedARP
            } else {
                let hlen = Int(base.load(fromByteOffset: offset + 4, as: UInt8.self))
                let plen = Int(base.load(fromByteOffset: offset + 5, as: UInt8.self))
                if length < offset + 8 + 2 * (hlen + plen) { info.issue = .truncatedARP }
            }
        default:
            info.l3 = .other
            info.issue = etherType < 0x0600 ? .llcFrame : .unknownEtherType
        }
        // A whole IP packet of a protocol that may carry one (the transport layer's parser
        // noted its protocol): the packet inside is the packet. (Here, not in the IP layers'
        // parsers, so that they do not call themselves; a frame without costs one test.)
        if _slowPath(info.outerProto != 0) {
            let inner = Int(info.payloadOffset)
            if !parseTunnel(base, end: inner + Int(info.payloadLength), at: inner, proto: info.outerProto, into: &info)
            {
                info.outerProto = 0
            }
        }
    }

    /// Convenience for tests and tools: parses a byte array.
    public static func parse(_ bytes: [UInt8]) -> PacketInfo {
        var info = PacketInfo()
        bytes.withUnsafeBytes { raw in
            if let base = raw.baseAddress {
                parse(base, length: raw.count, into: &info)
            } else {
                info.issue = .truncatedEthernet
            }
        }
        return info
    }

    @inlinable
    static func parseIPv4(_ base: UnsafeRawPointer, length: Int, at offset: Int, into info: inout PacketInfo) {
        guard length >= offset + 20 else {
            info.l3 = .other
            info.issue = .truncatedIPv4
            return
        }
        let vihl = base.load(fromByteOffset: offset, as: UInt8.self)
        guard vihl >> 4 == 4 else {
            info.l3 = .other
            info.issue = .badIPv4Version
            return
        }
        let headerLength = Int(vihl & 0x0F) * 4
        guard headerLength >= 20, length >= offset + headerLength else {
            info.l3 = .other
            info.issue = .badIPv4HeaderLength
            return
        }
        info.l3 = .ipv4
        let totalLength = Int(base.be16(offset + 2))
        info.ipLength = UInt16(truncatingIfNeeded: totalLength)
        info.ttl = base.load(fromByteOffset: offset + 8, as: UInt8.self)
        let proto = base.load(fromByteOffset: offset + 9, as: UInt8.self)
        info.ipProto = proto
        info.src = IPAddress(ipv4: base.be32(offset + 12))
        info.dst = IPAddress(ipv4: base.be32(offset + 16))

        // The transport layer ends where the IP packet says it ends (Ethernet pads short
        // frames), or at the end of the frame when the header claims more than is there.
        var end = offset + totalLength
        if totalLength < headerLength || end > length {
            info.issue = .badIPv4TotalLength
            end = length
        }
        let fragmentField = base.be16(offset + 6)
        let moreFragments = fragmentField & 0x2000 != 0
        let fragmentOffset = fragmentField & 0x1FFF
        if fragmentOffset != 0 {
            info.fragment = .later
            info.l4 = .fragment
            let l4 = offset + headerLength
            info.l4Offset = UInt16(truncatingIfNeeded: l4)
            info.payloadOffset = info.l4Offset
            info.payloadLength = UInt16(truncatingIfNeeded: max(0, end - l4))
            return
        }
        if moreFragments { info.fragment = .first }
        parseTransport(base, end: end, at: offset + headerLength, proto: proto, v6: false, into: &info)
    }

    /// Protocols that may carry an IP packet: IPv4 (4, and 94, which PRADS decodes as IPv4),
    /// IPv6 (41) and GRE (47).
    @inlinable @inline(__always)
    static func isTunnel(_ proto: UInt8) -> Bool { proto == 4 || proto == 41 || proto == 47 || proto == 94 }

    /// Parses the IP packet a tunnel protocol carries at `offset` as the packet (the outer
    /// header's addresses and protocol kept), when it is one whole inner IP header of the
    /// version the protocol names; otherwise leaves `info` alone and returns false, and the
    /// frame stays the outer packet's (a tunnel in a tunnel, a fragmented outer packet, GRE
    /// with routing or of another version or payload are not followed).
    @inlinable
    static func parseTunnel(
        _ base: UnsafeRawPointer, end: Int, at offset: Int, proto: UInt8, into info: inout PacketInfo
    ) -> Bool {
        var inner = offset
        var version: UInt8 = proto == 41 ? 6 : 4
        if proto == 47 {
            // GRE (RFC 2784/2890): flags C (0x80), R (0x40), K (0x20), S (0x10), version 0.
            guard end >= offset + 4 else { return false }
            let flags = base.load(fromByteOffset: offset, as: UInt8.self)
            guard flags & 0x4F == 0, base.load(fromByteOffset: offset + 1, as: UInt8.self) & 0x07 == 0 else {
                return false
            }
            switch base.be16(offset + 2) {
            case 0x0800: version = 4
            case 0x86DD: version = 6
            default: return false
            }
            inner += 4 + (flags & 0x80 != 0 ? 4 : 0) + (flags & 0x20 != 0 ? 4 : 0) + (flags & 0x10 != 0 ? 4 : 0)
        }
        guard end >= inner + (version == 4 ? 20 : 40) else { return false }
        let vihl = base.load(fromByteOffset: inner, as: UInt8.self)
        guard vihl >> 4 == version else { return false }
        if version == 4 { guard vihl & 0x0F >= 5, end >= inner + Int(vihl & 0x0F) * 4 else { return false } }
        let outerIssue = info.issue
        info.tunnel = proto == 47 ? .gre : .ipInIP
        info.outerProto = proto
        info.innerL3Offset = UInt16(truncatingIfNeeded: inner)
        info.issue = .none
        info.fragment = .none
        if version == 4 {
            parseIPv4(base, length: end, at: inner, into: &info)
        } else {
            parseIPv6(base, length: end, at: inner, into: &info)
        }
        if outerIssue != .none { info.issue = outerIssue }
        return true
    }

    @inlinable
    static func parseIPv6(_ base: UnsafeRawPointer, length: Int, at offset: Int, into info: inout PacketInfo) {
        guard length >= offset + 40 else {
            info.l3 = .other
            info.issue = .truncatedIPv6
            return
        }
        guard base.load(fromByteOffset: offset, as: UInt8.self) >> 4 == 6 else {
            info.l3 = .other
            info.issue = .badIPv6Version
            return
        }
        info.l3 = .ipv6
        let payloadLength = Int(base.be16(offset + 4))
        info.ipLength = UInt16(truncatingIfNeeded: payloadLength + 40)
        info.ttl = base.load(fromByteOffset: offset + 7, as: UInt8.self)
        info.src = IPAddress(hi: base.be64(offset + 8), lo: base.be64(offset + 16))
        info.dst = IPAddress(hi: base.be64(offset + 24), lo: base.be64(offset + 32))
        var end = offset + 40 + payloadLength
        if end > length {
            info.issue = .badIPv6PayloadLength
            end = length
        }
        // Jumbograms (payload length 0 with a hop-by-hop option) run to the end of the frame.
        if payloadLength == 0 { end = length }
        parseIPv6Extensions(
            base, end: end, at: offset + 40, next: base.load(fromByteOffset: offset + 6, as: UInt8.self),
            into: &info)
    }

    /// Walks the extension headers from `offset` (the first of type `next`) to the transport
    /// header, and parses that, where the IPv6 packet ends at `end`.
    @inlinable
    static func parseIPv6Extensions(
        _ base: UnsafeRawPointer, end: Int, at offset: Int, next first: UInt8,
        into info: inout PacketInfo
    ) {
        var next = first
        var cursor = offset
        var extensions = 0
        while true {
            switch next {
            case 0, 43, 60, 135, 139, 140:
                // Hop-by-hop, routing, destination options, mobility, HIP, shim6: (len + 1) * 8.
                guard end >= cursor + 8 else {
                    info.issue = .truncatedIPv6Extension
                    info.ipProto = next
                    return
                }
                next = base.load(fromByteOffset: cursor, as: UInt8.self)
                cursor += (Int(base.load(fromByteOffset: cursor + 1, as: UInt8.self)) + 1) * 8
            case 51:
                // Authentication header: (len + 2) * 4.
                guard end >= cursor + 8 else {
                    info.issue = .truncatedIPv6Extension
                    info.ipProto = next
                    return
                }
                next = base.load(fromByteOffset: cursor, as: UInt8.self)
                cursor += (Int(base.load(fromByteOffset: cursor + 1, as: UInt8.self)) + 2) * 4
            case 44:
                guard end >= cursor + 8 else {
                    info.issue = .truncatedIPv6Extension
                    info.ipProto = next
                    return
                }
                let field = base.be16(cursor + 2)
                let nextHeader = base.load(fromByteOffset: cursor, as: UInt8.self)
                cursor += 8
                if field & 0xFFF8 != 0 {
                    info.fragment = .later
                    info.ipProto = nextHeader
                    info.l4 = .fragment
                    info.l4Offset = UInt16(truncatingIfNeeded: cursor)
                    info.payloadOffset = info.l4Offset
                    info.payloadLength = UInt16(truncatingIfNeeded: max(0, end - cursor))
                    return
                }
                if field & 1 != 0 { info.fragment = .first }
                next = nextHeader
            default:
                info.ipProto = next
                if next == 59 {  // No next header.
                    info.l4Offset = UInt16(truncatingIfNeeded: min(cursor, end))
                    return
                }
                guard cursor <= end else {
                    info.issue = .truncatedIPv6Extension
                    return
                }
                parseTransport(base, end: end, at: cursor, proto: next, v6: true, into: &info)
                return
            }
            extensions += 1
            if extensions > maxIPv6Extensions {
                info.issue = .tooManyIPv6Extensions
                info.ipProto = next
                return
            }
        }
    }

    /// Parses the transport header at `offset`, where the IP packet ends at `end`.
    /// Keeps an issue already found by the IP layer (the first issue wins).
    @inlinable
    static func parseTransport(
        _ base: UnsafeRawPointer, end: Int, at offset: Int, proto: UInt8, v6: Bool,
        into info: inout PacketInfo
    ) {
        info.l4Offset = UInt16(truncatingIfNeeded: offset)
        let available = end - offset
        @inline(__always) func flag(_ issue: ParseIssue) {
            if info.issue == .none { info.issue = issue }
        }
        switch proto {
        case 6:
            // The protocol is known even when its header is cut short (as tshark reports it);
            // ports and flags are filled only from a whole header.
            info.l4 = .tcp
            guard available >= 20 else { return flag(.truncatedTCP) }
            let dataOffset = Int(base.load(fromByteOffset: offset + 12, as: UInt8.self) >> 4) * 4
            guard dataOffset >= 20, dataOffset <= available else { return flag(.badTCPDataOffset) }
            info.srcPort = base.be16(offset)
            info.dstPort = base.be16(offset + 2)
            info.tcpFlags = base.load(fromByteOffset: offset + 13, as: UInt8.self)
            info.payloadOffset = UInt16(truncatingIfNeeded: offset + dataOffset)
            info.payloadLength = UInt16(truncatingIfNeeded: available - dataOffset)
        case 17:
            info.l4 = .udp
            guard available >= 8 else { return flag(.truncatedUDP) }
            info.srcPort = base.be16(offset)
            info.dstPort = base.be16(offset + 2)
            info.payloadOffset = UInt16(truncatingIfNeeded: offset + 8)
            let udpLength = Int(base.be16(offset + 4))
            // A first fragment carries only part of the datagram its length describes.
            if udpLength < 8 || (udpLength > available && info.fragment == .none) {
                flag(.badUDPLength)
                info.payloadLength = UInt16(truncatingIfNeeded: available - 8)
            } else {
                info.payloadLength = UInt16(truncatingIfNeeded: min(udpLength, available) - 8)
            }
        case 1, 58:
            info.l4 = proto == 58 ? (v6 ? .icmpv6 : .other) : (v6 ? .other : .icmp)
            guard available >= 4 else { return flag(.truncatedICMP) }
            info.payloadOffset = UInt16(truncatingIfNeeded: offset + 4)
            info.payloadLength = UInt16(truncatingIfNeeded: available - 4)
        default:
            info.l4 = .other
            info.payloadOffset = UInt16(truncatingIfNeeded: offset)
            info.payloadLength = UInt16(truncatingIfNeeded: max(0, available))
            // A tunnel (not a fragment of one, and not inside one already): see parse(_:length:into:).
            if Self.isTunnel(proto) && info.fragment == .none && info.tunnel == .none { info.outerProto = proto }
        }
    }
}

extension UnsafeRawPointer {
    @inlinable @inline(__always)
    func be16(_ offset: Int) -> UInt16 {
        UInt16(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inlinable @inline(__always)
    func be32(_ offset: Int) -> UInt32 {
        UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inlinable @inline(__always)
    func be64(_ offset: Int) -> UInt64 {
        UInt64(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
}
