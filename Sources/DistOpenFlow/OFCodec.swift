extension OFMessage {
    /// The message's bytes on the wire.
    public func encoded() -> [UInt8] {
        var w = OFWriter()
        w.u8(OpenFlow.version)
        w.u8(type.rawValue)
        w.u16(0)  // length, set below
        w.u32(xid)
        switch self {
        case .hello(_, let body): w.bytes += body
        case .error(_, let type, let code, let data):
            w.u16(type)
            w.u16(code)
            w.bytes += data
        case .echoRequest(_, let data), .echoReply(_, let data): w.bytes += data
        case .featuresRequest, .barrierRequest, .barrierReply: break
        case .featuresReply(_, let dpid, let buffers, let tables, let aux, let caps):
            w.u64(dpid)
            w.u32(buffers)
            w.u8(tables)
            w.u8(aux)
            w.pad(2)
            w.u32(caps)
            w.u32(0)
        case .portDescriptionRequest:
            w.u16(13)
            w.u16(0)
            w.pad(4)  // OFPMP_PORT_DESC
        case .portDescriptionReply(_, let ports, let more):
            w.u16(13)
            w.u16(more ? 1 : 0)
            w.pad(4)
            for port in ports { OFCodec.writePort(port, &w) }
        case .flowStatsRequest:
            w.u16(1)  // OFPMP_FLOW
            w.u16(0)
            w.pad(4)
            w.u8(0xFF)  // OFPTT_ALL
            w.pad(3)
            w.u32(OpenFlow.portAny)
            w.u32(OpenFlow.groupAny)
            w.pad(4)
            w.u64(0)  // cookie, cookie mask: any
            w.u64(0)
            OFCodec.writeMatch(OFMatch(), &w)
        case .flowStatsReply(_, let flows, let more):
            w.u16(1)
            w.u16(more ? 1 : 0)
            w.pad(4)
            for f in flows { OFCodec.writeFlowStats(f, &w) }
        case .flowMod(_, let f):
            w.u64(f.cookie)
            w.u64(f.cookieMask)
            w.u8(f.tableID)
            w.u8(f.command.rawValue)
            w.u16(f.idleTimeout)
            w.u16(f.hardTimeout)
            w.u16(f.priority)
            w.u32(f.bufferID)
            w.u32(f.outPort)
            w.u32(f.outGroup)
            w.u16(f.flags)
            w.pad(2)
            OFCodec.writeMatch(f.match, &w)
            for instruction in f.instructions { OFCodec.writeInstruction(instruction, &w) }
        case .packetIn(_, let p):
            w.u32(p.bufferID)
            w.u16(p.totalLength)
            w.u8(p.reason)
            w.u8(p.tableID)
            w.u64(p.cookie)
            OFCodec.writeMatch(p.match, &w)
            w.pad(2)
            w.bytes += p.data
        case .packetOut(_, let p):
            w.u32(p.bufferID)
            w.u32(p.inPort)
            let lengthAt = w.bytes.count
            w.u16(0)
            w.pad(6)
            let start = w.bytes.count
            for action in p.actions { OFCodec.writeAction(action, &w) }
            w.set16(UInt16(w.bytes.count - start), at: lengthAt)
            w.bytes += p.data
        case .other(_, _, let body): w.bytes += body
        }
        w.set16(UInt16(clamping: w.bytes.count), at: 2)
        return w.bytes
    }

    /// A PORT_STATUS's reason (0 added, 1 deleted, 2 modified) and port; nil for any other
    /// message or a body cut short.
    public var portStatus: (reason: UInt8, port: OFPort)? {
        guard case .other(_, OFType.portStatus.rawValue, let body) = self, body.count >= 8 else { return nil }
        var r = OFReader(body, from: 8)
        guard let port = try? OFCodec.readPort(&r) else { return nil }
        return (body[0], port)
    }

    /// The message's type as OpenFlow's specification names it (OFPT_...), for counting.
    public var kind: String {
        if case .other(_, let t, _) = self, OFType(rawValue: t) == nil { return "type \(t)" }
        return switch type {
        case .hello: "HELLO"
        case .error: "ERROR"
        case .echoRequest: "ECHO_REQUEST"
        case .echoReply: "ECHO_REPLY"
        case .featuresRequest: "FEATURES_REQUEST"
        case .featuresReply: "FEATURES_REPLY"
        case .setConfig: "SET_CONFIG"
        case .packetIn: "PACKET_IN"
        case .portStatus: "PORT_STATUS"
        case .packetOut: "PACKET_OUT"
        case .flowMod: "FLOW_MOD"
        case .multipartRequest: "MULTIPART_REQUEST"
        case .multipartReply: "MULTIPART_REPLY"
        case .barrierRequest: "BARRIER_REQUEST"
        case .barrierReply: "BARRIER_REPLY"
        }
    }

    var type: OFType {
        switch self {
        case .hello: .hello
        case .error: .error
        case .echoRequest: .echoRequest
        case .echoReply: .echoReply
        case .featuresRequest: .featuresRequest
        case .featuresReply: .featuresReply
        case .portDescriptionRequest, .flowStatsRequest: .multipartRequest
        case .portDescriptionReply, .flowStatsReply: .multipartReply
        case .flowMod: .flowMod
        case .packetIn: .packetIn
        case .packetOut: .packetOut
        case .barrierRequest: .barrierRequest
        case .barrierReply: .barrierReply
        case .other(_, let t, _): OFType(rawValue: t) ?? .hello
        }
    }

    /// Decodes one whole message (header included).
    public static func decode(_ bytes: [UInt8]) throws -> OFMessage {
        var r = OFReader(bytes)
        let version = try r.u8()
        let typeCode = try r.u8()
        let length = Int(try r.u16())
        let xid = try r.u32()
        guard length == bytes.count, length >= OpenFlow.headerSize else {
            throw OFDecodeError("length field \(length) for \(bytes.count) bytes")
        }
        // HELLO is how versions are negotiated: accept any version's HELLO.
        guard version == OpenFlow.version || typeCode == OFType.hello.rawValue else {
            throw OFDecodeError("OpenFlow version \(version), not 1.3")
        }
        guard let type = OFType(rawValue: typeCode) else {
            return .other(xid: xid, type: typeCode, body: try r.raw(r.remaining))
        }
        switch type {
        case .hello: return .hello(xid: xid, body: try r.raw(r.remaining))
        case .error: return .error(xid: xid, type: try r.u16(), code: try r.u16(), data: try r.raw(r.remaining))
        case .echoRequest: return .echoRequest(xid: xid, data: try r.raw(r.remaining))
        case .echoReply: return .echoReply(xid: xid, data: try r.raw(r.remaining))
        case .featuresRequest: return .featuresRequest(xid: xid)
        case .barrierRequest: return .barrierRequest(xid: xid)
        case .barrierReply: return .barrierReply(xid: xid)
        case .featuresReply:
            let dpid = try r.u64()
            let buffers = try r.u32()
            let tables = try r.u8()
            let aux = try r.u8()
            try r.skip(2)
            let caps = try r.u32()
            return .featuresReply(
                xid: xid, datapathID: dpid, buffers: buffers, tables: tables, auxiliaryID: aux, capabilities: caps)
        case .multipartRequest, .multipartReply:
            let kind = try r.u16()
            let flags = try r.u16()
            try r.skip(4)
            if kind == 1 {
                if type == .multipartRequest { return .flowStatsRequest(xid: xid) }
                var flows: [OFFlowMod] = []
                while r.remaining > 0 { flows.append(try OFCodec.readFlowStats(&r)) }
                return .flowStatsReply(xid: xid, flows: flows, more: flags & 1 != 0)
            }
            guard kind == 13 else {
                r.at = 8
                return .other(xid: xid, type: typeCode, body: try r.raw(r.remaining))
            }
            if type == .multipartRequest { return .portDescriptionRequest(xid: xid) }
            var ports: [OFPort] = []
            while r.remaining > 0 { ports.append(try OFCodec.readPort(&r)) }
            return .portDescriptionReply(xid: xid, ports: ports, more: flags & 1 != 0)
        case .flowMod: return .flowMod(xid: xid, try OFCodec.readFlowMod(&r))
        case .packetIn: return .packetIn(xid: xid, try OFCodec.readPacketIn(&r))
        case .packetOut: return .packetOut(xid: xid, try OFCodec.readPacketOut(&r, bytes))
        case .setConfig, .portStatus:
            return .other(xid: xid, type: typeCode, body: try r.raw(r.remaining))
        }
    }
}
