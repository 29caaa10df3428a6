import NIOCore
import NIOHTTP1
import NIOPosix

/// `GET /metrics` over HTTP/1.1 (SwiftNIO's parser), on a thread of its own: the registry's
/// text, as Prometheus scrapes it. Anything else is answered 404 or 405; a connection idle for
/// 30 s is closed, and a request's head is bounded by NIO's parser (80 kB).
public final class MetricsServer: @unchecked Sendable {
    let group: MultiThreadedEventLoopGroup
    let channel: any Channel
    /// The address bound (port 0 asked: the port the system chose).
    public let port: Int

    /// Binds `host:port` (an empty host: every address) and serves `book`'s registry.
    public init(host: String, port: UInt16, book: MetricsBook) throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let registry = book.registry
        do {
            channel = try ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 16)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: .seconds(30)))
                        try channel.pipeline.syncOperations.addHandler(
                            ScrapeHandler { registry.emitToBuffer() })
                    }
                }
                .bind(host: host.isEmpty ? "::" : host, port: Int(port)).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
        self.port = channel.localAddress?.port ?? Int(port)
    }

    public func close() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}

/// Answers each request on a connection: the exposition for `GET /metrics` (or `HEAD`).
final class ScrapeHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let exposition: () -> [UInt8]
    var head: HTTPRequestHead?

    init(exposition: @escaping () -> [UInt8]) { self.exposition = exposition }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break
        case .end:
            guard let h = head else { return }
            head = nil
            respond(context, to: h)
        }
    }

    func respond(_ context: ChannelHandlerContext, to request: HTTPRequestHead) {
        let path = request.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? request.uri
        var status = HTTPResponseStatus.ok
        var body: [UInt8]
        var headers = HTTPHeaders()
        if request.method != .GET && request.method != .HEAD {
            status = .methodNotAllowed
            body = Array("only GET /metrics\n".utf8)
            headers.add(name: "Allow", value: "GET, HEAD")
        } else if path != "/metrics" {
            status = .notFound
            body = Array("only /metrics\n".utf8)
        } else {
            body = exposition()
        }
        headers.add(
            name: "Content-Type",
            value: status == .ok ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: "\(body.count)")
        let keepAlive = request.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(
            wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))),
            promise: nil)
        if request.method != .HEAD {
            context.write(
                wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }

    /// A request NIO could not parse has had its 400 (NIO's protocol error handler): the
    /// connection ends.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
