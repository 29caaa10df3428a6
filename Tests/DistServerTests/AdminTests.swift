import DistAdmin
import DistServer
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The admin protocol and its Unix-socket server, over a real socket.
@Suite(.serialized) struct AdminTests {
    @Test func requestsParseFromJSONOrABareWord() throws {
        #expect(try AdminRequest.parse("stats\n") == AdminRequest(command: "stats"))
        let flows = try AdminRequest.parse(#"{"cmd":"flows","limit":5,"prefix":"10.0.0.0/8"}"#)
        #expect(flows.command == "flows")
        #expect(try flows.integer("limit", default: 100) == 5)
        #expect(try flows.string("prefix") == "10.0.0.0/8")
        #expect(try AdminRequest.parse(#"{"cmd":"flows"}"#).integer("limit", default: 100) == 100)
    }

    @Test func badRequestsAreRejectedWithAReason() {
        #expect(throws: AdminError.self) { try AdminRequest.parse("") }
        #expect(throws: AdminError.self) { try AdminRequest.parse("{not json") }
        #expect(throws: AdminError.self) { try AdminRequest.parse("[1,2]") }
        #expect(throws: AdminError.self) { try AdminRequest.parse(#"{"limit":3}"#) }
        #expect(throws: AdminError.self) { try AdminRequest.parse(#"{"cmd":"flows","x":[1]}"#) }
        #expect(throws: AdminError.self) {
            try AdminRequest.parse(#"{"cmd":"flows","limit":-1}"#).integer("limit", default: 1)
        }
        #expect(throws: AdminError.self) {
            try AdminRequest.parse(#"{"cmd":"flows","limit":1.5}"#).integer("limit", default: 1)
        }
    }

    static func temporaryPath() -> String {
        "/tmp/dist-admin-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
    }

    /// Calls `body` with a Unix socket address for `path`, as bind and connect take it.
    static func withAddress<R>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            let bytes = Array(path.utf8)
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }

    /// A blocking client: connects, sends `text`, reads `lines` reply lines, serving the server meanwhile.
    static func exchange(_ server: AdminServer, path: String, send text: String, lines: Int) throws -> [String] {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        let connected = withAddress(path) { connect(fd, $0, $1) }
        guard connected == 0 else { throw AdminError("connect failed") }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let bytes = Array(text.utf8)
        var sent = 0
        var received: [UInt8] = []
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            if sent < bytes.count {
                let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + sent, min(65536, $0.count - sent)) }
                if n > 0 { sent += n }
            }
            server.poll(timeoutMilliseconds: 5)
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = read(fd, &chunk, chunk.count)
            if n > 0 { received += chunk[0..<n] }
            if n == 0 { break }
            if received.filter({ $0 == 0x0A }).count >= lines { break }
        }
        return String(decoding: received, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    @Test func serverAnswersEachLineAndKeepsGoingAfterErrors() throws {
        let path = Self.temporaryPath()
        let server = try AdminServer(path: path) { request in
            AdminReply.encode(Echo(echo: request.command))
        }
        var st = stat()
        #expect(stat(path, &st) == 0)
        #expect(st.st_mode & 0o777 == 0o600)
        let replies = try Self.exchange(server, path: path, send: "stats\n{bad\n{\"cmd\":\"flows\"}\n", lines: 3)
        #expect(replies.count == 3)
        #expect(replies[0] == #"{"echo":"stats","ok":true}"#)
        #expect(replies[1].contains(#""ok":false"#) && replies[1].contains("not a JSON object"))
        #expect(replies[2] == #"{"echo":"flows","ok":true}"#)
    }

    @Test func anOverlongLineIsAnsweredAndTheClientClosed() throws {
        let path = Self.temporaryPath()
        let server = try AdminServer(path: path) { _ in AdminReply.encode(["ok": true]) }
        let long = String(repeating: "x", count: AdminServer.maxLineLength + 10)
        let replies = try Self.exchange(server, path: path, send: long, lines: 1)
        #expect(replies.first?.contains("longer than") == true)
        // The server still serves new clients.
        #expect(try Self.exchange(server, path: path, send: "stats\n", lines: 1) == [#"{"ok":true}"#])
    }

    @Test func aStaleSocketIsReplacedAndALiveOneRefused() throws {
        let path = Self.temporaryPath()
        do {
            let first = try AdminServer(path: path) { _ in "" }
            #expect(throws: AdminError.self) { try AdminServer(path: path) { _ in "" } }
            _ = first
        }
        // A socket file nobody listens on (left by a killed process).
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        _ = Self.withAddress(path) { bind(fd, $0, $1) }
        close(fd)
        let server = try AdminServer(path: path) { _ in AdminReply.encode(["ok": true]) }
        #expect(try Self.exchange(server, path: path, send: "x\n", lines: 1) == [#"{"ok":true}"#])
    }

    struct Echo: Encodable {
        let ok = true
        var echo: String
    }
}

/// Replies: one line of JSON, snake_case keys in sorted order, absent values left out.
struct AdminReplyTests {
    struct Sample: Encodable {
        var rxPackets: Int
        var uptimeS: Double
        var path: String
        var missing: Int?
    }

    @Test func repliesAreOneLineWithSnakeCaseSortedKeys() {
        let text = AdminReply.encode(Sample(rxPackets: 3, uptimeS: 1.5, path: "/tmp/a", missing: nil))
        #expect(text == #"{"path":"/tmp/a","rx_packets":3,"uptime_s":1.5}"#)
        #expect(AdminReply.error("no such command") == #"{"error":"no such command","ok":false}"#)
    }
}
