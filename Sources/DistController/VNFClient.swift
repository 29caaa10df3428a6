import DistControl
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// The controller's connection to one VNF's southbound API (length-prefixed JSON). Lives on
/// the controller's event loop: every method is called there. It connects, and reconnects
/// after the VNF goes away; requests carry ids and wait for their replies (a state reply may
/// come in several messages); `packetEvent`s go to ``onEvent``.
final class VNFClient {
    let name: String
    let host: String
    let port: Int
    /// The switch port the VNF's data port is attached to.
    let switchPort: UInt32
    let loop: EventLoop
    let requestTimeout: TimeAmount
    let log: (String) -> Void

    private(set) var channel: Channel?
    private var nextID = 1
    private struct Pending {
        let type: String
        /// Takes one reply; true when it was the last one.
        let onReply: (SouthboundReply) throws -> Bool
        let promise: EventLoopPromise<Void>
        let timeout: Scheduled<Void>
    }
    private var pending: [Int: Pending] = [:]
    /// Frames of `packetEvent`s (OpenNF mode: packets the VNF raised), with their sequence
    /// numbers.
    var onEvent: (([UInt8], UInt64?) -> Void)?
    /// Called when the connection goes away (after pending requests have failed).
    var onDisconnect: (() -> Void)?
    /// Notices about DiST Moves this VNF is the source of (``VNFClient/noticeTypes``).
    var onNotice: ((MoveNoticeMessage) -> Void)?
    /// The VNF's end of DiST's channel (`IP:PORT@MAC`), learnt when it connects; nil: none.
    private(set) var channelAddress: String?
    /// The VNF's worker cores (from `info`; 1 until it says).
    private(set) var workers = 1
    /// The DiST channel version the VNF speaks (with `channelAddress`).
    private(set) var channelVersion: Int?
    /// Called once the VNF has said who it is (after each connection).
    var onInfo: (() -> Void)?
    private(set) var counters = TrafficCounters()
    /// Packet events that came while no Move was running (dropped).
    private(set) var strayEvents = 0
    private(set) var lastError: String?
    private var stopped = false
    /// Mutual TLS to the VNF (nil: plaintext).
    let tls: NIOSSLContext?

    var connected: Bool { channel != nil }
    var endpoint: String { "\(host):\(port)" }

    init(
        name: String, host: String, port: Int, switchPort: UInt32, loop: EventLoop, tls: NIOSSLContext? = nil,
        requestTimeout: TimeAmount = .seconds(5), log: @escaping (String) -> Void
    ) {
        self.tls = tls
        self.name = name
        self.host = host
        self.port = port
        self.switchPort = switchPort
        self.loop = loop
        self.requestTimeout = requestTimeout
        self.log = log
    }

    func start() {
        loop.preconditionInEventLoop()
        connect()
    }

    func stop() {
        stopped = true
        channel?.close(promise: nil)
    }

    private func connect() {
        guard !stopped, channel == nil else { return }
        ClientBootstrap(group: loop)
            .connectTimeout(.seconds(2))
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls = self.tls {
                        // (VNFs are named by address: the CA vouches for them, not a host name.)
                        try channel.pipeline.syncOperations.addHandler(
                            try NIOSSLClientHandler(context: tls, serverHostname: nil))
                    }
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(LengthPrefixedDecoder(maxFrame: SouthboundFraming.maxFrame)),
                        VNFHandler(client: self),
                    ])
                }
            }
            .connect(host: host, port: port)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    self.channel = channel
                    self.lastError = nil
                    self.log("\(self.name): connected to \(self.endpoint)")
                    self.request(.info).whenSuccess { reply in
                        guard case .info(let info) = reply else { return }
                        self.channelAddress = info.channel
                        // Builds before version 2 did not say: they speak version 1.
                        self.channelVersion = info.channel == nil ? nil : info.channelVersion ?? 1
                        self.workers = info.workers
                        if let c = self.channelAddress { self.log("\(self.name): DiST channel at \(c)") }
                        self.onInfo?()
                    }
                case .failure(let error):
                    if self.lastError != "\(error)" {
                        self.log("\(self.name): cannot connect to \(self.endpoint): \(error); retrying")
                    }
                    self.lastError = "\(error)"
                    self.loop.scheduleTask(in: .seconds(1)) { self.connect() }
                }
            }
    }

    /// Sends a request that has no reply (`eventsReleased`); nothing when not connected.
    func post(_ request: SouthboundRequest) {
        loop.preconditionInEventLoop()
        guard let channel else { return }
        let id = nextID
        nextID += 1
        let json = request.encoded(id: id)
        var buffer = channel.allocator.buffer(capacity: 4 + json.count)
        buffer.writeInteger(UInt32(json.count))
        buffer.writeBytes(json)
        counters.sent(to: name, request.type, bytes: 4 + json.count)
        channel.writeAndFlush(buffer, promise: nil)
    }

    /// Sends a request and hands each reply to `onReply` until it says the last has come.
    /// Fails on an `error` reply, a timeout, or the VNF going away.
    func request(_ request: SouthboundRequest, onReply: @escaping (SouthboundReply) throws -> Bool) -> EventLoopFuture<
        Void
    > {
        loop.preconditionInEventLoop()
        let type = request.type
        guard let channel else {
            return loop.makeFailedFuture(ControllerError("\(name) is not connected (\(lastError ?? "connecting"))"))
        }
        let id = nextID
        nextID += 1
        let json = request.encoded(id: id)
        let promise = loop.makePromise(of: Void.self)
        let timeout = loop.scheduleTask(in: requestTimeout) {
            if let p = self.pending.removeValue(forKey: id) {
                p.promise.fail(
                    ControllerError(
                        "\(self.name) did not answer \(type) within "
                            + "\(self.requestTimeout.nanoseconds / 1_000_000_000) s"
                    ))
            }
        }
        pending[id] = Pending(type: type, onReply: onReply, promise: promise, timeout: timeout)
        var buffer = channel.allocator.buffer(capacity: 4 + json.count)
        buffer.writeInteger(UInt32(json.count))
        buffer.writeBytes(json)
        counters.sent(to: name, type, bytes: 4 + json.count)
        channel.writeAndFlush(buffer, promise: nil)
        return promise.futureResult
    }

    fileprivate func received(_ frame: [UInt8]) {
        let decoded = SouthboundReply.decode(frame)
        counters.received(from: name, decoded?.1.kind ?? "undecodable", bytes: 4 + frame.count)
        guard let (id, reply) = decoded else {
            log("\(name): a message that is not a southbound reply (ignored)")
            return
        }
        switch reply {
        case .packetEvent(_, let packet, let seq):
            if let onEvent {
                onEvent(packet, seq)
            } else {
                // Events belong to a Move; one arriving outside any is dropped here, and said so.
                strayEvents += 1
                log("\(name): a packet event outside any Move (dropped; \(strayEvents) so far)")
            }
            return
        case .notice(let notice):
            if let onNotice { onNotice(notice) } else { log("\(name): \(notice.type) for no Move running (ignored)") }
            return
        default:
            break
        }
        guard let id, let p = pending[id] else {
            if case .error(let reason) = reply { log("\(name): error: \(reason)") }
            return
        }
        if case .error(let reason) = reply {
            pending[id] = nil
            p.timeout.cancel()
            p.promise.fail(ControllerError("\(name) refused \(p.type): \(reason)"))
            return
        }
        do {
            if try p.onReply(reply) {
                pending[id] = nil
                p.timeout.cancel()
                p.promise.succeed(())
            }
        } catch {
            pending[id] = nil
            p.timeout.cancel()
            p.promise.fail(error)
        }
    }

    fileprivate func closed(_ why: String) {
        channel = nil
        lastError = why
        let failed = pending
        pending = [:]
        for p in failed.values {
            p.timeout.cancel()
            p.promise.fail(ControllerError("\(name) went away during \(p.type) (\(why))"))
        }
        if !stopped {
            log("\(name): connection closed (\(why)); reconnecting")
            loop.scheduleTask(in: .seconds(1)) { self.connect() }
        }
        onDisconnect?()
    }
}

private final class VNFHandler: ChannelInboundHandler {
    typealias InboundIn = [UInt8]
    let client: VNFClient
    var why = "closed by the VNF"
    init(client: VNFClient) { self.client = client }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        client.received(unwrapInboundIn(data))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        why = "\(error)"
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        client.closed(why)
    }
}
