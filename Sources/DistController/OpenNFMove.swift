import DistControl
import DistFlow
import DistMove
import DistOpenFlow
import DistState
import Foundation
import NIOCore

/// A Move in `opennf` mode, as the paper's section 2 describes OpenNF's: state goes from the
/// source to the controller and on to the destination; while it moves, the source raises the
/// moved flows' packets to the controller, which holds them until their state is in and sends
/// them to the destination with PACKET_OUT; then the switch is updated.
///
/// - NG: get, put, switch update, delete at the source; packets meanwhile stay at the source.
/// - LF: events (drop) at the source first; after the switch update an in-band control packet
///   (IBC) sent to the source through the switch comes back as an event, and the source's events
///   stop only once it has raised nothing for a while after it (``sourceQuiet()``), so every
///   packet the source got has reached the controller before its copy of the state is deleted.
/// - OP: LF with a two-phase switch update: first the moved traffic goes to the controller;
///   the IBC drains the source; then the controller sends what the switch gave it, in order,
///   and the rule sends the traffic to the destination. Every packet reaches the destination
///   in the order the switch saw them (packets the switch still hands the controller after the
///   final barrier are counted as late).
/// - PZ: each state message goes on to the destination as it comes, and the three scopes are
///   fetched at once. LL: the source raises a flow's packets only once its state is exported
///   (or when it has none). ER: a flow's packets go on as soon as its state is in.
///
/// Should the controller die mid-Move, nothing the source raised is lost: the source keeps a copy
/// of each packet it raises until the controller has sent it on (``eventsReleased``), and
/// processes those left when the connection closes; the destination lists the Move until
/// `endImport`, and a controller started after finishes or undoes it (``Controller/endLeftBehind(_:)``).
///
/// Everything runs on the controller's event loop.
final class OpenNFMove {
    let id: UInt64
    let spec: MoveSpec
    let src: any MoveVNF
    let dst: any MoveVNF
    let sw: any MoveSwitch
    let ingressPort: UInt32
    let loop: EventLoop
    let progress: (String) -> Void

    var report = MoveReport()
    var buffer: RedirectBuffer<Raised>
    let matches: [OFMatch]
    let started = DispatchTime.now().uptimeNanoseconds
    var stateStarted: UInt64?
    var lastRedirect: UInt64?
    var eventsOn = false
    /// When the source last raised a packet of the Move (not an IBC).
    var lastEventAt: UInt64 = 0
    var ibcWaiters: [UInt32: EventLoopPromise<Void>] = [:]

    enum Route { case source, controller, destination }
    /// Where the switch sends the moved traffic (as far as barriers have confirmed).
    var route = Route.source
    /// OP: packets the switch gave the controller, waiting for the source to drain.
    var fromSwitch: [[UInt8]] = []
    var sourceDrained = false
    var switchUpdated = false
    var serializeNanoseconds: UInt64 = 0
    var deserializeNanoseconds: UInt64 = 0
    var trafficAtStart: TrafficCounters
    let packetOutsDroppedAtStart: Int
    // Early release waits for the hosts' (multi-flow) state as well as the flow's.
    var multiFlowIn: Bool
    var flowsInBeforeHosts: [FlowKey] = []
    var exported: Set<FlowKey>?
    var exportReported = false
    var putAnything = false

    /// A packet the source raised, with the sequence number it was raised with.
    struct Raised: RedirectedPacket {
        var frame: [UInt8]
        var seq: UInt64?
        var frameBytes: Int { frame.count }
    }

    static let movePriority: UInt16 = 100
    static let ibcTimeout = TimeAmount.seconds(3)
    /// LF: after its IBC the source must have raised nothing for this long before its events
    /// stop (at most ``quietLimit``).
    static let quietPeriod: UInt64 = 30_000_000
    static let quietLimit: UInt64 = 1_000_000_000

    /// How long the switch's datapath is given to follow a rule change before an IBC goes.
    let settle: TimeAmount

    init(
        id: UInt64, spec: MoveSpec, source: any MoveVNF, destination: any MoveVNF, switch sw: any MoveSwitch,
        ingressPort: UInt32, settle: TimeAmount = .milliseconds(10), progress: @escaping (String) -> Void
    ) throws {
        self.id = id
        self.settle = settle
        self.spec = spec
        self.src = source
        self.dst = destination
        self.sw = sw
        self.ingressPort = ingressPort
        self.loop = sw.loop
        self.progress = progress
        buffer = RedirectBuffer(earlyRelease: spec.optimizations.contains(.er))
        matches = try SwitchRules.matches(for: spec.filter, inPort: ingressPort)
        multiFlowIn = !spec.scopes.contains(.multiFlow)
        trafficAtStart = source.counters + destination.counters + sw.counters
        packetOutsDroppedAtStart = sw.packetOutsDropped
        report.id = id
        report.move = spec.description
    }

    var guarded: Bool { spec.guarantee != .ng }
    var pz: Bool { spec.optimizations.contains(.pz) }
    var ll: Bool { spec.optimizations.contains(.ll) }
    var er: Bool { spec.optimizations.contains(.er) }

    static func seconds(_ from: UInt64, _ to: UInt64) -> Double { Double(to &- from) / 1e9 }
    var now: UInt64 { DispatchTime.now().uptimeNanoseconds }

    // MARK: - The Move

    func run() -> EventLoopFuture<MoveReport> {
        loop.preconditionInEventLoop()
        src.onEvent = { [weak self] frame, seq in self?.redirected(frame, seq: seq) }
        sw.onPacketIn = { [weak self] p in self?.fromSwitch(p) ?? false }
        sw.onPacketOutsSent = { [weak self] seqs in self?.released(seqs) }
        var steps = loop.makeSucceededVoidFuture()
        if guarded {
            steps = steps.flatMap {
                self.progress("events (drop\(self.ll ? ", late locking" : "")) on at \(self.src.name)")
                return self.src.acknowledged(
                    .enableEvents(filter: self.spec.filter, action: .drop, lateLocking: self.ll, keep: true)
                )
                .map { _ in
                    self.eventsOn = true
                    self.phase("events-on")
                }
            }
        }
        steps = steps.flatMap { self.transferState() }
        steps = steps.flatMap {
            self.phase("state-in")
            self.send(self.buffer.releaseAll())
            self.progress(
                "state in at \(self.dst.name): \(self.report.perFlowStates) per-flow, \(self.report.multiFlowStates) "
                    + "multi-flow, \(self.report.allFlowsStates) all-flows"
            )
            return self.spec.guarantee == .op ? self.twoPhaseUpdate() : self.updateSwitch()
        }
        if spec.guarantee == .lf {
            steps = steps.flatMap { self.drainSource(phase: 2) }.flatMap { self.sourceQuiet() }
        }
        steps = steps.flatMap { self.deleteAtSource() }
        if guarded {
            steps = steps.flatMap {
                self.src.acknowledged(.disableEvents).map { _ in self.eventsOn = false }
            }
        }
        steps = steps.flatMap { self.endImport(keep: true) }
        return steps.flatMap { self.packetsOut() }.map { self.finish() }.flatMapError { self.abort($0) }
    }

    /// Waits until every packet queued for the switch has gone (the last redirected packet
    /// leaves then: RedirTime ends there).
    func packetsOut() -> EventLoopFuture<Void> {
        let queued = sw.queuedPacketOuts > 0
        return sw.packetOutsSent().map {
            if queued && self.report.packetsReleased > 0 { self.lastRedirect = self.now }
        }
    }

    /// Gets state from the source and puts it at the destination, per the scopes and PZ.
    func transferState() -> EventLoopFuture<Void> {
        stateStarted = now
        progress("state transfer from \(src.name) to \(dst.name)\(pz ? " (parallel)" : "")")
        var puts: [EventLoopFuture<Void>] = []
        var held: [(scope: MoveSpec.Scope, chunks: [String], keys: [FlowKey])] = []
        let batch = er ? 64 : 512
        func take(_ scope: MoveSpec.Scope, _ reply: SouthboundReply) throws -> Bool {
            guard case .state(let state) = reply else {
                throw ControllerError("\(src.name) answered a state request with no state")
            }
            let chunks = state.chunks
            serializeNanoseconds += state.serializeNanoseconds
            var keys: [FlowKey] = []
            if scope == .perFlow {
                for text in chunks {
                    guard let data = Data(base64Encoded: text),
                        case .perFlow(let e)? = try? StateCodec.decode([UInt8](data))
                    else {
                        throw ControllerError("\(src.name) sent a per-flow chunk that does not decode")
                    }
                    keys.append(e.key)
                }
                exported = (exported ?? []).union(keys)
            }
            let last = state.last
            progress("\(src.name): \(chunks.count) \(scope.rawValue)-flow states\(last ? " (last)" : "")")
            if pz {
                if !chunks.isEmpty { puts.append(put(scope, chunks, keys)) }
            } else {
                held.append((scope, chunks, keys))
            }
            if scope == .perFlow && last { exportComplete() }
            return last
        }
        func get(_ scope: MoveSpec.Scope) -> EventLoopFuture<Void> {
            switch scope {
            case .perFlow:
                exported = []
                return src.request(.getPerFlow(filter: spec.filter, batch: batch, lock: ll)) { try take(.perFlow, $0) }
            case .multiFlow:
                // The hosts the moved flows talk to go along (copied: other flows may use them).
                return src.request(.getMultiFlow(filter: spec.filter, batch: 512, peers: true)) {
                    try take(.multiFlow, $0)
                }
            case .allFlows:
                return src.request(.getAllFlows) { try take(.allFlows, $0) }
            }
        }
        let scopes = spec.scopes.sorted()
        let gets: EventLoopFuture<Void>
        if pz {
            gets = EventLoopFuture.andAllSucceed(scopes.map { get($0) }, on: loop)
        } else {
            gets = scopes.reduce(loop.makeSucceededVoidFuture()) { chain, scope in chain.flatMap { get(scope) } }
        }
        return gets.flatMap {
            if !self.pz {
                // Hosts first (early release waits for them), then flows, then counters.
                let order: [MoveSpec.Scope] = [.multiFlow, .perFlow, .allFlows]
                let ordered = held.sorted { order.firstIndex(of: $0.scope)! < order.firstIndex(of: $1.scope)! }
                return ordered.reduce(self.loop.makeSucceededVoidFuture()) { chain, part in
                    chain.flatMap {
                        part.chunks.isEmpty
                            ? self.loop.makeSucceededVoidFuture() : self.put(part.scope, part.chunks, part.keys)
                    }
                }
            }
            return EventLoopFuture.andAllSucceed(puts, on: self.loop)
        }.map {
            if !self.multiFlowIn { self.hostsIn() }
        }
    }

    func put(_ scope: MoveSpec.Scope, _ chunks: [String], _ keys: [FlowKey]) -> EventLoopFuture<Void> {
        let request: SouthboundRequest =
            switch scope {
            case .perFlow:
                .putPerFlow(chunks: chunks, move: ImportTag(moveID: id, filter: spec.filter, source: src.name))
            case .multiFlow: .putMultiFlow(chunks: chunks)
            case .allFlows: .putAllFlows(chunks: chunks)
            }
        putAnything = true
        return dst.acknowledged(request).map { ack in
            self.deserializeNanoseconds += ack.deserializeNanoseconds ?? 0
            let n = ack.count
            self.progress("\(self.dst.name): took \(n) \(scope.rawValue)-flow states")
            switch scope {
            case .perFlow:
                self.report.perFlowStates += n
                if self.er {
                    if self.multiFlowIn {
                        self.send(self.buffer.stateIn(keys))
                    } else {
                        self.flowsInBeforeHosts += keys
                    }
                }
            case .multiFlow:
                self.report.multiFlowStates += n
                self.hostsIn()
            case .allFlows:
                self.report.allFlowsStates += n
            }
        }
    }

    /// The hosts' state is in: flows held back only for it may go (early release).
    func hostsIn() {
        guard !multiFlowIn else { return }
        multiFlowIn = true
        if er {
            send(buffer.stateIn(flowsInBeforeHosts))
            flowsInBeforeHosts = []
            exportComplete()
        }
    }

    /// The export is whole: flows outside it began during the Move and wait for nothing.
    func exportComplete() {
        guard er, multiFlowIn, !exportReported, let exported else { return }
        exportReported = true
        send(buffer.exportComplete(exported))
    }

    /// Points the moved traffic at `ports`, once every packet queued for the switch before has
    /// gone (so none is overtaken by the traffic the new rule sends), and waits for the barrier.
    func install(to ports: [UInt32]) -> EventLoopFuture<Void> {
        sw.packetOutsSent().flatMap {
            let xids = self.matches.map {
                self.sw.flowMod(SwitchRules.flowMod($0, to: ports, priority: Self.movePriority, cookie: self.id))
            }
            return self.sw.barrier(covering: xids)
        }
    }

    /// NG and LF: one update, the moved traffic to the destination.
    func updateSwitch() -> EventLoopFuture<Void> {
        install(to: [dst.switchPort]).map {
            self.route = .destination
            self.switchUpdated = true
            self.phase("switch-updated")
            self.report.moveTime = Self.seconds(self.started, self.now)
            self.progress(
                String(
                    format: "switch updated: %@ -> %@ (MoveTime %.4f s)", "\(self.spec.filter)", self.dst.name,
                    self.report.moveTime))
        }
    }

    /// OP: to the controller, drain the source, send what the switch gave, to the destination.
    func twoPhaseUpdate() -> EventLoopFuture<Void> {
        install(to: [OpenFlow.portController]).flatMap {
            self.route = .controller
            self.progress("switch phase 1: \(self.spec.filter) -> controller")
            return self.drainSource(phase: 1)
        }.flatMap {
            self.sourceDrained = true
            let waiting = self.fromSwitch
            self.fromSwitch = []
            for frame in waiting { self.sw.packetOut(frame, port: self.dst.switchPort) }
            return self.install(to: [self.dst.switchPort])
        }.map {
            self.route = .destination
            self.switchUpdated = true
            self.report.moveTime = Self.seconds(self.started, self.now)
            self.progress(
                String(
                    format: "switch phase 2: %@ -> %@ (MoveTime %.4f s)", "\(self.spec.filter)", self.dst.name,
                    self.report.moveTime))
        }
    }

    /// Sends an IBC to the source through the switch and waits for it to come back as an
    /// event: every packet the source received before it has then been raised.
    func drainSource(phase: UInt32) -> EventLoopFuture<Void> {
        let promise = loop.makePromise(of: Void.self)
        ibcWaiters[phase] = promise
        let frame = InBandControl.frame(for: spec.filter, moveID: id, phase: phase)
        caughtUp(phase: phase).whenComplete { _ in
            // (An abort meanwhile failed the waiter: no IBC then.)
            guard self.ibcWaiters[phase] != nil else { return }
            self.sw.packetOut(frame, port: self.src.switchPort)
            let timeout = self.loop.scheduleTask(in: Self.ibcTimeout) {
                if let p = self.ibcWaiters.removeValue(forKey: phase) {
                    self.report.warnings.append(
                        "the in-band control packet (phase \(phase)) did not come back from \(self.src.name) within 3 s"
                    )
                    p.succeed(())
                }
            }
            promise.futureResult.whenComplete { _ in timeout.cancel() }
        }
        return promise.futureResult
    }

    /// Succeeds once the switch's datapath follows the last rule change, so that no packet of
    /// the moved flows reaches the source after the IBC. A BARRIER reply says Open vSwitch's flow
    /// table has the rule, not that its datapath applies it: a flow cached before can go on the
    /// old way for tens of milliseconds on a loaded host (seen: one moved flow's packets reached
    /// the source after an OP Move's phase 2, and one raised after the IBC went to the
    /// destination behind later packets). Where the controller has the switch's control socket
    /// (``DatapathSync``) the cached flows are purged; otherwise, or should the purge fail, time
    /// tells (``settle``).
    func caughtUp(phase: UInt32) -> EventLoopFuture<Void> {
        sw.datapathCaughtUp { self.report.warnings.append($0) }.flatMap { synced in
            guard synced else { return self.sw.settled(self.settle) }
            self.phase("datapath-synced-\(phase)")
            return self.loop.makeSucceededVoidFuture()
        }
    }

    /// LF: waits until the source has raised nothing for ``quietPeriod`` (at most
    /// ``quietLimit``) before its events stop. The IBC overtakes a packet that Open vSwitch's
    /// datapath cache still sends the old way after the BARRIER and the settle (seen: 25 packets
    /// over 25 ms on a loaded host); such a packet, raised, reaches the destination like the
    /// others, where once events are off it would start its flow again at the source.
    func sourceQuiet() -> EventLoopFuture<Void> {
        let promise = loop.makePromise(of: Void.self)
        let since = now
        lastEventAt = max(lastEventAt, since)
        func check() {
            let t = now
            if t &- lastEventAt >= Self.quietPeriod || t &- since >= Self.quietLimit {
                if t &- since >= Self.quietLimit {
                    report.warnings.append(
                        "\(src.name) still raised packets of the Move 1 s after its in-band control packet")
                }
                promise.succeed(())
            } else {
                loop.scheduleTask(in: .milliseconds(5)) { check() }
            }
        }
        loop.scheduleTask(in: .milliseconds(5)) { check() }
        return promise.futureResult
    }

    func deleteAtSource() -> EventLoopFuture<Void> {
        var requests: [SouthboundRequest] = []
        if spec.scopes.contains(.perFlow) { requests.append(.delPerFlow(filter: spec.filter, hosts: false)) }
        if spec.scopes.contains(.multiFlow) { requests.append(.delMultiFlow(filter: spec.filter)) }
        if spec.scopes.contains(.allFlows) { requests.append(.delAllFlows) }
        return requests.reduce(loop.makeSucceededVoidFuture()) { chain, r in
            chain.flatMap { self.src.acknowledged(r).map { _ in } }
        }
    }

    /// The destination's listing of the Move ends (its flows stay, or with `keep` false go).
    func endImport(keep: Bool) -> EventLoopFuture<Void> {
        guard putAnything && spec.scopes.contains(.perFlow) else { return loop.makeSucceededVoidFuture() }
        return dst.acknowledged(.endImport(moveID: id, keep: keep)).map { _ in }
    }

    /// A failure drill's hook (``FailureDrill/dieAt``), at the Move's steps `events-on`,
    /// `state-in` and `switch-updated`.
    func phase(_ name: String) {
        report.phases.append(MovePhase(name: name, at: Self.seconds(started, now)))
        FailureDrill.at(name, moveID: id)
    }
}
