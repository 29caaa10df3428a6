import DistControl
import DistMove
import NIOCore

/// How a DiST Move ends when something fails: what the controller undoes at the switch and
/// asks of each VNF, by how far the Move had come and which VNF is still there.
extension DistModeMove {
    /// Before the switch update the traffic never left the source, and the source has taken
    /// its flows back (it does so itself when the channel fails): the report says why.
    func abort(_ error: Error) -> EventLoopFuture<MoveReport> {
        if switchUpdated && spec.plan == .redirectFirst {
            // The traffic is at the destination already; the state may not be.
            report.outcome = "aborted"
            report.reason =
                "after the switch update: \(error) (the traffic goes to \(dst.name); flows whose state did not reach "
                + "it start afresh there)"
            progress("aborting: \(error)")
            return loop.makeSucceededFuture(finish())
        }
        if switchUpdated && (sourceAborted || !dst.connected) {
            // The source took its flows back (its channel to the destination broke) or the
            // destination died: the source takes them back (it still has them) and the moved
            // traffic goes back to it, or it would start afresh at the destination, or be lost.
            if !sourceEnded {
                _ = src.request(.abortMove(moveID: id, reason: Self.reason(error), peerGone: !dst.connected))
            }
            _ = sw.flowMod(SwitchRules.redirect(cookie: cookie, to: [src.switchPort]))
            report.outcome = "aborted"
            report.reason = "after the switch update: \(error) (the moved traffic goes back to \(src.name))"
            progress("aborting: \(error); the moved traffic goes back to \(src.name)")
            return loop.makeSucceededFuture(finish())
        }
        if switchUpdated {
            report.warnings.append("after the switch update: \(error)")
            return loop.makeSucceededFuture(finish())
        }
        if updateSent {
            // The rules went out, and the switch may have applied them though no BARRIER reply
            // said so (it went away, or was slow): the traffic goes back to the source alone.
            // OP between its phases: the source has taken its flows back; the destination drops
            // its gate and processes what it gets.
            _ = sw.flowMod(SwitchRules.redirect(cookie: cookie, to: [src.switchPort]))
        }
        if duplicating {
            report.warnings.append(
                "the switch copied the moved traffic to both VNFs until the abort: packets of that time may have been "
                    + "processed by both"
            )
        }
        if !sourceEnded {
            // The controller gives up (the source did not): the source takes its flows back now
            // rather than when its patience runs out.
            _ = src.request(.abortMove(moveID: id, reason: Self.reason(error), peerGone: !dst.connected))
        }
        if !src.connected {
            // The source is gone and cannot tell the destination, which would wait for the
            // channel's silence (5 s) to give up: what it imported goes now.
            _ = dst.request(.abortMove(moveID: id, reason: Self.reason(error), peerGone: true))
        }
        report.outcome = "aborted"
        report.reason = "\(error)"
        progress("aborting: \(error)")
        return loop.makeSucceededFuture(finish())
    }
}
