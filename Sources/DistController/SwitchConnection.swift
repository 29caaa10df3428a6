import DistMove
import DistOpenFlow
import NIOCore
import NIOPosix

/// One OpenFlow 1.3 switch connected to the controller. Lives on the controller's event loop.
/// Answers echoes, learns the datapath and its ports, and gives the Move what it needs:
/// FLOW_MODs, PACKET_OUTs, barriers that fail when a FLOW_MOD before them was refused, and
/// PACKET_INs.
final class SwitchConnection {
    let channel: Channel
    let loop: EventLoop
    let log: (String) -> Void
    private(set) var datapathID: UInt64?
    private(set) var ports: [OFPort] = []
    private var nextXid: UInt32 = 1
    private var barriers: [UInt32: (promise: EventLoopPromise<Void>, covers: [UInt32], timeout: Scheduled<Void>)] = [:]
    /// Flow-stats requests waiting for the rest of their reply, by xid.
    private var flowStatsWaiting: [UInt32: (promise: EventLoopPromise<[OFFlowMod]>, flows: [OFFlowMod])] = [:]
    /// FLOW_MODs the switch refused, by xid (reason).
    private var refused: [UInt32: String] = [:]
    /// The running Move's handler of PACKET_INs; true when it took the packet.
    var onPacketIn: ((OFPacketIn) -> Bool)?
    /// PACKET_INs no Move took (late ones, after the Move that routed them here ended): sent
    /// back through the flow table from their port, so they go where the rules send them now.
    private(set) var packetInsReinjected = 0
    /// Called once the switch has said who it is (FEATURES_REPLY).
    var onReady: (() -> Void)?
    private(set) var counters = TrafficCounters()
    private(set) var closed = false

    init(channel: Channel, log: @escaping (String) -> Void) {
        self.channel = channel
        self.loop = channel.eventLoop
        self.log = log
    }

    func start() {
        send(.hello(xid: xid(), body: []))
        send(.featuresRequest(xid: xid()))
        send(.portDescriptionRequest(xid: xid()))
    }

    func xid() -> UInt32 {
        defer { nextXid &+= 1 }
        return nextXid
    }

    /// Sends a message; `counted` false for the connection's keepalive (echo), which is no
    /// Move's traffic.
    @discardableResult
    func send(_ message: OFMessage, counted: Bool = true) -> UInt32 {
        loop.preconditionInEventLoop()
        let bytes = message.encoded()
        if counted {
            counters.sent(to: "switch", message.kind, bytes: bytes.count)
        }
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        channel.writeAndFlush(buffer, promise: nil)
        return message.xid
    }

    @discardableResult
    func flowMod(_ mod: OFFlowMod) -> UInt32 {
        send(.flowMod(xid: xid(), mod))
    }

    /// PACKET_OUTs waiting to go, in order: they are paced (``packetOutRate``), because a
    /// burst of thousands re-injected at once overflows the switch's port queues and is lost.
    private var packetOuts: [(frame: [UInt8], ports: [UInt32], inPort: UInt32, tag: UInt64?)] = []
    /// Called after each slice with the tags of the PACKET_OUTs it sent (those given one).
    var onPacketOutsSent: (([UInt64]) -> Void)?
    private var packetOutHead = 0
    private var pacing: Scheduled<Void>?
    private var drained: [EventLoopPromise<Void>] = []
    /// PACKET_OUTs per second at most (sent in slices every millisecond).
    var packetOutRate = 10_000
    /// The most bytes of PACKET_OUTs that wait at once: one that would go beyond is dropped and
    /// counted (``packetOutsDropped``), so that traffic the pacing holds back cannot fill the
    /// controller's memory.
    var packetOutLimitBytes = 256 << 20
    private var queuedBytes = 0
    private(set) var packetOutsDropped = 0
    /// The current millisecond's slice: when it began and how many went in it.
    private var sliceStart = NIODeadline.uptimeNanoseconds(0)
    private var sentInSlice = 0

    /// Sends `frame` out of `port` (after the PACKET_OUTs queued before it).
    func packetOut(_ frame: [UInt8], port: UInt32, inPort: UInt32 = OpenFlow.portController) {
        packetOut(frame, ports: [port], inPort: inPort)
    }

    /// Frames out of `port`, queued together (so that those the slice lets go leave in one
    /// go, and their tags come back together).
    func packetOuts(_ batch: [(frame: [UInt8], tag: UInt64?)], port: UInt32) {
        for p in batch { packetOut(p.frame, ports: [port], tag: p.tag, pace: false) }
        if pacing == nil { pace() }
    }

    /// One PACKET_OUT sending `frame` out of each of `ports`, in that order (OP's in-band
    /// control packet goes to both VNFs at once).
    func packetOut(
        _ frame: [UInt8], ports: [UInt32], inPort: UInt32 = OpenFlow.portController, tag: UInt64? = nil,
        pace now: Bool = true
    ) {
        loop.preconditionInEventLoop()
        guard queuedBytes + frame.count <= packetOutLimitBytes else {
            packetOutsDropped += 1
            return
        }
        queuedBytes += frame.count
        packetOuts.append((frame, ports, inPort, tag))
        if now && pacing == nil { pace() }
    }

    /// Sends what the current millisecond's slice still allows (a slice per millisecond, of
    /// packetOutRate / 1000), and comes back at the next slice for the rest.
    private func pace() {
        pacing = nil
        let now = loop.now
        if now - sliceStart >= .milliseconds(1) {
            sliceStart = now
            sentInSlice = 0
        }
        let slice = max(1, packetOutRate / 1000)
        var tags: [UInt64] = []
        defer { if !tags.isEmpty { onPacketOutsSent?(tags) } }
        while packetOutHead < packetOuts.count && sentInSlice < slice {
            let p = packetOuts[packetOutHead]
            if let tag = p.tag { tags.append(tag) }
            queuedBytes -= p.frame.count
            packetOuts[packetOutHead].frame = []
            packetOutHead += 1
            sentInSlice += 1
            send(
                .packetOut(
                    xid: xid(),
                    OFPacketOut(
                        inPort: p.inPort,
                        actions: p.ports.map { .output(port: $0, maxLength: OpenFlow.maxLengthNoBuffer) }, data: p.frame
                    )))
        }
        if packetOutHead < packetOuts.count {
            pacing = loop.scheduleTask(deadline: sliceStart + .milliseconds(1)) { self.pace() }
        } else {
            packetOuts = []
            packetOutHead = 0
            let waiting = drained
            drained = []
            waiting.forEach { $0.succeed(()) }
        }
    }

    /// PACKET_OUTs still queued.
    var queuedPacketOuts: Int { packetOuts.count - packetOutHead }

    /// Succeeds once every PACKET_OUT queued so far has been handed to the switch.
    func packetOutsSent() -> EventLoopFuture<Void> {
        loop.preconditionInEventLoop()
        guard queuedPacketOuts > 0 else { return loop.makeSucceededVoidFuture() }
        let p = loop.makePromise(of: Void.self)
        drained.append(p)
        return p.futureResult
    }

    /// Every rule of the switch's tables (a flow-stats request, its reply in as many parts as
    /// the switch sends); fails when the switch goes away or takes longer than `timeout`.
    func flowStats(timeout: TimeAmount = .seconds(5)) -> EventLoopFuture<[OFFlowMod]> {
        loop.preconditionInEventLoop()
        guard !closed else { return loop.makeFailedFuture(ControllerError("the switch is not connected")) }
        let x = send(.flowStatsRequest(xid: xid()))
        let promise = loop.makePromise(of: [OFFlowMod].self)
        flowStatsWaiting[x] = (promise, [])
        loop.scheduleTask(in: timeout) {
            self.flowStatsWaiting.removeValue(forKey: x)?.promise.fail(
                ControllerError("the switch did not send its flow table"))
        }
        return promise.futureResult
    }

    /// A barrier: succeeds when the switch has applied everything sent before it, fails when
    /// one of the FLOW_MODs `covers` names was refused, the switch goes away, or no reply comes.
    func barrier(covering covers: [UInt32] = [], timeout: TimeAmount = .seconds(5)) -> EventLoopFuture<Void> {
        loop.preconditionInEventLoop()
        guard !closed else { return loop.makeFailedFuture(ControllerError("the switch is not connected")) }
        let x = xid()
        let promise = loop.makePromise(of: Void.self)
        let t = loop.scheduleTask(in: timeout) {
            if let b = self.barriers.removeValue(forKey: x) {
                b.promise.fail(ControllerError("the switch did not answer a barrier"))
            }
        }
        barriers[x] = (promise, covers, t)
        send(.barrierRequest(xid: x))
        return promise.futureResult
    }

    func received(_ message: OFMessage) {
        if case .echoRequest(let x, let data) = message {
            send(.echoReply(xid: x, data: data), counted: false)
            return
        }
        if let (reason, port) = message.portStatus {
            // The switch's news of its ports is no Move's traffic either (Open vSwitch says so
            // when a vhost-user port's link goes down or up): logged, not counted.
            let reasons = ["added", "deleted", "modified"]
            let what = reason < reasons.count ? reasons[Int(reason)] : "reason \(reason)"
            log("switch: port \(port.number) \(port.name) \(what) (\(port.state & 1 != 0 ? "link down" : "link up"))")
            return
        }
        counters.received(from: "switch", message.kind, bytes: message.encoded().count)
        switch message {
        case .hello:
            break
        case .echoRequest:
            break
        case .featuresReply(_, let dpid, _, _, _, _):
            let first = datapathID == nil
            datapathID = dpid
            if first {
                log("switch: datapath \(String(dpid, radix: 16)) connected")
                onReady?()
            }
        case .portDescriptionReply(_, let list, let more):
            ports += list
            if !more { log("switch: ports " + ports.map { "\($0.number)=\($0.name)" }.joined(separator: " ")) }
        case .packetIn(_, let p):
            if onPacketIn?(p) != true, InBandControl.marker(in: p.data) == nil, p.inPort != nil {
                packetInsReinjected += 1
                log("switch: a packet-in no Move took, sent back through the table (\(packetInsReinjected) so far)")
                packetOut(p.data, port: OpenFlow.portTable, inPort: p.inPort!)
            }
        case .flowStatsReply(let x, let flows, let more):
            guard var waiting = flowStatsWaiting[x] else { return }
            waiting.flows += flows
            if more {
                flowStatsWaiting[x] = waiting
            } else {
                flowStatsWaiting[x] = nil
                waiting.promise.succeed(waiting.flows)
            }
        case .barrierReply(let x):
            guard let b = barriers.removeValue(forKey: x) else { return }
            b.timeout.cancel()
            if let bad = b.covers.compactMap({ refused[$0] }).first {
                b.promise.fail(ControllerError("the switch refused a rule: \(bad)"))
            } else {
                b.promise.succeed(())
            }
        case .error(let x, let type, let code, _):
            refused[x] = "OpenFlow error type \(type) code \(code)"
            log("switch: error type \(type) code \(code) for xid \(x)")
        default:
            break
        }
    }

    func wentAway(_ why: String) {
        closed = true
        pacing?.cancel()
        pacing = nil
        let waiting = drained
        drained = []
        waiting.forEach {
            $0.fail(ControllerError("the switch went away (\(why)) with \(queuedPacketOuts) packets to send"))
        }
        let reading = flowStatsWaiting
        flowStatsWaiting = [:]
        reading.values.forEach { $0.promise.fail(ControllerError("the switch went away (\(why))")) }
        let pending = barriers
        barriers = [:]
        for b in pending.values {
            b.timeout.cancel()
            b.promise.fail(ControllerError("the switch went away (\(why))"))
        }
    }
}

final class SwitchHandler: ChannelInboundHandler {
    typealias InboundIn = OFMessage
    let connection: SwitchConnection
    let onClose: (SwitchConnection) -> Void
    var why = "closed by the switch"

    init(connection: SwitchConnection, onClose: @escaping (SwitchConnection) -> Void) {
        self.connection = connection
        self.onClose = onClose
    }

    func channelActive(context: ChannelHandlerContext) {
        connection.start()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        connection.received(unwrapInboundIn(data))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        why = "\(error)"
        connection.log("switch: \(error); closing")
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.wentAway(why)
        onClose(connection)
    }
}
