import DistControl
import DistMove
import DistNorthbound
import DistState
import Foundation
import NIOCore

/// The northbound API (distctl's): one request per line, answered in order on its connection;
/// a Move's progress lines come before its report.
extension Controller {
    func vnf(named name: String) throws -> VNFClient {
        guard let v = vnfs.first(where: { $0.name == name }) else {
            throw ControllerError("no VNF named \(name) (known: \(vnfs.map { $0.name }.joined(separator: ", ")))")
        }
        return v
    }

    static func failure(_ error: Error) -> String { NorthboundReply.failure("\(error)").line }

    /// Answers one northbound request: `write` sends a line (progress lines may precede the
    /// answer), `done` ends the exchange. Runs on the event loop.
    func handle(_ text: String, write: @escaping (String) -> Void, done: @escaping () -> Void) {
        func answer(_ f: EventLoopFuture<NorthboundReply>) {
            f.whenComplete { result in
                switch result {
                case .success(let reply): write(reply.line)
                case .failure(let e): write(Self.failure(e))
                }
                done()
            }
        }
        do {
            switch try NorthboundRequest(line: text) {
            case .vnfs:
                let list = vnfs.map { v in
                    NorthboundReply.VNFStatus(
                        name: v.name, control: v.endpoint, switchPort: v.switchPort, connected: v.connected,
                        lastError: v.lastError)
                }
                var status: NorthboundReply.SwitchStatus?
                if let sw, let dpid = sw.datapathID {
                    status = .init(
                        datapath: String(dpid, radix: 16),
                        ports: sw.ports.map { .init(number: $0.number, name: $0.name) })
                }
                answer(loop.makeSucceededFuture(.vnfs(list, switch: status)))
            case .stats(let name):
                let v = try vnf(named: name)
                var counters: InstanceCounters?
                answer(
                    v.request(.getAllFlows) { reply in
                        let state = try Self.state(reply, from: v)
                        for chunk in try state.decoded() { if case .allFlows(let c) = chunk { counters = c } }
                        return state.last
                    }.flatMapThrowing {
                        guard let c = counters else { throw ControllerError("\(v.name) sent no counters") }
                        return .stats(vnf: v.name, counters: c)
                    })
            case .flows(let name, let filter, let limit):
                let v = try vnf(named: name)
                var flows: [NorthboundReply.FlowSummary] = []
                var total = 0
                answer(
                    v.request(.getPerFlow(filter: filter, batch: nil, lock: false)) { reply in
                        let state = try Self.state(reply, from: v)
                        for chunk in try state.decoded() {
                            guard case .perFlow(let e) = chunk else { continue }
                            total += 1
                            if flows.count < limit { flows.append(.init(e)) }
                        }
                        return state.last
                    }.map { .flows(vnf: v.name, count: total, flows: flows) })
            case .assets(let name, let filter):
                let v = try vnf(named: name)
                var assets: [NorthboundReply.HostAsset] = []
                answer(
                    v.request(.getMultiFlow(filter: filter, batch: nil, peers: false)) { reply in
                        let state = try Self.state(reply, from: v)
                        for chunk in try state.decoded() {
                            if case .multiFlow(let a) = chunk { assets.append(.init(a)) }
                        }
                        return state.last
                    }.map { .assets(vnf: v.name, assets: assets) })
            case .move(let command):
                try move(command, write: write, done: done)
            }
        } catch {
            write(Self.failure(error))
            done()
        }
    }

    func move(_ command: MoveCommand, write: @escaping (String) -> Void, done: @escaping () -> Void) throws {
        let spec = try command.spec()
        let src = try vnf(named: command.from)
        let dst = try vnf(named: command.to)
        guard moving == nil else { throw ControllerError("a Move is already running (\(moving!.spec))") }
        guard let sw, sw.datapathID != nil, !sw.closed else { throw ControllerError("no switch is connected") }
        guard let ingress = config.ingressPort else {
            throw ControllerError("the controller was started without --ingress")
        }
        guard src.connected else {
            throw ControllerError("\(src.name) is not connected (\(src.lastError ?? "connecting"))")
        }
        guard dst.connected else {
            throw ControllerError("\(dst.name) is not connected (\(dst.lastError ?? "connecting"))")
        }
        moves += 1
        let started = Date()
        let progress = { (text: String) in
            write(NorthboundReply.progress(text, seconds: Date().timeIntervalSince(started)).line)
        }
        let run: MoveRun
        if spec.split != nil {
            let split = try SplitMove(
                id: moves, spec: spec, source: src, destination: dst, switch: link, ingressPort: ingress,
                settle: .milliseconds(Int64(config.settleMilliseconds)),
                nextID: { [unowned self] in
                    self.moves += 1
                    return self.moves
                }, progress: progress)
            split.patience = config.movePatience
            run = split
        } else if spec.mode == .dist {
            let dist = try DistModeMove(
                id: moves, spec: spec, source: src, destination: dst, switch: link, ingressPort: ingress,
                settle: .milliseconds(Int64(config.settleMilliseconds)), progress: progress)
            dist.patience = config.movePatience
            run = dist
        } else {
            run = try OpenNFMove(
                id: moves, spec: spec, source: src, destination: dst, switch: link, ingressPort: ingress,
                settle: .milliseconds(Int64(config.settleMilliseconds)), progress: progress)
        }
        moving = run
        log("move \(moves): \(spec)")
        run.run().whenComplete { result in
            self.moving = nil
            switch result {
            case .success(let report):
                self.log(
                    "move \(report.id): \(report.outcome)\(report.reason.map { " (\($0))" } ?? "") MoveTime "
                        + "\(report.moveTime) s"
                )
                self.countMove(report, spec: spec)
                write(NorthboundReply.report(report).line)
            case .failure(let e):
                write(Self.failure(e))
            }
            done()
        }
    }

    /// A reply that must be a state reply.
    static func state(_ reply: SouthboundReply, from v: VNFClient) throws -> SouthboundReply.StateReply {
        guard case .state(let state) = reply else {
            throw ControllerError("\(v.name) answered a state request with no state")
        }
        return state
    }
}

final class NorthboundHandler: ChannelInboundHandler {
    typealias InboundIn = String
    typealias OutboundOut = ByteBuffer
    let controller: Controller
    /// Requests on one connection are answered one after another.
    var queue: [String] = []
    var busy = false

    init(controller: Controller) { self.controller = controller }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let line = unwrapInboundIn(data)
        guard !line.trimmingCharacters(in: .whitespaces).isEmpty else { return }
        queue.append(line)
        next(context: context)
    }

    func next(context: ChannelHandlerContext) {
        guard !busy, !queue.isEmpty else { return }
        busy = true
        let line = queue.removeFirst()
        let channel = context.channel
        controller.handle(
            line,
            write: { text in
                var buffer = channel.allocator.buffer(capacity: text.utf8.count + 1)
                buffer.writeString(text + "\n")
                channel.writeAndFlush(buffer, promise: nil)
            },
            done: {
                self.busy = false
                if channel.isActive { self.next(context: context) }
            })
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        var buffer = context.channel.allocator.buffer(capacity: 64)
        buffer.writeString(Controller.failure(error) + "\n")
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in context.close(promise: nil) }
    }
}
