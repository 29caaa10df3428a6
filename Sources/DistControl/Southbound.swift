import DistFlow
import DistState
import Foundation

/// The southbound API of a VNF (controller to VNF), with OpenNF's names: JSON objects, one per
/// length-prefixed frame (see ``SouthboundFraming``). Every request carries a `type` and an
/// `id` the replies repeat.
///
/// Requests: `getPerFlow` (`filter`, `batch`: chunks per reply, `lock`: late locking),
/// `getMultiFlow` (`filter`, `peers`: hosts at the other end of the filter's flows too),
/// `getAllFlows`; `putPerFlow`/`putMultiFlow`/
/// `putAllFlows` (`chunks`: base64 of ``StateCodec`` chunks); `delPerFlow`/`delMultiFlow`
/// (`filter`; `delPerFlow` with `hosts` deletes both), `delAllFlows`; `info` (the instance's
/// DiST channel address); `movePerFlow` (DiST's Move, see ``MoveRequest``), whose notices
/// `moveStateSent` and `moveComplete` come later on the same connection; `abortMove`
/// (`moveID`, `reason`) ends one at once; `moves` lists those under way here (`moveID`, `role`,
/// `phase`; a source's also `filter`, `guarantee`, `dst`). Replies: `statePerFlow`/`stateMultiFlow`/`stateAllFlows` (`chunks`,
/// `count`, `last`: large states come in several messages), `ack` (`count`), `error` (`reason`).
/// A filter is the text form of ``FlowFilter`` (`nw_src=10.0.0.0/8,tp_dst=80`).
public final class SouthboundService {
    public let store: StateStore
    /// Chunks per state message (large states are split across messages).
    public var chunksPerMessage = 512

    /// The controller connection that enabled events: packet events go to it, and its going
    /// away disables them.
    public private(set) var eventsOwner: Int32?

    public init(store: StateStore) {
        self.store = store
    }

    /// DiST's Move out of this instance (`movePerFlow`), peer to peer over the data port; nil
    /// where the instance has no channel. It throws when the Move cannot start.
    /// It returns the token of the Move's in-band control packets (the controller puts it in
    /// them; the VNFs ignore one without it).
    public var startMove: ((MoveRequest) throws -> UInt64)?
    /// `abortMove`: ends a Move under way here (its id, a reason); nil without a channel.
    public var abortMove: ((UInt64, String) throws -> Void)?
    /// This instance's end of DiST's channel (`IP:PORT@MAC`), told in `info` replies.
    public var channelAddress: String?
    /// The version of the DiST channel this instance speaks (with `channelAddress`).
    public var channelVersion: Int?
    /// Which controller connection ordered each Move (its notices go there).
    public private(set) var moveOwners: [UInt64: Int32] = [:]

    /// The DiST Moves under way here, either way, as `moves` lists them: a controller that
    /// starts again finds those it left behind, and ends them.
    public private(set) var movesUnderWay: [UInt64: MoveUnderWay] = [:]

    public struct MoveUnderWay: Sendable {
        public var role: String
        public var phase: String
        /// A source's order (nil at a destination).
        public var order: (filter: String, guarantee: String, destination: String, ibcToken: UInt64)?

        func json(_ moveID: UInt64) -> [String: Any] {
            var out: [String: Any] = ["moveID": Int(moveID), "role": role, "phase": phase]
            if let order {
                out["filter"] = order.filter
                out["guarantee"] = order.guarantee
                out["dst"] = order.destination
                out["ibcToken"] = SouthboundService.hex(order.ibcToken)
            }
            return out
        }
    }

    /// A Move into this instance began (`started`) or ended.
    public func incomingMove(_ moveID: UInt64, started: Bool) {
        movesUnderWay[moveID] = started ? MoveUnderWay(role: "destination", phase: "receiving") : nil
    }

    /// The phase a source's notice says its Move has reached.
    static let phases = ["moveReady": "ready", "moveStateSent": "state-sent", "moveSwitched": "switched",
                         "moveDuplicating": "duplicating"]

    /// A notice about a Move, for the connection that ordered it (nil: it is gone).
    public func moveNotice(_ moveID: UInt64, _ fields: [String: Any], last: Bool) -> (client: Int32, body: [UInt8])? {
        if last {
            movesUnderWay[moveID] = nil
        } else if let type = fields["type"] as? String, let phase = Self.phases[type] {
            movesUnderWay[moveID]?.phase = phase
        }
        guard let client = moveOwners[moveID] else { return nil }
        if last { moveOwners[moveID] = nil }
        var object = fields
        object["moveID"] = Int(moveID)
        return (client, Self.encode(object, id: nil))
    }

    /// Answers one request frame's body with the bodies of the reply frames.
    public func handle(_ body: [UInt8]) -> [[UInt8]] {
        handle(client: 0, body)
    }

    /// A controller connection closed: if it had events enabled, they are disabled (held
    /// packets are processed and forwarded), so the VNF is left as it was.
    public func disconnected(_ client: Int32) {
        guard client == eventsOwner else { return }
        try? disableEvents(client: client)
    }

    /// A packet event message for the controller.
    public static func packetEvent(_ frame: [UInt8], worker: Int) -> [UInt8] {
        encode(["type": "packetEvent", "worker": worker, "frame": Data(frame).base64EncodedString()], id: nil)
    }

    /// Answers one request frame's body from `client` with the bodies of the reply frames.
    public func handle(client: Int32, _ body: [UInt8]) -> [[UInt8]] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)), let request = object as? [String: Any] else {
            return [Self.error(nil, "request is not a JSON object")]
        }
        let id = request["id"] as? Int
        guard let type = request["type"] as? String else { return [Self.error(id, "request has no \"type\"")] }
        do {
            switch type {
            case "getPerFlow":
                let lock = request["lock"] as? Bool ?? false
                return state("statePerFlow", id, try store.exportFlows(try filter(request), lock: lock).map { .perFlow($0) },
                             batch: try batch(request))
            case "getMultiFlow":
                let peers = request["peers"] as? Bool ?? false
                return state("stateMultiFlow", id, try store.exportAssets(try filter(request), peers: peers).map { .multiFlow($0) },
                             batch: try batch(request))
            case "getAllFlows":
                return state("stateAllFlows", id, [.allFlows(store.exportCounters())], batch: chunksPerMessage)
            case "putPerFlow":
                let (flows, nanoseconds) = try put(request, .perFlow) { chunk -> FlowEntry? in
                    if case .perFlow(let e) = chunk { return e } else { return nil }
                }
                return [Self.ack(id, try store.importFlows(flows), deserializeNanoseconds: nanoseconds)]
            case "putMultiFlow":
                let (assets, nanoseconds) = try put(request, .multiFlow) { chunk -> AssetState? in
                    if case .multiFlow(let a) = chunk { return a } else { return nil }
                }
                return [Self.ack(id, try store.importAssets(assets), deserializeNanoseconds: nanoseconds)]
            case "putAllFlows":
                let (counters, nanoseconds) = try put(request, .allFlows) { chunk -> InstanceCounters? in
                    if case .allFlows(let c) = chunk { return c } else { return nil }
                }
                counters.forEach { store.importCounters($0) }
                return [Self.ack(id, counters.count, deserializeNanoseconds: nanoseconds)]
            case "delPerFlow":
                // With `hosts`, the filter's multi-flow state goes too (one message instead of two).
                let f = try filter(request)
                let flows = try store.deleteFlows(f)
                if request["hosts"] as? Bool == true { _ = try store.deleteAssets(f) }
                return [Self.ack(id, flows)]
            case "delMultiFlow":
                return [Self.ack(id, try store.deleteAssets(try filter(request)))]
            case "delAllFlows":
                store.resetCounters()
                return [Self.ack(id, 1)]
            case "enableEvents":
                try enableEvents(request, client: client)
                return [Self.ack(id, 1)]
            case "flowGroups":
                return [Self.encode(["type": "flowGroups", "groups": try flowGroups(request)], id: id)]
            case "info":
                var reply: [String: Any] = ["type": "info", "workers": store.workerCount]
                if let channelAddress { reply["channel"] = channelAddress }
                if let channelVersion { reply["channelVersion"] = channelVersion }
                return [Self.encode(reply, id: id)]
            case "movePerFlow":
                let token = try movePerFlow(request, client: client)
                return [Self.encode(["type": "ack", "count": 1, "ibcToken": Self.hex(token)], id: id)]
            case "abortMove":
                try abortMove(request)
                return [Self.ack(id, 1)]
            case "moves":
                let list = movesUnderWay.keys.sorted().compactMap { id in movesUnderWay[id]?.json(id) }
                return [Self.encode(["type": "moves", "moves": list], id: id)]
            case "disableEvents":
                try disableEvents(client: client)
                return [Self.ack(id, 1)]
            default:
                return [Self.error(id, "unknown request type '\(type)'")]
            }
        } catch {
            return [Self.error(id, "\(error)")]
        }
    }

    /// A put request's chunks of `scope`, each what `take` finds in it (nil: a chunk of
    /// another scope, refused), and the time decoding them took.
    func put<T>(_ request: [String: Any], _ scope: StateScope, _ take: (StateChunk) -> T?) throws -> ([T], UInt64) {
        let (decoded, nanoseconds) = try chunks(request, scope)
        let taken = try decoded.map { chunk -> T in
            guard let t = take(chunk) else { throw SouthboundError("a put chunk is not \(scope) state") }
            return t
        }
        return (taken, nanoseconds)
    }

    /// OpenNF's enableEvents: one connection's at a time.
    func enableEvents(_ request: [String: Any], client: Int32) throws {
        guard let name = request["action"] as? String, let action = EventAction(rawValue: name),
              EventAction.southbound.contains(action) else {
            throw SouthboundError("\"action\" must be drop, buffer or process")
        }
        if let owner = eventsOwner, owner != client {
            throw SouthboundError("events are enabled by another controller connection")
        }
        // (A DiST Move's redirect, hold or gate rule is in force meanwhile: not an event rule,
        // and no connection's to replace.)
        guard movesUnderWay.isEmpty else { throw SouthboundError("a DiST Move is under way here: events wait for its end") }
        let late = request["lateLocking"] as? Bool ?? false
        try store.setEvents(EventRule(filter: try filter(request), action: action, lateLocking: late))
        eventsOwner = client
    }

    /// Ends the events this connection enabled; another connection's stay, as does a DiST
    /// Move's rule (with no events enabled, nothing changes).
    func disableEvents(client: Int32) throws {
        guard let owner = eventsOwner else { return }
        guard owner == client else { throw SouthboundError("events are enabled by another controller connection") }
        try store.setEvents(nil)
        eventsOwner = nil
    }

    /// Whether a connection has work under way here: events it enabled, or a Move it ordered
    /// (its notices are still to come). The server never closes such a connection for idleness.
    public func hasWorkUnderWay(_ client: Int32) -> Bool {
        eventsOwner == client || moveOwners.values.contains(client)
    }

    /// A split Move's parts: the filter's flows by sub-prefix (`length`: 0-32 for an IPv4
    /// prefix, 0-128 for IPv6), with the packets they have seen.
    func flowGroups(_ request: [String: Any]) throws -> [[String: Any]] {
        let f = try filter(request)
        guard let prefix = f.splitPrefix else { throw SouthboundError("\"filter\" must be one IP prefix (nw_src or nw_dst) and nothing else") }
        guard let length = request["length"] as? Int, length >= 0, length <= (prefix.address.isIPv4Mapped ? 32 : 128) else {
            throw SouthboundError("\"length\" must be a prefix length of the filter's family")
        }
        let groups = try store.flowGroups(f, length: length + (prefix.address.isIPv4Mapped ? 96 : 0))
        return groups.map { ["prefix": $0.prefix.text, "flows": $0.flows, "packets": Int(clamping: $0.packets)] as [String: Any] }
    }

    /// A DiST Move out, started on this instance's channel.
    func movePerFlow(_ request: [String: Any], client: Int32) throws -> UInt64 {
        guard let startMove else {
            throw SouthboundError("this instance has no DiST channel (start dist-vnf with --channel and --channel-key)")
        }
        let move = try MoveRequest(request, filter: try filter(request))
        guard moveOwners[move.moveID] == nil else { throw SouthboundError("move \(move.moveID) is already under way") }
        let token = try startMove(move)
        moveOwners[move.moveID] = client
        movesUnderWay[move.moveID] = MoveUnderWay(role: "source", phase: "exporting",
                                                  order: ("\(move.filter)", move.guarantee, move.destination, token))
        return token
    }

    /// Ends a DiST Move under way here at once (`moveID`, and a `reason` for the logs): the
    /// source takes its flows back, the destination forgets what it imported (see
    /// `MoveEngine.abort(moveID:reason:now:)`). The source's `moveComplete` says it was done.
    func abortMove(_ request: [String: Any]) throws {
        guard let abortMove else { throw SouthboundError("this instance has no DiST channel: no Move runs here") }
        guard let id = request["moveID"] as? Int, id > 0 else { throw SouthboundError("\"moveID\" must be a positive integer") }
        let reason = request["reason"] as? String ?? ""
        guard reason.utf8.count <= 200 else { throw SouthboundError("\"reason\" must be at most 200 bytes") }
        try abortMove(UInt64(id), reason)
    }

    /// A token as the southbound carries it: 16 hex digits (JSON numbers stop at 2^53 in many
    /// readers).
    public static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    func filter(_ request: [String: Any]) throws -> FlowFilter {
        guard let value = request["filter"] else { return .all }
        guard let text = value as? String else { throw SouthboundError("\"filter\" must be a string like nw_src=10.0.0.0/8") }
        return try FlowFilter(parsing: text)
    }

    /// Chunks per reply message a get asks for (`batch`), or the default.
    func batch(_ request: [String: Any]) throws -> Int {
        guard let value = request["batch"] else { return chunksPerMessage }
        guard let n = value as? Int, n >= 1, n <= 65536 else { throw SouthboundError("\"batch\" must be an integer from 1 to 65536") }
        return n
    }

    /// Decodes every chunk of a put before anything is applied; also how long decoding took
    /// (base64 and the chunk codec: a Move's deserialization time).
    func chunks(_ request: [String: Any], _ scope: StateScope) throws -> ([StateChunk], UInt64) {
        guard let list = request["chunks"] as? [String] else { throw SouthboundError("\"chunks\" must be a list of base64 strings") }
        let start = DispatchTime.now().uptimeNanoseconds
        let decoded = try list.enumerated().map { i, text in
            guard let data = Data(base64Encoded: text) else { throw SouthboundError("chunk \(i) is not base64") }
            do {
                return try StateCodec.decode([UInt8](data))
            } catch {
                throw SouthboundError("chunk \(i): \(error)")
            }
        }
        return (decoded, DispatchTime.now().uptimeNanoseconds - start)
    }

    /// State replies of `batch` chunks each; each says how long encoding its chunks took
    /// (`serialize_ns`: the chunk codec and base64, a Move's serialization time).
    func state(_ type: String, _ id: Int?, _ chunks: [StateChunk], batch: Int) -> [[UInt8]] {
        var replies: [[UInt8]] = []
        var start = 0
        repeat {
            let part = chunks[start..<min(chunks.count, start + batch)]
            start += part.count
            let began = DispatchTime.now().uptimeNanoseconds
            let encoded = part.map { Data(StateCodec.encode($0)).base64EncodedString() }
            let took = DispatchTime.now().uptimeNanoseconds - began
            replies.append(Self.encode(["type": type, "count": part.count, "last": start >= chunks.count,
                                        "serialize_ns": took, "chunks": encoded], id: id))
        } while start < chunks.count
        return replies
    }

    static func ack(_ id: Int?, _ count: Int, deserializeNanoseconds: UInt64? = nil) -> [UInt8] {
        var reply: [String: Any] = ["type": "ack", "count": count]
        if let ns = deserializeNanoseconds { reply["deserialize_ns"] = ns }
        return encode(reply, id: id)
    }

    public static func error(_ id: Int?, _ reason: String) -> [UInt8] {
        encode(["type": "error", "reason": reason], id: id)
    }

    static func encode(_ object: [String: Any], id: Int?) -> [UInt8] {
        var object = object
        object["id"] = id.map { $0 as Any } ?? NSNull()
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return [UInt8](data)
    }
}

/// `movePerFlow`: `moveID`, `filter`, `scopes` (some of "per", "multi", "all"), `guarantee` (ng|lf|op),
/// `lateLocking`, `earlyRelease`, `redirectFirst`, and `dst`, the destination's channel address
/// (IP:PORT@MAC).
public struct MoveRequest: Sendable {
    public var moveID: UInt64
    public var filter: FlowFilter
    public var perFlow: Bool
    public var multiFlow: Bool
    /// The instance's counters go too (added at the destination, taken off here).
    public var allFlows: Bool
    public var guarantee: String
    public var lateLocking: Bool
    public var earlyRelease: Bool
    /// The switch is updated first; the state moves when the in-band control packet says the
    /// source has had its last packet (`redirectFirst`, LF only).
    public var redirectFirst: Bool
    public var destination: String
    /// How long the source waits for the controller's next step before it ends the Move itself
    /// (`patience`, seconds; nil: the instance's default).
    public var patience: Double?

    init(_ r: [String: Any], filter: FlowFilter) throws {
        guard let id = r["moveID"] as? Int, id > 0 else { throw SouthboundError("\"moveID\" must be a positive integer") }
        guard let dst = r["dst"] as? String, !dst.isEmpty else { throw SouthboundError("\"dst\" must be the destination's channel address") }
        let scopes = r["scopes"] as? [String] ?? ["per", "multi"]
        guard !scopes.isEmpty, scopes.allSatisfy({ ["per", "multi", "all"].contains($0) }) else {
            throw SouthboundError("\"scopes\" must be some of per, multi and all")
        }
        let guarantee = r["guarantee"] as? String ?? "lf"
        guard ["ng", "lf", "op"].contains(guarantee) else { throw SouthboundError("\"guarantee\" must be ng, lf or op") }
        moveID = UInt64(id)
        self.filter = filter
        perFlow = scopes.contains("per")
        multiFlow = scopes.contains("multi")
        allFlows = scopes.contains("all")
        self.guarantee = guarantee
        lateLocking = r["lateLocking"] as? Bool ?? false
        earlyRelease = r["earlyRelease"] as? Bool ?? false
        redirectFirst = r["redirectFirst"] as? Bool ?? false
        guard !redirectFirst || guarantee == "lf" else { throw SouthboundError("\"redirectFirst\" Moves are loss-free: \"guarantee\" must be lf") }
        destination = dst
        if let p = r["patience"] {
            guard let seconds = (p as? NSNumber)?.doubleValue, seconds >= 0.1, seconds <= 600 else {
                throw SouthboundError("\"patience\" must be a number of seconds from 0.1 to 600")
            }
            patience = seconds
        }
    }
}

public struct SouthboundError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// Frames of the southbound API: a 4-byte big-endian length, then that many bytes of JSON.
public enum SouthboundFraming {
    /// Largest frame accepted (a frame above it is refused and the connection closed).
    public static let maxFrame = 16 << 20

    public static func frame(_ body: [UInt8]) -> [UInt8] {
        let n = UInt32(body.count)
        return [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + body
    }

    public enum Next: Equatable {
        case frame(body: [UInt8], size: Int)
        case needMore
        case tooLarge(Int)
    }

    /// The first whole frame in `buffer`, if there is one.
    public static func next(in buffer: ArraySlice<UInt8>) -> Next {
        guard buffer.count >= 4 else { return .needMore }
        let b = buffer.startIndex
        let n = Int(buffer[b]) << 24 | Int(buffer[b + 1]) << 16 | Int(buffer[b + 2]) << 8 | Int(buffer[b + 3])
        guard n <= maxFrame else { return .tooLarge(n) }
        guard buffer.count >= 4 + n else { return .needMore }
        return .frame(body: Array(buffer[(b + 4)..<(b + 4 + n)]), size: 4 + n)
    }
}
