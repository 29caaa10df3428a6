import DistOpenFlow
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The codec against a real Open vSwitch (Debian's openvswitch-switch, userspace datapath, run
/// in a private directory by deploy/testbed/ovs.sh): handshake, port description, echo, flow
/// installation (checked with ovs-ofctl), a packet out that comes back as a packet in, and an
/// error for a malformed request. What OVS sent can be saved as the fixture
/// ``OVSFixtureTests`` decodes (DIST_SAVE_OVS_FIXTURE=1).
///
/// It starts daemons, so it belongs with the integration tests: `Tests/integration/test_openflow.py`
/// runs it (DIST_LIVE_OVS=1); a plain `swift test` skips it and says why.
@Suite(
    .serialized,
    .enabled(
        if: ProcessInfo.processInfo.environment["DIST_LIVE_OVS"] != nil,
        "starts Open vSwitch: run by Tests/integration/test_openflow.py (DIST_LIVE_OVS=1)"))
struct OVSLiveTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let fixture = root.appendingPathComponent("Tests/DistOpenFlowTests/Fixtures/ovs-3.1-to-controller.bin")

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    /// Runs a command through the shell and waits for it (`system`: Foundation's Process would
    /// also wait for the daemons ovs.sh leaves behind, which inherit its exit-watching descriptor).
    @discardableResult
    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> String {
        func quote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("dist-ovs-run-\(getpid()).log").path
        defer { unlink(log) }
        let assignments = environment.map { "\($0.key)=\(quote($0.value))" }.joined(separator: " ")
        let command = "env \(assignments) \(arguments.map(quote).joined(separator: " ")) >\(quote(log)) 2>&1 </dev/null"
        let status = system(command)
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        guard status == 0 else { throw Failure("\(arguments.joined(separator: " ")): \(text)") }
        return text
    }

    /// A blocking TCP connection to the switch, with a receive timeout.
    final class Connection {
        let fd: Int32
        var stream = OFStream()
        var received: [UInt8] = []
        init(fd: Int32) {
            self.fd = fd
            var timeout = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }
        deinit { close(fd) }
        func send(_ m: OFMessage) { sendRaw(m.encoded()) }
        func sendRaw(_ bytes: [UInt8]) { _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) } }
        /// The next message, skipping asynchronous ones (port status) unless asked for.
        func next(skipping: (OFMessage) -> Bool = { if case .other(_, 12, _) = $0 { true } else { false } }) throws
            -> OFMessage
        {
            while true {
                while let m = try stream.next() {
                    if !skipping(m) { return m }
                }
                var chunk = [UInt8](repeating: 0, count: 65536)
                let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard n > 0 else { throw Failure("switch closed or timed out") }
                received += chunk[0..<n]
                stream.append(Array(chunk[0..<n]))
            }
        }
    }

    @Test func aRealOpenVSwitchSpeaksOurOpenFlow() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/ovs-vswitchd") else {
            throw Failure("Open vSwitch is not installed (apt-get install -y openvswitch-switch)")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dist-ovs-\(getpid())").path
        let script = Self.root.appendingPathComponent("deploy/testbed/ovs.sh").path
        let env = ["OVS_RUNDIR": dir, "OVS_LOGDIR": dir, "OVS_DBDIR": dir]
        try Self.run([script, "start", dir])
        defer { _ = try? Self.run([script, "stop", dir]) }

        // Listen, and point a userspace bridge at us.
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) }
        }
        listen(listener, 1)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        let port = UInt16(bigEndian: address.sin_port)
        try Self.run(
            [
                "ovs-vsctl", "add-br", "br0", "--", "set", "bridge", "br0", "datapath_type=netdev",
                "protocols=OpenFlow13", "fail_mode=secure", "--", "set-controller", "br0", "tcp:127.0.0.1:\(port)",
            ],
            environment: env)
        var timeout = timeval(tv_sec: 15, tv_usec: 0)
        setsockopt(listener, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let fd = accept(listener, nil, nil)
        try #require(fd >= 0, "Open vSwitch did not connect")
        let c = Connection(fd: fd)

        guard case .hello = try c.next() else { throw Failure("no HELLO") }
        c.send(.hello(xid: 1, body: []))
        c.send(.featuresRequest(xid: 2))
        guard case .featuresReply(2, let dpid, _, let tables, _, _) = try c.next() else {
            throw Failure("no FEATURES_REPLY")
        }
        #expect(dpid != 0 && tables > 0)

        c.send(.portDescriptionRequest(xid: 3))
        guard case .portDescriptionReply(3, let ports, _) = try c.next() else { throw Failure("no port description") }
        #expect(ports.contains { $0.name == "br0" && $0.number == 0xFFFF_FFFE })

        c.send(.echoRequest(xid: 4, data: [9, 8, 7]))
        #expect(try c.next() == .echoReply(xid: 4, data: [9, 8, 7]))

        // A table-miss rule to us, and a specific rule; a barrier says both are in.
        var miss = OFFlowMod()
        miss.priority = 0
        miss.instructions = [.applyActions([.output(port: OpenFlow.portController)])]
        c.send(.flowMod(xid: 5, miss))
        var rule = OFFlowMod()
        rule.priority = 100
        rule.cookie = 0xD157
        rule.match = OFMatch([
            .ethType(0x0800), .ipv4Destination(0xC612_0000, mask: 0xFFFE_0000), .ipProto(6), .tcpDestination(80),
        ])
        rule.instructions = [.applyActions([.output(port: 0xFFFF_FFFE)])]
        c.send(.flowMod(xid: 6, rule))
        c.send(.barrierRequest(xid: 7))
        #expect(try c.next() == .barrierReply(xid: 7))
        let flows = try Self.run(["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", "br0"], environment: env)
        #expect(
            flows.contains("cookie=0xd157") && flows.contains("tcp,nw_dst=198.18.0.0/15,tp_dst=80")
                && flows.contains("actions=LOCAL"), "\(flows)")
        #expect(flows.contains("priority=0 actions=CONTROLLER:65535"), "\(flows)")

        // The switch's table read back (what a controller that starts again takes over): both
        // rules, each as the ADD that makes it (Open vSwitch may order a match's fields its way).
        c.send(.flowStatsRequest(xid: 10))
        guard case .flowStatsReply(10, let table, false) = try c.next() else { throw Failure("no flow stats") }
        #expect(table.count == 2)
        let read = try #require(table.first { $0.cookie == 0xD157 })
        #expect(read.priority == 100 && read.instructions == rule.instructions)
        #expect(Set(read.match.fields.map { "\($0)" }) == Set(rule.match.fields.map { "\($0)" }), "\(read.match)")
        #expect(table.contains { $0.priority == 0 && $0.instructions == miss.instructions })

        // A packet sent into the pipeline that only the table-miss rule matches comes back to us.
        let frame: [UInt8] =
            [
                2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0, 0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0,
                198, 18, 0, 1, 198, 18, 0, 2, 0x13, 0x88, 0, 53, 0, 8, 0, 0,
            ] + [UInt8](repeating: 0, count: 18)
        c.send(
            .packetOut(
                xid: 8,
                OFPacketOut(inPort: OpenFlow.portController, actions: [.output(port: OpenFlow.portTable)], data: frame))
        )
        guard case .packetIn(_, let packetIn) = try c.next() else { throw Failure("no PACKET_IN") }
        #expect(packetIn.data == frame && packetIn.inPort == OpenFlow.portController)

        // A flow-mod cut short: the switch answers with an error naming our xid.
        c.sendRaw([4, 14, 0, 16, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0])
        guard case .error(9, let type, _, _) = try c.next() else { throw Failure("no ERROR") }
        #expect(type == 1)  // OFPET_BAD_REQUEST

        // Keep what the switch sent, for the offline test.
        try FileManager.default.createDirectory(
            at: Self.fixture.deletingLastPathComponent(), withIntermediateDirectories: true)
        if ProcessInfo.processInfo.environment["DIST_SAVE_OVS_FIXTURE"] != nil {
            try Data(c.received).write(to: Self.fixture)
        }
    }
}
