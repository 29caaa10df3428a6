import DistAdmin
import NIOSSL

#if canImport(Glibc)
    import Glibc
#endif

/// A request/reply server on a Unix or TCP socket that never blocks: its owner calls
/// ``poll(timeoutMilliseconds:)`` from its own loop (the main lcore's), which accepts, reads and
/// answers whatever is ready. Requests are lines or length-prefixed frames; the handler gets a
/// request's bytes and returns the reply messages to send back, framed the same way.
///
/// No client can hold the loop: replies wait in the client's own queue and go out as its socket
/// takes them; a client with more than ``Limits/highWater`` bytes waiting is read no further
/// until it reads (its requests wait in its socket), and one whose queue passes
/// ``Limits/maxQueued`` is dropped. A full house admits a newcomer in place of the client idle
/// longest (one with work under way, ``isBusy``, is never displaced), and a client idle
/// ``Limits/idleTimeout`` is closed.
///
/// On TCP with a TLS context, every client speaks mutual TLS 1.3 (see ``ControlTLS``): one that
/// fails the handshake (no certificate, another CA's, an expired one, plaintext) is refused and
/// counted, and one that has not finished it within ``Limits/handshakeTimeout`` is closed.
///
/// A Unix socket file is created with mode 0600, and a peer of another user (SO_PEERCRED) is
/// refused; a stale file left by a dead process is replaced, one where another process listens
/// is refused. A client that sends a request over the size limit gets `tooLarge`'s reply and is
/// disconnected; one that disconnects mid-request leaves nothing behind.
public final class SocketServer {
    public enum Endpoint: Sendable, CustomStringConvertible {
        case unix(String)
        /// Host (IPv4 or IPv6 literal, empty for every address) and port.
        case tcp(host: String, port: UInt16)

        /// Parses "HOST:PORT", "[IPV6]:PORT", ":PORT" (loopback) or "*:PORT" (every address:
        /// asked for by name, never by default). Port 0: any free port.
        public static func tcp(parsing text: String) throws -> Endpoint {
            guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else {
                throw AdminError("'\(text)' is not HOST:PORT")
            }
            var host = String(text[..<colon])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            switch host {
            case "": host = "127.0.0.1"
            case "*": host = ""
            default: break
            }
            return .tcp(host: host, port: port)
        }

        public var description: String {
            switch self {
            case .unix(let path): path
            case .tcp(let host, let port):
                host.contains(":") ? "[\(host)]:\(port)" : "\(host.isEmpty ? "*" : host):\(port)"
            }
        }
    }

    public enum Framing: Sendable {
        /// One message per line (newline-terminated), at most `max` bytes.
        case lines(max: Int)
        /// A 4-byte big-endian length, then the message, at most `max` bytes.
        case lengthPrefixed(max: Int)
    }

    public struct Limits: Sendable {
        /// A client idle this long (s) is closed, unless it has work under way; 0: never.
        public var idleTimeout: Double = 600
        /// Replies waiting for a client beyond which it is read no further until it reads.
        public var highWater = 1 << 20
        /// Messages the server sends unasked (events, notices) waiting for a client beyond which
        /// it is dropped: it reads nothing, or far too slowly. (Replies need no such cap: a
        /// client past ``highWater`` gets no more of them until it reads.)
        public var maxQueued = 64 << 20
        /// A TLS client that has not finished its handshake this long after connecting (s) is closed.
        public var handshakeTimeout = 10.0
        public init() {}
    }

    /// What the server refused or ended, by reason.
    public struct Counters: Sendable, Equatable {
        /// Unix-socket peers of another user.
        public var peersRefused = 0
        /// Newcomers refused with every slot held by a client with work under way.
        public var full = 0
        /// Clients closed to make room for a newcomer (the one idle longest).
        public var displaced = 0
        /// Clients closed after ``Limits/idleTimeout``.
        public var idleClosed = 0
        /// Clients dropped with more than ``Limits/maxQueued`` bytes waiting.
        public var slowDropped = 0
        /// TLS clients whose handshake failed (no certificate, or not of the CA, or expired, or
        /// not TLS at all), and those that did not finish it in time.
        public var tlsRefused = 0
        public var tlsTimedOut = 0
    }

    /// Gets the client (an opaque number, stable while it is connected) and the request's bytes.
    public typealias Handler = (Int32, [UInt8]) -> [[UInt8]]

    final class Client {
        var input: [UInt8] = []
        /// Bytes at the head of `input` already taken as requests.
        var consumed = 0
        var output: [UInt8] = []
        /// Bytes at the head of `output` already sent.
        var sent = 0
        var lastActive: UInt64
        let connectedAt: UInt64
        let tls: TLSSession?
        /// Its last requests are being read before it is dropped (``salvage(_:_:)``).
        var salvaging = false
        var waiting: Int { output.count - sent }
        init(now: UInt64, tls: TLSSession?) {
            lastActive = now
            connectedAt = now
            self.tls = tls
        }
    }

    public let endpoint: Endpoint
    let framing: Framing
    /// Mutual TLS on every connection (nil: plaintext).
    let tls: NIOSSLContext?
    let listener: Int32
    var clients: [Int32: Client] = [:]
    let handler: Handler
    let tooLarge: [UInt8]
    public var limits = Limits()
    public private(set) var counters = Counters()
    /// Called when a client goes away (closed, or dropped for a bad request).
    public var onDisconnect: ((Int32) -> Void)?
    /// Which requests of a client that has gone are still handled (``salvage(_:_:)``); nil:
    /// none. Only what is safe without the client: a request that starts work for it would
    /// start it for no one.
    public var salvageable: (([UInt8]) -> Bool)?
    /// Whether a client has work under way here (never closed for idleness, never displaced).
    public var isBusy: ((Int32) -> Bool)?
    public static let maxClients = 64
    /// The port bound (useful with port 0).
    public private(set) var boundPort: UInt16 = 0

    /// `tooLarge` is the reply sent to a client whose request exceeds the framing's limit; `tls`,
    /// on TCP, the context every client's mutual TLS runs under (``ControlTLS/server(_:)``).
    public init(
        _ endpoint: Endpoint, framing: Framing, tooLarge: [UInt8], tls: NIOSSLContext? = nil,
        handler: @escaping Handler
    ) throws {
        self.endpoint = endpoint
        self.framing = framing
        self.tls = tls
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

    /// Waits up to `timeoutMilliseconds` for activity and serves it. Returns the number of
    /// requests answered.
    @discardableResult
    public func poll(timeoutMilliseconds: Int32) -> Int {
        SocketServer.poll([self], timeoutMilliseconds: timeoutMilliseconds)
    }

    /// Waits up to `timeoutMilliseconds` for activity on any of `servers` and serves it (one
    /// wait for all: a request on one is not held up by a wait on another).
    @discardableResult
    public static func poll(_ servers: [SocketServer], timeoutMilliseconds: Int32) -> Int {
        var fds: [pollfd] = []
        var owners: [SocketServer] = []
        for server in servers {
            fds.append(pollfd(fd: server.listener, events: Int16(POLLIN), revents: 0))
            owners.append(server)
            for (fd, client) in server.clients {
                let events =
                    (client.waiting < server.limits.highWater ? POLLIN : 0) | (client.waiting > 0 ? POLLOUT : 0)
                fds.append(pollfd(fd: fd, events: Int16(events), revents: 0))
                owners.append(server)
            }
        }
        let ready = Glibc.poll(&fds, nfds_t(fds.count), timeoutMilliseconds)
        var answered = 0
        if ready > 0 {
            for (entry, server) in zip(fds, owners) where entry.revents != 0 {
                if entry.fd == server.listener {
                    server.acceptAll()
                } else {
                    answered += server.serve(
                        entry.fd, readable: entry.revents & ~Int16(POLLOUT) != 0,
                        writable: entry.revents & Int16(POLLOUT) != 0)
                }
            }
        }
        for server in servers { server.closeIdle() }
        return answered
    }

    func acceptAll() {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 { return }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            if case .unix = endpoint, !SocketServer.peerIsTrusted(fd) {
                counters.peersRefused += 1
                close(fd)
                continue
            }
            // Replies go out at once: with Nagle, a second reply waits for the peer's delayed
            // ACK (up to 40 ms). Fails harmlessly on a Unix socket.
            var one: Int32 = 1
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            if clients.count >= SocketServer.maxClients && !displaceIdlest() {
                counters.full += 1
                close(fd)
                continue
            }
            var session: TLSSession?
            if let tls {
                guard let s = try? TLSSession(context: tls) else {
                    close(fd)
                    continue
                }
                session = s
            }
            clients[fd] = Client(now: SocketServer.monotonicNow(), tls: session)
        }
    }

    /// Closes the client idle longest that has no work under way, to admit a newcomer: idle
    /// connections cannot keep the operator (or the controller, reconnecting) out.
    func displaceIdlest() -> Bool {
        let candidates = clients.filter { !(isBusy?($0.key) ?? false) }
        guard let (fd, _) = candidates.min(by: { $0.value.lastActive < $1.value.lastActive }) else { return false }
        counters.displaced += 1
        drop(fd)
        return true
    }

    func closeIdle() {
        let now = SocketServer.monotonicNow()
        let handshake = UInt64(limits.handshakeTimeout * 1e9)
        for (fd, client) in clients
        where client.tls.map({ !$0.established }) ?? false && now &- client.connectedAt > handshake {
            counters.tlsTimedOut += 1
            drop(fd)
        }
        guard limits.idleTimeout > 0 else { return }
        let limit = UInt64(limits.idleTimeout * 1e9)
        for (fd, client) in clients where now &- client.lastActive > limit && !(isBusy?(fd) ?? false) {
            counters.idleClosed += 1
            drop(fd)
        }
    }

    /// The next whole request in `input` after `from`: where its bytes lie and where the next
    /// one begins, nil when more is needed; throws when it is over the limit.
    func nextRequest(_ input: [UInt8], from: Int) throws -> (request: Range<Int>, next: Int)? {
        switch framing {
        case .lines(let max):
            guard let newline = input[from...].firstIndex(of: 0x0A) else {
                if input.count - from > max { throw AdminError("request too large") }
                return nil
            }
            if newline - from > max { throw AdminError("request too large") }
            return (from..<newline, newline + 1)
        case .lengthPrefixed(let max):
            guard input.count - from >= 4 else { return nil }
            let n =
                Int(input[from]) << 24 | Int(input[from + 1]) << 16 | Int(input[from + 2]) << 8 | Int(input[from + 3])
            if n > max { throw AdminError("request too large") }
            guard input.count - from >= 4 + n else { return nil }
            return ((from + 4)..<(from + 4 + n), from + 4 + n)
        }
    }

    /// Queues `message`, framed (and sealed, on TLS), for `client`.
    func enqueue(_ message: [UInt8], for client: Client) {
        guard let tls = client.tls else { return frame(message, into: &client.output) }
        var framed: [UInt8] = []
        frame(message, into: &framed)
        // (A session that cannot seal has failed: the next read finds it so and drops the client.)
        try? tls.seal(framed)
        client.output += tls.pendingRecords()
    }

    func frame(_ message: [UInt8], into out: inout [UInt8]) {
        switch framing {
        case .lines:
            out += message
            out.append(0x0A)
        case .lengthPrefixed:
            let n = UInt32(message.count)
            out += [UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)]
            out += message
        }
    }

    func serve(_ fd: Int32, readable: Bool, writable: Bool) -> Int {
        guard let client = clients[fd] else { return 0 }
        if writable && !flush(fd, client) { return 0 }
        var answered = 0
        if readable && client.waiting < limits.highWater {
            // One read per round: every client gets its turn.
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) {
                drop(fd)
                return 0
            }
            if n > 0 {
                client.lastActive = SocketServer.monotonicNow()
                if let tls = client.tls {
                    do {
                        client.input += try tls.received(chunk[0..<n])
                        client.output += tls.pendingRecords()
                    } catch {
                        // (The alert that says why goes first, if the socket takes it now.)
                        counters.tlsRefused += 1
                        client.output += tls.pendingRecords()
                        _ = flush(fd, client)
                        drop(fd)
                        return 0
                    }
                } else {
                    client.input += chunk[0..<n]
                }
            }
        }
        while client.waiting < limits.highWater {
            let next: (request: Range<Int>, next: Int)?
            do {
                next = try nextRequest(client.input, from: client.consumed)
            } catch {
                enqueue(tooLarge, for: client)
                _ = flush(fd, client)
                drop(fd)
                return answered
            }
            guard let (range, after) = next else { break }
            client.consumed = after
            answered += 1
            for reply in handler(fd, Array(client.input[range])) { enqueue(reply, for: client) }
            // (The handler may have dropped this client: its socket is closed then.)
            guard clients[fd] === client else { return answered }
        }
        if client.consumed == client.input.count {
            client.input.removeAll(keepingCapacity: client.input.count <= 65536)
            client.consumed = 0
        } else if client.consumed >= 65536 {
            client.input.removeFirst(client.consumed)
            client.consumed = 0
        }
        if client.waiting > 0 { _ = flush(fd, client) }
        return answered
    }

    /// Sends what the socket takes now of what waits for `client`; false when the client is gone
    /// (dropped: its socket failed).
    func flush(_ fd: Int32, _ client: Client) -> Bool {
        while client.waiting > 0 {
            let n = client.output.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress! + client.sent, $0.count - client.sent, Int32(MSG_NOSIGNAL))
            }
            if n > 0 {
                client.sent += n
                client.lastActive = SocketServer.monotonicNow()
            } else if n < 0 && errno == EINTR {
                continue
            } else if n < 0 && errno == EAGAIN {
                break
            } else {
                salvage(fd, client)
                drop(fd)
                return false
            }
        }
        if client.waiting == 0 {
            client.output.removeAll(keepingCapacity: client.output.count <= 65536)
            client.sent = 0
        } else if client.sent >= 1 << 20 {
            client.output.removeFirst(client.sent)
            client.sent = 0
        }
        return true
    }

    /// A client whose socket failed on a write has gone (a controller killed, say), but what it
    /// sent before it went may still wait unread in the socket: its last ``salvageable``
    /// requests are read and handled before it is dropped, their replies going nowhere. (A VNF
    /// streams packet events to its controller, so a write is what finds the controller gone;
    /// its last `eventsReleased`, unread, had the VNF process again packets the controller had
    /// sent on.)
    func salvage(_ fd: Int32, _ client: Client) {
        guard let salvageable, !client.salvaging else { return }
        client.salvaging = true
        var chunk = [UInt8](repeating: 0, count: 65536)
        for _ in 0..<Self.salvageReads {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            if let tls = client.tls {
                guard let plain = try? tls.received(chunk[0..<n]) else { break }
                client.input += plain
            } else {
                client.input += chunk[0..<n]
            }
        }
        while let (range, after) = try? nextRequest(client.input, from: client.consumed) {
            client.consumed = after
            let request = Array(client.input[range])
            guard salvageable(request) else { continue }
            _ = handler(fd, request)
            guard clients[fd] === client else { return }
        }
    }

    /// Reads (of 64 kB) at most that ``salvage(_:_:)`` makes of a client that has gone.
    static let salvageReads = 64

    func drop(_ fd: Int32) {
        guard clients.removeValue(forKey: fd) != nil else { return }
        close(fd)
        onDisconnect?(fd)
    }

    /// Sends a message the server initiates (framed as replies are) to a connected client.
    /// False when that client is gone (or is dropped now: too much waits for it).
    @discardableResult
    public func push(_ message: [UInt8], to client: Int32) -> Bool {
        guard let c = clients[client] else { return false }
        enqueue(message, for: c)
        guard flush(client, c) else { return false }
        // (Replies are bounded by the requests a client may have answered, see `serve`; what
        // the server sends unasked is bounded here.)
        if c.waiting > limits.maxQueued {
            counters.slowDropped += 1
            drop(client)
            return false
        }
        return true
    }
}
