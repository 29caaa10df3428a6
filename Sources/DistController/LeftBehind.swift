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
/// - A Move in is its source's to end (a source that is gone falls silent, and the destination
///   gives the Move up then).
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
        // (The rules first: the source processes the flows' packets again once it has them back.)
        sw.barrier(covering: [back]).whenComplete { _ in
            _ = source.request(.abortMove(moveID: id, reason: Self.leftBehind))
        }
    }

    static let leftBehind = "left behind by a controller that stopped"
}
