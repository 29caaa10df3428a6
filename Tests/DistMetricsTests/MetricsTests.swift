import DistMetrics
import Foundation
import Testing

/// The book's counters follow totals without going down; the server answers a scrape with
/// the exposition and refuses what is not one.
@Suite struct MetricsTests {
    static func text(_ book: MetricsBook) -> String { String(decoding: book.exposition(), as: UTF8.self) }

    @Test func countersFollowTotalsAndNeverGoDown() {
        let book = MetricsBook()
        book.total("dist_packets_received_total", [("worker", "0")], 10)
        book.total("dist_packets_received_total", [("worker", "1")], 5)
        book.total("dist_packets_received_total", [("worker", "0")], 25)
        book.total("dist_packets_received_total", [("worker", "0")], 7)  // another instance's restart
        book.level("dist_flows", [("worker", "0")], 42)
        book.duration("dist_move_seconds", [("mode", "dist")], seconds: 0.3)
        let text = Self.text(book)
        #expect(text.contains("dist_packets_received_total{worker=\"0\"} 25"), "\(text)")
        #expect(text.contains("dist_packets_received_total{worker=\"1\"} 5"))
        #expect(text.contains("dist_flows{worker=\"0\"} 42"))
        #expect(text.contains("dist_move_seconds_bucket{mode=\"dist\",le=\"0.5\"} 1"))
        #expect(text.contains("dist_move_seconds_bucket{mode=\"dist\",le=\"0.25\"} 0"))
        book.total("dist_packets_received_total", [("worker", "0")], 30)
        #expect(Self.text(book).contains("dist_packets_received_total{worker=\"0\"} 30"))
    }

    /// One HTTP exchange over a plain socket: the status line and the body.
    static func fetch(port: Int, _ request: String) throws -> (status: String, body: String) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        try #require(connected == 0)
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        let text = String(decoding: out, as: UTF8.self)
        let parts = text.components(separatedBy: "\r\n\r\n")
        return (parts[0].components(separatedBy: "\r\n")[0], parts.dropFirst().joined(separator: "\r\n\r\n"))
    }

    @Test func theServerAnswersAScrapeAndNothingElse() throws {
        let book = MetricsBook()
        book.total("dist_packets_received_total", [("worker", "0")], 3)
        let server = try MetricsServer(host: "127.0.0.1", port: 0, book: book)
        defer { server.close() }
        let scrape = try Self.fetch(port: server.port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(scrape.status == "HTTP/1.1 200 OK")
        #expect(scrape.body.contains("dist_packets_received_total{worker=\"0\"} 3"))
        let other = try Self.fetch(port: server.port, "GET /admin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(other.status == "HTTP/1.1 404 Not Found")
        let post = try Self.fetch(
            port: server.port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        #expect(post.status == "HTTP/1.1 405 Method Not Allowed")
        let garbage = try Self.fetch(port: server.port, "\u{1}\u{2} not http\r\n\r\n")
        #expect(garbage.status.hasPrefix("HTTP/1.1 400"), "\(garbage.status)")
        // Still serving.
        #expect(try Self.fetch(port: server.port, "GET /metrics HTTP/1.0\r\n\r\n").status == "HTTP/1.0 200 OK")
    }
}
