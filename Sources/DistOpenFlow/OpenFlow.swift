/// OpenFlow 1.3 (wire version 0x04): the messages the DiST controller exchanges with a switch,
/// encoded and decoded on bytes. No I/O here; ``OFStream`` cuts a byte stream into messages.
public enum OpenFlow {
    public static let version: UInt8 = 0x04
    public static let headerSize = 8
    /// Port numbers with special meaning.
    public static let portController: UInt32 = 0xFFFF_FFFD
    public static let portAny: UInt32 = 0xFFFF_FFFF
    public static let portInPort: UInt32 = 0xFFFF_FFF8
    public static let portTable: UInt32 = 0xFFFF_FFF9
    public static let groupAny: UInt32 = 0xFFFF_FFFF
    public static let noBuffer: UInt32 = 0xFFFF_FFFF
    public static let maxLengthNoBuffer: UInt16 = 0xFFFF
}

/// Message types of OpenFlow 1.3 used here.
public enum OFType: UInt8, Sendable {
    case hello = 0
    case error = 1
    case echoRequest = 2
    case echoReply = 3
    case featuresRequest = 5
    case featuresReply = 6
    case setConfig = 9
    case packetIn = 10
    case portStatus = 12
    case packetOut = 13
    case flowMod = 14
    case multipartRequest = 18
    case multipartReply = 19
    case barrierRequest = 20
    case barrierReply = 21
}

/// One field of an OXM match (OpenFlow basic class), with an optional mask.
public enum OFMatchField: Equatable, Sendable {
    case inPort(UInt32)
    case ethType(UInt16)
    case ipProto(UInt8)
    case ipv4Source(UInt32, mask: UInt32?)
    case ipv4Destination(UInt32, mask: UInt32?)
    case ipv6Source([UInt8], mask: [UInt8]?)
    case ipv6Destination([UInt8], mask: [UInt8]?)
    case tcpSource(UInt16)
    case tcpDestination(UInt16)
    case udpSource(UInt16)
    case udpDestination(UInt16)
    /// A field this codec does not interpret, kept whole.
    case other(field: UInt8, hasMask: Bool, value: [UInt8])
}

public struct OFMatch: Equatable, Sendable {
    public var fields: [OFMatchField]
    public init(_ fields: [OFMatchField] = []) { self.fields = fields }
}

public enum OFAction: Equatable, Sendable {
    case output(port: UInt32, maxLength: UInt16 = OpenFlow.maxLengthNoBuffer)
    case other(type: UInt16, body: [UInt8])
}

public enum OFInstruction: Equatable, Sendable {
    case applyActions([OFAction])
    case other(type: UInt16, body: [UInt8])
}

public struct OFFlowMod: Equatable, Sendable {
    public enum Command: UInt8, Sendable {
        case add = 0
        case modify = 1
        case modifyStrict = 2
        case delete = 3
        case deleteStrict = 4
    }
    public var cookie: UInt64 = 0
    public var cookieMask: UInt64 = 0
    public var tableID: UInt8 = 0
    public var command: Command = .add
    public var idleTimeout: UInt16 = 0
    public var hardTimeout: UInt16 = 0
    public var priority: UInt16 = 0x8000
    public var bufferID: UInt32 = OpenFlow.noBuffer
    public var outPort: UInt32 = OpenFlow.portAny
    public var outGroup: UInt32 = OpenFlow.groupAny
    public var flags: UInt16 = 0
    public var match = OFMatch()
    public var instructions: [OFInstruction] = []
    public init() {}
}

public struct OFPacketIn: Equatable, Sendable {
    public var bufferID: UInt32
    public var totalLength: UInt16
    public var reason: UInt8
    public var tableID: UInt8
    public var cookie: UInt64
    public var match: OFMatch
    public var data: [UInt8]
    public init(
        bufferID: UInt32 = OpenFlow.noBuffer, totalLength: UInt16, reason: UInt8, tableID: UInt8, cookie: UInt64,
        match: OFMatch, data: [UInt8]
    ) {
        self.bufferID = bufferID
        self.totalLength = totalLength
        self.reason = reason
        self.tableID = tableID
        self.cookie = cookie
        self.match = match
        self.data = data
    }

    /// The switch port the packet came in on, from the match.
    public var inPort: UInt32? {
        for case .inPort(let p) in match.fields { return p }
        return nil
    }
}

public struct OFPacketOut: Equatable, Sendable {
    public var bufferID: UInt32 = OpenFlow.noBuffer
    public var inPort: UInt32 = OpenFlow.portController
    public var actions: [OFAction] = []
    public var data: [UInt8] = []
    public init(inPort: UInt32 = OpenFlow.portController, actions: [OFAction], data: [UInt8]) {
        self.inPort = inPort
        self.actions = actions
        self.data = data
    }
}

public struct OFPort: Equatable, Sendable {
    public var number: UInt32
    public var hardwareAddress: [UInt8]
    public var name: String
    public var config: UInt32
    public var state: UInt32
    /// curr, advertised, supported, peer (feature bits), curr_speed and max_speed (kbit/s).
    public var features: [UInt32]
    public init(
        number: UInt32, hardwareAddress: [UInt8], name: String, config: UInt32 = 0, state: UInt32 = 0,
        features: [UInt32] = [0, 0, 0, 0, 0, 0]
    ) {
        self.number = number
        self.hardwareAddress = hardwareAddress
        self.name = name
        self.config = config
        self.state = state
        self.features = features
    }
}

/// An OpenFlow message with its transaction id.
public enum OFMessage: Equatable, Sendable {
    case hello(xid: UInt32, body: [UInt8])
    case error(xid: UInt32, type: UInt16, code: UInt16, data: [UInt8])
    case echoRequest(xid: UInt32, data: [UInt8])
    case echoReply(xid: UInt32, data: [UInt8])
    case featuresRequest(xid: UInt32)
    case featuresReply(
        xid: UInt32, datapathID: UInt64, buffers: UInt32, tables: UInt8, auxiliaryID: UInt8, capabilities: UInt32)
    case portDescriptionRequest(xid: UInt32)
    case portDescriptionReply(xid: UInt32, ports: [OFPort], more: Bool)
    /// Every rule of every table (OFPMP_FLOW, nothing selected out).
    case flowStatsRequest(xid: UInt32)
    /// Rules as the switch holds them: each as the ADD that would make it (table, priority,
    /// cookie, timeouts, flags, match, instructions; the counters are left out).
    case flowStatsReply(xid: UInt32, flows: [OFFlowMod], more: Bool)
    case flowMod(xid: UInt32, OFFlowMod)
    case packetIn(xid: UInt32, OFPacketIn)
    case packetOut(xid: UInt32, OFPacketOut)
    case barrierRequest(xid: UInt32)
    case barrierReply(xid: UInt32)
    /// Anything else (port status, other multipart kinds...), kept whole.
    case other(xid: UInt32, type: UInt8, body: [UInt8])

    public var xid: UInt32 {
        switch self {
        case .hello(let x, _), .error(let x, _, _, _), .echoRequest(let x, _), .echoReply(let x, _),
            .featuresRequest(let x), .featuresReply(let x, _, _, _, _, _), .portDescriptionRequest(let x),
            .portDescriptionReply(let x, _, _), .flowStatsRequest(let x), .flowStatsReply(let x, _, _),
            .flowMod(let x, _), .packetIn(let x, _), .packetOut(let x, _),
            .barrierRequest(let x), .barrierReply(let x), .other(let x, _, _):
            x
        }
    }
}

/// Why bytes are not an OpenFlow 1.3 message.
public struct OFDecodeError: Error, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
