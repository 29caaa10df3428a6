import DistMetrics
import DistMove

/// What the controller publishes for Prometheus (`--metrics`): each Move by mode, guarantee and
/// outcome, its MoveTime, the messages and states it took; and what it is connected to. Filled on
/// the controller's event loop, read by the metrics server's thread.
extension Controller {
    func countMove(_ report: MoveReport, spec: MoveSpec) {
        guard let book = metrics else { return }
        let kind = [("mode", spec.mode.rawValue), ("guarantee", spec.guarantee.rawValue)]
        let ended = kind + [("outcome", report.outcome)]
        let key = ended.map { $0.1 }.joined(separator: "/")
        movesEnded[key, default: 0] += 1
        book.total("dist_controller_moves_total", ended, movesEnded[key]!)
        book.duration("dist_controller_move_seconds", kind, seconds: report.moveTime)
        moveSums.messages += UInt64(max(0, report.messagesSent + report.messagesReceived))
        moveSums.perFlow += UInt64(max(0, report.perFlowStates))
        moveSums.multiFlow += UInt64(max(0, report.multiFlowStates))
        moveSums.redirected += UInt64(max(0, report.packetsRedirected))
        book.total("dist_controller_move_messages_total", [], moveSums.messages)
        book.total("dist_controller_moved_states_total", [("scope", "per_flow")], moveSums.perFlow)
        book.total("dist_controller_moved_states_total", [("scope", "multi_flow")], moveSums.multiFlow)
        book.total("dist_controller_redirected_packets_total", [], moveSums.redirected)
    }

    /// Publishes into `book` from now on: each Move as it ends, the connections every half
    /// second. (Before ``start()``.)
    public func publish(into book: MetricsBook) {
        metrics = book
        loop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(500)) { _ in self.publishConnections() }
    }

    /// The connections' state, as of now.
    func publishConnections() {
        guard let book = metrics else { return }
        book.level("dist_controller_switch_connected", [], link.connection == nil ? 0 : 1)
        for v in vnfs { book.level("dist_controller_vnf_connected", [("vnf", v.name)], v.connected ? 1 : 0) }
        book.level("dist_controller_move_running", [], moving == nil ? 0 : 1)
    }
}
