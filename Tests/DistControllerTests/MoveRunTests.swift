import DistChannel
import DistControl
import DistFlow
import DistLoopback
import DistMove
import DistOpenFlow
import DistPipeline
import DistState
import DistTransfer
import NIOCore
import NIOEmbedded
import Testing

@testable import DistController

/// The controller's Move runs (``DistModeMove``) on an embedded event loop against two VNFs of
/// the test's own thread: the messages it sends, in order, and what the VNFs end with.
@Suite struct MoveRunTests {
    let loop = EmbeddedEventLoop()
    let a: LoopbackVNF, b: LoopbackVNF
    let sw: LoopbackSwitch
    static let flows = 8

    init() {
        a = LoopbackVNF(name: "vnf1", switchPort: 11, address: "198.18.0.1:7700@02:00:00:00:00:01", loop: loop)
        b = LoopbackVNF(name: "vnf2", switchPort: 12, address: "198.18.0.2:7700@02:00:00:00:00:02", loop: loop)
        sw = LoopbackSwitch(loop: loop, targets: [a.switchPort])
        sw.vnfs = [11: a, 12: b]
    }

    /// Runs `run` while the switch sends one packet of every flow a millisecond; the VNFs poll,
    /// their channel carries what they send, notices go to the Move. Returns its report and
    /// every flow's packets as the VNFs forwarded them (A's, then B's). A VNF that `dies` names
    /// is gone from the first millisecond it does so: it takes in, sends and says nothing more,
    /// and its connection to the controller closes. The traffic goes on `trafficAfter` ms past
    /// the Move's end.
    func drive(
        _ run: DistModeMove, everyMillisecond: (() -> Void)? = nil, dies: (() -> LoopbackVNF?)? = nil,
        trafficAfter: Int = 0
    ) throws -> (
        report: MoveReport, forwarded: [[UInt32]], sent: UInt32
    ) {
        var sent: UInt32 = 0
        func traffic() {
            for flow in 0..<Self.flows {
                let p = SampleTraffic.packet(flow: flow, sequence: sent)
                for port in sw.targets(flow: flow) where sw.vnfs[port]?.connected == true {
                    sw.vnfs[port]?.instance.receive(p)
                }
            }
            sent += 1
        }
        for _ in 0..<5 { traffic() }
        var report: MoveReport?
        run.run().whenSuccess { report = $0 }
        var after = trafficAfter
        for _ in 0..<20_000 where report == nil || after > 0 {
            if report != nil { after -= 1 }
            if let dead = dies?(), dead.connected {
                dead.connected = false
                dead.onDisconnect?()
            }
            everyMillisecond?()
            traffic()
            let live = [a, b].filter(\.connected)
            for vnf in live { vnf.instance.round() }
            let (ab, ba) = (a.instance.wire, b.instance.wire)
            a.instance.wire = []
            b.instance.wire = []
            if a.connected && b.connected {
                for f in ab { b.instance.receive(f, worker: 0) }
                for f in ba { a.instance.receive(f, worker: 0) }
            }
            for vnf in live { vnf.deliverNotices() }
            loop.advanceTime(by: .milliseconds(1))
        }
        let done = try #require(report, "the Move did not end")
        // The destination's last held packets go once its rule has gone.
        for _ in 0..<50 {
            for vnf in [a, b] where vnf.connected { vnf.instance.round() }
        }
        var seqs = [[UInt32]](repeating: [], count: Self.flows)
        for frame in a.instance.out + b.instance.out {
            if let (flow, seq) = SampleTraffic.numbered(frame) { seqs[flow].append(seq) }
        }
        return (done, seqs, sent)
    }

    func spec(_ guarantee: String) throws -> MoveSpec {
        try MoveSpec(
            source: "vnf1", destination: "vnf2", filter: SampleTraffic.filter, scope: "per", guarantee: guarantee,
            optimizations: "pz,ll,er", mode: "dist")
    }

    /// LF, as the paper's section 3: `movePerFlow`, the state sent peer to peer, the switch's
    /// update, the in-band control packet to the source; the Move completes, the flows are at B
    /// with their packet counts going on, and every packet was forwarded once, in order.
    @Test func aLossFreeMoveSignalsOnlyAndLosesNothing() throws {
        let run = try DistModeMove(
            id: 7, spec: spec("lf"), source: a, destination: b, switch: sw, ingressPort: 1,
            settle: .milliseconds(10), progress: { _ in })
        let (report, forwarded, sent) = try drive(run)
        #expect(report.outcome == "completed", "\(report.reason ?? "")")
        #expect(a.requests == ["movePerFlow"], "the source gets one request; the rest is its own")
        #expect(b.requests.isEmpty, "the destination hears only from the source")
        #expect(sw.targets == [b.switchPort])
        #expect(report.perFlowStates == Self.flows)
        // The report says which messages: the paper's signalling, and nothing else (a FLOW_MOD
        // per direction the filter names).
        #expect(
            report.messageKinds == [
                "to vnf1 movePerFlow": 1, "from vnf1 ack": 1, "from vnf1 moveStateSent": 1,
                "to switch FLOW_MOD": 2, "to switch BARRIER_REQUEST": 1, "from switch BARRIER_REPLY": 1,
                "from vnf1 moveSwitched": 1, "to switch PACKET_OUT": 1, "from vnf1 moveComplete": 1,
            ])
        #expect(report.messagesSent + report.messagesReceived == 10)
        let filter = try FlowFilter(parsing: SampleTraffic.filter)
        #expect(a.instance.flows(matching: filter).isEmpty)
        let moved = b.instance.flows(matching: filter)
        #expect(moved.count == Self.flows)
        #expect(moved.allSatisfy { $0.packetsToServer + $0.packetsToClient == UInt64(sent) }, "counts go on from A's")
        for (flow, seqs) in forwarded.enumerated() {
            #expect(seqs == Array(0..<sent), "flow \(flow)")
        }
    }

    /// LF (and redirect-first) where the switch's datapath keeps flows' cached entries for a
    /// while after the rule change (the first flow's traffic reaches the destination long before
    /// the last one's): the controller purges the datapath before the in-band control packet,
    /// which is then the last packet of the moved flows at the source. Waiting for the first
    /// flow's traffic and a settle instead let later packets reach the source after it, where
    /// they started their flows again.
    @Test(arguments: ["standard", "redirect-first"])
    func aLossFreeMovePurgesALaggingDatapathBeforeItsIBC(plan: String) throws {
        sw.purges = true
        sw.datapathLag = .milliseconds(10)
        var spec = try spec("lf")
        if plan == "redirect-first" { spec.plan = .redirectFirst }
        let run = try DistModeMove(
            id: 9, spec: spec, source: a, destination: b, switch: sw, ingressPort: 1,
            settle: .milliseconds(10), progress: { _ in })
        let (report, forwarded, sent) = try drive(run, trafficAfter: 100)
        #expect(report.outcome == "completed", "\(report.reason ?? "")")
        #expect(a.instance.flows(matching: try FlowFilter(parsing: SampleTraffic.filter)).isEmpty)
        for (flow, seqs) in forwarded.enumerated() {
            #expect(seqs == Array(0..<sent), "flow \(flow)")
        }
        #expect(sw.log == ["purge", "PACKET_OUT 11"], "the purge, then the IBC to the source")
        let names = report.phases.map(\.name)
        let synced = try #require(names.firstIndex(of: "datapath-synced"), "\(names)")
        #expect(synced < (names.firstIndex(of: "ibc-sent") ?? -1), "\(names)")
        // The purge's request and reply stand for the destination's moveSwitched notice.
        #expect(report.messageKinds["from vnf1 moveSwitched"] == nil)
        #expect(report.messageKinds["to switch revalidator/purge"] == 1)
        #expect(report.messagesSent + report.messagesReceived == 11)
    }

    /// NG: the state moves and the switch follows; the source deletes what it moved when told.
    @Test func aMoveWithoutGuaranteeEndsWithTheSourceDeleting() throws {
        let run = try DistModeMove(
            id: 8, spec: spec("ng"), source: a, destination: b, switch: sw, ingressPort: 1,
            settle: .milliseconds(10), progress: { _ in })
        let (report, _, _) = try drive(run)
        #expect(report.outcome == "completed", "\(report.reason ?? "")")
        #expect(a.requests == ["movePerFlow", "delPerFlow"])
        #expect(sw.targets == [b.switchPort])
        #expect(b.instance.flows(matching: try FlowFilter(parsing: SampleTraffic.filter)).count == Self.flows)
    }

    /// A source that refuses the Move (no such peer): the run ends aborted, the switch untouched.
    @Test func aRefusedMoveChangesNoRule() throws {
        a.service.startMove = { _ in throw SouthboundError("\"dst\" is not a channel peer of this instance") }
        let run = try DistModeMove(
            id: 9, spec: spec("lf"), source: a, destination: b, switch: sw, ingressPort: 1,
            settle: .milliseconds(10), progress: { _ in })
        let (report, _, _) = try drive(run)
        #expect(report.outcome == "aborted")
        #expect(report.reason?.contains("not a channel peer") == true)
        #expect(sw.flowMods.isEmpty && sw.targets == [a.switchPort])
    }

    /// The destination dies once the switch sends it the moved traffic: the controller hears
    /// at once (its connection closes), has the source take its flows back and sends the
    /// moved traffic back to it, rather than to a dead VNF.
    @Test func aDestinationThatDiesAfterTheSwitchUpdateGetsTheTrafficSentBack() throws {
        let run = try DistModeMove(
            id: 10, spec: spec("lf"), source: a, destination: b, switch: sw, ingressPort: 1,
            settle: .milliseconds(10), progress: { _ in })
        let (report, _, _) = try drive(run, dies: { [sw, b] in sw.targets == [b.switchPort] ? b : nil })
        #expect(report.outcome == "aborted")
        #expect(report.reason?.contains("vnf2 went away") == true, "\(report.reason ?? "")")
        #expect(a.requests == ["movePerFlow", "abortMove"])
        #expect(sw.targets == [a.switchPort])
        #expect(a.instance.flows(matching: try FlowFilter(parsing: SampleTraffic.filter)).count == Self.flows)
        #expect(a.instance.flows(matching: .all).count == Self.flows, "the IBC, late, is not taken for traffic")
    }

    /// The source dies once the destination has heard from it: the controller tells the
    /// destination, which forgets what it imported at once (it would wait for the channel's
    /// silence otherwise); the switch never changes.
    @Test func aSourceThatDiesMidMoveHasTheDestinationForgetAtOnce() throws {
        let run = try DistModeMove(
            id: 11, spec: spec("lf"), source: a, destination: b, switch: sw, ingressPort: 1,
            settle: .milliseconds(10), progress: { _ in })
        let (report, _, _) = try drive(
            run,
            dies: { [a, b] in
                b.instance.notices.contains { $0.type == "incomingStarted" } ? a : nil
            })
        #expect(report.outcome == "aborted")
        #expect(report.reason?.contains("vnf1 went away") == true, "\(report.reason ?? "")")
        #expect(b.requests == ["abortMove"])
        #expect(sw.flowMods.isEmpty && sw.targets == [a.switchPort])
        for _ in 0..<10 { b.instance.round() }
        #expect(b.instance.flows(matching: try FlowFilter(parsing: SampleTraffic.filter)).isEmpty)
    }

    /// The switch goes away while the Move waits for the source's state: the Move ends at once
    /// (not at its next switch step), and no rule of it was sent.
    @Test func aSwitchThatGoesAwayBeforeTheUpdateEndsTheMove() throws {
        let run = try DistModeMove(
            id: 12, spec: spec("lf"), source: a, destination: b, switch: sw, ingressPort: 1,
            settle: .milliseconds(10), progress: { _ in })
        let (report, _, _) = try drive(
            run,
            everyMillisecond: { [sw, b] in
                if !sw.closed && b.instance.notices.contains(where: { $0.type == "incomingStarted" }) { sw.goAway() }
            })
        #expect(report.outcome == "aborted")
        #expect(report.reason?.contains("the switch went away during the Move") == true, "\(report.reason ?? "")")
        #expect(a.requests == ["movePerFlow", "abortMove"])
        #expect(sw.flowMods.isEmpty)
        for _ in 0..<10 { a.instance.round() }
        #expect(a.instance.flows(matching: try FlowFilter(parsing: SampleTraffic.filter)).count == Self.flows)
    }

    /// The switch goes away after the Move's rules went out, before it said it applied them:
    /// the source takes its flows back, so the rules, which the switch may have applied (or
    /// will get again when it is back, see ``SwitchLink``), send the traffic back to it.
    @Test func aSwitchThatGoesAwayDuringTheUpdateGetsTheTrafficBackToTheSource() throws {
        sw.holdBarriers = true
        let run = try DistModeMove(
            id: 13, spec: spec("lf"), source: a, destination: b, switch: sw, ingressPort: 1,
            settle: .milliseconds(10), progress: { _ in })
        let (report, _, _) = try drive(
            run,
            everyMillisecond: { [sw] in
                if !sw.closed && !sw.heldBarriers.isEmpty { sw.goAway() }
            })
        #expect(report.outcome == "aborted", "\(report.reason ?? "")")
        #expect(a.requests == ["movePerFlow", "abortMove"])
        #expect(sw.targets == [a.switchPort], "the Move's rules send the traffic to the source again")
        for _ in 0..<10 { a.instance.round() }
        #expect(a.instance.flows(matching: try FlowFilter(parsing: SampleTraffic.filter)).count == Self.flows)
    }

    /// LF: the switch goes away after it applied the Move's rules, before the in-band control
    /// packet goes (it is lost), and comes back 50 ms later: the controller sends the packet
    /// again, and the Move completes as it would have, well within the source's patience.
    @Test func anLFMoveWhoseSwitchComesBackSendsItsInBandControlPacketAgain() throws {
        let run = try DistModeMove(
            id: 14, spec: spec("lf"), source: a, destination: b, switch: sw, ingressPort: 1,
            settle: .milliseconds(10), progress: { _ in })
        var awayFor = -1
        let (report, forwarded, sent) = try drive(
            run,
            everyMillisecond: { [sw, b] in
                if awayFor < 0 && sw.targets == [b.switchPort] {
                    sw.goAway()
                    awayFor = 0
                } else if awayFor >= 0 && sw.closed {
                    awayFor += 1
                    if awayFor == 50 { sw.comeBack() }
                }
            })
        try expectTheMoveWentThrough(report, forwarded: forwarded, sent: sent)
        let phases = report.phases.map(\.name)
        #expect(phases.contains("ibc-sent") && phases.contains("ibc-sent-again"), "\(phases)")
    }

    /// The same where the controller purges the switch's datapath: the switch goes away as the
    /// purge is asked for (it fails, and no warning is due: the switch is away); once it is back
    /// 100 ms later, the purge comes first, then the in-band control packet.
    @Test func anLFMoveWhoseSwitchIsAwayAtThePurgePurgesOnceItIsBack() throws {
        sw.purges = true
        sw.awayAtPurge = true
        let run = try DistModeMove(
            id: 15, spec: spec("lf"), source: a, destination: b, switch: sw, ingressPort: 1,
            settle: .milliseconds(10), progress: { _ in })
        var awayFor = 0
        let (report, forwarded, sent) = try drive(
            run,
            everyMillisecond: { [sw] in
                if sw.closed {
                    awayFor += 1
                    if awayFor == 100 { sw.comeBack() }
                }
            })
        try expectTheMoveWentThrough(report, forwarded: forwarded, sent: sent)
        let phases = report.phases.map(\.name)
        #expect(phases.contains("switch-away") && phases.contains("ibc-sent-again"), "\(phases)")
        #expect(sw.log == ["purge", "PACKET_OUT 11"], "once back: the purge, then the packet")
    }

    /// Completed without a warning, the flows at B, every packet forwarded once, in order.
    func expectTheMoveWentThrough(_ report: MoveReport, forwarded: [[UInt32]], sent: UInt32) throws {
        #expect(report.outcome == "completed", "\(report.reason ?? "")")
        #expect(report.warnings.isEmpty, "\(report.warnings)")
        #expect(a.requests == ["movePerFlow"])
        #expect(!a.instance.notices.contains { $0.counters["ibcMissing"] == 1 }, "the source had its packet")
        let moved = b.instance.flows(matching: try FlowFilter(parsing: SampleTraffic.filter))
        #expect(moved.count == Self.flows)
        for (flow, seqs) in forwarded.enumerated() {
            #expect(seqs == Array(0..<sent), "flow \(flow)")
        }
    }
}
