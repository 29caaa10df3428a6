import DistControl
import DistFlow
import DistMove
import DistOpenFlow
import Foundation
import NIOCore

/// A Move the controller runs: `opennf` (``OpenNFMove``) or `dist` (``DistModeMove``).
protocol MoveRun: AnyObject {
    var spec: MoveSpec { get }
    func run() -> EventLoopFuture<MoveReport>
}

extension OpenNFMove: MoveRun {}

/// A Move in `dist` mode, as the paper's section 3 describes DiST's: the controller only
/// signals. The source's transfer lcore sends the state and the moved flows' packets straight
/// to the destination over the data plane; the controller hears once that the state is there,
/// updates the switch, and (LF) sends the in-band control packet to the source through the
/// switch: it is the last packet of the moved traffic there, so when it has crossed the
/// channel the source deletes what it moved and says the Move is complete.
///
/// OP adds the paper's two-phase switch update (section 3.1): the moved traffic first goes to
/// both VNFs, then the IBC goes to both, then the traffic goes to the destination only. The
/// destination drops the switch's copies until its IBC (the source redirects the same packets)
/// and holds those after it until the source's end, so it processes every packet once, in the
/// order the switch saw them. The IBC must sit at the same place in both copies of the
/// traffic, which a PACKET_OUT to two ports does not promise (Open vSwitch's userspace datapath
/// sends it from its main thread, one port after the other, while its forwarding thread sends
/// the copies): the controller sends it to the source as a request to reflect, the source
/// sends it back, and a reflector rule sends it on to both, through the datapath. Phase two
/// comes when the source has seen every copy come back (at moveComplete).
///
/// The IBC must not go before the switch's datapath applies the update: in OP, a packet that
/// still went to the source alone after the source's IBC would be taken there for a copy the
/// destination processes, and be lost (34 packets were, once, with a fixed 10 ms wait after the
/// BARRIER reply: a BARRIER says the flow table has the rule, not that Open vSwitch's datapath
/// cache applies it); in LF and redirect-first, one that reached the source after the Move
/// ended there would start its flow again there. Where the controller has the switch's control
/// socket (``DatapathSync``), the IBC goes once the switch has applied the update (BARRIER) and
/// emptied its datapath's flow cache. Otherwise the destination says when the switch's packets
/// arrive (over the channel to the source, which tells the controller: `moveDuplicating` for
/// OP's copies, `moveSwitched` for the moved traffic), and the IBC goes ``settle`` after that;
/// without such traffic, after ``copiesTimeout`` (OP: a guess, see ``phaseOneSynced(_:)``) or
/// ``quietAfterUpdate`` after the BARRIER reply (LF).
///
/// Messages of the controller, whatever the number of flows and packets: movePerFlow and its
/// ack, moveStateSent, FLOW_MOD (one per direction), then
/// - LF: BARRIER and its reply, Open vSwitch's `revalidator/purge` and its reply, the IBC
///   PACKET_OUT to the source and moveComplete (11 with two directions); without the control
///   socket moveSwitched (none without traffic) instead of the purge (10);
/// - NG: BARRIER and its reply, one delPerFlow and its ack (9);
/// - OP: the reflector's FLOW_MOD, BARRIER and its reply, Open vSwitch's `revalidator/purge`
///   and its reply, the IBC PACKET_OUT to the source, moveComplete, one MODIFY of the Move's
///   rules (by cookie) and the reflector's DELETE (14); without the control socket
///   moveDuplicating instead of the BARRIER and the purge (11).
///   Its MoveTime ends at moveComplete, when the source has seen every copy of its IBC and the
///   destination every packet before it.
final class DistModeMove: MoveRun {
    let id: UInt64
    let spec: MoveSpec
    let src: any MoveVNF
    let dst: any MoveVNF
    let sw: any MoveSwitch
    let loop: EventLoop
    let progress: (String) -> Void
    let matches: [OFMatch]
    /// How long the switch's datapath is given to catch up with a rule change (see
    /// ``ControllerConfig/settleMilliseconds``) before an in-band control packet goes.
    let settle: TimeAmount
    /// The switch rules' priority and cookie (a split Move's parts sit above the whole filter's).
    let priority: UInt16
    let cookie: UInt64
    var report = MoveReport()
    let started = DispatchTime.now().uptimeNanoseconds
    let trafficAtStart: TrafficCounters
    var stateSent: EventLoopPromise<MoveNoticeMessage>?
    var completed: EventLoopPromise<MoveNoticeMessage>?
    /// The destination gets the switch's packets of the moved flows (OP: the copies): completed
    /// by its notice or by the timeout (nil), whichever comes first.
    var copiesArrive: EventLoopPromise<MoveNoticeMessage?>?
    var trafficArrives: EventLoopFuture<MoveNoticeMessage?>?
    var trafficTimer: Scheduled<Void>?
    var switchUpdated = false
    /// The Move's rules went to the switch (its BARRIER reply may not have come).
    var updateSent = false
    /// OP: the switch sends the moved traffic to both VNFs.
    var duplicating = false
    /// OP: the switch holds the Move's reflector (see ``SwitchRules/reflector(from:vlan:to:priority:cookie:cut:)``).
    var reflecting = false
    /// The source said the Move is over there (completed, aborted or refused).
    var sourceEnded = false
    /// The source said it gave the Move up: its flows are its own again.
    var sourceAborted = false
    /// How long the source waits for this controller's next step before it ends the Move
    /// itself (movePerFlow's `patience`, seconds; nil: its default).
    var patience: Double?
    /// The token the Move's in-band control packets carry (the source's reply to `movePerFlow`
    /// says it; the VNFs drop an IBC without it).
    var ibcToken: UInt64 = 0
    /// OP: the request the source reflects and the copies the reflector makes of it (once the
    /// source has said the token).
    lazy var orderedCut = InBandControl.orderedCut(
        for: spec.filter, moveID: id, token: ibcToken, workers: [src.workers, dst.workers],
        vlan: src.channelVLAN)
    /// Above the test bed's rules and the channel's (200).
    static let reflectorPriority: UInt16 = 300

    /// How long the source may take to send its state, and to finish after the switch update.
    static let stateTimeout = TimeAmount.seconds(30)
    static let finishTimeout = TimeAmount.seconds(10)
    /// How long the controller waits for the destination to see the switch's copies of the
    /// moved flows (OP) before the IBC goes anyway.
    static let copiesTimeout = TimeAmount.milliseconds(250)
    /// LF and redirect-first: how long after the BARRIER reply the controller waits for the
    /// destination to see the moved traffic before the IBC goes anyway (then ``settle``). The
    /// longest Open vSwitch was seen to go on sending moved packets the old way after the reply,
    /// on the loaded test bed, was 35 ms. (It was 250 ms from the FLOW_MOD, as for OP's copies:
    /// a Move whose flows were quiet, each part of a split Move among them, then waited about
    /// 0.2 s for nothing, and a split of 15 parts took 4.3 s instead of 1.4.)
    static let quietAfterUpdate = TimeAmount.milliseconds(60)
    /// How long after a failed purge the controller looks whether the switch is away.
    static let switchAwayCheck = TimeAmount.milliseconds(50)

    init(
        id: UInt64, spec: MoveSpec, source: any MoveVNF, destination: any MoveVNF, switch sw: any MoveSwitch,
        ingressPort: UInt32, settle: TimeAmount = .milliseconds(10), priority: UInt16 = OpenNFMove.movePriority,
        cookie: UInt64? = nil, progress: @escaping (String) -> Void
    ) throws {
        for v in [source, destination] where v.channelAddress == nil {
            throw ControllerError("\(v.name) has no DiST channel (start it with --channel and --channel-key)")
        }
        if let why = Self.channelMismatch(
            (source.name, source.channelVersion), (destination.name, destination.channelVersion))
        {
            throw ControllerError(why)
        }
        self.id = id
        self.spec = spec
        self.src = source
        self.dst = destination
        self.sw = sw
        self.loop = sw.loop
        self.progress = progress
        self.settle = settle
        self.priority = priority
        self.cookie = cookie ?? id
        matches = try SwitchRules.matches(for: spec.filter, inPort: ingressPort)
        trafficAtStart = source.counters + destination.counters + sw.counters
        report.id = id
        report.move = spec.description
    }

    var now: UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Why two instances cannot Move between them over the channel (nil: they can): they speak
    /// different versions of it, and would reject each other's frames.
    static func channelMismatch(_ a: (name: String, version: Int?), _ b: (name: String, version: Int?)) -> String? {
        let va = a.version ?? 1
        let vb = b.version ?? 1
        guard va != vb else { return nil }
        return
            "\(a.name) speaks DiST channel version \(va) and \(b.name) version \(vb): run the same dist-vnf build at "
            + "both ends"
    }

    /// Notes a step of the Move in the report's phases.
    func phase(_ name: String, at seconds: Double? = nil) {
        report.phases.append(MovePhase(name: name, at: seconds ?? Double(now - started) / 1e9))
        FailureDrill.at(name, moveID: id)
    }

    /// An error as an `abortMove`'s reason (at most what the southbound takes, whole characters).
    static func reason(_ error: Error) -> String {
        var text = "\(error)"
        while text.utf8.count > SouthboundRequest.maxReason { text.removeLast() }
        return text
    }

    func run() -> EventLoopFuture<MoveReport> {
        loop.preconditionInEventLoop()
        src.onNotice = { [weak self] n in self?.notice(n) }
        var order = MoveRequest(
            moveID: id, filter: spec.filter, guarantee: spec.guarantee.rawValue, destination: dst.channelAddress ?? "")
        order.perFlow = spec.scopes.contains(.perFlow)
        order.multiFlow = spec.scopes.contains(.multiFlow)
        order.allFlows = spec.scopes.contains(.allFlows)
        order.lateLocking = spec.optimizations.contains(.ll)
        order.earlyRelease = spec.optimizations.contains(.er)
        order.redirectFirst = spec.plan == .redirectFirst
        order.patience = patience
        // Where the switch's datapath is brought up to date, the moved traffic's arrival at the
        // destination says nothing more.
        order.switchNotice = !sw.syncsDatapath
        if spec.plan == .redirectFirst { return redirectFirst(order) }
        let stateSent = loop.makePromise(of: MoveNoticeMessage.self)
        self.stateSent = stateSent
        progress("\(src.name) sends its state and the moved flows' packets to \(dst.name) over the channel")
        let switched = src.acknowledged(.movePerFlow(order)).flatMap { ack -> EventLoopFuture<MoveNoticeMessage> in
            self.ibcToken = ack.ibcToken ?? 0
            self.phase("source-accepted")
            return self.waiting(
                stateSent.futureResult, Self.stateTimeout, "\(self.src.name) did not say its state was sent within 30 s"
            )
        }.flatMap { counters in
            self.phase("state-sent")
            self.take(counters)
            self.progress(
                "state at \(self.dst.name): \(self.report.perFlowStates) per-flow, \(self.report.multiFlowStates) "
                    + "multi-flow"
            )
            return self.updateSwitch()
        }
        let ended: EventLoopFuture<Void>
        switch spec.guarantee {
        case .op: ended = switched.flatMap { self.orderedEnd() }
        case .lf: ended = switched.flatMap { self.switchTrafficArrives() }.flatMap { self.lossFreeEnd() }
        case .ng: ended = switched.flatMap { self.deleteAtSource() }
        }
        return ended.map { self.finish() }.flatMapError { self.abort($0) }
    }

    /// OP after phase 1: the IBC, at the same place in both copies of the traffic (the source
    /// reflects it and the switch's reflector sends it on to both VNFs; with several workers a
    /// copy for every receiving queue, each cutting its own order); then phase 2.
    func orderedEnd() -> EventLoopFuture<Void> {
        let completed = loop.makePromise(of: MoveNoticeMessage.self)
        self.completed = completed
        let cut = orderedCut
        sw.packetOut(cut.request, port: src.switchPort)
        report.ibcCopies = max(1, cut.copies.count)
        phase("ibc-sent")
        return waiting(
            completed.futureResult, Self.finishTimeout,
            "\(src.name) did not finish within 10 s of the in-band control packet"
        )
        .map {
            self.take($0)
            self.report.moveTime = Double(self.now - self.started) / 1e9
            self.phase("complete", at: self.report.moveTime)
            // Phase 2: the source saw every copy of the IBC come back, so the switch sent each on
            // to the destination too: the destination only, from now (the source drops the
            // copies it still gets meanwhile).
            _ = self.sw.flowMod(SwitchRules.redirect(cookie: self.cookie, to: [self.dst.switchPort]))
            self.switchUpdated = true
            self.progress("switch phase 2: \(self.spec.filter) -> \(self.dst.name)")
        }
    }

    /// LF after the switch update: the IBC is the last packet of the moved traffic at the
    /// source; once it has crossed the channel, so has everything.
    func lossFreeEnd() -> EventLoopFuture<Void> {
        let completed = loop.makePromise(of: MoveNoticeMessage.self)
        self.completed = completed
        sendIBC()
        return waiting(
            completed.futureResult, Self.finishTimeout, "\(src.name) did not finish within 10 s of the switch update",
            switchMayReturn: true
        )
        .map {
            self.phase("complete")
            self.take($0)
        }
    }

    /// NG after the switch update: one request deletes what moved at the source (its counters
    /// it took off itself).
    func deleteAtSource() -> EventLoopFuture<Void> {
        let multi = spec.scopes.contains(.multiFlow)
        guard spec.scopes.contains(.perFlow) || multi else { return loop.makeSucceededVoidFuture() }
        let request: SouthboundRequest =
            spec.scopes.contains(.perFlow)
            ? .delPerFlow(filter: spec.filter, hosts: multi) : .delMultiFlow(filter: spec.filter)
        return src.acknowledged(request).map { _ in }
    }

    /// Redirect-first (beyond the paper, its section 6): the source opens the channel and the
    /// destination holds the filter's packets from the switch; the switch goes to the
    /// destination; the IBC to the source says it has had its last packet, and only then does
    /// the state move (nothing is redirected but packets of flows the source does not know).
    /// The controller: movePerFlow and its ack, moveReady, FLOW_MOD per direction, BARRIER and
    /// its reply, the purge and its reply (or moveSwitched, as in LF), the IBC PACKET_OUT,
    /// moveComplete (11 with two directions). MoveTime ends at
    /// moveComplete, when the destination has every state.
    func redirectFirst(_ order: MoveRequest) -> EventLoopFuture<MoveReport> {
        let ready = loop.makePromise(of: MoveNoticeMessage.self)
        stateSent = ready
        progress("\(dst.name) holds the switch's packets of \(spec.filter); the switch goes first")
        return src.acknowledged(.movePerFlow(order)).flatMap { ack -> EventLoopFuture<MoveNoticeMessage> in
            self.ibcToken = ack.ibcToken ?? 0
            self.phase("source-accepted")
            return self.waiting(
                ready.futureResult, Self.stateTimeout,
                "\(self.src.name) did not open the channel to \(self.dst.name) within 30 s")
        }.flatMap { _ in
            self.phase("destination-holding")
            return self.updateSwitch()
        }.flatMap {
            self.switchTrafficArrives()
        }.flatMap {
            let completed = self.loop.makePromise(of: MoveNoticeMessage.self)
            self.completed = completed
            self.sendIBC()
            return self.waiting(
                completed.futureResult, Self.finishTimeout,
                "\(self.src.name) did not finish within 10 s of the switch update", switchMayReturn: true)
        }.map {
            self.take($0)
            self.report.moveTime = Double(self.now - self.started) / 1e9
            self.progress(
                "state at \(self.dst.name): \(self.report.perFlowStates) per-flow, \(self.report.multiFlowStates) "
                    + "multi-flow"
            )
            return self.finish()
        }.flatMapError { self.abort($0) }
    }

    /// LF and redirect-first after the switch update: the in-band control packet to the
    /// source, through the switch. A switch that goes away may not have sent it on; when the
    /// switch is back with the Move's rules (``SwitchLink``), it goes again (a copy the source
    /// gets after the Move has ended there is dropped).
    func sendIBC() {
        let frame = InBandControl.frame(for: spec.filter, moveID: id, token: ibcToken)
        sw.packetOut(frame, port: src.switchPort)
        phase("ibc-sent")
        sw.onConnect = { [weak self] in
            guard let self, self.completed != nil else { return }
            // (A restarted switch's datapath may keep flows it cached before: purged first.)
            self.sw.datapathCaughtUp { self.report.warnings.append($0) }.whenComplete { _ in
                guard self.completed != nil else { return }
                self.sw.packetOut(frame, port: self.src.switchPort)
                self.phase("ibc-sent-again")
            }
        }
    }

    /// A future that fails with `why` after `timeout`, or when the source or the destination
    /// goes away, or the switch (unless `switchMayReturn`: the Move waits for it then).
    func waiting(
        _ future: EventLoopFuture<MoveNoticeMessage>, _ timeout: TimeAmount, _ why: String,
        switchMayReturn: Bool = false
    ) -> EventLoopFuture<MoveNoticeMessage> {
        let promise = loop.makePromise(of: MoveNoticeMessage.self)
        let timer = loop.scheduleTask(in: timeout) { promise.fail(ControllerError(why)) }
        let previous = src.onDisconnect
        src.onDisconnect = { [weak self] in
            previous?()
            promise.fail(ControllerError("\(self?.src.name ?? "the source") went away during the Move"))
        }
        // (A dead destination's channel would tell the source only after its retransmissions
        // run out, seconds later; its southbound connection tells at once.)
        let previousAtDestination = dst.onDisconnect
        dst.onDisconnect = { [weak self] in
            previousAtDestination?()
            promise.fail(ControllerError("\(self?.dst.name ?? "the destination") went away during the Move"))
        }
        // (A switch that goes away may come back without the Move's rules, or with them: the
        // Move ends as it would on any failure, and the rules it leaves in force reach the
        // switch when it is back, see ``SwitchLink``.)
        let previousAtSwitch = sw.onDisconnect
        sw.onDisconnect = {
            previousAtSwitch?()
            if !switchMayReturn { promise.fail(ControllerError("the switch went away during the Move")) }
        }
        // (Gone before this wait began, between two steps of the Move: as good as now.)
        for party in [src, dst] where !party.connected {
            promise.fail(ControllerError("\(party.name) went away during the Move"))
        }
        if sw.closed && !switchMayReturn { promise.fail(ControllerError("the switch went away during the Move")) }
        future.whenComplete { promise.completeWith($0) }
        return promise.futureResult.always { _ in
            timer.cancel()
            self.src.onDisconnect = previous
            self.dst.onDisconnect = previousAtDestination
            self.sw.onDisconnect = previousAtSwitch
        }
    }

    func notice(_ n: MoveNoticeMessage) {
        guard n.moveID == id else { return }
        let type = n.type
        let outcome = n.outcome
        if type == "moveComplete" || outcome == "refused" { sourceEnded = true }
        if outcome == "aborted" || outcome == "refused" {
            sourceAborted = true
            take(n)
            let why = ControllerError("\(src.name): \(n.reason ?? outcome)")
            stateSent?.fail(why)
            completed?.fail(why)
            return
        }
        if type == "moveStateSent" || type == "moveReady" || (type == "moveComplete" && spec.guarantee == .ng) {
            stateSent?.succeed(n)
        }
        if type == "moveDuplicating" || type == "moveSwitched" {
            // Once, on the Move's loop (the timeout may have completed it already).
            loop.execute {
                self.copiesArrive?.succeed(n)
                self.copiesArrive = nil
            }
        }
        if type == "moveComplete" { completed?.succeed(n) }
    }

    /// The source's counters (and the destination's, from its summary) into the report.
    func take(_ n: MoveNoticeMessage) {
        let c = n.counters
        guard !c.isEmpty else { return }
        report.perFlowStates = c["perFlowStates"] ?? report.perFlowStates
        report.multiFlowStates = c["multiFlowStates"] ?? report.multiFlowStates
        report.allFlowsStates = c["allFlowsStates"] ?? report.allFlowsStates
        report.packetsRedirected = c["packetsRedirected"] ?? report.packetsRedirected
        report.packetsReleased = c["dstPackets"] ?? report.packetsReleased
        report.packetsBuffered = c["dstBuffered"] ?? report.packetsBuffered
        report.serializeSeconds = Double(c["serializeNs"] ?? 0) / 1e9
        report.deserializeSeconds = Double(c["deserializeNs"] ?? 0) / 1e9
        report.retransmissions = c["retransmissions"] ?? report.retransmissions
        report.channelTimeouts = c["timeouts"] ?? report.channelTimeouts
        report.channelBytes =
            (c["stateBytesSent"] ?? c["stateBytes"] ?? 0) + (c["packetBytesSent"] ?? c["redirectedBytes"] ?? 0)
        report.stateBytes = c["stateBytes"] ?? 0
        report.channelFrames = c["framesSent"] ?? report.channelFrames
        if let o = c["dstOverflow"], o > 0 {
            report.warnings.append("\(o) packets found \(dst.name)'s buffer full and were processed before the release")
        }
        if let full = c["ringFull"], full > 0 {
            report.warnings.append(
                "\(full) packets found \(src.name)'s ring to its transfer lcore full and were dropped there")
        }
        if let missing = c["ibcQueuesMissing"], missing > 0 {
            report.warnings.append(
                "\(missing) of \(src.name)'s queues got no copy of the in-band control packet within 1 s")
        }
        if let missing = c["ibcCopiesMissing"], missing > 0 {
            report.warnings.append(
                "\(missing) copies of the in-band control packet did not come back from the switch within 1 s")
        }
        if let late = c["lateRedirects"], late > 0 {
            report.warnings.append("\(late) packets reached \(src.name) after the Move's end and could not follow")
        }
        if let doubt = c["packetsInDoubt"], doubt > 0 {
            report.warnings.append(
                "\(doubt) packets redirected to \(dst.name) were not acknowledged: it processes them if it comes "
                    + "back, they are lost if it died"
            )
        }
        if let back = c["packetsReprocessed"], back > 0 {
            report.warnings.append(
                "\(back) redirected packets \(dst.name) had not processed were processed at \(src.name)")
        }
        if let elapsed = c["elapsedNs"], n.type == "moveStateSent" {
            report.sourcePhases = [
                ("export-began", c["exportBeganNs"]), ("state-queued", c["stateQueuedNs"]), ("state-acked", elapsed),
            ]
            .compactMap { name, ns in ns.map { MovePhase(name: name, at: Double($0) / 1e9) } }
        }
        if c["dstPackets"] != nil, let elapsed = c["elapsedNs"], report.packetsRedirected > 0 {
            report.redirTime = Double(elapsed) / 1e9
        }
    }

    func finish() -> MoveReport {
        src.onNotice = nil
        sw.onConnect = nil
        // A Move that ended before its source said so (refused, aborted) leaves nothing waiting
        // for a notice that will not come (a completed promise ignores this).
        let over = ControllerError("the Move is over")
        stateSent?.fail(over)
        completed?.fail(over)
        stateSent = nil
        completed = nil
        if reflecting {
            _ = sw.flowMod(SwitchRules.delete(cookie: SwitchRules.reflectorCookie(cookie), mask: ~0))
            reflecting = false
        }
        // (An abort before the BARRIER reply leaves the wait for the switch's traffic open.)
        trafficTimer?.cancel()
        copiesArrive?.succeed(nil)
        copiesArrive = nil
        report.count(src.counters + dst.counters + sw.counters - trafficAtStart)
        progress(report.outcome)
        return report
    }
}
