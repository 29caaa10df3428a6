import DistFlow
import DistOpenFlow
import DistPacket

/// OpenFlow matches for a Move's filter. A filter matches both directions of a flow, an
/// OpenFlow match one: each direction becomes its own match (the same one when the filter is
/// symmetric). OpenFlow's prerequisites are met: an address needs its EtherType, a port its IP
/// protocol, so a filter without a family or with ports but no protocol becomes one match per
/// family or per protocol (TCP and UDP).
public enum SwitchRules {
    public struct Unsupported: Error, CustomStringConvertible {
        public var description: String
    }

    /// The matches covering `filter` for packets entering on `inPort`.
    public static func matches(for filter: FlowFilter, inPort: UInt32) throws -> [OFMatch] {
        let families: [Bool]  // true: IPv4
        switch (filter.source?.address.isIPv4Mapped, filter.destination?.address.isIPv4Mapped) {
        case (let a?, let b?) where a != b:
            throw Unsupported(description: "filter \(filter) mixes an IPv4 and an IPv6 prefix: no packet can match it")
        case (let a?, _), (nil, let a?): families = [a]
        case (nil, nil): families = [true, false]
        }
        let protocols: [UInt8?]
        if let p = filter.proto {
            if (filter.sourcePort != nil || filter.destinationPort != nil) && p != 6 && p != 17 {
                throw Unsupported(description: "filter \(filter) has ports but protocol \(p) has none (use 6 or 17)")
            }
            protocols = [p]
        } else {
            protocols = filter.sourcePort != nil || filter.destinationPort != nil ? [6, 17] : [nil]
        }
        var out: [OFMatch] = []
        for v4 in families {
            for proto in protocols {
                for reversed in [false, true] {
                    let match = direction(filter, v4: v4, proto: proto, reversed: reversed, inPort: inPort)
                    if !out.contains(match) { out.append(match) }
                }
            }
        }
        return out
    }

    static func direction(_ f: FlowFilter, v4: Bool, proto: UInt8?, reversed: Bool, inPort: UInt32) -> OFMatch {
        var fields: [OFMatchField] = [.inPort(inPort)]
        if let vlan = f.vlan {
            // OFPXMT_OFB_VLAN_VID with OFPVID_PRESENT.
            fields.append(.other(field: 6, hasMask: false, value: [UInt8(0x10 | vlan >> 8), UInt8(vlan & 0xFF)]))
        }
        fields.append(.ethType(v4 ? 0x0800 : 0x86DD))
        if let proto { fields.append(.ipProto(proto)) }
        let (src, dst) = reversed ? (f.destination, f.source) : (f.source, f.destination)
        let (sport, dport) = reversed ? (f.destinationPort, f.sourcePort) : (f.sourcePort, f.destinationPort)
        if let src, let field = addressField(src, v4: v4, source: true) { fields.append(field) }
        if let dst, let field = addressField(dst, v4: v4, source: false) { fields.append(field) }
        if let sport { fields.append(proto == 6 ? .tcpSource(sport) : .udpSource(sport)) }
        if let dport { fields.append(proto == 6 ? .tcpDestination(dport) : .udpDestination(dport)) }
        return OFMatch(fields)
    }

    static func addressField(_ p: IPPrefix, v4: Bool, source: Bool) -> OFMatchField? {
        if v4 {
            let bits = p.length - 96
            guard bits > 0 else { return nil }
            let mask: UInt32 = bits >= 32 ? ~0 : ~0 << UInt32(32 - bits)
            let value = UInt32(truncatingIfNeeded: p.address.lo) & mask
            return source
                ? .ipv4Source(value, mask: bits >= 32 ? nil : mask)
                : .ipv4Destination(value, mask: bits >= 32 ? nil : mask)
        }
        guard p.length > 0 else { return nil }
        var value = [UInt8](repeating: 0, count: 16)
        var mask = [UInt8](repeating: 0, count: 16)
        for i in 0..<16 {
            let word = i < 8 ? p.address.hi : p.address.lo
            let byte = UInt8(truncatingIfNeeded: word >> UInt64(56 - 8 * (i % 8)))
            let bitsHere = max(0, min(8, p.length - 8 * i))
            let m: UInt8 = bitsHere == 0 ? 0 : ~0 << UInt8(8 - bitsHere)
            mask[i] = m
            value[i] = byte & m
        }
        let exact = p.length == 128
        return source ? .ipv6Source(value, mask: exact ? nil : mask) : .ipv6Destination(value, mask: exact ? nil : mask)
    }

    /// A FLOW_MOD adding (or replacing) a rule that sends `match` to `ports` (the controller is
    /// ``OpenFlow/portController``).
    public static func flowMod(_ match: OFMatch, to ports: [UInt32], priority: UInt16, cookie: UInt64) -> OFFlowMod {
        var mod = OFFlowMod()
        mod.command = .add
        mod.priority = priority
        mod.cookie = cookie
        mod.match = match
        mod.instructions = [.applyActions(ports.map { .output(port: $0, maxLength: OpenFlow.maxLengthNoBuffer) })]
        return mod
    }

    /// A FLOW_MOD that sends everything the rules with `cookie` match to `ports` instead: one
    /// message for all the directions of a filter (non-strict MODIFY, every field wildcarded,
    /// selected by the whole cookie).
    public static func redirect(cookie: UInt64, to ports: [UInt32]) -> OFFlowMod {
        var mod = OFFlowMod()
        mod.command = .modify
        mod.cookie = cookie
        mod.cookieMask = ~0
        mod.instructions = [.applyActions(ports.map { .output(port: $0, maxLength: OpenFlow.maxLengthNoBuffer) })]
        return mod
    }

    /// What a controller that starts again does to the rules of a Move it finds left behind
    /// at `port`'s VNF (its source): every rule whose cookie's low 32 bits are the Move's id
    /// sends its traffic back to the source (a Move's own rules, and a split Move's part rules,
    /// whose cookies carry their split's tag above the part's id), and the Move's reflector
    /// goes. Move ids stay below 2^31, so no other Move's rule and no reflector matches.
    public static func backToSource(moveID: UInt64, port: UInt32) -> (redirect: OFFlowMod, reflector: OFFlowMod) {
        var back = redirect(cookie: moveID & 0xFFFF_FFFF, to: [port])
        back.cookieMask = 0xFFFF_FFFF
        return (back, delete(cookie: reflectorCookie(moveID & 0xFFFF_FFFF), mask: 0xFFFF_FFFF))
    }

    /// The cookie of an order-preserving Move's reflector (``reflector(from:vlan:to:priority:cookie:cut:)``):
    /// apart from its Move's, so that the phase-two MODIFY by cookie leaves it alone.
    public static func reflectorCookie(_ cookie: UInt64) -> UInt64 { cookie | 1 << 31 }

    /// A FLOW_MOD adding the rule that sends an IBC the source VNF reflects (entering on
    /// `source` with the source's channel VLAN `vlan`, or without a channel VLAN to the IBC's
    /// Ethernet destination) on to `source` and `destination` at once, untagged and with the
    /// Ethernet source of an IBC: as it came, or, with `cut`'s copies, once per copy, each
    /// copy's field written before its outputs (see `InBandControl.orderedCut`).
    public static func reflector(
        from source: UInt32, vlan: UInt16?, to destination: UInt32, priority: UInt16,
        cookie: UInt64, cut: InBandControl.OrderedCut? = nil
    ) -> OFFlowMod {
        var mod = OFFlowMod()
        mod.command = .add
        mod.priority = priority
        mod.cookie = reflectorCookie(cookie)
        var fields: [OFMatchField] = [.inPort(source)]
        var actions: [OFAction] = []
        if let vlan {
            // OFPXMT_OFB_VLAN_VID with OFPVID_PRESENT; OFPAT_POP_VLAN.
            fields.append(.other(field: 6, hasMask: false, value: [UInt8(0x10 | vlan >> 8), UInt8(vlan & 0xFF)]))
            actions.append(.other(type: 18, body: [0, 0, 0, 0]))
        } else {
            fields.append(.other(field: 3, hasMask: false, value: InBandMarker.destinationMAC))  // ETH_DST
        }
        let copies = cut?.copies ?? []
        if let cut, !copies.isEmpty {
            // A field is written only under a match that says the packet has it (ETH_TYPE, IP_PROTO).
            fields += [.ethType(cut.ipv4 ? 0x0800 : 0x86DD), .ipProto(cut.proto)]
        }
        mod.match = OFMatch(fields)
        actions.append(setField(4, InBandMarker.sourceMAC))  // ETH_SRC
        let outputs: [OFAction] = [.output(port: OpenFlow.portInPort), .output(port: destination)]
        if copies.isEmpty { actions += outputs }
        for copy in copies { actions += [setField(copy, proto: cut?.proto ?? 17)] + outputs }
        mod.instructions = [.applyActions(actions)]
        return mod
    }

    /// OFPAT_SET_FIELD writing what makes one IBC copy.
    static func setField(_ copy: InBandControl.CopyField, proto: UInt8) -> OFAction {
        switch copy {
        case .sourcePort(let port):
            return setField(proto == 6 ? 13 : 15, BigEndian.bytes(port))  // TCP_SRC, UDP_SRC
        case .destinationPort(let port):
            return setField(proto == 6 ? 14 : 16, BigEndian.bytes(port))  // TCP_DST, UDP_DST
        case .source(let a) where a.isIPv4Mapped:
            return setField(11, BigEndian.bytes(UInt32(truncatingIfNeeded: a.lo)))  // IPV4_SRC
        case .source(let a):
            return setField(26, BigEndian.bytes(a.hi) + BigEndian.bytes(a.lo))  // IPV6_SRC
        }
    }

    /// OFPAT_SET_FIELD of an OpenFlow-basic OXM field: its TLV, padded so that the action is
    /// a multiple of 8 bytes long.
    static func setField(_ field: UInt8, _ value: [UInt8]) -> OFAction {
        let tlv: [UInt8] = [0x80, 0x00, field << 1, UInt8(value.count)] + value
        return .other(type: 25, body: tlv + [UInt8](repeating: 0, count: (8 - (4 + tlv.count) % 8) % 8))
    }

    /// A FLOW_MOD deleting every rule whose cookie matches `cookie` under `mask` (a split
    /// Move's part rules, all at once).
    public static func delete(cookie: UInt64, mask: UInt64) -> OFFlowMod {
        var mod = OFFlowMod()
        mod.command = .delete
        mod.cookie = cookie
        mod.cookieMask = mask
        return mod
    }
}
