import DistFlow
import DistMove
import DistNorthbound
import DistPRADS
import DistPacket
import DistState
import Testing

/// The northbound's typed messages: distctl's requests reach the controller as they were
/// made, the controller's lines read back as they were written, and a bad field is named.
@Suite struct NorthboundTests {
    static let filter = try! FlowFilter(parsing: "nw_src=10.0.0.0/8")

    @Test func everyRequestReadsBackAsItWasMade() throws {
        var move = MoveCommand(from: "vnf1", to: "vnf2", filter: "nw_src=10.0.0.0/8")
        (move.guarantee, move.opt, move.mode, move.split, move.splitOrder) = ("op", "pz,ll", "dist", 16, "traffic")
        let requests: [NorthboundRequest] = [
            .vnfs, .stats(vnf: "vnf1"), .flows(vnf: "vnf2", filter: Self.filter, limit: 7),
            .assets(vnf: "vnf1", filter: .all), .move(move),
            .move(MoveCommand(from: "a", to: "b", filter: "*")),
        ]
        for request in requests {
            #expect(try NorthboundRequest(line: request.line) == request, "\(request.line)")
        }
        // What an older distctl (or a script) leaves out takes the defaults.
        guard case .move(let bare) = try NorthboundRequest(line: #"{"command":"move","from":"a","to":"b"}"#) else {
            Issue.record("not a move")
            return
        }
        #expect(bare == MoveCommand(from: "a", to: "b", filter: "*") && bare.mode == "opennf" && bare.split == nil)
    }

    @Test func everyReplyReadsBackAsItWasWritten() throws {
        var counters = InstanceCounters()
        counters.packets = 12
        counters.byTransport[2] = 5
        let key = FlowKey(
            loAddr: IPAddress(ipv4: 0x0A00_0001), hiAddr: IPAddress(ipv4: 0xC612_0001), loPort: 1234, hiPort: 80,
            proto: 6,
            vlanKey: 0)
        var entry = FlowEntry(key: key, hash: 1, clientIsLo: true, now: 1)
        entry.packetsToServer = 3
        let asset = AssetState(
            address: IPAddress(ipv4: 0xC612_0001),
            asset: Detector.Asset(vlan: 0, firstSeen: 1, lastSeen: 2, os: [], services: [], mac: [2, 0, 0, 0, 0, 1]))
        var report = MoveReport()
        report.outcome = "aborted"
        report.reason = "why"
        let replies: [NorthboundReply] = [
            .progress("state at vnf2", seconds: 0.25), .failure("no VNF named x"),
            .vnfs(
                [
                    .init(
                        name: "vnf1", control: "198.19.1.2:7001", switchPort: 11, connected: false, lastError: "refused"
                    )
                ],
                switch: .init(datapath: "de5244d0cf44", ports: [.init(number: 1, name: "dtb-src")])),
            .vnfs([], switch: nil), .stats(vnf: "vnf1", counters: counters),
            .flows(vnf: "vnf1", count: 9, flows: [.init(entry)]), .assets(vnf: "vnf2", assets: [.init(asset)]),
            .report(report),
        ]
        for reply in replies {
            #expect(NorthboundReply(line: reply.line) == reply, "\(reply.line)")
        }
        #expect(!NorthboundReply.report(report).line.contains(#""ok":true"#))
        #expect(NorthboundReply(line: "[1]") == nil)
    }

    @Test(arguments: [
        ("{", "one JSON object"), (#"{"vnf":"a"}"#, "\"command\" is missing"),
        (#"{"command":"teleport"}"#, "unknown command"),
        (#"{"command":"stats"}"#, "\"vnf\""), (#"{"command":"flows","vnf":"a","limit":"all"}"#, "\"limit\""),
        (#"{"command":"flows","vnf":"a","filter":"nw_src=1.2.3.4/40"}"#, "nw_src"),
        (#"{"command":"move","from":"a","to":"b","split":"16"}"#, "\"split\""),
    ])
    func aBadRequestSaysWhat(line: String, says: String) {
        do {
            _ = try NorthboundRequest(line: line)
            Issue.record("\(line) was taken")
        } catch {
            #expect("\(error)".contains(says), "\(error)")
        }
    }
}
