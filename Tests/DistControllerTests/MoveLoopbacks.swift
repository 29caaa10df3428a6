import DistChannel
import DistControl
import DistFlow
import DistLoopback
import DistMove
import DistOpenFlow
import DistPipeline
import DistState
import DistTransfer
import NIOCore
import NIOEmbedded
import Testing

@testable import DistController

/// A VNF in the test's own thread: the real southbound service (``SouthboundService``) over a
/// real instance's workers and Move engine (``MoveInstance``), behind the controller's
/// ``MoveVNF``: requests go in as the bytes the socket would carry, replies and notices come
/// back the same way.
final class LoopbackVNF: MoveVNF {
    let name: String
    let switchPort: UInt32
    let instance: MoveInstance
    let service: SouthboundService
    let loop: EventLoop
    var connected = true
    var counters = TrafficCounters()
    var onNotice: ((MoveNoticeMessage) -> Void)?
    var onEvent: (([UInt8], UInt64?) -> Void)?
    var onDisconnect: (() -> Void)?
    var requests: [String] = []
    private var noticesSeen = 0
    private var nextID = 1

    var channelAddress: String? { instance.address.description }
    var channelVersion: Int? { Int(ChannelFrame.version) }
    var workers: Int { instance.workerCount }

    init(name: String, switchPort: UInt32, address: String, loop: EventLoop) {
        self.name = name
        self.switchPort = switchPort
        self.loop = loop
        let instance = MoveInstance(workers: 1, address: address)
        self.instance = instance
        let store = PipelineStateStore(
            workers: instance.workerCount, perform: { request, w in instance.ask(request, worker: w) },
            totals: { InstanceCounters() })
        service = SouthboundService(store: store)
        service.channelAddress = instance.address.description
        service.channelVersion = Int(ChannelFrame.version)
        service.startMove = { request in
            guard let dst = ChannelAddress(request.destination) else { throw SouthboundError("bad dst") }
            var order = MoveOrder(
                moveID: request.moveID, filter: request.filter, guarantee: request.guarantee, destination: dst)
            order.perFlow = request.perFlow
            order.multiFlow = request.multiFlow
            order.lateLocking = request.lateLocking
            order.earlyRelease = request.earlyRelease
            order.redirectFirst = request.redirectFirst
            instance.engine.start(order, now: instance.clock)
            return instance.engine.ibcToken(order.moveID, nonce: order.nonce)
        }
        service.abortMove = { id, reason, peerGone in
            _ = instance.engine.abort(moveID: id, reason: reason, now: instance.clock, peerGone: peerGone)
        }
    }

    func post(_ request: SouthboundRequest) {
        guard connected else { return }
        requests.append(request.type)
        counters.sent(to: name, request.type, bytes: 0)
        _ = service.handle(client: 1, request.encoded(id: 0))
    }

    func request(_ request: SouthboundRequest, onReply: @escaping (SouthboundReply) throws -> Bool) -> EventLoopFuture<
        Void
    > {
        guard connected else { return loop.makeFailedFuture(ControllerError("\(name) went away")) }
        requests.append(request.type)
        counters.sent(to: name, request.type, bytes: 0)
        let id = nextID
        nextID += 1
        for body in service.handle(client: 1, request.encoded(id: id)) {
            guard let (replyID, reply) = SouthboundReply.decode(body), replyID == id else { continue }
            counters.received(from: name, reply.kind, bytes: 0)
            if case .error(let why) = reply {
                return loop.makeFailedFuture(ControllerError("\(name) refused \(request.type): \(why)"))
            }
            do {
                if try onReply(reply) { break }
            } catch {
                return loop.makeFailedFuture(error)
            }
        }
        return loop.makeSucceededVoidFuture()
    }

    /// What the engine told since the last call, on to the Move, as the socket carries it.
    func deliverNotices() {
        while noticesSeen < instance.notices.count {
            let n = instance.notices[noticesSeen]
            noticesSeen += 1
            if n.type == "incomingStarted" || n.type == "incomingEnded" {
                service.incomingMove(n.moveID, started: n.type == "incomingStarted")
                continue
            }
            let notice = MoveNoticeMessage(
                type: n.type, moveID: n.moveID, outcome: n.outcome, reason: n.reason, counters: n.counters)
            guard let (_, body) = service.moveNotice(notice, last: n.type == "moveComplete" || n.outcome == "refused"),
                case .notice(let decoded)? = SouthboundReply.decode(body)?.reply
            else { continue }
            counters.received(from: name, decoded.type, bytes: 0)
            onNotice?(decoded)
        }
    }
}

/// The switch, as far as a Move's rules go: the moved flows' traffic goes where the last rule
/// for them says; a PACKET_OUT reaches the VNF on its port at once; barriers are answered.
final class LoopbackSwitch: MoveSwitch {
    let loop: EventLoop
    var counters = TrafficCounters()
    var closed = false
    var queuedPacketOuts: Int { 0 }
    var packetOutsDropped: Int { 0 }
    var onPacketIn: ((OFPacketIn) -> Bool)?
    var onPacketOutsSent: (([UInt64]) -> Void)?
    var onDisconnect: (() -> Void)?
    var onConnect: (() -> Void)?
    /// Barriers wait for ``goAway()`` instead of succeeding at once.
    var holdBarriers = false
    var heldBarriers: [EventLoopPromise<Void>] = []
    var vnfs: [UInt32: LoopbackVNF] = [:]
    /// The ports the moved flows' packets go out of.
    var targets: [UInt32]
    var flowMods: [OFFlowMod] = []

    init(loop: EventLoop, targets: [UInt32]) {
        self.loop = loop
        self.targets = targets
    }

    func flowMod(_ mod: OFFlowMod) -> UInt32 {
        flowMods.append(mod)
        counters.sent(to: "switch", "FLOW_MOD", bytes: 0)
        let moveRule =
            mod.cookie & SwitchRules.reflectorCookie(0) == 0 && (mod.command == .add || mod.command == .modify)
        if moveRule, case .applyActions(let actions)? = mod.instructions.first {
            if datapathLag.nanoseconds > 0 && cachedTargets == nil {
                (cachedTargets, ruleChangedAt) = (targets, loop.now)
            }
            targets = actions.compactMap { if case .output(let port, _) = $0 { port } else { nil } }
        }
        return UInt32(flowMods.count)
    }

    /// How long Open vSwitch's datapath goes on forwarding by a flow's cached entry after a rule
    /// change, for each flow in turn (flow `f` follows the new rule `(f + 1) * datapathLag`
    /// after it), unless it is purged (``syncDatapath()``); zero: at once.
    var datapathLag = TimeAmount.zero
    var cachedTargets: [UInt32]?
    var ruleChangedAt = NIODeadline.uptimeNanoseconds(0)

    /// The ports a packet of `flow` goes out of now.
    func targets(flow: Int) -> [UInt32] {
        guard let cached = cachedTargets else { return targets }
        if loop.now < ruleChangedAt + datapathLag * Int64(flow + 1) { return cached }
        return targets
    }

    func packetOut(_ frame: [UInt8], port: UInt32, inPort: UInt32) {
        guard !closed else { return }
        log.append("PACKET_OUT \(port)")
        counters.sent(to: "switch", "PACKET_OUT", bytes: 0)
        vnfs[port]?.instance.receive(frame)
    }

    func packetOuts(_ batch: [(frame: [UInt8], tag: UInt64?)], port: UInt32) {
        guard !closed else { return }
        for p in batch { packetOut(p.frame, port: port, inPort: OpenFlow.portController) }
        let tags = batch.compactMap(\.tag)
        if !tags.isEmpty { onPacketOutsSent?(tags) }
    }

    func packetOutsSent() -> EventLoopFuture<Void> { loop.makeSucceededVoidFuture() }

    /// The switch is back (with the rules it had).
    func comeBack() {
        closed = false
        onConnect?()
    }

    /// The switch goes away: its barriers fail, the Move hears of it.
    func goAway() {
        closed = true
        heldBarriers.forEach { $0.fail(ControllerError("the switch went away")) }
        heldBarriers = []
        onDisconnect?()
    }

    func barrier(covering covers: [UInt32], timeout: TimeAmount) -> EventLoopFuture<Void> {
        guard !closed else { return loop.makeFailedFuture(ControllerError("the switch is not connected")) }
        if holdBarriers {
            counters.sent(to: "switch", "BARRIER_REQUEST", bytes: 0)
            let p = loop.makePromise(of: Void.self)
            heldBarriers.append(p)
            return p.futureResult
        }
        counters.sent(to: "switch", "BARRIER_REQUEST", bytes: 0)
        counters.received(from: "switch", "BARRIER_REPLY", bytes: 0)
        return loop.makeSucceededVoidFuture()
    }

    /// Whether it has a datapath to purge (Open vSwitch's control socket); purges succeed.
    var purges = false
    /// The PACKET_OUTs' ports and the purges, in order.
    var log: [String] = []

    /// The switch goes away as the next purge is asked for (being restarted: that purge fails).
    var awayAtPurge = false

    func syncDatapath() -> EventLoopFuture<Void> {
        if awayAtPurge {
            awayAtPurge = false
            goAway()
        }
        guard purges, !closed else { return loop.makeFailedFuture(ControllerError("no means")) }
        log.append("purge")
        counters.sent(to: "switch", "revalidator/purge", bytes: 0)
        counters.received(from: "switch", "revalidator/purge reply", bytes: 0)
        cachedTargets = nil
        return loop.makeSucceededVoidFuture()
    }
    var syncsDatapath: Bool { purges }
}
