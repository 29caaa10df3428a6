#if canImport(Glibc)
import Glibc
#endif

/// A request/reply server on a Unix or TCP socket that never blocks: its owner calls
/// ``poll(timeoutMilliseconds:)`` from its own loop (the main lcore's), which accepts, reads and
/// answers whatever is ready. Requests are lines or length-prefixed frames; the handler gets a
/// request's bytes and returns the reply messages to send back, framed the same way.
///
/// A Unix socket file is created with mode 0600; a stale one left by a dead process is
/// replaced, one where another process listens is refused. A client that sends a request over
/// the size limit gets `tooLarge`'s reply and is disconnected; one that disconnects mid-request
/// leaves nothing behind.
public final class SocketServer {
    public enum Endpoint: Sendable, CustomStringConvertible {
        case unix(String)
        /// Host (IPv4 or IPv6 literal, empty for any) and port.
        case tcp(host: String, port: UInt16)

        /// Parses "HOST:PORT", "[IPV6]:PORT" or ":PORT" (port 0: any free port).
        public static func tcp(parsing text: String) throws -> Endpoint {
            guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else {
                throw AdminError("'\(text)' is not HOST:PORT")
            }
            var host = String(text[..<colon])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            return .tcp(host: host, port: port)
        }

        public var description: String {
            switch self {
            case .unix(let path): path
            case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host.isEmpty ? "*" : host):\(port)"
            }
        }
    }

    public enum Framing: Sendable {
        /// One message per line (newline-terminated), at most `max` bytes.
        case lines(max: Int)
        /// A 4-byte big-endian length, then the message, at most `max` bytes.
        case lengthPrefixed(max: Int)
    }

    /// Gets the client (an opaque number, stable while it is connected) and the request's bytes.
    public typealias Handler = (Int32, [UInt8]) -> [[UInt8]]

    public let endpoint: Endpoint
    let framing: Framing
    let listener: Int32
    var clients: [Int32: [UInt8]] = [:]
    let handler: Handler
    let tooLarge: [UInt8]
    /// Called when a client goes away (closed, or dropped for a bad request).
    public var onDisconnect: ((Int32) -> Void)?
    public static let maxClients = 64
    /// The port bound (useful with port 0).
    public private(set) var boundPort: UInt16 = 0

    /// `tooLarge` is the reply sent to a client whose request exceeds the framing's limit.
    public init(_ endpoint: Endpoint, framing: Framing, tooLarge: [UInt8], handler: @escaping Handler) throws {
        self.endpoint = endpoint
        self.framing = framing
        self.handler = handler
        self.tooLarge = tooLarge
        switch endpoint {
        case .unix(let path): listener = try SocketServer.listenUnix(path)
        case .tcp(let host, let port):
            (listener, boundPort) = try SocketServer.listenTCP(host: host, port: port)
        }
    }

    deinit {
        for fd in clients.keys { close(fd) }
        close(listener)
        if case .unix(let path) = endpoint { unlink(path) }
    }

    static func errorText() -> String { String(cString: strerror(errno)) }

    static func unixAddress(_ path: String) throws -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity else {
            throw AdminError("socket path must be 1 to \(capacity - 1) bytes: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return address
    }

    static func listenUnix(_ path: String) throws -> Int32 {
        var address = try unixAddress(path)
        if someoneListens(at: path) { throw AdminError("socket \(path) is in use by another process") }
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw AdminError("socket: \(errorText())") }
        // Create the file with no permission for group and others, then make it exactly 0600.
        let oldMask = umask(0o177)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(oldMask)
        guard bound == 0 else {
            let message = errorText()
            close(fd)
            throw AdminError("bind \(path): \(message)")
        }
        chmod(path, 0o600)
        guard listen(fd, 16) == 0 else {
            let message = errorText()
            close(fd)
            unlink(path)
            throw AdminError("listen \(path): \(message)")
        }
        return fd
    }

    static func listenTCP(host: String, port: UInt16) throws -> (Int32, UInt16) {
        var v4 = sockaddr_in()
        var v6 = sockaddr_in6()
        let isV6 = host.contains(":")
        if isV6 {
            v6.sin6_family = sa_family_t(AF_INET6)
            v6.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, host, &v6.sin6_addr) == 1 else { throw AdminError("'\(host)' is not an IP address") }
        } else {
            v4.sin_family = sa_family_t(AF_INET)
            v4.sin_port = port.bigEndian
            guard inet_pton(AF_INET, host.isEmpty ? "0.0.0.0" : host, &v4.sin_addr) == 1 else {
                throw AdminError("'\(host)' is not an IP address")
            }
        }
        let fd = socket(isV6 ? AF_INET6 : AF_INET,
                        Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw AdminError("socket: \(errorText())") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = isV6
            ? withUnsafePointer(to: &v6) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
            : withUnsafePointer(to: &v4) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(fd, 16) == 0 else {
            let message = errorText()
            close(fd)
            throw AdminError("listen on \(host.isEmpty ? "*" : host):\(port): \(message)")
        }
        var storage = sockaddr_in6()
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return (fd, UInt16(bigEndian: storage.sin6_port))  // sin_port and sin6_port share their offset
    }

    /// Whether a server answers on a Unix socket `path` (connect succeeds).
    static func someoneListens(at path: String) -> Bool {
        guard var address = try? unixAddress(path) else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0 }
        }
    }

    /// Waits up to `timeoutMilliseconds` for activity and serves it. Returns the number of
    /// requests answered.
    @discardableResult
    public func poll(timeoutMilliseconds: Int32) -> Int {
        SocketServer.poll([self], timeoutMilliseconds: timeoutMilliseconds)
    }

    var descriptors: [Int32] { [listener] + Array(clients.keys) }

    /// Waits up to `timeoutMilliseconds` for activity on any of `servers` and serves it (one
    /// wait for all: a request on one is not held up by a wait on another).
    @discardableResult
    public static func poll(_ servers: [SocketServer], timeoutMilliseconds: Int32) -> Int {
        var fds: [pollfd] = []
        var owners: [SocketServer] = []
        for server in servers {
            for fd in server.descriptors {
                fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0))
                owners.append(server)
            }
        }
        let ready = Glibc.poll(&fds, nfds_t(fds.count), timeoutMilliseconds)
        guard ready > 0 else { return 0 }
        var answered = 0
        for (entry, server) in zip(fds, owners) where entry.revents != 0 {
            if entry.fd == server.listener {
                server.acceptAll()
            } else {
                answered += server.serve(entry.fd)
            }
        }
        return answered
    }

    func acceptAll() {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 { return }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            // Replies go out at once: with Nagle, a second reply waits for the peer's delayed
            // ACK (up to 40 ms). Fails harmlessly on a Unix socket.
            var one: Int32 = 1
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            if clients.count >= SocketServer.maxClients {
                close(fd)
                continue
            }
            clients[fd] = []
        }
    }

    /// The next whole request in `buffer`: its bytes and how much of the buffer it took, nil
    /// when more is needed; throws when it is over the limit.
    func nextRequest(_ buffer: [UInt8]) throws -> (request: [UInt8], size: Int)? {
        switch framing {
        case .lines(let max):
            guard let newline = buffer.firstIndex(of: 0x0A) else {
                if buffer.count > max { throw AdminError("request too large") }
                return nil
            }
            if newline > max { throw AdminError("request too large") }
            return (Array(buffer[..<newline]), newline + 1)
        case .lengthPrefixed(let max):
            guard buffer.count >= 4 else { return nil }
            let n = Int(buffer[0]) << 24 | Int(buffer[1]) << 16 | Int(buffer[2]) << 8 | Int(buffer[3])
            if n > max { throw AdminError("request too large") }
            guard buffer.count >= 4 + n else { return nil }
            return (Array(buffer[4..<(4 + n)]), 4 + n)
        }
    }

    func framed(_ message: [UInt8]) -> [UInt8] {
        switch framing {
        case .lines: return message + [0x0A]
        case .lengthPrefixed:
            let n = UInt32(message.count)
            return [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + message
        }
    }

    func serve(_ fd: Int32) -> Int {
        var chunk = [UInt8](repeating: 0, count: 65536)
        var answered = 0
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) {
                drop(fd)
                return answered
            }
            if n < 0 { break }
            clients[fd, default: []].append(contentsOf: chunk[0..<n])
        }
        while let buffer = clients[fd] {
            let next: (request: [UInt8], size: Int)?
            do {
                next = try nextRequest(buffer)
            } catch {
                send(fd, framed(tooLarge))
                drop(fd)
                return answered
            }
            guard let (request, size) = next else { break }
            clients[fd] = Array(buffer[size...])
            answered += 1
            for reply in handler(fd, request) where !send(fd, framed(reply)) {
                drop(fd)
                return answered
            }
        }
        return answered
    }

    func drop(_ fd: Int32) {
        clients[fd] = nil
        close(fd)
        onDisconnect?(fd)
    }

    /// Sends a message the server initiates (framed as replies are) to a connected client.
    /// False when that client is gone (it is then dropped).
    @discardableResult
    public func push(_ message: [UInt8], to client: Int32) -> Bool {
        guard clients[client] != nil else { return false }
        if send(client, framed(message)) { return true }
        drop(client)
        return false
    }

    /// Writes all of `bytes`, waiting briefly for a slow reader; false if the client is gone.
    @discardableResult
    func send(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var sent = 0
        var waits = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n > 0 {
                sent += n
            } else if n < 0 && (errno == EAGAIN || errno == EINTR) && waits < 3000 {
                waits += 1
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = Glibc.poll(&p, 1, 10)
            } else {
                return false
            }
        }
        return true
    }
}

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
