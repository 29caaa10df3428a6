import DistController
import DistServer
import Foundation
import NIOSSL
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Who may talk to the controller: its northbound socket is its own user's (or root's), and
/// OpenFlow is the configured switch's alone.
@Suite(.serialized) struct ControllerSecurityTests {
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
            process.arguments = [
                "--reuid=\(user)", "--regid=\(user)", "--clear-groups", "/usr/bin/python3", "-c", script, path,
            ]
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
        var config = ControllerConfig(
            vnfs: [ControllerConfig.VNF(name: "a", host: "127.0.0.1", port: 1, switchPort: 1)],
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

    /// A switch over TLS (Python): connects to `port` with the certificate `name` of `dir`
    /// ("plain": no TLS), answers HELLO, FEATURES_REQUEST (datapath `dpid`) and ECHO for
    /// `hold` seconds; prints whether the controller closed the connection meanwhile.
    static let fakeSwitch = """
        import socket, ssl, struct, sys, time
        port, d, name, dpid, hold = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
        s = socket.create_connection(('127.0.0.1', port), timeout=5)
        closed = False
        try:
            if name != 'plain':
                c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                c.check_hostname = False
                c.load_verify_locations(d + '/ca.pem')
                c.load_cert_chain(d + '/' + name + '.pem', d + '/' + name + '.key')
                s = c.wrap_socket(s)
            s.sendall(struct.pack('>BBHI', 4, 0, 8, 1))
            s.settimeout(0.1)
            buf, end = b'', time.time() + hold
            while time.time() < end:
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    closed = True
                    break
                buf += data
                while len(buf) >= 8:
                    v, t, l, x = struct.unpack('>BBHI', buf[:8])
                    if len(buf) < l:
                        break
                    msg, buf = buf[:l], buf[l:]
                    if t == 5:
                        s.sendall(struct.pack('>BBHIQIBBHII', 4, 6, 32, x, dpid, 0, 254, 0, 0, 0, 0))
                    elif t == 2:
                        s.sendall(struct.pack('>BBHI', 4, 3, l, x) + msg[8:])
        except OSError:
            closed = True
        print('closed' if closed else 'open')
        """

    static func python(_ script: String, _ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", script] + arguments
        process.standardOutput = Pipe()
        try process.run()
        return process
    }

    static func output(_ process: Process) -> String {
        process.waitUntilExit()
        let pipe = process.standardOutput as! Pipe
        return String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The datapath the controller uses, as its northbound `vnfs` says (nil: none).
    static func datapath(_ path: String) throws -> String? {
        let script = """
            import json, socket, sys
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(5)
            s.connect(sys.argv[1])
            s.sendall(b'{"command":"vnfs"}\\n')
            data = b''
            while not data.endswith(b'\\n'):
                data += s.recv(65536)
            sw = json.loads(data).get('switch')
            print(sw['datapath'] if sw else 'none')
            """
        let answer = output(try python(script, [path]))
        return answer == "none" ? nil : answer
    }

    /// OpenFlow over mutual TLS: the configured switch's connection is used; another
    /// certificate of the same CA, or a plaintext connection, changes nothing (it is closed,
    /// and the switch in use stays).
    @Test func onlyTheConfiguredSwitchTakesTheOpenFlowConnection() throws {
        let dir = "/tmp/dist-of-tls-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let make = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "../../deploy/make-certs.sh"
        ).path
        let p = try Process.run(URL(fileURLWithPath: make), arguments: [dir, "controller", "switch", "imposter"])
        p.waitUntilExit()
        let files = ControlTLS.Files(
            certificate: dir + "/controller.pem", key: dir + "/controller.key", ca: dir + "/ca.pem")
        let path = dir + "/controller.sock"
        var config = ControllerConfig(
            vnfs: [ControllerConfig.VNF(name: "a", host: "127.0.0.1", port: 1, switchPort: 1)],
            openflowPort: 0, northboundPath: path)
        config.openflowTLS = try ControlTLS.server(files)
        config.switchCertificate = try NIOSSLCertificate.fromPEMFile(dir + "/switch.pem")[0]
        let controller = try Controller(config: config, log: { _ in })
        let port = "\(try controller.start())"
        defer { controller.shutdown() }
        let real = try Self.python(Self.fakeSwitch, [port, dir, "switch", "1", "4"])
        var seen: String?
        for _ in 0..<40 where seen == nil {
            usleep(100_000)
            seen = try Self.datapath(path)
        }
        #expect(seen == "1")
        for (name, dpid) in [("imposter", "2"), ("plain", "3")] {
            #expect(Self.output(try Self.python(Self.fakeSwitch, [port, dir, name, dpid, "1"])) == "closed", "\(name)")
            #expect(try Self.datapath(path) == "1", "\(name)")
        }
        #expect(Self.output(real) == "open")
    }
}
