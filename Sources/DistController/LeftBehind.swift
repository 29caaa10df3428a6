import DistControl
import DistFlow
import DistMove
import DistOpenFlow
import NIOCore

/// Moves a controller that stopped left behind, ended by the one that starts next: each VNF
/// says what it has under way (`moves`), once both it and the switch are back.
/// - A source whose LF Move has the switch's traffic at its destination (`switched`) gets the
///   in-band control packet it waited for: the Move completes where it was going.
/// - Any other source Move is undone: the switch's rules of it (cookie = Move id, or a split
///   Move's tag and part id) send the flows back to the source, its reflector goes, and the
///   source gives the Move up
///   (`abortMove`), asking its destination first (see `MoveEngine.giveUp`).
/// - A DiST Move in is its source's to end (a source that is gone falls silent, and the
///   destination gives the Move up then).
/// - An opennf-mode Move in (its source has processed what it raised and the controller had not
///   sent on, and kept its flows) is finished if the switch's rule of it (cookie = Move id) sends
///   the traffic to the destination: the source's copy of the flows goes; else it is undone: a
///   rule of it sends the traffic back to the source, and the destination's copy goes.
/// The controller's own Move ids go on above every id it finds, so that no new Move shares an
/// id or a rule cookie with an old one.
extension Controller {
    func endLeftBehind(_ client: VNFClient) {
        guard client.connected, !leftBehindChecked.contains(client.name) else { return }
        leftBehindChecked.insert(client.name)
        client.request(.moves).whenSuccess { reply in
            guard case .moves(let moves) = reply else { return }
            for move in moves where move.moveID > 0 {
                self.moves = max(self.moves, move.moveID)
                if move.role == "source" {
                    self.endLeftBehind(source: client, move, self.link)
                } else if move.guarantee == "opennf" {
                    self.endLeftBehind(openNFDestination: client, move)
                } else {
                    // Its source ends it (asking it first), or, gone, falls silent: it gives up then.
                    self.log("\(client.name): move \(move.moveID) in, left behind: its source ends it")
                }
            }
        }
    }

    func endLeftBehind(source: VNFClient, _ move: SouthboundReply.MoveListing, _ sw: any MoveSwitch) {
        let id = move.moveID
        if move.phase == "switched", move.guarantee == "lf", let text = move.filter,
            let filter = try? FlowFilter(parsing: text)
        {
            log(
                "\(source.name): move \(id) out, left behind after the switch update: sending its in-band control "
                    + "packet"
            )
            sw.packetOut(
                InBandControl.frame(for: filter, moveID: id, token: move.ibcToken ?? 0), port: source.switchPort)
            return
        }
        log(
            "\(source.name): move \(id) out, left behind (\(move.phase)): its traffic back to \(source.name), the "
                + "Move given up"
        )
        let rules = SwitchRules.backToSource(moveID: id, port: source.switchPort)
        let back = sw.flowMod(rules.redirect)
        _ = sw.flowMod(rules.reflector)
        // The rules first (the source processes the flows' packets again once it has them back),
        // then the datapath: a flow it cached before them goes on sending the traffic (OP: a
        // copy of it) to the destination, where, once the Move is given up, a packet would
        // start its flow again.
        sw.barrier(covering: [back]).recover { _ in }.flatMap {
            sw.datapathCaughtUp { self.log("\(source.name): move \(id) out: \($0)") }
        }.flatMap { synced -> EventLoopFuture<Void> in
            guard synced else { return sw.settled(.milliseconds(Int64(self.config.settleMilliseconds))) }
            self.log("\(source.name): move \(id) out, left behind: the switch's datapath purged")
            return sw.loop.makeSucceededVoidFuture()
        }.whenComplete { _ in
            _ = source.request(.abortMove(moveID: id, reason: Self.leftBehind))
        }
    }

    func endLeftBehind(openNFDestination dst: VNFClient, _ move: SouthboundReply.MoveListing) {
        let id = move.moveID
        guard let sw else {
            log("\(dst.name): opennf move \(id) in, left behind: no switch to read its rules from yet")
            leftBehindChecked.remove(dst.name)
            return
        }
        let source = vnfs.first { $0.name == move.source }
        if let source, !source.connected {
            // (Asked again once the source is back: finishing it deletes the source's copy.)
            log("\(dst.name): opennf move \(id) in, left behind: waiting for \(source.name)")
            leftBehindChecked.remove(dst.name)
            return
        }
        sw.flowStats().whenComplete { result in
            guard case .success(let rules) = result else {
                self.log("\(dst.name): opennf move \(id) in, left behind: reading the switch's rules failed")
                return
            }
            let ours = rules.filter { $0.cookie & 0xFFFF_FFFF == id & 0xFFFF_FFFF }
            let switched = ours.contains { rule in
                rule.instructions.contains { instruction in
                    guard case .applyActions(let actions) = instruction else { return false }
                    return actions.contains {
                        if case .output(let port, _) = $0 { port == dst.switchPort } else { false }
                    }
                }
            }
            if switched {
                self.log(
                    "\(dst.name): opennf move \(id) in, left behind after the switch update: finished (the flows "
                        + "leave \(move.source ?? "its source"))")
                let deleted: EventLoopFuture<Void> =
                    if let source, source.connected, let text = move.filter, let filter = try? FlowFilter(parsing: text)
                    {
                        source.acknowledged(.delPerFlow(filter: filter, hosts: false)).map { _ in }
                    } else {
                        self.loop.makeSucceededVoidFuture()
                    }
                deleted.whenComplete { _ in _ = dst.request(.endImport(moveID: id, keep: true)) }
                return
            }
            self.log("\(dst.name): opennf move \(id) in, left behind before the switch update: undone")
            var back: [UInt32] = []
            if !ours.isEmpty, let source {
                back.append(self.link.flowMod(SwitchRules.backToSource(moveID: id, port: source.switchPort).redirect))
            }
            self.link.barrier(covering: back).whenComplete { _ in _ = dst.request(.endImport(moveID: id, keep: false)) }
        }
    }

    static let leftBehind = "left behind by a controller that stopped"
}
