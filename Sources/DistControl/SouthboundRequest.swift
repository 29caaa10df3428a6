import DistFlow
import DistState
import Foundation

/// A southbound request (controller to VNF), one JSON object per frame: its `type` names the
/// case, its `id` is repeated by the replies (see ``SouthboundService`` for what each does).
/// Decoding checks every field and names the first that is wrong; a field of the wrong type is
/// an error, never a default.
public enum SouthboundRequest: Sendable, Equatable {
    /// `lock`: late locking (the flows are marked moving as they are read).
    case getPerFlow(filter: FlowFilter, batch: Int?, lock: Bool)
    /// `peers`: the hosts at the other end of the filter's flows too.
    case getMultiFlow(filter: FlowFilter, batch: Int?, peers: Bool)
    case getAllFlows
    /// `chunks`: base64 of ``StateCodec`` chunks (decoded by the service, which times it).
    /// `move`: they come in an opennf-mode Move (the instance lists it in `moves` until
    /// `endImport`, so that a controller started after one that died finds it).
    case putPerFlow(chunks: [String], move: ImportTag? = nil)
    case putMultiFlow(chunks: [String])
    case putAllFlows(chunks: [String])
    /// `hosts`: the filter's multi-flow state goes too.
    case delPerFlow(filter: FlowFilter, hosts: Bool)
    case delMultiFlow(filter: FlowFilter)
    case delAllFlows
    /// `keep` (with `drop`): the instance keeps a copy of each packet it raises until the
    /// controller says it sent it on (`eventsReleased`); should the connection close before
    /// `disableEvents`, it processes the copies not released, in order, before the filter's next
    /// packets.
    case enableEvents(filter: FlowFilter, action: EventAction, lateLocking: Bool, keep: Bool = false)
    case disableEvents
    /// The raised packets of these sequence numbers are sent on (`seqs`: ranges, first and
    /// last): their copies go. The one request with no reply: it goes with every batch of
    /// packets the controller sends on.
    case eventsReleased(seqs: [ClosedRange<UInt64>])
    /// An opennf-mode Move into this instance ends: with `keep` its flows stay; without, the
    /// flows of its filter go (it was undone).
    case endImport(moveID: UInt64, keep: Bool)
    /// A split Move's parts: the filter's flows by sub-prefix of `length`.
    case flowGroups(filter: FlowFilter, length: Int)
    case info
    case movePerFlow(MoveRequest)
    /// `peerGone`: the controller saw the Move's other VNF go away (its connection closed), so
    /// that nothing sent to it will be processed there unless it said so already.
    case abortMove(moveID: UInt64, reason: String, peerGone: Bool = false)
    case moves

    /// The request's `type` on the wire.
    public var type: String {
        switch self {
        case .getPerFlow: "getPerFlow"
        case .getMultiFlow: "getMultiFlow"
        case .getAllFlows: "getAllFlows"
        case .putPerFlow: "putPerFlow"
        case .putMultiFlow: "putMultiFlow"
        case .putAllFlows: "putAllFlows"
        case .delPerFlow: "delPerFlow"
        case .delMultiFlow: "delMultiFlow"
        case .delAllFlows: "delAllFlows"
        case .enableEvents: "enableEvents"
        case .disableEvents: "disableEvents"
        case .eventsReleased: "eventsReleased"
        case .endImport: "endImport"
        case .flowGroups: "flowGroups"
        case .info: "info"
        case .movePerFlow: "movePerFlow"
        case .abortMove: "abortMove"
        case .moves: "moves"
        }
    }

    /// The most ranges one `eventsReleased` names.
    public static let maxReleasedRanges = 65536

    /// The longest `reason` an `abortMove` carries (it goes into logs).
    public static let maxReason = 200

    /// A request frame's body: its id (nil when absent or not an integer) and the request, or
    /// why it is not one. Nil when the body is not a JSON object at all.
    public static func decode(_ body: [UInt8]) -> (id: Int?, request: Result<SouthboundRequest, SouthboundError>)? {
        guard let frame = try? JSONDecoder().decode(Incoming.self, from: Data(body)) else { return nil }
        return (frame.id, frame.request)
    }

    /// The frame's body for request `id`.
    public func encoded(id: Int) -> [UInt8] {
        SouthboundJSON.encode(Outgoing(id: id, request: self))
    }
}

/// A JSON object's member, by name (the control plane's messages read and write their fields
/// by name: their shape depends on their `type` or `command`).
public struct JSONKey: CodingKey, ExpressibleByStringLiteral, Sendable {
    public var stringValue: String
    public var intValue: Int? { nil }
    public init(stringValue: String) { self.stringValue = stringValue }
    public init?(intValue: Int) { nil }
    public init(stringLiteral value: String) { stringValue = value }
}

extension KeyedDecodingContainer where Key == JSONKey {
    /// `key`'s value, nil when absent; `message` when present but not a `T`.
    func optional<T: Decodable>(_ key: JSONKey, _ type: T.Type, _ message: String) throws -> T? {
        guard contains(key) else { return nil }
        do {
            return try decode(T.self, forKey: key)
        } catch {
            throw SouthboundError(message)
        }
    }

    /// A filter (`filter`; absent: every flow).
    func filter() throws -> FlowFilter {
        guard let text = try optional("filter", String.self, "\"filter\" must be a string like nw_src=10.0.0.0/8")
        else { return .all }
        do {
            return try FlowFilter(parsing: text)
        } catch {
            throw SouthboundError("\(error)")
        }
    }

    func flag(_ key: JSONKey) throws -> Bool {
        try optional(key, Bool.self, "\"\(key.stringValue)\" must be true or false") ?? false
    }

    /// Chunks per reply (`batch`), if given.
    func batch() throws -> Int? {
        let message = "\"batch\" must be an integer from 1 to 65536"
        guard let n = try optional("batch", Int.self, message) else { return nil }
        guard n >= 1, n <= 65536 else { throw SouthboundError(message) }
        return n
    }

    func chunks() throws -> [String] {
        let message = "\"chunks\" must be a list of base64 strings"
        guard let list = try optional("chunks", [String].self, message) else { throw SouthboundError(message) }
        return list
    }

    func moveID() throws -> UInt64 {
        let message = "\"moveID\" must be a positive integer"
        guard let id = try optional("moveID", Int.self, message), id > 0 else { throw SouthboundError(message) }
        return UInt64(id)
    }
}

extension SouthboundRequest {
    init(from c: KeyedDecodingContainer<JSONKey>) throws {
        guard let type = try? c.decode(String.self, forKey: "type") else {
            throw SouthboundError("request has no \"type\"")
        }
        switch type {
        case "getPerFlow": self = .getPerFlow(filter: try c.filter(), batch: try c.batch(), lock: try c.flag("lock"))
        case "getMultiFlow":
            self = .getMultiFlow(filter: try c.filter(), batch: try c.batch(), peers: try c.flag("peers"))
        case "getAllFlows": self = .getAllFlows
        case "putPerFlow":
            let tag = try c.optional("move", ImportTag.self, ImportTag.message)
            self = .putPerFlow(chunks: try c.chunks(), move: tag)
        case "putMultiFlow": self = .putMultiFlow(chunks: try c.chunks())
        case "putAllFlows": self = .putAllFlows(chunks: try c.chunks())
        case "delPerFlow": self = .delPerFlow(filter: try c.filter(), hosts: try c.flag("hosts"))
        case "delMultiFlow": self = .delMultiFlow(filter: try c.filter())
        case "delAllFlows": self = .delAllFlows
        case "enableEvents":
            let message = "\"action\" must be drop, buffer or process"
            guard let name = try c.optional("action", String.self, message), let action = EventAction(rawValue: name),
                EventAction.southbound.contains(action)
            else { throw SouthboundError(message) }
            let keep = try c.flag("keep")
            guard !keep || action == .drop else { throw SouthboundError("\"keep\" goes with the drop action") }
            self = .enableEvents(
                filter: try c.filter(), action: action, lateLocking: try c.flag("lateLocking"), keep: keep)
        case "disableEvents": self = .disableEvents
        case "eventsReleased":
            let message =
                "\"seqs\" must be a list of at most \(Self.maxReleasedRanges) ranges [first, last] of sequence numbers"
            guard let list = try c.optional("seqs", [[UInt64]].self, message), list.count <= Self.maxReleasedRanges,
                list.allSatisfy({ $0.count == 2 && $0[0] <= $0[1] })
            else { throw SouthboundError(message) }
            self = .eventsReleased(seqs: list.map { $0[0]...$0[1] })
        case "endImport": self = .endImport(moveID: try c.moveID(), keep: try c.flag("keep"))
        case "flowGroups":
            let message = "\"length\" must be a prefix length of the filter's family"
            let filter = try c.filter()
            guard let length = try c.optional("length", Int.self, message) else { throw SouthboundError(message) }
            self = .flowGroups(filter: filter, length: length)
        case "info": self = .info
        case "movePerFlow": self = .movePerFlow(try MoveRequest(from: c))
        case "abortMove":
            let reason = try c.optional("reason", String.self, "\"reason\" must be a string") ?? ""
            guard reason.utf8.count <= Self.maxReason else {
                throw SouthboundError("\"reason\" must be at most \(Self.maxReason) bytes")
            }
            let peerGone = try c.optional("peerGone", Bool.self, "\"peerGone\" must be a boolean") ?? false
            self = .abortMove(moveID: try c.moveID(), reason: reason, peerGone: peerGone)
        case "moves": self = .moves
        default: throw SouthboundError("unknown request type '\(type)'")
        }
    }

    func encode(to c: inout KeyedEncodingContainer<JSONKey>) throws {
        try c.encode(type, forKey: "type")
        switch self {
        case .getPerFlow(let filter, let batch, let lock):
            try c.encode("\(filter)", forKey: "filter")
            try c.encodeIfPresent(batch, forKey: "batch")
            try c.encode(lock, forKey: "lock")
        case .getMultiFlow(let filter, let batch, let peers):
            try c.encode("\(filter)", forKey: "filter")
            try c.encodeIfPresent(batch, forKey: "batch")
            try c.encode(peers, forKey: "peers")
        case .putPerFlow(let chunks, let tag):
            try c.encode(chunks, forKey: "chunks")
            try c.encodeIfPresent(tag, forKey: "move")
        case .putMultiFlow(let chunks), .putAllFlows(let chunks):
            try c.encode(chunks, forKey: "chunks")
        case .delPerFlow(let filter, let hosts):
            try c.encode("\(filter)", forKey: "filter")
            try c.encode(hosts, forKey: "hosts")
        case .delMultiFlow(let filter):
            try c.encode("\(filter)", forKey: "filter")
        case .enableEvents(let filter, let action, let lateLocking, let keep):
            try c.encode("\(filter)", forKey: "filter")
            try c.encode(action.rawValue, forKey: "action")
            try c.encode(lateLocking, forKey: "lateLocking")
            if keep { try c.encode(true, forKey: "keep") }
        case .eventsReleased(let seqs):
            try c.encode(seqs.map { [$0.lowerBound, $0.upperBound] }, forKey: "seqs")
        case .endImport(let moveID, let keep):
            try c.encode(moveID, forKey: "moveID")
            try c.encode(keep, forKey: "keep")
        case .flowGroups(let filter, let length):
            try c.encode("\(filter)", forKey: "filter")
            try c.encode(length, forKey: "length")
        case .movePerFlow(let move):
            try move.encode(to: &c)
        case .abortMove(let moveID, let reason, let peerGone):
            try c.encode(moveID, forKey: "moveID")
            try c.encode(reason, forKey: "reason")
            if peerGone { try c.encode(true, forKey: "peerGone") }
        case .getAllFlows, .delAllFlows, .disableEvents, .info, .moves:
            break
        }
    }

    /// A frame as it comes: the id, and the request or why it is not one.
    struct Incoming: Decodable {
        var id: Int?
        var request: Result<SouthboundRequest, SouthboundError>

        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: JSONKey.self)
            id = try? c.decodeIfPresent(Int.self, forKey: "id")
            do {
                request = .success(try SouthboundRequest(from: c))
            } catch let error as SouthboundError {
                request = .failure(error)
            } catch {
                request = .failure(SouthboundError("\(error)"))
            }
        }
    }

    struct Outgoing: Encodable {
        var id: Int
        var request: SouthboundRequest

        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: JSONKey.self)
            try c.encode(id, forKey: "id")
            try request.encode(to: &c)
        }
    }
}

/// `movePerFlow`: `moveID`, `filter`, `scopes` (some of "per", "multi", "all"), `guarantee`
/// (ng|lf|op), `lateLocking`, `earlyRelease`, `redirectFirst`, `patience`, `switchNotice`, and
/// `dst`, the destination's channel address (IP:PORT@MAC).
public struct MoveRequest: Sendable, Equatable {
    public var moveID: UInt64
    public var filter: FlowFilter
    public var perFlow = true
    public var multiFlow = true
    /// The instance's counters go too (added at the destination, taken off here).
    public var allFlows = false
    public var guarantee: String
    public var lateLocking = false
    public var earlyRelease = false
    /// The switch is updated first; the state moves when the in-band control packet says the
    /// source has had its last packet (`redirectFirst`, LF only).
    public var redirectFirst = false
    public var destination: String
    /// How long the source waits for the controller's next step before it ends the Move itself
    /// (`patience`, seconds; nil: the instance's default).
    public var patience: Double?
    /// Whether the source says when the switch's packets of the moved flows reach the
    /// destination (`moveSwitched`, `moveDuplicating`; `switchNotice`, true unless false): a
    /// controller that knows its switch's datapath is up to date by other means has no use for it.
    public var switchNotice = true

    public init(moveID: UInt64, filter: FlowFilter, guarantee: String, destination: String) {
        self.moveID = moveID
        self.filter = filter
        self.guarantee = guarantee
        self.destination = destination
    }

    init(from c: KeyedDecodingContainer<JSONKey>) throws {
        moveID = try c.moveID()
        filter = try c.filter()
        let dstMessage = "\"dst\" must be the destination's channel address"
        guard let dst = try c.optional("dst", String.self, dstMessage), !dst.isEmpty else {
            throw SouthboundError(dstMessage)
        }
        destination = dst
        let scopesMessage = "\"scopes\" must be some of per, multi and all"
        let scopes = try c.optional("scopes", [String].self, scopesMessage) ?? ["per", "multi"]
        guard !scopes.isEmpty, scopes.allSatisfy({ ["per", "multi", "all"].contains($0) }) else {
            throw SouthboundError(scopesMessage)
        }
        perFlow = scopes.contains("per")
        multiFlow = scopes.contains("multi")
        allFlows = scopes.contains("all")
        let guaranteeMessage = "\"guarantee\" must be ng, lf or op"
        guarantee = try c.optional("guarantee", String.self, guaranteeMessage) ?? "lf"
        guard ["ng", "lf", "op"].contains(guarantee) else { throw SouthboundError(guaranteeMessage) }
        lateLocking = try c.flag("lateLocking")
        earlyRelease = try c.flag("earlyRelease")
        redirectFirst = try c.flag("redirectFirst")
        guard !redirectFirst || guarantee == "lf" else {
            throw SouthboundError("\"redirectFirst\" Moves are loss-free: \"guarantee\" must be lf")
        }
        let patienceMessage = "\"patience\" must be a number of seconds from 0.1 to 600"
        if let seconds = try c.optional("patience", Double.self, patienceMessage) {
            guard seconds >= 0.1, seconds <= 600 else { throw SouthboundError(patienceMessage) }
            patience = seconds
        }
        switchNotice = try c.optional("switchNotice", Bool.self, "\"switchNotice\" must be true or false") ?? true
    }

    func encode(to c: inout KeyedEncodingContainer<JSONKey>) throws {
        try c.encode(moveID, forKey: "moveID")
        try c.encode("\(filter)", forKey: "filter")
        try c.encode(
            [(perFlow, "per"), (multiFlow, "multi"), (allFlows, "all")].filter(\.0).map(\.1), forKey: "scopes")
        try c.encode(guarantee, forKey: "guarantee")
        try c.encode(lateLocking, forKey: "lateLocking")
        try c.encode(earlyRelease, forKey: "earlyRelease")
        try c.encode(redirectFirst, forKey: "redirectFirst")
        try c.encode(destination, forKey: "dst")
        try c.encodeIfPresent(patience, forKey: "patience")
        // (Only when it is not the default: an instance of an earlier build reads the rest.)
        if !switchNotice { try c.encode(false, forKey: "switchNotice") }
    }
}

/// What an opennf-mode Move's `putPerFlow` says of it (`move`): its id, its filter, and the
/// controller's name for its source.
public struct ImportTag: Sendable, Equatable, Codable {
    public var moveID: UInt64
    public var filter: FlowFilter
    public var source: String

    public init(moveID: UInt64, filter: FlowFilter, source: String) {
        self.moveID = moveID
        self.filter = filter
        self.source = source
    }

    static let message =
        "\"move\" must be {\"moveID\": a positive integer, \"filter\", \"source\": a name of 1-64 bytes}"

    enum Keys: String, CodingKey { case moveID, filter, source }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        moveID = try c.decode(UInt64.self, forKey: .moveID)
        filter = try FlowFilter(parsing: try c.decode(String.self, forKey: .filter))
        source = try c.decode(String.self, forKey: .source)
        guard moveID > 0, (1...64).contains(source.utf8.count) else { throw SouthboundError(Self.message) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(moveID, forKey: .moveID)
        try c.encode("\(filter)", forKey: .filter)
        try c.encode(source, forKey: .source)
    }
}

public struct SouthboundError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ d: String) { description = d }
}

/// The southbound's JSON: compact, keys sorted (the same message, the same bytes).
enum SouthboundJSON {
    static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // (Encoding these types cannot fail: no floats that are not finite reach them.)
        return (try? encoder.encode(value)).map { [UInt8]($0) } ?? []
    }
}
