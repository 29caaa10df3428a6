import DistAdmin
import DistServer
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The socket server under clients that misbehave: none of them may hold the loop or keep
/// others out.
@Suite(.serialized) struct SocketServerTests {
    static func connectClient(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard AdminTests.withAddress(path, { connect(fd, $0, $1) }) == 0 else {
            close(fd)
            throw AdminError("connect failed")
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        return fd
    }

    static func writeAll(_ fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + sent, $0.count - sent) }
            if n <= 0 { break }
            sent += n
        }
    }

    /// Serves `server` until `fd` has a whole line or `seconds` pass; the line, or nil (EOF or none).
    static func readLine(_ fd: Int32, serving server: SocketServer, seconds: Double = 5) -> String? {
        var received: [UInt8] = []
        let deadline = Date().addingTimeInterval(seconds)
        var chunk = [UInt8](repeating: 0, count: 65536)
        while Date() < deadline {
            server.poll(timeoutMilliseconds: 1)
            let n = read(fd, &chunk, chunk.count)
            if n == 0 { return nil }
            if n > 0 { received += chunk[0..<n] }
            if let newline = received.firstIndex(of: 0x0A) {
                return String(decoding: received[..<newline], as: UTF8.self)
            }
        }
        return nil
    }

    static func lineServer(_ path: String) throws -> SocketServer {
        let big = [UInt8](repeating: 0x41, count: 256 * 1024)
        return try SocketServer(.unix(path), framing: .lines(max: 1024), tooLarge: Array("too large".utf8)) {
            _, request in
            String(decoding: request, as: UTF8.self) == "big" ? [big] : [Array("info".utf8)]
        }
    }

    @Test func aClientThatNeverReadsAndSixtyFourIdleOnesDelayAnotherByUnder50ms() throws {
        let path = AdminTests.temporaryPath()
        let server = try Self.lineServer(path)
        // Asks for 250 MB of replies and reads none.
        let greedy = try Self.connectClient(path)
        defer { close(greedy) }
        Self.writeAll(greedy, String(repeating: "big\n", count: 1000))
        let start = Date()
        for _ in 0..<50 { server.poll(timeoutMilliseconds: 1) }
        // (A server that waited for the reader would have sat here for seconds.)
        #expect(Date().timeIntervalSince(start) < 1)
        var idle: [Int32] = []
        defer { idle.forEach { close($0) } }
        for _ in 0..<SocketServer.maxClients {
            idle.append(try Self.connectClient(path))
            server.poll(timeoutMilliseconds: 0)
        }
        let asking = try Self.connectClient(path)
        defer { close(asking) }
        let asked = Date()
        Self.writeAll(asking, "info\n")
        let reply = Self.readLine(asking, serving: server)
        let took = Date().timeIntervalSince(asked)
        #expect(reply == "info")
        #expect(took < 0.05, "info took \(took * 1000) ms")
        #expect(server.counters.displaced >= 1)
    }

    @Test func aClientIdleTooLongIsClosedUnlessItHasWorkUnderWay() throws {
        let path = AdminTests.temporaryPath()
        // The client that asked something has work under way (as a controller with a Move).
        var asker: Int32 = -1
        let server = try SocketServer(.unix(path), framing: .lines(max: 64), tooLarge: []) { fd, _ in
            asker = fd
            return [Array("ok".utf8)]
        }
        server.limits.idleTimeout = 0.2
        server.isBusy = { $0 == asker }
        let idle = try Self.connectClient(path)
        let busy = try Self.connectClient(path)
        defer {
            close(idle)
            close(busy)
        }
        Self.writeAll(busy, "x\n")
        #expect(Self.readLine(busy, serving: server) == "ok")
        let until = Date().addingTimeInterval(0.5)
        while Date() < until { server.poll(timeoutMilliseconds: 10) }
        var byte: UInt8 = 0
        #expect(read(idle, &byte, 1) == 0, "the idle client is closed")
        #expect(read(busy, &byte, 1) < 0 && errno == EAGAIN, "the busy one stays")
        #expect(server.counters.idleClosed == 1)
    }

    @Test func whatTheServerSendsUnaskedIsCappedPerClient() throws {
        let path = AdminTests.temporaryPath()
        var client: Int32 = -1
        let server = try SocketServer(.unix(path), framing: .lengthPrefixed(max: 64), tooLarge: []) { fd, _ in
            client = fd
            return [[1]]
        }
        server.limits.maxQueued = 1 << 20
        let fd = try Self.connectClient(path)
        defer { close(fd) }
        Self.writeAll(fd, "\0\0\0\u{1}x")
        for _ in 0..<20 where client < 0 { server.poll(timeoutMilliseconds: 5) }
        #expect(client >= 0)
        let event = [UInt8](repeating: 7, count: 64 * 1024)
        var pushed = 0
        while server.push(event, to: client), pushed < 1000 { pushed += 1 }
        #expect(pushed < 1000, "a client that reads nothing is dropped")
        #expect(server.counters.slowDropped == 1)
    }

    /// A client that goes away while the server writes to it (a controller killed while its VNF
    /// streams packet events to it) may have sent requests the server has not read yet: they
    /// are handled before it is dropped, those it says are safe without the client (a
    /// controller's last `eventsReleased` says which kept packets went on; processing those again
    /// duplicated them).
    @Test func aClientThatGoesAwayHasItsLastRequestsHandledFirst() throws {
        let path = AdminTests.temporaryPath()
        var client: Int32 = -1
        var handled: [String] = []
        var handledAtDisconnect: [String]?
        let server = try SocketServer(.unix(path), framing: .lines(max: 64), tooLarge: []) { fd, request in
            client = fd
            handled.append(String(decoding: request, as: UTF8.self))
            return []
        }
        server.onDisconnect = { _ in handledAtDisconnect = handled }
        // (Only what is safe without the client: not what would start work for it.)
        server.salvageable = { String(decoding: $0, as: UTF8.self).hasPrefix("released") }
        let fd = try Self.connectClient(path)
        Self.writeAll(fd, "hello\n")
        for _ in 0..<20 where client < 0 { server.poll(timeoutMilliseconds: 5) }
        #expect(client >= 0)
        Self.writeAll(fd, "export all\nreleased 1-8\n")
        close(fd)
        // The server writes before it reads again: the write finds the client gone.
        #expect(!server.push(Array("event".utf8), to: client))
        #expect(handledAtDisconnect == ["hello", "released 1-8"])
    }

    @Test func aUnixPeerOfAnotherUserIsRefused() throws {
        guard geteuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else {
            Issue.record("needs root and setpriv to connect as another user")
            return
        }
        let path = AdminTests.temporaryPath()
        let server = try Self.lineServer(path)
        // (The file's mode 0600 would stop the other user at connect: open it up, so that only
        // the peer check stands in the way.)
        chmod(path, 0o666)
        let script = """
            import socket, sys
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(5)
            s.connect(sys.argv[1])
            try:
                s.sendall(b'info\\n')
                print('answered' if s.recv(100) else 'closed')
            except OSError:
                print('closed')
            """
        let printed = try Self.python(script, [path], serving: server, as: 65534)
        #expect(printed == "closed", "got \(printed)")
        #expect(server.counters.peersRefused == 1)
    }

    /// Runs `script` (Python) with `arguments` while serving `server`; what it printed.
    static func python(_ script: String, _ arguments: [String], serving server: SocketServer, as user: UInt32? = nil)
        throws -> String
    {
        let process = Process()
        if let user {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments =
                ["--reuid=\(user)", "--regid=\(user)", "--clear-groups", "/usr/bin/python3", "-c", script] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            process.arguments = ["-c", script] + arguments
        }
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let deadline = Date().addingTimeInterval(15)
        while process.isRunning && Date() < deadline { server.poll(timeoutMilliseconds: 5) }
        process.waitUntilExit()
        return String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A TLS client of `port` with the certificate `name` of `dir` (none: no certificate;
    /// "plain": no TLS at all): the reply to "info", or "refused".
    static let tlsClient = """
        import socket, ssl, sys
        port, dir, name = int(sys.argv[1]), sys.argv[2], sys.argv[3]
        s = socket.create_connection(('127.0.0.1', port), timeout=5)
        try:
            if name != 'plain':
                c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                c.check_hostname = False
                c.minimum_version = ssl.TLSVersion.TLSv1_3
                c.load_verify_locations(dir + '/ca.pem')
                if name != 'none':
                    c.load_cert_chain(sys.argv[4] + '/' + name + '.pem', sys.argv[4] + '/' + name + '.key')
                s = c.wrap_socket(s)
            s.sendall(b'info\\n')
            reply = s.recv(100)
            # (A plaintext client gets the TLS alert at most.)
            print('info' if reply.strip() == b'info' else 'refused')
        except (OSError, ssl.SSLError):
            print('refused')
        """

    /// Mutual TLS: a client with a certificate of the server's CA is served; one without a
    /// certificate, with another CA's, with an expired one, or without TLS is refused, counted,
    /// and gets no reply.
    @Test func onlyClientsWithAValidCertificateOfTheCAAreServed() throws {
        let dir = "/tmp/dist-tls-test-\(getpid())"
        let other = dir + "-other"
        defer {
            try? FileManager.default.removeItem(atPath: dir)
            try? FileManager.default.removeItem(atPath: other)
        }
        let make = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "../../deploy/make-certs.sh"
        ).path
        for arguments in [[dir, "server", "client"], [dir, "--expired", "old"], [other, "stranger"]] {
            let p = try Process.run(URL(fileURLWithPath: make), arguments: arguments)
            p.waitUntilExit()
            #expect(p.terminationStatus == 0)
        }
        let context = try ControlTLS.server(
            ControlTLS.Files(certificate: dir + "/server.pem", key: dir + "/server.key", ca: dir + "/ca.pem"))
        let server = try SocketServer(
            .tcp(host: "127.0.0.1", port: 0), framing: .lines(max: 64), tooLarge: [], tls: context
        ) { _, _ in
            [Array("info".utf8)]
        }
        let port = "\(server.boundPort)"
        #expect(try Self.python(Self.tlsClient, [port, dir, "client", dir], serving: server) == "info")
        for (name, keys) in [("none", dir), ("stranger", other), ("old", dir), ("plain", dir)] {
            #expect(try Self.python(Self.tlsClient, [port, dir, name, keys], serving: server) == "refused", "\(name)")
        }
        #expect(server.counters.tlsRefused == 4)
        // A client that never begins its handshake holds its slot for the handshake's time only.
        server.limits.handshakeTimeout = 0.2
        let silent = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(silent) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = server.boundPort.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(silent, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        #expect(connected == 0)
        let until = Date().addingTimeInterval(0.5)
        while Date() < until { server.poll(timeoutMilliseconds: 10) }
        var byte: UInt8 = 0
        #expect(read(silent, &byte, 1) == 0)
        #expect(server.counters.tlsTimedOut == 1)
    }

    @Test func tcpListensOnLoopbackUnlessEveryAddressIsAskedFor() throws {
        guard case .tcp(let host, let port) = try SocketServer.Endpoint.tcp(parsing: ":7001") else {
            throw AdminError("not tcp")
        }
        #expect(host == "127.0.0.1" && port == 7001)
        guard case .tcp(let any, _) = try SocketServer.Endpoint.tcp(parsing: "*:7001") else {
            throw AdminError("not tcp")
        }
        #expect(any == "")
        guard case .tcp(let v6, _) = try SocketServer.Endpoint.tcp(parsing: "[::1]:7001") else {
            throw AdminError("not tcp")
        }
        #expect(v6 == "::1")
    }
}
