import DistPacket

/// The parts of messages: flow mods and their statistics, packets in and out, matches,
/// actions, instructions, ports.
enum OFCodec {
    /// A FLOW_MOD's body.
    static func readFlowMod(_ r: inout OFReader) throws -> OFFlowMod {
        var f = OFFlowMod()
        f.cookie = try r.u64()
        f.cookieMask = try r.u64()
        f.tableID = try r.u8()
        guard let command = OFFlowMod.Command(rawValue: try r.u8()) else {
            throw OFDecodeError("unknown flow-mod command")
        }
        f.command = command
        f.idleTimeout = try r.u16()
        f.hardTimeout = try r.u16()
        f.priority = try r.u16()
        f.bufferID = try r.u32()
        f.outPort = try r.u32()
        f.outGroup = try r.u32()
        f.flags = try r.u16()
        try r.skip(2)
        f.match = try readMatch(&r)
        while r.remaining > 0 { f.instructions.append(try readInstruction(&r)) }
        return f
    }

    /// One ofp_flow_stats of a flow-stats reply, as the ADD that makes that rule.
    static func readFlowStats(_ r: inout OFReader) throws -> OFFlowMod {
        let start = r.at
        let length = Int(try r.u16())
        guard length >= 56, start + length <= r.end else { throw OFDecodeError("flow stats length \(length)") }
        var entry = OFReader(r.bytes, from: r.at, to: start + length)
        var f = OFFlowMod()
        f.tableID = try entry.u8()
        try entry.skip(9)  // pad, duration
        f.priority = try entry.u16()
        f.idleTimeout = try entry.u16()
        f.hardTimeout = try entry.u16()
        f.flags = try entry.u16()
        try entry.skip(4)
        f.cookie = try entry.u64()
        try entry.skip(16)  // packet and byte counts
        f.match = try readMatch(&entry)
        while entry.remaining > 0 { f.instructions.append(try readInstruction(&entry)) }
        r.at = start + length
        return f
    }

    static func writeFlowStats(_ f: OFFlowMod, _ w: inout OFWriter) {
        let start = w.bytes.count
        w.u16(0)  // length, set below
        w.u8(f.tableID)
        w.pad(9)
        w.u16(f.priority)
        w.u16(f.idleTimeout)
        w.u16(f.hardTimeout)
        w.u16(f.flags)
        w.pad(4)
        w.u64(f.cookie)
        w.pad(16)
        writeMatch(f.match, &w)
        for instruction in f.instructions { writeInstruction(instruction, &w) }
        w.set16(UInt16(clamping: w.bytes.count - start), at: start)
    }

    /// A PACKET_IN's body.
    static func readPacketIn(_ r: inout OFReader) throws -> OFPacketIn {
        let buffer = try r.u32()
        let total = try r.u16()
        let reason = try r.u8()
        let table = try r.u8()
        let cookie = try r.u64()
        let match = try readMatch(&r)
        try r.skip(2)
        return OFPacketIn(
            bufferID: buffer, totalLength: total, reason: reason, tableID: table, cookie: cookie, match: match,
            data: try r.raw(r.remaining))
    }

    /// A PACKET_OUT's body (`bytes`: the whole message, which its action list is read from).
    static func readPacketOut(_ r: inout OFReader, _ bytes: [UInt8]) throws -> OFPacketOut {
        let buffer = try r.u32()
        let inPort = try r.u32()
        let actionsLength = Int(try r.u16())
        try r.skip(6)
        var actionsReader = OFReader(bytes, from: r.at, to: r.at + actionsLength)
        guard actionsReader.end <= r.end else { throw OFDecodeError("packet-out actions run past the message") }
        var actions: [OFAction] = []
        while actionsReader.remaining > 0 { actions.append(try readAction(&actionsReader)) }
        try r.skip(actionsLength)
        var p = OFPacketOut(inPort: inPort, actions: actions, data: try r.raw(r.remaining))
        p.bufferID = buffer
        return p
    }

    // OXM, OpenFlow basic class.
    static let oxmBasic: UInt16 = 0x8000

    static func writeMatch(_ m: OFMatch, _ w: inout OFWriter) {
        let start = w.bytes.count
        w.u16(1)  // OFPMT_OXM
        w.u16(0)
        for field in m.fields { writeField(field, &w) }
        w.set16(UInt16(w.bytes.count - start), at: start + 2)
        w.padTo8(from: start)
    }

    static func oxm(_ field: UInt8, _ hasMask: Bool, _ value: [UInt8], _ w: inout OFWriter) {
        w.u16(oxmBasic)
        w.u8(field << 1 | (hasMask ? 1 : 0))
        w.u8(UInt8(value.count))
        w.bytes += value
    }

    static func writeField(_ f: OFMatchField, _ w: inout OFWriter) {
        switch f {
        case .inPort(let p): oxm(0, false, BigEndian.bytes(p), &w)
        case .ethType(let t): oxm(5, false, BigEndian.bytes(t), &w)
        case .ipProto(let p): oxm(10, false, [p], &w)
        case .ipv4Source(let a, let m):
            oxm(11, m != nil, BigEndian.bytes(a) + (m.map { BigEndian.bytes($0) } ?? []), &w)
        case .ipv4Destination(let a, let m):
            oxm(12, m != nil, BigEndian.bytes(a) + (m.map { BigEndian.bytes($0) } ?? []), &w)
        case .tcpSource(let p): oxm(13, false, BigEndian.bytes(p), &w)
        case .tcpDestination(let p): oxm(14, false, BigEndian.bytes(p), &w)
        case .udpSource(let p): oxm(15, false, BigEndian.bytes(p), &w)
        case .udpDestination(let p): oxm(16, false, BigEndian.bytes(p), &w)
        case .ipv6Source(let a, let m): oxm(26, m != nil, a + (m ?? []), &w)
        case .ipv6Destination(let a, let m): oxm(27, m != nil, a + (m ?? []), &w)
        case .other(let field, let hasMask, let value): oxm(field, hasMask, value, &w)
        }
    }

    static func readMatch(_ r: inout OFReader) throws -> OFMatch {
        let start = r.at
        let type = try r.u16()
        let length = Int(try r.u16())
        guard type == 1, length >= 4 else { throw OFDecodeError("match type \(type) length \(length)") }
        var fields = OFReader(r.bytes, from: r.at, to: start + length)
        guard fields.end <= r.end else { throw OFDecodeError("match runs past the message") }
        var match = OFMatch()
        while fields.remaining > 0 {
            let cls = try fields.u16()
            let header = try fields.u8()
            let size = Int(try fields.u8())
            let value = try fields.raw(size)
            let field = header >> 1
            let hasMask = header & 1 == 1
            guard cls == oxmBasic else {
                match.fields.append(.other(field: field, hasMask: hasMask, value: value))
                continue
            }
            match.fields.append(try decodeField(field, hasMask, value))
        }
        // Skip the match and its padding to 8 bytes.
        try r.skip(length - 4 + (8 - length % 8) % 8)
        return match
    }

    static func decodeField(_ field: UInt8, _ hasMask: Bool, _ v: [UInt8]) throws -> OFMatchField {
        func u16() throws -> UInt16 {
            guard v.count == 2 else { throw OFDecodeError("OXM field \(field) has \(v.count) bytes") }
            return UInt16(v[0]) << 8 | UInt16(v[1])
        }
        func u32(_ at: Int) throws -> UInt32 {
            guard v.count >= at + 4 else { throw OFDecodeError("OXM field \(field) has \(v.count) bytes") }
            return UInt32(v[at]) << 24 | UInt32(v[at + 1]) << 16 | UInt32(v[at + 2]) << 8 | UInt32(v[at + 3])
        }
        switch (field, hasMask) {
        case (0, false): return .inPort(try u32(0))
        case (5, false): return .ethType(try u16())
        case (10, false):
            guard v.count == 1 else { throw OFDecodeError("OXM ip_proto has \(v.count) bytes") }
            return .ipProto(v[0])
        case (11, _): return .ipv4Source(try u32(0), mask: hasMask ? try u32(4) : nil)
        case (12, _): return .ipv4Destination(try u32(0), mask: hasMask ? try u32(4) : nil)
        case (13, false): return .tcpSource(try u16())
        case (14, false): return .tcpDestination(try u16())
        case (15, false): return .udpSource(try u16())
        case (16, false): return .udpDestination(try u16())
        case (26, _), (27, _):
            guard v.count == (hasMask ? 32 : 16) else { throw OFDecodeError("OXM IPv6 address has \(v.count) bytes") }
            let a = Array(v[0..<16])
            let m = hasMask ? Array(v[16..<32]) : nil
            return field == 26 ? .ipv6Source(a, mask: m) : .ipv6Destination(a, mask: m)
        default: return .other(field: field, hasMask: hasMask, value: v)
        }
    }

    static func writeAction(_ a: OFAction, _ w: inout OFWriter) {
        switch a {
        case .output(let port, let maxLength):
            w.u16(0)
            w.u16(16)
            w.u32(port)
            w.u16(maxLength)
            w.pad(6)
        case .other(let type, let body):
            w.u16(type)
            w.u16(UInt16(4 + body.count))
            w.bytes += body
        }
    }

    static func readAction(_ r: inout OFReader) throws -> OFAction {
        let type = try r.u16()
        let length = Int(try r.u16())
        guard length >= 4, length % 8 == 0 else { throw OFDecodeError("action length \(length)") }
        if type == 0 {
            guard length == 16 else { throw OFDecodeError("output action length \(length)") }
            let port = try r.u32()
            let max = try r.u16()
            try r.skip(6)
            return .output(port: port, maxLength: max)
        }
        return .other(type: type, body: try r.raw(length - 4))
    }

    static func writeInstruction(_ i: OFInstruction, _ w: inout OFWriter) {
        switch i {
        case .applyActions(let actions):
            let start = w.bytes.count
            w.u16(4)
            w.u16(0)
            w.pad(4)
            for a in actions { writeAction(a, &w) }
            w.set16(UInt16(w.bytes.count - start), at: start + 2)
        case .other(let type, let body):
            w.u16(type)
            w.u16(UInt16(4 + body.count))
            w.bytes += body
        }
    }

    static func readInstruction(_ r: inout OFReader) throws -> OFInstruction {
        let start = r.at
        let type = try r.u16()
        let length = Int(try r.u16())
        guard length >= 8, start + length <= r.end else { throw OFDecodeError("instruction length \(length)") }
        if type == 4 {
            try r.skip(4)
            var actions = OFReader(r.bytes, from: r.at, to: start + length)
            var list: [OFAction] = []
            while actions.remaining > 0 { list.append(try readAction(&actions)) }
            r.at = start + length
            return .applyActions(list)
        }
        return .other(type: type, body: try r.raw(length - 4))
    }

    static func writePort(_ p: OFPort, _ w: inout OFWriter) {
        w.u32(p.number)
        w.pad(4)
        w.bytes += (p.hardwareAddress + [0, 0, 0, 0, 0, 0]).prefix(6)
        w.pad(2)
        var name = Array(p.name.utf8.prefix(15))
        name += [UInt8](repeating: 0, count: 16 - name.count)
        w.bytes += name
        w.u32(p.config)
        w.u32(p.state)
        for i in 0..<6 { w.u32(i < p.features.count ? p.features[i] : 0) }
    }

    static func readPort(_ r: inout OFReader) throws -> OFPort {
        let number = try r.u32()
        try r.skip(4)
        let mac = try r.raw(6)
        try r.skip(2)
        let nameBytes = try r.raw(16)
        let config = try r.u32()
        let state = try r.u32()
        var features: [UInt32] = []
        for _ in 0..<6 { features.append(try r.u32()) }
        let name = String(decoding: nameBytes.prefix { $0 != 0 }, as: UTF8.self)
        return OFPort(
            number: number, hardwareAddress: mac, name: name, config: config, state: state, features: features)
    }
}
