import DistControl
import DistFlow
import DistMove
import DistOpenFlow
import DistPacket
import Foundation
import NIOCore

/// A split Move (beyond the paper, its section 6): one large Move as several smaller ones, one
/// per sub-prefix of the filter's prefix that has flows at the source, in the order asked for
/// (fewest states first, or most packets first), then one of the whole filter for the rest
/// (flows that start meanwhile, and the address space no part covered). Each part is a dist
/// Move of its own, with its own channel session and at most 10 controller messages; the parts'
/// switch rules sit one priority above the whole filter's and share a cookie tag, so one
/// DELETE removes them once the whole filter's rule sends everything to the destination.
final class SplitMove: MoveRun {
    let id: UInt64
    let spec: MoveSpec
    let split: MoveSpec.Split
    let src: any MoveVNF
    let dst: any MoveVNF
    let sw: any MoveSwitch
    let loop: EventLoop
    let ingressPort: UInt32
    let settle: TimeAmount
    /// Each part's source's patience (see `DistModeMove.patience`).
    var patience: Double?
    let progress: (String) -> Void
    /// The controller's next Move id (each part is a Move).
    let nextID: () -> UInt64
    var report = MoveReport()
    let started = DispatchTime.now().uptimeNanoseconds
    let trafficAtStart: TrafficCounters
    /// The parts' cookies: the tag in the top 32 bits, the part's Move id below.
    var tag: UInt64 { 0x5B17_0000_0000_0000 | (id & 0xFFFF) << 32 }
    static let tagMask: UInt64 = 0xFFFF_FFFF_0000_0000

    init(
        id: UInt64, spec: MoveSpec, source: any MoveVNF, destination: any MoveVNF, switch sw: any MoveSwitch,
        ingressPort: UInt32, settle: TimeAmount, nextID: @escaping () -> UInt64, progress: @escaping (String) -> Void
    ) throws {
        guard let split = spec.split else { throw ControllerError("not a split Move") }
        var whole = spec
        whole.split = nil
        // Checks what a part would check (channel, guarantee, scopes) before anything moves.
        _ = try DistModeMove(
            id: id, spec: whole, source: source, destination: destination, switch: sw, ingressPort: ingressPort,
            progress: { _ in })
        self.id = id
        self.spec = spec
        self.split = split
        src = source
        dst = destination
        self.sw = sw
        loop = sw.loop
        self.ingressPort = ingressPort
        self.settle = settle
        self.nextID = nextID
        self.progress = progress
        trafficAtStart = source.counters + destination.counters + sw.counters
        report.id = id
        report.move = spec.description
    }

    /// The parts, in the order they move: (filter, flows, packets).
    static func order(_ groups: [SouthboundReply.FlowGroup], of filter: FlowFilter, by order: MoveSpec.Split.Order)
        throws
        -> [(filter: FlowFilter, flows: Int, packets: Int)]
    {
        var parts: [(filter: FlowFilter, flows: Int, packets: Int)] = []
        for g in groups {
            guard let prefix = IPPrefix(g.prefix), g.flows >= 0, g.packets >= 0 else {
                throw ControllerError("the source's flow groups are malformed")
            }
            let (flows, packets) = (g.flows, g.packets)
            var part = filter
            if part.source != nil { part.source = prefix } else { part.destination = prefix }
            parts.append((part, flows, packets))
        }
        // Ties keep the address order (the source lists groups by address).
        return parts.enumerated().sorted { a, b in
            let (x, y) = (a.element, b.element)
            switch order {
            case .state: return x.flows != y.flows ? x.flows < y.flows : a.offset < b.offset
            case .traffic: return x.packets != y.packets ? x.packets > y.packets : a.offset < b.offset
            }
        }.map { $0.element }
    }

    func run() -> EventLoopFuture<MoveReport> {
        let length = split.prefixLength
        progress("\(src.name): flows of \(spec.filter) by /\(length)")
        return src.request(.flowGroups(filter: spec.filter, length: length)).flatMapThrowing { reply in
            guard case .flowGroups(let groups) = reply else {
                throw ControllerError("\(self.src.name) sent no flow groups")
            }
            return try Self.order(groups, of: self.spec.filter, by: self.split.order)
        }.flatMap { parts in
            self.progress("\(parts.count) parts by \(self.split.order.rawValue), then the rest")
            let steps = parts.reduce(self.loop.makeSucceededFuture(true)) { chain, part in
                chain.flatMap { going in
                    going
                        ? self.move(
                            part.filter, flows: part.flows, packets: part.packets,
                            priority: OpenNFMove.movePriority + 1,
                            cookie: { self.tag | ($0 & 0xFFFF_FFFF) }) : self.loop.makeSucceededFuture(false)
                }
            }
            return steps.flatMap { going in
                guard going else { return self.loop.makeSucceededFuture(false) }
                return self.move(
                    self.spec.filter, flows: 0, packets: 0, priority: OpenNFMove.movePriority, cookie: { $0 })
            }
        }.map { completed in
            if completed {
                // The whole filter's rule sends it all to the destination: the parts' rules go.
                _ = self.sw.flowMod(SwitchRules.delete(cookie: self.tag, mask: Self.tagMask))
            }
            return self.finish()
        }.flatMapError { error in
            self.report.outcome = "aborted"
            self.report.reason = "\(error)"
            return self.loop.makeSucceededFuture(self.finish())
        }
    }

    /// Moves one part; true when it completed.
    func move(_ filter: FlowFilter, flows: Int, packets: Int, priority: UInt16, cookie: (UInt64) -> UInt64)
        -> EventLoopFuture<Bool>
    {
        var part = spec
        part.filter = filter
        part.split = nil
        let partID = nextID()
        let run: DistModeMove
        do {
            run = try DistModeMove(
                id: partID, spec: part, source: src, destination: dst, switch: sw, ingressPort: ingressPort,
                settle: settle, priority: priority, cookie: cookie(partID),
                progress: { self.progress("\(filter): \($0)") })
            run.patience = patience
        } catch {
            return loop.makeFailedFuture(error)
        }
        return run.run().map { r in
            self.add(r, filter: filter, packets: packets)
            if r.outcome != "completed" {
                self.report.outcome = r.outcome
                self.report.reason =
                    "part \(filter): \(r.reason ?? r.outcome) (the parts before it are at \(self.dst.name), the rest "
                    + "at \(self.src.name))"
                return false
            }
            return true
        }
    }

    func add(_ r: MoveReport, filter: FlowFilter, packets: Int) {
        report.parts.append(
            MovePart(
                filter: "\(filter)", outcome: r.outcome, states: r.perFlowStates, packets: packets,
                moveTime: r.moveTime, messages: r.messagesSent + r.messagesReceived))
        report.perFlowStates += r.perFlowStates
        report.multiFlowStates += r.multiFlowStates
        report.packetsRedirected += r.packetsRedirected
        report.packetsBuffered += r.packetsBuffered
        report.packetsReleased += r.packetsReleased
        report.serializeSeconds += r.serializeSeconds
        report.deserializeSeconds += r.deserializeSeconds
        report.retransmissions += r.retransmissions
        report.channelTimeouts += r.channelTimeouts
        report.channelFrames += r.channelFrames
        report.channelBytes += r.channelBytes
        report.stateBytes += r.stateBytes
        report.redirTime = max(report.redirTime, r.redirTime)
        report.warnings += r.warnings.map { "\(filter): \($0)" }
    }

    func finish() -> MoveReport {
        report.moveTime = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        report.count(src.counters + dst.counters + sw.counters - trafficAtStart)
        progress(String(format: "%@: %d parts, MoveTime %.4f s", report.outcome, report.parts.count, report.moveTime))
        return report
    }
}
