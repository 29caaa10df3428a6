import DistControl
import DistOpenFlow
import NIOCore

/// A VNF as a Move run sees it: its southbound (requests, the Move's notices, the packets it
/// raises) and where it sits (switch port, channel). ``VNFClient`` is one over TCP; a test runs
/// a Move against one in its own process. Every member is used on the Move's event loop.
protocol MoveVNF: AnyObject {
    var name: String { get }
    /// The switch port its data port is attached to.
    var switchPort: UInt32 { get }
    /// Its end of DiST's channel (`IP:PORT@MAC#VLAN`), nil when it has none.
    var channelAddress: String? { get }
    var channelVersion: Int? { get }
    var workers: Int { get }
    var connected: Bool { get }
    var counters: TrafficCounters { get }
    var onNotice: ((MoveNoticeMessage) -> Void)? { get set }
    var onEvent: (([UInt8], UInt64?) -> Void)? { get set }
    var onDisconnect: (() -> Void)? { get set }
    /// Sends a request that has no reply (`eventsReleased`).
    func post(_ request: SouthboundRequest)
    /// Sends a request and hands each reply to `onReply` until it says the last has come;
    /// fails on an `error` reply, a timeout, or the VNF going away.
    func request(_ request: SouthboundRequest, onReply: @escaping (SouthboundReply) throws -> Bool) -> EventLoopFuture<
        Void
    >
}

extension MoveVNF {
    /// The VLAN of its channel address, if it has one.
    var channelVLAN: UInt16? {
        guard let text = channelAddress, let hash = text.firstIndex(of: "#") else { return nil }
        return UInt16(text[text.index(after: hash)...])
    }

    /// A request with one reply.
    func request(_ request: SouthboundRequest) -> EventLoopFuture<SouthboundReply> {
        var reply = SouthboundReply.error(reason: "no reply")
        return self.request(request) { r in
            reply = r
            return true
        }.map { reply }
    }

    /// A request whose reply is an `ack`.
    func acknowledged(_ request: SouthboundRequest) -> EventLoopFuture<SouthboundReply.Ack> {
        self.request(request).flatMapThrowing { reply in
            guard case .ack(let ack) = reply else {
                throw ControllerError("\(self.name) answered \(request.type) with no ack")
            }
            return ack
        }
    }
}

/// The switch as a Move run sees it: rule changes, barriers, packets out and in.
/// ``SwitchLink`` is the one over OpenFlow (whichever connection the switch is on).
protocol MoveSwitch: AnyObject {
    var loop: EventLoop { get }
    var counters: TrafficCounters { get }
    var closed: Bool { get }
    /// PACKET_OUTs still queued (they are paced), and those dropped because the queue was full.
    var queuedPacketOuts: Int { get }
    var packetOutsDropped: Int { get }
    var onPacketIn: ((OFPacketIn) -> Bool)? { get set }
    /// Called with the tags of PACKET_OUTs (``packetOuts(_:port:)``) as they leave for the
    /// switch (they are paced).
    var onPacketOutsSent: (([UInt64]) -> Void)? { get set }
    /// Called when the switch goes away, and when it is back (with the rules it had).
    var onDisconnect: (() -> Void)? { get set }
    var onConnect: (() -> Void)? { get set }
    @discardableResult
    func flowMod(_ mod: OFFlowMod) -> UInt32
    /// Sends `frame` out of `port` (after the PACKET_OUTs queued before it).
    func packetOut(_ frame: [UInt8], port: UInt32, inPort: UInt32)
    /// Sends frames out of `port`, queued together; each `tag` comes back through
    /// ``onPacketOutsSent`` once its frame has left.
    func packetOuts(_ batch: [(frame: [UInt8], tag: UInt64?)], port: UInt32)
    /// Succeeds once every PACKET_OUT queued so far has been handed to the switch.
    func packetOutsSent() -> EventLoopFuture<Void>
    /// Succeeds when the switch has applied everything sent before it; fails when one of the
    /// FLOW_MODs `covers` names was refused, the switch goes away, or no reply comes.
    func barrier(covering covers: [UInt32], timeout: TimeAmount) -> EventLoopFuture<Void>
    /// Brings the switch's datapath up to date with its flow table (``DatapathSync``): succeeds
    /// once no flow it cached before the call forwards a packet; fails if it did not work, or
    /// at once where the controller has no such means (``syncsDatapath``: then only time tells).
    func syncDatapath() -> EventLoopFuture<Void>
    /// Whether ``syncDatapath()`` has the means.
    var syncsDatapath: Bool { get }
}

extension MoveSwitch {
    func packetOut(_ frame: [UInt8], port: UInt32) { packetOut(frame, port: port, inPort: OpenFlow.portController) }
    func barrier(covering covers: [UInt32] = []) -> EventLoopFuture<Void> {
        barrier(covering: covers, timeout: .seconds(5))
    }

    /// ``syncDatapath()`` where the controller has the means: true once the datapath is up to
    /// date; false without the means, or when it did not work (`warn` is told why), and then only
    /// time tells (``settled(_:)``).
    func datapathCaughtUp(warn: @escaping (String) -> Void) -> EventLoopFuture<Bool> {
        guard syncsDatapath else { return loop.makeSucceededFuture(false) }
        return syncDatapath().map { true }.recover { error in
            warn("the switch's datapath was not brought up to date: \(error)")
            return false
        }
    }

    /// Succeeds once the switch's datapath has had `settle` to apply the last rule change.
    func settled(_ settle: TimeAmount) -> EventLoopFuture<Void> {
        settle.nanoseconds > 0 ? loop.scheduleTask(in: settle) {}.futureResult : loop.makeSucceededVoidFuture()
    }
}

extension VNFClient: MoveVNF {}
