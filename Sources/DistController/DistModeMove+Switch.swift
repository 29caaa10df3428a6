import DistControl
import DistFlow
import DistMove
import DistOpenFlow
import Foundation
import NIOCore

/// A dist Move's switch update: LF and NG in one step, OP in two (copies to both, then the
/// destination alone), and the wait for the moved traffic to reach the destination.
extension DistModeMove {
    func updateSwitch() -> EventLoopFuture<Void> {
        // Heard before or after a BARRIER reply (the datapath may be quicker than the reply).
        if spec.guarantee != .ng { expectSwitchTraffic() }
        if spec.guarantee == .op {
            // Phase 1: to both; in force once the destination sees the copies (see above).
            var xids = matches.map {
                sw.flowMod(
                    SwitchRules.flowMod($0, to: [src.switchPort, dst.switchPort], priority: priority, cookie: cookie))
            }
            // Installed with phase 1, so that the switch's datapath applies it, like phase 1,
            // before the IBC goes (above the channel's rules: it matches the source's VLAN).
            xids.append(
                sw.flowMod(
                    SwitchRules.reflector(
                        from: src.switchPort, vlan: src.channelVLAN, to: dst.switchPort,
                        priority: Self.reflectorPriority, cookie: cookie, cut: orderedCut)))
            reflecting = true
            duplicating = true
            updateSent = true
            return sw.syncsDatapath ? phaseOneSynced(xids) : phaseOneSeen()
        }
        updateSent = true
        let xids = matches.map {
            sw.flowMod(SwitchRules.flowMod($0, to: [dst.switchPort], priority: priority, cookie: cookie))
        }
        return sw.barrier(covering: xids).map {
            self.switchUpdated = true
            self.quietFromNow()
            self.report.moveTime = Double(self.now - self.started) / 1e9
            self.phase("switch-updated", at: self.report.moveTime)
            self.progress(
                String(
                    format: "switch updated: %@ -> %@ (MoveTime %.4f s)", "\(self.spec.filter)", self.dst.name,
                    self.report.moveTime))
        }
    }

    /// OP phase 1 where the switch's datapath can be brought up to date (``DatapathSync``): the
    /// IBC goes once every cached flow is gone, so that no packet of a moved flow still goes to
    /// the source alone after it (the destination seeing copies says only that some flows'
    /// cached entries copy: once, one flow's went on sending to the source alone 11 ms later,
    /// and the source dropped its next 37 packets as copies). A rule the switch refused ends the
    /// Move, as in LF; a purge without a reply falls back on the copies and ``settle``.
    func phaseOneSynced(_ xids: [UInt32]) -> EventLoopFuture<Void> {
        sw.barrier(covering: xids).flatMap {
            self.sw.datapathCaughtUp { self.report.warnings.append($0) }
        }.flatMap { synced in
            guard synced else { return self.phaseOneSeen() }
            self.phase("datapath-synced")
            self.progress(
                "switch phase 1: \(self.spec.filter) -> \(self.src.name) and \(self.dst.name) (datapath up to date)")
            return self.loop.makeSucceededVoidFuture()
        }
    }

    /// OP phase 1 otherwise: the IBC goes ``settle`` after the destination sees the copies.
    func phaseOneSeen() -> EventLoopFuture<Void> {
        switchTraffic(seen: "copies-at-destination", unseen: "no-copies-within-timeout").flatMap { seen in
            self.progress(
                "switch phase 1: \(self.spec.filter) -> \(self.src.name) and \(self.dst.name)"
                    + (seen
                        ? " (copies reach \(self.dst.name))"
                        : " (no copies seen at \(self.dst.name) within 250 ms)"))
            return self.settled()
        }
    }

    /// Starts waiting for the destination to say the switch's packets of the moved flows reach
    /// it (OP: `moveDuplicating`, the copies, for ``copiesTimeout`` at most; else
    /// `moveSwitched`, until ``quietAfterUpdate`` after the BARRIER reply).
    func expectSwitchTraffic() {
        let arrives = loop.makePromise(of: MoveNoticeMessage?.self)
        copiesArrive = arrives
        trafficArrives = arrives.futureResult
        if spec.guarantee == .op { giveUp(after: Self.copiesTimeout) }
    }

    /// LF and redirect-first: the switch's flow table has the new rule; its datapath gets
    /// ``quietAfterUpdate`` to show the moved traffic at the destination.
    func quietFromNow() {
        if spec.guarantee != .op { giveUp(after: Self.quietAfterUpdate) }
    }

    /// Stops waiting for the switch's traffic at the destination after `delay` (none came).
    func giveUp(after delay: TimeAmount) {
        guard copiesArrive != nil else { return }
        trafficTimer?.cancel()
        trafficTimer = loop.scheduleTask(in: delay) {
            self.copiesArrive?.succeed(nil)
            self.copiesArrive = nil
        }
    }

    /// Succeeds when the destination said so (true) or the timeout passed (false: no such
    /// traffic), noting which in the phases.
    func switchTraffic(seen: String, unseen: String) -> EventLoopFuture<Bool> {
        guard let arrives = trafficArrives else { return loop.makeSucceededFuture(false) }
        return arrives.map { n in
            self.trafficTimer?.cancel()
            let heard = n != nil
            self.phase(heard ? seen : unseen)
            return heard
        }
    }

    /// LF and redirect-first, after the BARRIER reply: succeeds when the IBC may go, as the last
    /// packet of the moved traffic the source gets. A BARRIER reply says Open vSwitch's flow
    /// table has the new rule, not that its datapath applies it: a flow it cached before goes
    /// on the old way until a revalidator gets to it (once, packets still went to the source
    /// 25 ms after an IBC sent 10 ms after the reply, and 6 were lost; a packet that reaches
    /// the source after the Move ended there starts its flow again there). Where the controller
    /// has the switch's control socket the cached flows are purged; otherwise, or should the
    /// purge fail, ``settle`` after the moved traffic reaches the destination, or after
    /// ``quietAfterUpdate`` without (no such traffic: no packet can pass the IBC either).
    func switchTrafficArrives() -> EventLoopFuture<Void> {
        datapathSynced().flatMap { synced in
            switch synced {
            case .synced:
                self.phase("datapath-synced")
                return self.loop.makeSucceededVoidFuture()
            case .switchAway:
                // The IBC goes to a switch that is not there; it goes again, after a purge, once
                // the switch is back with the Move's rules (``sendIBC()``).
                self.phase("switch-away")
                return self.loop.makeSucceededVoidFuture()
            case .notSynced:
                return self.switchTraffic(seen: "traffic-at-destination", unseen: "no-traffic-within-timeout")
                    .flatMap { _ in self.settled() }
            }
        }
    }

    enum PurgeOutcome { case synced, notSynced, switchAway }

    /// The purge before an LF or redirect-first IBC (``MoveSwitch/datapathCaughtUp(warn:)``).
    /// A purge that fails as the switch goes away (being restarted, it refuses its control
    /// socket before the end of its OpenFlow connection is read, hence the short wait) is not
    /// warned of: the switch is purged once it is back (``sendIBC()``).
    func datapathSynced() -> EventLoopFuture<PurgeOutcome> {
        var failure: String?
        return sw.datapathCaughtUp { failure = $0 }.flatMap { synced in
            guard let failure else { return self.loop.makeSucceededFuture(synced ? .synced : .notSynced) }
            return self.loop.scheduleTask(in: Self.switchAwayCheck) {
                if self.sw.closed { return .switchAway }
                self.report.warnings.append(failure)
                return .notSynced
            }.futureResult
        }
    }

    /// Succeeds once the switch's datapath has had ``settle`` to apply the last rule change.
    func settled() -> EventLoopFuture<Void> { sw.settled(settle) }
}
