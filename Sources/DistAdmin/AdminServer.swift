#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A Unix-socket server for the admin protocol: one JSON request per line in, one JSON reply
/// per line out. It never blocks: the owner calls ``poll(timeoutMilliseconds:)`` from its own
/// loop (the main lcore's), which accepts, reads and answers whatever is ready.
///
/// The socket file is created with mode 0600. A stale socket file left by a dead process is
/// replaced; a path where another process is listening is refused.
public final class AdminServer {
    public typealias Handler = (AdminRequest) -> String

    public let path: String
    private let listener: Int32
    private var clients: [Int32: [UInt8]] = [:]
    private let handler: Handler
    /// Longest request line accepted; a client that sends more is answered with an error and closed.
    public static let maxLineLength = 64 * 1024
    public static let maxClients = 64

    public init(path: String, handler: @escaping Handler) throws {
        self.path = path
        self.handler = handler
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !pathBytes.isEmpty, pathBytes.count < capacity else {
            throw AdminError("admin socket path must be 1 to \(capacity - 1) bytes: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            raw[pathBytes.count] = 0
        }
        if AdminServer.someoneListens(at: path) {
            throw AdminError("admin socket \(path) is in use by another process")
        }
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw AdminError("socket: \(String(cString: strerror(errno)))") }
        // Create the file with no permission for group and others, then make it exactly 0600.
        let oldMask = umask(0o177)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        umask(oldMask)
        guard bound == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw AdminError("bind \(path): \(message)")
        }
        chmod(path, 0o600)
        guard listen(fd, 16) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            unlink(path)
            throw AdminError("listen \(path): \(message)")
        }
        listener = fd
    }

    deinit {
        for fd in clients.keys { close(fd) }
        close(listener)
        unlink(path)
    }

    /// Whether a server answers on `path` (connect succeeds).
    static func someoneListens(at path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0
            }
        }
    }

    /// Waits up to `timeoutMilliseconds` for activity and serves it. Returns the number of
    /// requests answered.
    @discardableResult
    public func poll(timeoutMilliseconds: Int32) -> Int {
        var fds = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0)]
        for fd in clients.keys { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
        let ready = Glibc.poll(&fds, nfds_t(fds.count), timeoutMilliseconds)
        guard ready > 0 else { return 0 }
        var answered = 0
        for entry in fds where entry.revents != 0 {
            if entry.fd == listener {
                acceptAll()
            } else {
                answered += serve(entry.fd)
            }
        }
        return answered
    }

    private func acceptAll() {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 { return }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            if clients.count >= AdminServer.maxClients {
                send(fd, AdminReply.error("too many admin clients") + "\n")
                close(fd)
                continue
            }
            clients[fd] = []
        }
    }

    private func serve(_ fd: Int32) -> Int {
        var chunk = [UInt8](repeating: 0, count: 4096)
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
        while var buffer = clients[fd], let newline = buffer.firstIndex(of: 0x0A) {
            let line = String(decoding: buffer[..<newline], as: UTF8.self)
            buffer.removeSubrange(...newline)
            clients[fd] = buffer
            let reply: String
            do {
                reply = handler(try AdminRequest.parse(line))
            } catch {
                reply = AdminReply.error("\(error)")
            }
            answered += 1
            if !send(fd, reply + "\n") {
                drop(fd)
                return answered
            }
        }
        if let buffer = clients[fd], buffer.count > AdminServer.maxLineLength {
            send(fd, AdminReply.error("request longer than \(AdminServer.maxLineLength) bytes") + "\n")
            drop(fd)
        }
        return answered
    }

    private func drop(_ fd: Int32) {
        clients[fd] = nil
        close(fd)
    }

    /// Writes all of `text`, waiting briefly for a slow reader; false if the client is gone.
    @discardableResult
    private func send(_ fd: Int32, _ text: String) -> Bool {
        let bytes = Array(text.utf8)
        var sent = 0
        var waits = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { send_nosignal(fd, $0.baseAddress! + sent, $0.count - sent) }
            if n > 0 {
                sent += n
            } else if n < 0 && (errno == EAGAIN || errno == EINTR) && waits < 1000 {
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

@inline(__always)
private func send_nosignal(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    Glibc.send(fd, p, n, Int32(MSG_NOSIGNAL))
}
