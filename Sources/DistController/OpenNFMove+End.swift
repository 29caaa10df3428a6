import DistMove
import NIOCore

/// The end of an opennf-mode Move: its report, or the abort that puts things back.
extension OpenNFMove {
    func finish() -> MoveReport {
        src.onEvent = nil
        sw.onPacketIn = nil
        sw.onPacketOutsSent = nil
        report.packetsBuffered = buffer.buffered
        if buffer.dropped > 0 {
            report.warnings.append(
                "\(buffer.dropped) redirected packets dropped: the controller's buffer held "
                    + "\(buffer.limitBytes >> 20) MB waiting for their state")
        }
        if sw.packetOutsDropped > packetOutsDroppedAtStart {
            let dropped = sw.packetOutsDropped - packetOutsDroppedAtStart
            report.warnings.append("\(dropped) PACKET_OUTs dropped: the queue to the switch was full")
        }
        if let s = stateStarted, let r = lastRedirect { report.redirTime = Self.seconds(s, r) }
        report.serializeSeconds = Double(serializeNanoseconds) / 1e9
        report.deserializeSeconds = Double(deserializeNanoseconds) / 1e9
        report.count(src.counters + dst.counters + sw.counters - trafficAtStart)
        progress("\(report.outcome)")
        return report
    }

    /// Something failed. Before the switch update: the traffic stays with (or goes back to)
    /// the source, packets the controller holds go back to it, the events go, and what reached
    /// the destination is deleted there. After it: the Move is done; the report says what
    /// was left behind.
    func abort(_ error: Error) -> EventLoopFuture<MoveReport> {
        if switchUpdated {
            // The traffic is at the destination: its flows are its own now.
            report.warnings.append("after the switch update: \(error)")
            if dst.connected { _ = endImport(keep: true) }
            return loop.makeSucceededFuture(finish())
        }
        report.outcome = "aborted"
        report.reason = "\(error)"
        progress("aborting: \(error)")
        for p in ibcWaiters.values { p.fail(ControllerError("Move aborted")) }
        ibcWaiters = [:]
        var steps = loop.makeSucceededVoidFuture()
        if route == .controller {
            steps = steps.flatMap { self.install(to: [self.src.switchPort]).map { self.route = .source } }
                .flatMapErrorThrowing {
                    self.report.warnings.append("could not send the traffic back to \(self.src.name): \($0)")
                }
        }
        steps = steps.flatMap {
            guard self.eventsOn else { return self.loop.makeSucceededVoidFuture() }
            return self.src.acknowledged(.disableEvents).map { _ in self.eventsOn = false }
                .flatMapErrorThrowing {
                    self.report.warnings.append("could not turn events off at \(self.src.name): \($0)")
                }
        }.map {
            // What the source raised and the controller still holds was not processed anywhere.
            let back = self.buffer.releaseAll().map(\.frame) + self.fromSwitch
            self.fromSwitch = []
            if !back.isEmpty {
                if self.src.connected && !self.sw.closed {
                    for frame in back { self.sw.packetOut(frame, port: self.src.switchPort) }
                    self.report.warnings.append("\(back.count) held packets sent back to \(self.src.name)")
                } else {
                    self.report.warnings.append(
                        "\(back.count) held packets could not go back (\(self.src.name) or the switch is gone)")
                }
            }
            if self.report.packetsReleased > 0 {
                self.report.warnings.append(
                    "\(self.report.packetsReleased) packets were processed at \(self.dst.name) before the abort")
            }
        }.flatMap {
            self.sw.packetOutsSent().flatMapErrorThrowing { self.report.warnings.append("\($0)") }
        }
        if putAnything && spec.scopes.contains(.perFlow) {
            steps = steps.flatMap {
                guard self.dst.connected else { return self.loop.makeSucceededVoidFuture() }
                return self.endImport(keep: false)
                    .flatMapErrorThrowing {
                        self.report.warnings.append("could not delete the partial copy at \(self.dst.name): \($0)")
                    }
            }
        }
        return steps.map { self.finish() }
    }
}
