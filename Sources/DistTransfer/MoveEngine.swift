import Crypto
import DistChannel
import DistFlow
import DistMove
import DistPacket
import DistPipeline
import DistState

/// The VNF's side of DiST's Move, on bytes: as the source it marks the moved flows (each
/// worker's quiescent point tells when every worker has seen a mark), reads and serializes
/// their state, and sends it with the flows' redirected packets over the channel; as the
/// destination it authenticates, orders and decodes what comes, and hands state and packets to
/// the workers in that order. The workers never wait for it.
///
/// Frames, times and orders in (``start(_:now:)``, ``redirected(_:from:now:)``,
/// ``channel(_:now:)``, ``step(now:)``); what it does goes through its ``MoveHost``. One
/// thread drives it (dist-vnf's transfer lcore).
public final class MoveEngine {
    public let local: ChannelAddress
    let key: SymmetricKey
    public let maxPayload: Int
    /// (Unowned: the host owns its engine.)
    unowned let host: MoveHost
    /// Frames that were not channel frames of a known Move, or did not authenticate.
    public internal(set) var rejectedFrames = 0
    /// Redirected packets that reached the engine after their Move ended (processed here).
    public internal(set) var strayRedirects = 0
    /// Redirected packets that reached it after an order-preserving Move ended (copies of what
    /// the destination got from the switch: dropped).
    public internal(set) var duplicatesDropped = 0
    /// Where each Move's channel decisions go, line by line (``ChannelEndpoint/trace``), if anywhere.
    let traceLine: ((String) -> Void)?

    var outgoing: Outgoing?
    /// Moves out that completed, and when: kept 2 s to acknowledge the destination's summary
    /// again (the acknowledgement that went with the completion may be lost on the way, and a
    /// destination that never hears it would give the Move up).
    var finished: [UInt64: (move: Outgoing, since: UInt64)] = [:]
    /// The last Move out was order-preserving and completed: what the workers redirected
    /// before its rule went are copies the destination got from the switch.
    var completedOrdered = false
    /// That Move, and when it completed: its `discard` rule goes 2 s later (the switch's
    /// second phase is long in force by then), so traffic sent here again is processed.
    var discarding: (moveID: UInt64, since: UInt64)?
    var incoming: [UInt64: Incoming] = [:]
    /// The Moves that came here (the latest ``rememberedMoves``), in the order they came.
    var seenIncoming = Set<UInt64>()
    var seenOrder: [UInt64] = []
    static let rememberedMoves = 4096
    /// Opening frames of a Move that had already come here: a recording, refused.
    public internal(set) var replaysRefused = 0
    /// In-band control packets of the Move out without its token: forged, ignored.
    public internal(set) var markersForged = 0
    /// Flows marked and read per step of a late-locking export.
    static let batch = 256
    /// The most bytes of redirected packets a Move out keeps (sent and not known processed,
    /// or waiting to go) before it is given up.
    public var keptLimit = 256 << 20
    /// Hosts a worker exports per answer at a late-locking Move's end (a slice a step).
    public var hostSlice = 4_096
    /// Moves out send their states compressed (``ChannelFrame/Kind/stateCompressed``); off, for
    /// a destination whose build does not read them.
    public var compressStates = true
    /// Flows a worker lists in one answer (``listFlows(_:)``).
    public var locateSlice = 8_192
    /// How long a Move waits for a worker: a quiescent point, an OP queue's IBC, a drain (ns).
    static let workerPatience: UInt64 = 1_000_000_000
    /// A source silent this long mid-Move is gone; a finished Move's channel lingers this long.
    static let silence: UInt64 = 5_000_000_000
    /// How an abort frame from a source asks its destination to give the Move up and answer
    /// with its own (see ``giveUp(_:_:now:)``).
    static let askToGiveUp = "ask: "
    static let linger: UInt64 = 2_000_000_000

    /// `traceLine`: receives the channel trace of every Move (see ``ChannelEndpoint/trace``).
    public init(
        local: ChannelAddress, key: SymmetricKey, mtu: Int = 9000, host: MoveHost,
        traceLine: ((String) -> Void)? = nil
    ) {
        self.local = local
        self.key = key
        self.host = host
        self.traceLine = traceLine
        maxPayload = min(ChannelFrame.maxPayload, mtu - 28 - ChannelFrame.overhead)
    }

    /// The token Move `moveID`'s in-band control packets carry: a keyed hash of its channel
    /// nonce. The source tells its controller (the southbound reply to `movePerFlow`); the
    /// destination computes it from the nonce of the Move's first frame. No one without the
    /// channel's key can make it, and a Move's token says nothing of any other's.
    public static func ibcToken(key: SymmetricKey, moveID: UInt64, nonce: UInt64) -> UInt64 {
        var bytes = Array("DiST in-band control".utf8)
        for v in [moveID, nonce] {
            for i in (0..<8).reversed() { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(8 * i))) }
        }
        return HMAC<SHA256>.authenticationCode(for: bytes, using: key).withUnsafeBytes { raw in
            raw.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        }
    }

    public func ibcToken(_ moveID: UInt64, nonce: UInt64) -> UInt64 {
        Self.ibcToken(key: key, moveID: moveID, nonce: nonce)
    }

    /// Whether a Move is under way here, either way.
    public var busy: Bool { outgoing != nil || !incoming.isEmpty }

    /// The trace of one Move's end of the channel: lines `move ID in|out MS EVENT`, MS since it began here.
    func tracer(_ moveID: UInt64, _ direction: String, since: UInt64) -> ((UInt64, String) -> Void)? {
        guard let traceLine else { return nil }
        return { now, event in
            let us = (now &- since) / 1000
            let fraction = String(us % 1000)
            traceLine(
                "move \(moveID) \(direction) "
                    + "\(us / 1000).\(String(repeating: "0", count: 3 - fraction.count) + fraction) \(event)"
            )
        }
    }

    /// Advances the Moves: the one out, then every channel's timers and frames. Returns whether
    /// it did anything.
    public func step(now: UInt64) -> Bool {
        var busy = false
        if let move = outgoing { busy = advance(move, now: now) }
        return pollSessions(now: now) || busy
    }

    /// Ends Move `moveID` here at once, on the controller's word (southbound `abortMove`). As
    /// its source: the Move is given up, the flows are this instance's again, and the
    /// destination hears so and forgets them. As its destination: what it imported is
    /// forgotten, the switch's packets it held go on, and the source hears so and takes its
    /// flows back. False when no such Move is under way here.
    ///
    /// `peerGone`: the controller saw the other VNF go away. A source then ends the Move at
    /// once, without asking a dead destination to give it up, and processes every redirected
    /// packet the destination did not acknowledge as processed (it cannot process them now).
    public func abort(moveID: UInt64, reason: String, now: UInt64, peerGone: Bool = false) -> Bool {
        let why = "the controller aborted it" + (reason.isEmpty ? "" : ": " + reason)
        if let move = outgoing, move.order.moveID == moveID {
            if peerGone {
                abort(move, why, now: now)
            } else if move.giveUp == nil {
                giveUp(move, why, now: now)
            }
            return true
        }
        guard let move = incoming[moveID], move.finishedAt == nil, move.session.endpoint.state == .open else {
            return false
        }
        let frame = move.session.endpoint.abort(why, now: now)
        if let peer = move.peer { transmit(frame, to: peer) }
        return true
    }

    /// A frame a worker diverted here: the DiST channel's, for this instance.
    public func channel(_ bytes: [UInt8], now: UInt64) {
        guard let (from, payload) = ChannelDatagram.parse(bytes, to: local), payload.count >= 12 else {
            rejectedFrames += 1
            return
        }
        let moveID = payload[4..<12].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        if let move = outgoing.flatMap({ $0.order.moveID == moveID ? $0 : nil }) ?? finished[moveID]?.move {
            move.session.receive(payload, now: now)
            return
        }
        received(payload, moveID: moveID, from: from, now: now)
    }

    func notice(_ id: UInt64, _ type: String, _ outcome: String, _ reason: String?, _ counters: [String: Int]) {
        traceLine?("move \(id) notice \(type) \(outcome)\(reason.map { ": " + $0 } ?? "")")
        host.notify(MoveNotice(moveID: id, type: type, outcome: outcome, reason: reason, counters: counters))
    }

    /// Hands a packet to the worker its flow belongs to, to be processed and forwarded.
    @discardableResult
    func process(_ frame: ArraySlice<UInt8>) -> Bool {
        process(frame, key: FlowKey.of(frame))
    }

    /// The same, for a frame whose flow key the caller has read already.
    @discardableResult
    func process(_ frame: ArraySlice<UInt8>, key: FlowKey?) -> Bool {
        host.deliver(.process(frame), to: key.map(host.owner) ?? 0)
    }

    func everyWorker(_ request: StateRequest) -> Bool {
        var ok = true
        for w in 0..<host.workerCount {
            switch host.ask(request, worker: w) {
            case nil, .refused?: ok = false
            default: break
            }
        }
        return ok
    }

    func toEveryWorker(_ delivery: MoveDelivery) {
        for w in 0..<host.workerCount { host.deliver(delivery, to: w) }
    }

    func transmit(_ payload: [UInt8], to peer: ChannelAddress) {
        host.transmit(ChannelDatagram.build(from: local, to: peer, payload: payload))
    }
}
