import DistAdmin

#if canImport(Glibc)
    import Glibc
#endif

/// The admin socket: a Unix socket (mode 0600) with one JSON request and one JSON reply per line.
public final class AdminServer {
    public typealias Handler = (AdminRequest) -> String
    /// Longest request line accepted; a client that sends more is answered with an error and closed.
    public static let maxLineLength = 64 * 1024
    let server: SocketServer

    public var path: String { if case .unix(let p) = server.endpoint { p } else { "" } }

    public init(path: String, handler: @escaping Handler) throws {
        server = try SocketServer(
            .unix(path), framing: .lines(max: AdminServer.maxLineLength),
            tooLarge: Array(AdminReply.error("request longer than \(AdminServer.maxLineLength) bytes").utf8)
        ) { _, bytes in
            let reply: String
            do {
                reply = handler(try AdminRequest.parse(String(decoding: bytes, as: UTF8.self)))
            } catch {
                reply = AdminReply.error("\(error)")
            }
            return [Array(reply.utf8)]
        }
    }

    @discardableResult
    public func poll(timeoutMilliseconds: Int32) -> Int { server.poll(timeoutMilliseconds: timeoutMilliseconds) }
    /// The socket server underneath (to wait on it together with others).
    public var socketServer: SocketServer { server }
}
