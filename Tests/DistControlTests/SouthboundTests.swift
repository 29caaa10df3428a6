import DistControl
import DistFlow
import DistPRADS
import DistPacket
import DistPipeline
import DistState
import Foundation
import Testing

/// The southbound API moving state between two real pipelines (flow table and detector each).
@Suite struct SouthboundTests {
    static let frames: [PcapFile.Frame] = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let data = (try? Data(contentsOf: root.appendingPathComponent("traces/mix-a.pcap"))) ?? Data()
        return (try? PcapFile(bytes: [UInt8](data)).frames) ?? []
    }()

    static func pipeline(run frames: [PcapFile.Frame]) throws -> FastPath {
        let stats = UnsafeMutablePointer<WorkerStats>.allocate(capacity: 1)
        stats.initialize(to: WorkerStats())
        let path = FastPath(
            table: FlowTable(capacity: 1 << 14), stats: stats,
            detector: Detector(signatures: try PRADSSignatures.load(directory: "/etc/prads")))
        path.process(frames: frames)
        return path
    }

    static func request(_ service: SouthboundService, _ object: [String: Any]) throws -> [[String: Any]] {
        let body = try JSONSerialization.data(withJSONObject: object)
        return try service.handle([UInt8](body)).map {
            try JSONSerialization.jsonObject(with: Data($0)) as! [String: Any]
        }
    }

    static func chunks(_ replies: [[String: Any]]) -> [String] {
        replies.flatMap { $0["chunks"] as? [String] ?? [] }
    }

    @Test func perFlowStateMovesBetweenInstancesForAFilter() throws {
        let source = SouthboundService(store: PipelineStateStore(try Self.pipeline(run: Self.frames)))
        let destinationPath = try Self.pipeline(run: [])
        let destination = SouthboundService(store: PipelineStateStore(destinationPath))
        source.chunksPerMessage = 100

        let got = try Self.request(source, ["type": "getPerFlow", "id": 1, "filter": "nw_src=192.168.0.0/16"])
        #expect(got.allSatisfy { $0["type"] as? String == "statePerFlow" && $0["id"] as? Int == 1 })
        #expect(got.count > 1 && got.last?["last"] as? Bool == true)
        let moved = Self.chunks(got)
        let expected = try PipelineStateStore(try Self.pipeline(run: Self.frames))
            .exportFlows(try FlowFilter(parsing: "nw_src=192.168.0.0/16"), lock: false)
        #expect(moved.count == expected.count && moved.count > 100)

        let put = try Self.request(destination, ["type": "putPerFlow", "id": 2, "chunks": moved])
        #expect(put.first?["type"] as? String == "ack" && put.first?["count"] as? Int == moved.count)
        #expect(destinationPath.table.count == moved.count)
        // What arrived equals what left, flow by flow.
        let back = Self.chunks(try Self.request(destination, ["type": "getPerFlow", "id": 3]))
        let sortedOut = Set(moved)
        let sortedBack = Set(back)
        #expect(sortedOut == sortedBack)

        let deleted = try Self.request(source, ["type": "delPerFlow", "id": 4, "filter": "nw_src=192.168.0.0/16"])
        #expect(deleted.first?["count"] as? Int == moved.count)
        #expect(
            Self.chunks(try Self.request(source, ["type": "getPerFlow", "id": 5, "filter": "nw_src=192.168.0.0/16"]))
                .isEmpty)
    }

    /// DiST's Move: `info` tells the channel address, `movePerFlow` hands a checked order to the
    /// transfer lcore and names its owner for the notices, bad orders get an error, and
    /// `delPerFlow` with `hosts` deletes both scopes.
    @Test func movePerFlowIsCheckedAndItsNoticesGoToItsOwner() throws {
        let path = try Self.pipeline(run: Self.frames)
        let service = SouthboundService(store: PipelineStateStore(path))
        #expect(try Self.request(service, ["type": "info", "id": 1]).first?["channel"] == nil)
        let order: [String: Any] = [
            "type": "movePerFlow", "id": 2, "moveID": 7, "filter": "nw_src=10.0.0.0/8",
            "guarantee": "lf", "lateLocking": true, "dst": "198.18.100.2:7400@02:00:00:00:00:02",
        ]
        #expect(try Self.request(service, order).first?["type"] as? String == "error")  // no channel here
        var started: [MoveRequest] = []
        service.channelAddress = "198.18.100.1:7400@02:00:00:00:00:01"
        service.startMove = {
            started.append($0)
            return 0xD157
        }
        #expect(
            try Self.request(service, ["type": "info", "id": 3]).first?["channel"] as? String == service.channelAddress)
        service.channelVersion = 2
        #expect(try Self.request(service, ["type": "info", "id": 3]).first?["channelVersion"] as? Int == 2)
        let accepted = service.handle(client: 9, try JSONSerialization.data(withJSONObject: order).map { $0 })
        #expect(accepted.count == 1)
        // The ack tells the controller the token of the Move's in-band control packets.
        let ack = try JSONSerialization.jsonObject(with: Data(accepted[0])) as? [String: Any]
        #expect(ack?["type"] as? String == "ack" && ack?["ibcToken"] as? String == "000000000000d157")
        #expect(started.count == 1 && started[0].moveID == 7 && started[0].lateLocking && !started[0].earlyRelease)
        #expect(!started[0].allFlows && !started[0].redirectFirst)
        #expect(
            started[0].filter == (try FlowFilter(parsing: "nw_src=10.0.0.0/8")) && started[0].perFlow
                && started[0].multiFlow)
        // The same Move again, an unknown guarantee, a missing destination, an unknown scope: refused.
        for bad: [String: Any] in [
            order, order.merging(["moveID": 8, "guarantee": "xp"]) { $1 },
            order.merging(["moveID": 9, "dst": ""]) { $1 },
            order.merging(["moveID": 10, "scopes": ["per", "everything"]]) { $1 },
            order.merging(["moveID": 0]) { $1 },
        ] {
            #expect(try Self.request(service, bad).first?["type"] as? String == "error", "\(bad)")
        }
        #expect(started.count == 1)
        // The counters may go too; redirect-first is a loss-free Move.
        let all = order.merging(["moveID": 11, "scopes": ["all"], "redirectFirst": true]) { $1 }
        #expect(service.handle(client: 9, try JSONSerialization.data(withJSONObject: all).map { $0 }).count == 1)
        #expect(started.count == 2 && started[1].allFlows && !started[1].perFlow && started[1].redirectFirst)
        let opFirst = order.merging(["moveID": 12, "guarantee": "op", "redirectFirst": true]) { $1 }
        #expect(try Self.request(service, opFirst).first?["type"] as? String == "error")
        let notice = service.moveNotice(
            MoveNoticeMessage(type: "moveComplete", moveID: 7, outcome: "completed"), last: true)
        #expect(notice?.client == 9)
        // Gone after the last.
        #expect(service.moveNotice(MoveNoticeMessage(type: "moveComplete", moveID: 7, outcome: ""), last: true) == nil)

        let before = path.detector!.assets.count
        let deleted = try Self.request(
            service, ["type": "delPerFlow", "id": 4, "filter": "nw_src=192.168.0.0/16", "hosts": true])
        #expect((deleted.first?["count"] as? Int ?? 0) > 0)
        #expect(path.detector!.assets.count < before)
        #expect(
            path.detector!.assets.keys.allSatisfy {
                !(try! FlowFilter(parsing: "nw_src=192.168.0.0/16")).matches(host: $0)
            })
    }

    /// `abortMove` hands the Move's id and the reason on; `movePerFlow` takes the source's
    /// patience in seconds, within bounds.
    @Test func abortMoveAndPatienceAreChecked() throws {
        let service = SouthboundService(store: PipelineStateStore(try Self.pipeline(run: [])))
        let abort: [String: Any] = ["type": "abortMove", "id": 1, "moveID": 7, "reason": "controller restarted"]
        #expect(try Self.request(service, abort).first?["type"] as? String == "error")  // no channel here
        var aborted: [(UInt64, String, Bool)] = []
        service.abortMove = { aborted.append(($0, $1, $2)) }
        #expect(try Self.request(service, abort).first?["type"] as? String == "ack")
        #expect(aborted.count == 1 && aborted[0] == (7, "controller restarted", false))
        #expect(try Self.request(service, abort.merging(["peerGone": true]) { $1 }).first?["type"] as? String == "ack")
        #expect(aborted.count == 2 && aborted[1] == (7, "controller restarted", true))
        for bad: [String: Any] in [
            abort.merging(["moveID": 0]) { $1 }, abort.merging(["moveID": "7"]) { $1 },
            abort.merging(["reason": String(repeating: "x", count: 201)]) { $1 },
            abort.merging(["peerGone": "yes"]) { $1 },
        ] {
            #expect(try Self.request(service, bad).first?["type"] as? String == "error", "\(bad)")
        }
        #expect(aborted.count == 2)

        var started: [MoveRequest] = []
        service.startMove = {
            started.append($0)
            return 1
        }
        let order: [String: Any] = [
            "type": "movePerFlow", "id": 2, "moveID": 8, "dst": "198.18.100.2:7400@02:00:00:00:00:02",
        ]
        #expect(try Self.request(service, order.merging(["patience": 0.5]) { $1 }).first?["type"] as? String == "ack")
        #expect(try Self.request(service, order.merging(["moveID": 9]) { $1 }).first?["type"] as? String == "ack")
        #expect(started.map(\.patience) == [0.5, nil])
        #expect(started.map(\.switchNotice) == [true, true])
        #expect(
            try Self.request(service, order.merging(["moveID": 11, "switchNotice": false]) { $1 }).first?["type"]
                as? String == "ack")
        #expect(started.last?.switchNotice == false)
        #expect(
            try Self.request(service, order.merging(["moveID": 12, "switchNotice": "no"]) { $1 }).first?["type"]
                as? String == "error")
        for bad in [0.05, 601, -1] as [Double] {
            let reply = try Self.request(service, order.merging(["moveID": 10, "patience": bad]) { $1 })
            #expect(reply.first?["type"] as? String == "error", "\(bad)")
        }
        #expect(
            try Self.request(service, order.merging(["moveID": 10, "patience": "2"]) { $1 }).first?["type"] as? String
                == "error")
    }

    /// `moves` lists the Moves under way here, with the phase their notices said: what a
    /// controller that starts again asks to find those left behind.
    @Test func movesUnderWayAreListedWithTheirPhase() throws {
        let service = SouthboundService(store: PipelineStateStore(try Self.pipeline(run: [])))
        service.startMove = { _ in 0xFEED_0000_0000_0001 }
        let order: [String: Any] = [
            "type": "movePerFlow", "id": 2, "moveID": 8, "filter": "nw_src=10.0.0.0/8", "guarantee": "op",
            "dst": "198.18.100.2:7400@02:00:00:00:00:02",
        ]
        #expect(service.handle(client: 9, try JSONSerialization.data(withJSONObject: order).map { $0 }).count == 1)
        service.incomingMove(5, started: true)
        func listed() throws -> [[String: Any]] {
            try Self.request(service, ["type": "moves", "id": 3]).first?["moves"] as? [[String: Any]] ?? []
        }
        var moves = try listed()
        #expect(moves.map { $0["moveID"] as? Int } == [5, 8])
        #expect(moves[0]["role"] as? String == "destination")
        #expect(moves[1]["role"] as? String == "source" && moves[1]["phase"] as? String == "exporting")
        #expect(moves[1]["filter"] as? String == "nw_src=10.0.0.0/8" && moves[1]["guarantee"] as? String == "op")
        #expect(moves[1]["ibcToken"] as? String == "feed000000000001")
        for (type, phase) in [("moveStateSent", "state-sent"), ("moveDuplicating", "duplicating")] {
            _ = service.moveNotice(MoveNoticeMessage(type: type, moveID: 8, outcome: "x"), last: false)
            moves = try listed()
            #expect(moves.last?["phase"] as? String == phase)
        }
        _ = service.moveNotice(MoveNoticeMessage(type: "moveComplete", moveID: 8, outcome: "completed"), last: true)
        service.incomingMove(5, started: false)
        #expect(try listed().isEmpty)
    }

    /// A controller that asked not to hear of the switch's traffic at the destination
    /// (`switchNotice` false) gets no `moveDuplicating`, and `moves` still says the phase.
    @Test func switchNoticesGoOnlyToAControllerThatWantsThem() throws {
        let service = SouthboundService(store: PipelineStateStore(try Self.pipeline(run: [])))
        service.startMove = { _ in 1 }
        for (moveID, wanted) in [(8, true), (9, false)] {
            let order: [String: Any] = [
                "type": "movePerFlow", "id": moveID, "moveID": moveID, "guarantee": "op", "switchNotice": wanted,
                "dst": "198.18.100.2:7400@02:00:00:00:00:02",
            ]
            #expect(try Self.request(service, order).first?["type"] as? String == "ack")
            let duplicating = MoveNoticeMessage(type: "moveDuplicating", moveID: UInt64(moveID), outcome: "x")
            #expect((service.moveNotice(duplicating, last: false) != nil) == wanted)
        }
        let moves = try Self.request(service, ["type": "moves", "id": 3]).first?["moves"] as? [[String: Any]] ?? []
        #expect(moves.map { $0["phase"] as? String } == ["duplicating", "duplicating"])
    }

    /// An event rule is its connection's: another connection cannot end it, and while a DiST
    /// Move is under way (its own rule in force) no connection sets one.
    @Test func eventsBelongToTheConnectionThatEnabledThem() throws {
        let path = try Self.pipeline(run: [])
        let service = SouthboundService(store: PipelineStateStore(path))
        func send(_ client: Int32, _ object: [String: Any]) throws -> String? {
            let replies = service.handle(client: client, try JSONSerialization.data(withJSONObject: object).map { $0 })
            return (try JSONSerialization.jsonObject(with: Data(replies[0])) as? [String: Any])?["type"] as? String
        }
        let enable: [String: Any] = ["type": "enableEvents", "id": 1, "filter": "tp_dst=80", "action": "drop"]
        let disable: [String: Any] = ["type": "disableEvents", "id": 2]
        #expect(try send(3, enable) == "ack")
        #expect(try send(4, disable) == "error")
        #expect(path.eventRule?.action == .drop, "another connection's disableEvents leaves the rule")
        #expect(service.hasWorkUnderWay(3) && !service.hasWorkUnderWay(4))
        #expect(try send(3, disable) == "ack")
        #expect(path.eventRule == nil)
        // With nothing enabled, a disableEvents changes nothing (a Move's rule stays).
        let moveRule = EventRule(filter: .all, action: .redirect)
        _ = path.perform(.events(moveRule))
        #expect(try send(4, disable) == "ack")
        #expect(path.eventRule?.action == .redirect)
        service.incomingMove(9, started: true)
        #expect(try send(3, enable) == "error")
        #expect(path.eventRule?.action == .redirect)
        service.incomingMove(9, started: false)
        #expect(try send(3, enable) == "ack")
    }

    @Test func multiFlowAndAllFlowsStateMoveToo() throws {
        let source = SouthboundService(store: PipelineStateStore(try Self.pipeline(run: Self.frames)))
        let destination = SouthboundService(store: PipelineStateStore(try Self.pipeline(run: [])))
        let assets = Self.chunks(
            try Self.request(source, ["type": "getMultiFlow", "id": 1, "filter": "nw_src=10.0.0.0/8"]))
        #expect(assets.count > 10)
        #expect(
            try Self.request(destination, ["type": "putMultiFlow", "id": 2, "chunks": assets]).first?["count"] as? Int
                == assets.count)
        #expect(Set(Self.chunks(try Self.request(destination, ["type": "getMultiFlow", "id": 3]))) == Set(assets))

        let counters = Self.chunks(try Self.request(source, ["type": "getAllFlows", "id": 4]))
        #expect(counters.count == 1)
        _ = try Self.request(destination, ["type": "putAllFlows", "id": 5, "chunks": counters])
        let after = Self.chunks(try Self.request(destination, ["type": "getAllFlows", "id": 6]))
        guard case .allFlows(let c)? = try? StateCodec.decode([UInt8](Data(base64Encoded: after[0])!)) else {
            Issue.record("no all-flows state")
            return
        }
        #expect(c.packets == 54_981)
        _ = try Self.request(destination, ["type": "delAllFlows", "id": 7])
        let reset = Self.chunks(try Self.request(destination, ["type": "getAllFlows", "id": 8]))
        guard case .allFlows(let z)? = try? StateCodec.decode([UInt8](Data(base64Encoded: reset[0])!)) else {
            Issue.record("no all-flows state after the reset")
            return
        }
        #expect(z.packets == 0)
    }

    /// With `peers`, the hosts at the other end of the filter's flows come along; an import
    /// merges with what the destination already knows of a host.
    @Test func peersOfMovedFlowsComeWithTheirHosts() throws {
        let path = try Self.pipeline(run: Self.frames)
        let source = SouthboundService(store: PipelineStateStore(path))
        let own = Self.chunks(
            try Self.request(source, ["type": "getMultiFlow", "id": 1, "filter": "nw_src=192.168.0.0/16"]))
        let withPeers = Self.chunks(
            try Self.request(
                source,
                [
                    "type": "getMultiFlow", "id": 2, "filter": "nw_src=192.168.0.0/16",
                    "peers": true,
                ]))
        #expect(Set(own).isSubset(of: Set(withPeers)) && withPeers.count > own.count)
        let prefix = IPPrefix("192.168.0.0/16")!
        let outside = withPeers.compactMap { text -> IPAddress? in
            guard case .multiFlow(let a)? = try? StateCodec.decode([UInt8](Data(base64Encoded: text)!)) else {
                return nil
            }
            return prefix.contains(a.address) ? nil : a.address
        }
        // Every outside host has a flow with an inside host.
        var talking = Set<IPAddress>()
        path.table.forEach { _, e in
            if prefix.contains(e.key.loAddr) { talking.insert(e.key.hiAddr) }
            if prefix.contains(e.key.hiAddr) { talking.insert(e.key.loAddr) }
            return true
        }
        #expect(!outside.isEmpty && Set(outside).isSubset(of: talking))

        // Merge on import: a destination that knows a host keeps what it knew.
        let detector = Detector(signatures: try PRADSSignatures.load(directory: "/etc/prads"))
        guard case .multiFlow(let first)? = try? StateCodec.decode([UInt8](Data(base64Encoded: withPeers[0])!)) else {
            Issue.record("the first chunk is not a host's state")
            return
        }
        var known = first.asset
        known.services = []
        known.os = [Detector.OSEntry(kind: .syn, signature: nil, text: "known-here", port: 1, ttl: 64)] + known.os
        detector.put(known, at: first.address)
        detector.put(first.asset, at: first.address)
        #expect(detector.asset(at: first.address)?.os.contains { $0.text == "known-here" } == true)
        #expect(detector.asset(at: first.address)?.services.count == first.asset.services.count)
    }

    /// A late-locking Move sends the filter's own hosts once, at its end: what it sends first
    /// is only the peers outside the filter, and the two together are the hosts with peers.
    @Test func peersAloneAreTheHostsWithPeersLessTheFiltersOwn() throws {
        let path = try Self.pipeline(run: Self.frames)
        let filter = try FlowFilter(parsing: "nw_src=192.168.0.0/16")
        func hosts(_ request: StateRequest) -> [IPAddress] {
            guard case .assets(let a) = path.perform(request) else {
                Issue.record("\(request) gave no hosts")
                return []
            }
            return a.map { $0.address }
        }
        let own = hosts(.exportAssets(filter, peers: false))
        let all = hosts(.exportAssets(filter, peers: true))
        let peers = hosts(.exportPeers(filter))
        #expect(!own.isEmpty && !peers.isEmpty)
        #expect(Set(own).isDisjoint(with: peers))
        #expect(Set(own).union(peers) == Set(all))
        #expect(own.count + peers.count == all.count)
    }

    @Test func badRequestsGetAnErrorAndChangeNothing() throws {
        let source = SouthboundService(
            store: PipelineStateStore(try Self.pipeline(run: Array(Self.frames.prefix(3000)))))
        let destinationPath = try Self.pipeline(run: [])
        let destination = SouthboundService(store: PipelineStateStore(destinationPath))
        #expect(source.handle(Array("not json".utf8)).count == 1)
        let garbage =
            try JSONSerialization.jsonObject(with: Data(source.handle(Array("not json".utf8))[0])) as! [String: Any]
        #expect(garbage["type"] as? String == "error")
        #expect(
            try Self.request(source, ["type": "fly", "id": 9]).first?["reason"] as? String
                == "unknown request type 'fly'")
        #expect(
            try Self.request(source, ["type": "getPerFlow", "id": 9, "filter": "nw_src=nonsense"]).first?["type"]
                as? String == "error")
        // A split Move's parts.
        let groups = try Self.request(
            source, ["type": "flowGroups", "id": 9, "filter": "nw_src=192.168.0.0/16", "length": 24])
        let listed = groups.first?["groups"] as? [[String: Any]] ?? []
        #expect(
            !listed.isEmpty
                && listed.allSatisfy {
                    ($0["prefix"] as? String)?.hasSuffix("/24") == true && ($0["flows"] as? Int ?? 0) > 0
                })
        for bad: [String: Any] in [
            ["filter": "*", "length": 24], ["filter": "nw_src=192.168.0.0/16", "length": 40],
            ["filter": "nw_src=192.168.0.0/16,nw_proto=6", "length": 24], ["filter": "nw_src=192.168.0.0/16"],
        ] {
            let reply = try Self.request(source, bad.merging(["type": "flowGroups", "id": 9]) { $1 })
            #expect(reply.first?["type"] as? String == "error", "\(bad)")
        }
        // The actions of DiST's own Move are not the controller's to set.
        for action in ["redirect", "hold", "gate", "discard", "nonsense"] {
            let reply = try Self.request(
                source, ["type": "enableEvents", "id": 9, "filter": "nw_src=10.0.0.0/8", "action": action])
            #expect(reply.first?["reason"] as? String == "\"action\" must be drop, buffer or process", "\(action)")
        }

        // A batch with one corrupted chunk: refused whole, nothing imported.
        var moved = Self.chunks(try Self.request(source, ["type": "getPerFlow", "id": 1]))
        var bytes = [UInt8](Data(base64Encoded: moved[moved.count / 2])!)
        bytes[bytes.count - 3] ^= 0x10
        moved[moved.count / 2] = Data(bytes).base64EncodedString()
        let refused = try Self.request(destination, ["type": "putPerFlow", "id": 2, "chunks": moved])
        #expect(refused.first?["type"] as? String == "error")
        #expect((refused.first?["reason"] as? String)?.contains("checksum") == true)
        #expect(destinationPath.table.count == 0)
        // Multi-flow state offered as per-flow state is refused.
        let assets = Self.chunks(try Self.request(source, ["type": "getMultiFlow", "id": 3]))
        #expect(
            try Self.request(destination, ["type": "putPerFlow", "id": 4, "chunks": assets]).first?["type"] as? String
                == "error")
        #expect(destinationPath.table.count == 0)
    }

    @Test func aFullTableRefusesTheWholeImport() throws {
        let source = SouthboundService(store: PipelineStateStore(try Self.pipeline(run: Self.frames)))
        let stats = UnsafeMutablePointer<WorkerStats>.allocate(capacity: 1)
        stats.initialize(to: WorkerStats())
        let small = FastPath(table: FlowTable(capacity: 100), stats: stats)
        let destination = SouthboundService(store: PipelineStateStore(small))
        let moved = Self.chunks(try Self.request(source, ["type": "getPerFlow", "id": 1]))
        let reply = try Self.request(destination, ["type": "putPerFlow", "id": 2, "chunks": moved])
        #expect(reply.first?["type"] as? String == "error")
        #expect(small.table.count == 0)
    }

    @Test func framesSplitAndJoin() {
        let a = SouthboundFraming.frame(Array("{\"type\":\"getAllFlows\"}".utf8))
        let b = SouthboundFraming.frame([1, 2, 3])
        let stream = a + b
        guard case .frame(let first, let size) = SouthboundFraming.next(in: stream[...]) else {
            Issue.record("no frame")
            return
        }
        #expect(String(decoding: first, as: UTF8.self) == "{\"type\":\"getAllFlows\"}")
        #expect(SouthboundFraming.next(in: stream[size...]) == .frame(body: [1, 2, 3], size: 7))
        #expect(SouthboundFraming.next(in: stream[0..<3]) == .needMore)
        #expect(SouthboundFraming.next(in: [0x7F, 0, 0, 0][...]) == .tooLarge(0x7F00_0000))
    }
}
