import DistController
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The controller's northbound socket: only its own user (or root) may use it.
@Suite(.serialized) struct NorthboundTests {
    /// Asks `vnfs` on the socket at `path` with Python, as `user` if given; what came back.
    static func ask(_ path: String, as user: UInt32? = nil) throws -> String {
        let script = """
            import socket, sys
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(5)
            try:
                s.connect(sys.argv[1])
                s.sendall(b'{"command":"vnfs"}\\n')
                print('answered' if b'vnfs' in s.recv(4096) else 'closed')
            except OSError as e:
                print('closed')
            """
        let process = Process()
        if let user {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = ["--reuid=\(user)", "--regid=\(user)", "--clear-groups", "/usr/bin/python3", "-c", script, path]
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            process.arguments = ["-c", script, path]
        }
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        process.waitUntilExit()
        return String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func theSocketIsTheOwnersAlone() throws {
        guard geteuid() == 0, FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else {
            Issue.record("needs root and setpriv to connect as another user")
            return
        }
        let path = "/tmp/dist-northbound-test-\(getpid()).sock"
        var config = ControllerConfig(vnfs: [ControllerConfig.VNF(name: "a", host: "127.0.0.1", port: 1, switchPort: 1)],
                                      openflowPort: 0, northboundPath: path)
        config.requestTimeout = 1
        let controller = try Controller(config: config, log: { _ in })
        _ = try controller.start()
        defer { controller.shutdown() }
        var info = stat()
        #expect(stat(path, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
        #expect(try Self.ask(path) == "answered")
        // (Opened up, so that only the peer check stands in the way.)
        chmod(path, 0o666)
        #expect(try Self.ask(path, as: 65534) == "closed")
        #expect(try Self.ask(path) == "answered")
    }
}
