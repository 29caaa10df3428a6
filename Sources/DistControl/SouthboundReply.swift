import DistState
import Foundation

/// What a VNF sends its controller: replies to a request (with its `id`), and messages of its
/// own (`id` null): packet events and notices about DiST Moves.
public enum SouthboundReply: Sendable, Equatable {
    /// `statePerFlow`, `stateMultiFlow` or `stateAllFlows` (a large state comes in several).
    case state(StateReply)
    case ack(Ack)
    case error(reason: String)
    case info(Info)
    case flowGroups([FlowGroup])
    case moves([MoveListing])
    /// A packet the VNF raised under an event rule (OpenNF mode), and the worker that did.
    case packetEvent(worker: Int, frame: [UInt8], seq: UInt64? = nil)
    case notice(MoveNoticeMessage)

    /// What kind of reply this is, for counting (a notice by its type).
    public var kind: String {
        switch self {
        case .state(let r): "state \(r.scope)"
        case .ack: "ack"
        case .error: "error"
        case .info: "info"
        case .flowGroups: "flowGroups"
        case .moves: "moves"
        case .packetEvent: "packetEvent"
        case .notice(let n): n.type
        }
    }

    public struct StateReply: Sendable, Equatable {
        public var scope: StateScope
        public var count: Int
        /// The last reply to its request.
        public var last: Bool
        /// What encoding these chunks took (the chunk codec and base64).
        public var serializeNanoseconds: UInt64
        /// Base64 of ``StateCodec`` chunks.
        public var chunks: [String]

        public init(scope: StateScope, count: Int, last: Bool, serializeNanoseconds: UInt64, chunks: [String]) {
            self.scope = scope
            self.count = count
            self.last = last
            self.serializeNanoseconds = serializeNanoseconds
            self.chunks = chunks
        }
    }

    public struct Ack: Sendable, Equatable {
        public var count: Int
        /// A put's: what decoding its chunks took.
        public var deserializeNanoseconds: UInt64?
        /// `movePerFlow`'s: the token of the Move's in-band control packets.
        public var ibcToken: UInt64?

        public init(count: Int, deserializeNanoseconds: UInt64? = nil, ibcToken: UInt64? = nil) {
            self.count = count
            self.deserializeNanoseconds = deserializeNanoseconds
            self.ibcToken = ibcToken
        }
    }

    public struct Info: Sendable, Equatable {
        public var workers: Int
        /// The instance's end of DiST's channel (`IP:PORT@MAC#VLAN`), if it has one.
        public var channel: String?
        /// The version of the channel it speaks (with `channel`).
        public var channelVersion: Int?

        public init(workers: Int, channel: String? = nil, channelVersion: Int? = nil) {
            self.workers = workers
            self.channel = channel
            self.channelVersion = channelVersion
        }
    }

    public struct FlowGroup: Sendable, Equatable {
        /// A sub-prefix of the filter's (`IP/LENGTH`).
        public var prefix: String
        public var flows: Int
        public var packets: Int

        public init(prefix: String, flows: Int, packets: Int) {
            self.prefix = prefix
            self.flows = flows
            self.packets = packets
        }
    }

    /// A Move under way at the instance (`moves`): a source's also says what it moves where.
    public struct MoveListing: Sendable, Equatable {
        public var moveID: UInt64
        /// "source" or "destination".
        public var role: String
        public var phase: String
        public var filter: String?
        public var guarantee: String?
        public var destination: String?
        public var ibcToken: UInt64?
        /// An opennf-mode Move in: the controller's name for its source.
        public var source: String?

        public init(
            moveID: UInt64, role: String, phase: String, filter: String? = nil, guarantee: String? = nil,
            destination: String? = nil, ibcToken: UInt64? = nil, source: String? = nil
        ) {
            self.source = source
            self.moveID = moveID
            self.role = role
            self.phase = phase
            self.filter = filter
            self.guarantee = guarantee
            self.destination = destination
            self.ibcToken = ibcToken
        }
    }

    /// The wire's `type` of each state scope's reply.
    static let stateTypes: [StateScope: String] = [
        .perFlow: "statePerFlow", .multiFlow: "stateMultiFlow", .allFlows: "stateAllFlows",
    ]

    /// The frame's body, for request `id` (nil: a message of the VNF's own).
    public func encoded(id: Int?) -> [UInt8] {
        SouthboundJSON.encode(Frame(id: id, reply: self))
    }

    /// A reply frame's body: its id and the reply; nil when it is not one this side knows.
    public static func decode(_ body: [UInt8]) -> (id: Int?, reply: SouthboundReply)? {
        guard let frame = try? JSONDecoder().decode(Frame.self, from: Data(body)) else { return nil }
        return (frame.id, frame.reply)
    }

    /// A token as the southbound carries it: 16 hex digits (JSON numbers stop at 2^53 in many
    /// readers).
    public static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    struct Frame: Codable {
        var id: Int?
        var reply: SouthboundReply

        init(id: Int?, reply: SouthboundReply) {
            self.id = id
            self.reply = reply
        }

        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: JSONKey.self)
            id = try c.decodeIfPresent(Int.self, forKey: "id")
            reply = try SouthboundReply(from: c)
        }

        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: JSONKey.self)
            if let id { try c.encode(id, forKey: "id") } else { try c.encodeNil(forKey: "id") }
            try reply.encode(to: &c)
        }
    }
}

/// What a source tells the controller that ordered a Move, as it happens: `moveReady`,
/// `moveStateSent`, `moveSwitched`, `moveDuplicating`, `moveComplete` (its `outcome`:
/// completed, aborted or refused, and why), with the Move's counters so far.
public struct MoveNoticeMessage: Sendable, Equatable {
    public var type: String
    public var moveID: UInt64
    public var outcome: String
    public var reason: String?
    public var counters: [String: Int]

    public init(type: String, moveID: UInt64, outcome: String, reason: String? = nil, counters: [String: Int] = [:]) {
        self.type = type
        self.moveID = moveID
        self.outcome = outcome
        self.reason = reason
        self.counters = counters
    }

    /// The notices' types.
    public static let types: Set<String> = [
        "moveReady", "moveStateSent", "moveDuplicating", "moveSwitched", "moveComplete",
    ]
}

extension SouthboundReply {
    init(from c: KeyedDecodingContainer<JSONKey>) throws {
        let type = try c.decode(String.self, forKey: "type")
        if let scope = Self.stateTypes.first(where: { $0.value == type })?.key {
            self = .state(
                StateReply(
                    scope: scope, count: try c.decode(Int.self, forKey: "count"),
                    last: try c.decode(Bool.self, forKey: "last"),
                    serializeNanoseconds: try c.decodeIfPresent(UInt64.self, forKey: "serialize_ns") ?? 0,
                    chunks: try c.decode([String].self, forKey: "chunks")))
            return
        }
        if MoveNoticeMessage.types.contains(type) {
            self = .notice(
                MoveNoticeMessage(
                    type: type, moveID: try c.decode(UInt64.self, forKey: "moveID"),
                    outcome: try c.decodeIfPresent(String.self, forKey: "outcome") ?? "",
                    reason: try c.decodeIfPresent(String.self, forKey: "reason"),
                    counters: try c.decodeIfPresent([String: Int].self, forKey: "counters") ?? [:]))
            return
        }
        switch type {
        case "ack":
            self = .ack(
                Ack(
                    count: try c.decode(Int.self, forKey: "count"),
                    deserializeNanoseconds: try c.decodeIfPresent(UInt64.self, forKey: "deserialize_ns"),
                    ibcToken: try c.decodeIfPresent(String.self, forKey: "ibcToken").flatMap { UInt64($0, radix: 16) }))
        case "error":
            self = .error(reason: try c.decodeIfPresent(String.self, forKey: "reason") ?? "no reason given")
        case "info":
            self = .info(
                Info(
                    workers: try c.decodeIfPresent(Int.self, forKey: "workers") ?? 1,
                    channel: try c.decodeIfPresent(String.self, forKey: "channel"),
                    // (Builds before version 2 did not say: they speak version 1.)
                    channelVersion: try c.decodeIfPresent(Int.self, forKey: "channelVersion")))
        case "flowGroups":
            let groups = try c.nestedUnkeyedArray("groups")
            self = .flowGroups(
                try groups.map { g in
                    FlowGroup(
                        prefix: try g.decode(String.self, forKey: "prefix"),
                        flows: try g.decode(Int.self, forKey: "flows"),
                        packets: try g.decode(Int.self, forKey: "packets"))
                })
        case "moves":
            self = .moves(
                try c.nestedUnkeyedArray("moves").map { m in
                    MoveListing(
                        moveID: try m.decode(UInt64.self, forKey: "moveID"),
                        role: try m.decode(String.self, forKey: "role"),
                        phase: try m.decode(String.self, forKey: "phase"),
                        filter: try m.decodeIfPresent(String.self, forKey: "filter"),
                        guarantee: try m.decodeIfPresent(String.self, forKey: "guarantee"),
                        destination: try m.decodeIfPresent(String.self, forKey: "dst"),
                        ibcToken: try m.decodeIfPresent(String.self, forKey: "ibcToken").flatMap {
                            UInt64($0, radix: 16)
                        }, source: try m.decodeIfPresent(String.self, forKey: "src"))
                })
        case "packetEvent":
            guard let frame = Data(base64Encoded: try c.decode(String.self, forKey: "frame")) else {
                throw SouthboundError("a packet event's frame is not base64")
            }
            self = .packetEvent(
                worker: try c.decodeIfPresent(Int.self, forKey: "worker") ?? 0, frame: [UInt8](frame),
                seq: try c.decodeIfPresent(UInt64.self, forKey: "seq"))
        default:
            throw SouthboundError("unknown reply type '\(type)'")
        }
    }

    func encode(to c: inout KeyedEncodingContainer<JSONKey>) throws {
        switch self {
        case .state(let s):
            try c.encode(Self.stateTypes[s.scope], forKey: "type")
            try c.encode(s.count, forKey: "count")
            try c.encode(s.last, forKey: "last")
            try c.encode(s.serializeNanoseconds, forKey: "serialize_ns")
            try c.encode(s.chunks, forKey: "chunks")
        case .ack(let a):
            try c.encode("ack", forKey: "type")
            try c.encode(a.count, forKey: "count")
            try c.encodeIfPresent(a.deserializeNanoseconds, forKey: "deserialize_ns")
            try c.encodeIfPresent(a.ibcToken.map(Self.hex), forKey: "ibcToken")
        case .error(let reason):
            try c.encode("error", forKey: "type")
            try c.encode(reason, forKey: "reason")
        case .info(let i):
            try c.encode("info", forKey: "type")
            try c.encode(i.workers, forKey: "workers")
            try c.encodeIfPresent(i.channel, forKey: "channel")
            try c.encodeIfPresent(i.channelVersion, forKey: "channelVersion")
        case .flowGroups(let groups):
            try c.encode("flowGroups", forKey: "type")
            var list = c.nestedUnkeyedContainer(forKey: "groups")
            for g in groups {
                var o = list.nestedContainer(keyedBy: JSONKey.self)
                try o.encode(g.prefix, forKey: "prefix")
                try o.encode(g.flows, forKey: "flows")
                try o.encode(g.packets, forKey: "packets")
            }
        case .moves(let moves):
            try c.encode("moves", forKey: "type")
            var list = c.nestedUnkeyedContainer(forKey: "moves")
            for m in moves {
                var o = list.nestedContainer(keyedBy: JSONKey.self)
                try o.encode(m.moveID, forKey: "moveID")
                try o.encode(m.role, forKey: "role")
                try o.encode(m.phase, forKey: "phase")
                try o.encodeIfPresent(m.filter, forKey: "filter")
                try o.encodeIfPresent(m.guarantee, forKey: "guarantee")
                try o.encodeIfPresent(m.destination, forKey: "dst")
                try o.encodeIfPresent(m.ibcToken.map(Self.hex), forKey: "ibcToken")
                try o.encodeIfPresent(m.source, forKey: "src")
            }
        case .packetEvent(let worker, let frame, let seq):
            try c.encode("packetEvent", forKey: "type")
            try c.encode(worker, forKey: "worker")
            try c.encodeIfPresent(seq, forKey: "seq")
            try c.encode(Data(frame).base64EncodedString(), forKey: "frame")
        case .notice(let n):
            try c.encode(n.type, forKey: "type")
            try c.encode(n.moveID, forKey: "moveID")
            try c.encode(n.outcome, forKey: "outcome")
            try c.encodeIfPresent(n.reason, forKey: "reason")
            try c.encode(n.counters, forKey: "counters")
        }
    }
}

extension KeyedDecodingContainer where Key == JSONKey {
    /// The objects of the array at `key`, each as a keyed container.
    func nestedUnkeyedArray(_ key: JSONKey) throws -> [KeyedDecodingContainer<JSONKey>] {
        var list = try nestedUnkeyedContainer(forKey: key)
        var out: [KeyedDecodingContainer<JSONKey>] = []
        while !list.isAtEnd { out.append(try list.nestedContainer(keyedBy: JSONKey.self)) }
        return out
    }
}

extension SouthboundReply.StateReply {
    /// The chunks, decoded (a chunk that is not base64, or does not decode, is an error).
    public func decoded() throws -> [StateChunk] {
        try chunks.enumerated().map { i, text in
            guard let data = Data(base64Encoded: text) else { throw SouthboundError("state chunk \(i) is not base64") }
            return try StateCodec.decode([UInt8](data))
        }
    }
}
