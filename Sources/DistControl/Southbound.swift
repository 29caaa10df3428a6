import DistFlow
import DistState
import Foundation

/// The southbound API of a VNF (controller to VNF), with OpenNF's names: the requests are
/// ``SouthboundRequest``'s cases, the replies ``SouthboundReply``'s, one JSON object per
/// length-prefixed frame (see ``SouthboundFraming``); replies repeat their request's `id`.
/// State travels as base64 of ``StateCodec`` chunks, a filter as the text form of
/// ``FlowFilter`` (`nw_src=10.0.0.0/8,tp_dst=80`). `movePerFlow` (DiST's Move) is answered at
/// once; its notices (``MoveNoticeMessage``) come later on the same connection.
public final class SouthboundService {
    public let store: StateStore
    /// Chunks per state message (large states are split across messages).
    public var chunksPerMessage = 512

    /// The controller connection that enabled events: packet events go to it, and its going
    /// away disables them.
    public private(set) var eventsOwner: Int32?
    /// The filter of the events in force.
    var eventsFilter: FlowFilter?
    /// Copies of the packets raised for a controller that wants them kept (`keep`).
    public private(set) var kept = KeptEvents()
    /// opennf-mode Moves into this instance (`putPerFlow` with `move`), until `endImport`:
    /// listed in `moves`, so that a controller started after the one that died ends them.
    public private(set) var imports: [UInt64: ImportTag] = [:]
    public static let maxImports = 1024

    public init(store: StateStore) {
        self.store = store
    }

    /// DiST's Move out of this instance (`movePerFlow`), peer to peer over the data port; nil
    /// where the instance has no channel. It throws when the Move cannot start.
    /// It returns the token of the Move's in-band control packets (the controller puts it in
    /// them; the VNFs ignore one without it).
    public var startMove: ((MoveRequest) throws -> UInt64)?
    /// `abortMove`: ends a Move under way here (its id, a reason, whether the Move's other VNF
    /// is gone); nil without a channel.
    public var abortMove: ((UInt64, String, Bool) throws -> Void)?
    /// This instance's end of DiST's channel (`IP:PORT@MAC`), told in `info` replies.
    public var channelAddress: String?
    /// The version of the DiST channel this instance speaks (with `channelAddress`).
    public var channelVersion: Int?
    /// Which controller connection ordered each Move (its notices go there).
    public private(set) var moveOwners: [UInt64: Int32] = [:]
    /// Moves whose controller asked not to hear `moveSwitched` and `moveDuplicating`
    /// (``MoveRequest/switchNotice``): their phase changes all the same.
    var switchNoticeUnwanted = Set<UInt64>()

    /// The DiST Moves under way here, either way, as `moves` lists them: a controller that
    /// starts again finds those it left behind, and ends them.
    public private(set) var movesUnderWay: [UInt64: MoveUnderWay] = [:]

    public struct MoveUnderWay: Sendable {
        public var role: String
        public var phase: String
        /// A source's order (nil at a destination).
        public var order: (filter: String, guarantee: String, destination: String, ibcToken: UInt64)?

        func listing(_ moveID: UInt64) -> SouthboundReply.MoveListing {
            SouthboundReply.MoveListing(
                moveID: moveID, role: role, phase: phase, filter: order?.filter, guarantee: order?.guarantee,
                destination: order?.destination, ibcToken: order?.ibcToken)
        }
    }

    /// A Move into this instance began (`started`) or ended.
    public func incomingMove(_ moveID: UInt64, started: Bool) {
        movesUnderWay[moveID] = started ? MoveUnderWay(role: "destination", phase: "receiving") : nil
    }

    /// The phase a source's notice says its Move has reached.
    static let phases = [
        "moveReady": "ready", "moveStateSent": "state-sent", "moveSwitched": "switched",
        "moveDuplicating": "duplicating",
    ]

    /// A notice about a Move, for the connection that ordered it (nil: it is gone).
    public func moveNotice(_ notice: MoveNoticeMessage, last: Bool) -> (client: Int32, body: [UInt8])? {
        if last {
            movesUnderWay[notice.moveID] = nil
            switchNoticeUnwanted.remove(notice.moveID)
        } else if let phase = Self.phases[notice.type] {
            movesUnderWay[notice.moveID]?.phase = phase
        }
        let switchNotice = notice.type == "moveSwitched" || notice.type == "moveDuplicating"
        if switchNotice && switchNoticeUnwanted.contains(notice.moveID) { return nil }
        guard let client = moveOwners[notice.moveID] else { return nil }
        if last { moveOwners[notice.moveID] = nil }
        return (client, SouthboundReply.notice(notice).encoded(id: nil))
    }

    /// Answers one request frame's body with the bodies of the reply frames.
    public func handle(_ body: [UInt8]) -> [[UInt8]] {
        handle(client: 0, body)
    }

    /// A controller connection closed: if it had events enabled, they are disabled (held
    /// packets are processed and forwarded), so the VNF is left as it was. Copies it asked to
    /// be kept and did not release were processed nowhere: each worker processes its own, in
    /// order, before the filter's next packets (which wait meanwhile), after `drain` has
    /// handed ``raised(_:worker:)`` what the workers raised before the wait. Returns how many
    /// were processed so (nil: the connection had no events that kept copies).
    @discardableResult
    public func disconnected(_ client: Int32, drain: () -> Void = {}) throws -> Int? {
        guard client == eventsOwner else { return nil }
        guard kept.keeping, let filter = eventsFilter else {
            try disableEvents(client: client)
            return nil
        }
        eventsOwner = nil
        eventsFilter = nil
        do {
            // (From here the filter's packets wait, not raised: every packet raised before is in
            // the workers' rings, and `drain` takes it.)
            try store.setEvents(EventRule(filter: filter, action: .hold))
            drain()
            let replay = kept.takeAll()
            try store.endEvents(replaying: replay)
            return replay.count
        } catch {
            // Nothing may wait for good: what the workers hold goes on.
            kept.start(keeping: false)
            try? store.setEvents(nil)
            throw error
        }
    }

    /// A packet the workers raised: its event message for the controller, with its sequence
    /// number (a copy kept, where the controller asked for that).
    public func raised(_ frame: [UInt8], worker: Int) -> [UInt8] {
        let seq = kept.raised(frame, worker: worker)
        return SouthboundReply.packetEvent(worker: worker, frame: frame, seq: seq).encoded(id: nil)
    }

    /// Answers one request frame's body from `client` with the bodies of the reply frames.
    public func handle(client: Int32, _ body: [UInt8]) -> [[UInt8]] {
        guard let (id, request) = SouthboundRequest.decode(body) else {
            return [Self.error(nil, "request is not a JSON object")]
        }
        do {
            return try answer(try request.get(), client: client).map { $0.encoded(id: id) }
        } catch {
            return [Self.error(id, "\(error)")]
        }
    }

    /// The replies to one request (a large state takes several).
    func answer(_ request: SouthboundRequest, client: Int32) throws -> [SouthboundReply] {
        switch request {
        case .getPerFlow(let filter, let batch, let lock):
            return state(
                .perFlow, try store.exportFlows(filter, lock: lock).map { .perFlow($0) },
                batch: batch ?? chunksPerMessage)
        case .getMultiFlow(let filter, let batch, let peers):
            return state(
                .multiFlow, try store.exportAssets(filter, peers: peers).map { .multiFlow($0) },
                batch: batch ?? chunksPerMessage)
        case .getAllFlows:
            return state(.allFlows, [.allFlows(store.exportCounters())], batch: chunksPerMessage)
        case .putPerFlow(let chunks, let tag):
            if let tag, imports[tag.moveID] == nil {
                guard imports.count < Self.maxImports else {
                    throw SouthboundError("\(Self.maxImports) opennf-mode Moves into this instance are under way")
                }
                imports[tag.moveID] = tag
            }
            let (flows, nanoseconds) = try put(chunks, .perFlow) { chunk -> FlowEntry? in
                if case .perFlow(let e) = chunk { return e } else { return nil }
            }
            return [.ack(.init(count: try store.importFlows(flows), deserializeNanoseconds: nanoseconds))]
        case .putMultiFlow(let chunks):
            let (assets, nanoseconds) = try put(chunks, .multiFlow) { chunk -> AssetState? in
                if case .multiFlow(let a) = chunk { return a } else { return nil }
            }
            return [.ack(.init(count: try store.importAssets(assets), deserializeNanoseconds: nanoseconds))]
        case .putAllFlows(let chunks):
            let (counters, nanoseconds) = try put(chunks, .allFlows) { chunk -> InstanceCounters? in
                if case .allFlows(let c) = chunk { return c } else { return nil }
            }
            counters.forEach { store.importCounters($0) }
            return [.ack(.init(count: counters.count, deserializeNanoseconds: nanoseconds))]
        case .delPerFlow(let filter, let hosts):
            // With `hosts`, the filter's multi-flow state goes too (one message instead of two).
            let flows = try store.deleteFlows(filter)
            if hosts { _ = try store.deleteAssets(filter) }
            return [.ack(.init(count: flows))]
        case .delMultiFlow(let filter):
            return [.ack(.init(count: try store.deleteAssets(filter)))]
        case .delAllFlows:
            store.resetCounters()
            return [.ack(.init(count: 1))]
        case .enableEvents(let filter, let action, let lateLocking, let keep):
            try enableEvents(
                EventRule(filter: filter, action: action, lateLocking: lateLocking), keep: keep, client: client)
            return [.ack(.init(count: 1))]
        case .disableEvents:
            try disableEvents(client: client)
            return [.ack(.init(count: 1))]
        case .eventsReleased(let seqs):
            guard eventsOwner == client else { throw SouthboundError("no events of this connection are in force") }
            kept.released(seqs)
            return []
        case .endImport(let moveID, let keep):
            guard let tag = imports.removeValue(forKey: moveID) else {
                throw SouthboundError("no opennf-mode Move \(moveID) into this instance is under way")
            }
            return [.ack(.init(count: keep ? 0 : try store.deleteFlows(tag.filter)))]
        case .flowGroups(let filter, let length):
            return [.flowGroups(try flowGroups(filter, length: length))]
        case .info:
            return [.info(.init(workers: store.workerCount, channel: channelAddress, channelVersion: channelVersion))]
        case .movePerFlow(let move):
            return [.ack(.init(count: 1, ibcToken: try movePerFlow(move, client: client)))]
        case .abortMove(let moveID, let reason, let peerGone):
            guard let abortMove else { throw SouthboundError("this instance has no DiST channel: no Move runs here") }
            try abortMove(moveID, reason, peerGone)
            return [.ack(.init(count: 1))]
        case .moves:
            let dist = movesUnderWay.keys.sorted().compactMap { id in movesUnderWay[id]?.listing(id) }
            let opennf = imports.keys.sorted().map { id in
                let tag = imports[id]!
                return SouthboundReply.MoveListing(
                    moveID: id, role: "destination", phase: "importing", filter: "\(tag.filter)", guarantee: "opennf",
                    source: tag.source)
            }
            return [.moves(dist + opennf)]
        }
    }

    /// A put request's chunks of `scope`, each what `take` finds in it (nil: a chunk of
    /// another scope, refused), and the time decoding them took.
    func put<T>(_ list: [String], _ scope: StateScope, _ take: (StateChunk) -> T?) throws -> ([T], UInt64) {
        let (decoded, nanoseconds) = try chunks(list)
        let taken = try decoded.map { chunk -> T in
            guard let t = take(chunk) else { throw SouthboundError("a put chunk is not \(scope) state") }
            return t
        }
        return (taken, nanoseconds)
    }

    /// OpenNF's enableEvents: one connection's at a time.
    func enableEvents(_ rule: EventRule, keep: Bool = false, client: Int32) throws {
        if let owner = eventsOwner, owner != client {
            throw SouthboundError("events are enabled by another controller connection")
        }
        // (A DiST Move's redirect, hold or gate rule is in force meanwhile: not an event rule,
        // and no connection's to replace.)
        guard movesUnderWay.isEmpty else {
            throw SouthboundError("a DiST Move is under way here: events wait for its end")
        }
        try store.setEvents(rule)
        eventsOwner = client
        eventsFilter = rule.filter
        kept.start(keeping: keep)
    }

    /// Ends the events this connection enabled; another connection's stay, as does a DiST
    /// Move's rule (with no events enabled, nothing changes).
    func disableEvents(client: Int32) throws {
        guard let owner = eventsOwner else { return }
        guard owner == client else { throw SouthboundError("events are enabled by another controller connection") }
        try store.setEvents(nil)
        eventsOwner = nil
        eventsFilter = nil
        // (Its controller has had every event: what it did not send on is its to account for.)
        kept.start(keeping: false)
    }

    /// Whether a connection has work under way here: events it enabled, or a Move it ordered
    /// (its notices are still to come). The server never closes such a connection for idleness.
    public func hasWorkUnderWay(_ client: Int32) -> Bool {
        eventsOwner == client || moveOwners.values.contains(client)
    }

    /// A split Move's parts: the filter's flows by sub-prefix (`length`: 0-32 for an IPv4
    /// prefix, 0-128 for IPv6), with the packets they have seen.
    func flowGroups(_ f: FlowFilter, length: Int) throws -> [SouthboundReply.FlowGroup] {
        guard let prefix = f.splitPrefix else {
            throw SouthboundError("\"filter\" must be one IP prefix (nw_src or nw_dst) and nothing else")
        }
        guard length >= 0, length <= (prefix.address.isIPv4Mapped ? 32 : 128) else {
            throw SouthboundError("\"length\" must be a prefix length of the filter's family")
        }
        let groups = try store.flowGroups(f, length: length + (prefix.address.isIPv4Mapped ? 96 : 0))
        return groups.map { .init(prefix: $0.prefix.text, flows: $0.flows, packets: Int(clamping: $0.packets)) }
    }

    /// A DiST Move out, started on this instance's channel; the token its in-band control
    /// packets carry.
    func movePerFlow(_ move: MoveRequest, client: Int32) throws -> UInt64 {
        guard let startMove else {
            throw SouthboundError("this instance has no DiST channel (start dist-vnf with --channel and --channel-key)")
        }
        guard moveOwners[move.moveID] == nil else { throw SouthboundError("move \(move.moveID) is already under way") }
        let token = try startMove(move)
        moveOwners[move.moveID] = client
        if !move.switchNotice { switchNoticeUnwanted.insert(move.moveID) }
        movesUnderWay[move.moveID] = MoveUnderWay(
            role: "source", phase: "exporting",
            order: ("\(move.filter)", move.guarantee, move.destination, token))
        return token
    }

    /// Decodes every chunk of a put before anything is applied; also how long decoding took
    /// (base64 and the chunk codec: a Move's deserialization time).
    func chunks(_ list: [String]) throws -> ([StateChunk], UInt64) {
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
    /// (the chunk codec and base64, a Move's serialization time).
    func state(_ scope: StateScope, _ chunks: [StateChunk], batch: Int) -> [SouthboundReply] {
        var replies: [SouthboundReply] = []
        var start = 0
        repeat {
            let part = chunks[start..<min(chunks.count, start + batch)]
            start += part.count
            let began = DispatchTime.now().uptimeNanoseconds
            let encoded = part.map { Data(StateCodec.encode($0)).base64EncodedString() }
            let took = DispatchTime.now().uptimeNanoseconds - began
            replies.append(
                .state(
                    .init(
                        scope: scope, count: part.count, last: start >= chunks.count, serializeNanoseconds: took,
                        chunks: encoded)))
        } while start < chunks.count
        return replies
    }

    /// Whether a request read after its controller went away is still handled: only
    /// `eventsReleased`, which says which of the packets it raised it sent on (the rest come
    /// back at ``disconnected(_:drain:)``); anything else would start work for no one.
    public static func stillCounts(afterTheClientLeft body: [UInt8]) -> Bool {
        if case .success(.eventsReleased)? = SouthboundRequest.decode(body)?.request { return true }
        return false
    }

    public static func error(_ id: Int?, _ reason: String) -> [UInt8] {
        SouthboundReply.error(reason: reason).encoded(id: id)
    }
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
