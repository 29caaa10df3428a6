import DistChannel
import DistControl
import DistDataPlane
import DistServer
import DistState
import DistTransfer
import Logging

/// The southbound API (`--control`): the controller reads and writes state through the
/// workers' mailboxes, orders Moves from the transfer lcore, and hears their notices and the
/// packets the workers raise.
extension VNFApp {
    func openSouthbound() {
        if let agent { offerMoves(agent) }
        guard let endpoint = options.control else { return }
        do {
            let tls = try options.controlTLS.map { try ControlTLS.server($0) }
            if tls == nil {
                emit(
                    "[\(name)] warning: the southbound API on \(endpoint.description) is plaintext "
                        + "(--insecure-control): "
                        + "whoever reaches it can read and write this instance's state", to: 2)
            }
            let server = try SocketServer(
                endpoint, framing: .lengthPrefixed(max: SouthboundFraming.maxFrame),
                tooLarge: SouthboundService.error(nil, "frame over \(SouthboundFraming.maxFrame) bytes"),
                tls: tls
            ) { [unowned self] client, body in
                // Packets raised before a request took effect reach the controller before its
                // reply (a disableEvents' ack says every event is in).
                let owner = service.eventsOwner
                let replies = service.handle(client: client, body)
                // Raised under the rule in force before the request: its owner's; with none
                // before, the rule this request set raised them (enableEvents), so its owner's.
                forwardEvents(to: owner ?? service.eventsOwner)
                return replies
            }
            // A controller that went away: which of the packets it had raised it sent on still
            // counts (see ``controllerLeft(_:)``); nothing else it asked for is started.
            server.salvageable = SouthboundService.stillCounts(afterTheClientLeft:)
            server.onDisconnect = { [unowned self] client in controllerLeft(client) }
            server.isBusy = { [unowned self] in service.hasWorkUnderWay($0) }
            control = server
            emit(
                "[\(name)] southbound API on \(endpoint.description) (port "
                    + "\(server.boundPort)\(tls == nil ? "" : ", mutual TLS"))"
            )
        } catch {
            abandon("--control: \(error)")
        }
    }

    /// A controller connection closed: the events it enabled end; the packets it had the
    /// workers raise and keep, and did not send on, are processed here (see
    /// ``SouthboundService/disconnected(_:drain:)``).
    func controllerLeft(_ client: Int32) {
        do {
            let replayed = try service.disconnected(client) {
                plane.drainEvents { _ = service.raised($0.frame, worker: $0.worker) }
            }
            if let replayed {
                emit(
                    "[\(name)] the controller that enabled events went away: \(replayed) packets it had not sent on "
                        + "processed here", to: 1, ["event": "eventsReplayed", "packets": "\(replayed)"])
            }
        } catch {
            emit("[\(name)] the controller that enabled events went away; ending them: \(error)", to: 2)
        }
    }

    /// `movePerFlow` and `abortMove` go to the transfer lcore as orders.
    func offerMoves(_ agent: TransferAgent) {
        service.channelAddress = agent.local.description
        service.channelVersion = Int(ChannelFrame.version)
        service.startMove = { [unowned self] request in
            guard let dst = ChannelAddress(request.destination) else {
                throw SouthboundError("\"dst\": '\(request.destination)' is not IP:PORT@MAC")
            }
            guard dst.ip != agent.local.ip || dst.port != agent.local.port else {
                throw SouthboundError("\"dst\" is this instance")
            }
            guard options.channelPeers.admit(dst) else {
                throw SouthboundError("\"dst\" \(dst) is not a channel peer of this instance (see --channel-peer)")
            }
            var order = MoveOrder(
                moveID: request.moveID, filter: request.filter, guarantee: request.guarantee, destination: dst)
            order.perFlow = request.perFlow
            order.multiFlow = request.multiFlow
            order.lateLocking = request.lateLocking
            order.earlyRelease = request.earlyRelease
            order.redirectFirst = request.redirectFirst
            if let p = request.patience { order.patience = UInt64(p * 1e9) }
            if request.allFlows { order.counters = stateStore.exportCounters() }
            guard agent.orders.push(.start(order)) else {
                throw SouthboundError("the transfer lcore has too many Moves queued")
            }
            if let c = order.counters { countersMoving[request.moveID] = c }
            return agent.ibcToken(for: order)
        }
        service.abortMove = { id, reason, peerGone in
            guard agent.orders.push(.abort(moveID: id, reason: reason, peerGone: peerGone)) else {
                throw SouthboundError("the transfer lcore has too many Moves queued")
            }
        }
    }

    /// Passes the transfer lcore's notices on to the controller connections that ordered the
    /// Moves, and logs each Move's end.
    /// A Move's end as log metadata: its id, direction, phase and outcome.
    static func metadata(_ n: MoveNotice, direction: String) -> Logger.Metadata {
        ["move": "\(n.moveID)", "direction": "\(direction)", "event": "\(n.type)", "outcome": "\(n.outcome)"]
    }

    func forwardNotices() {
        guard let agent else { return }
        agent.importedCounters.drain { stateStore.importCounters($0) }
        agent.notices.drain { n in
            switch n.type {
            case "incomingStarted":
                service.incomingMove(n.moveID, started: true)
                return
            case "incomingEnded":
                service.incomingMove(n.moveID, started: false)
                countMove(n, out: false)
                emit(
                    "[\(name)] move \(n.moveID) in: \(n.outcome)\(n.reason.map { " (\($0))" } ?? ""); \(Self.counts(n))",
                    to: 1, Self.metadata(n, direction: "in"))
                return
            case "abortUnknown":
                emit("[\(name)] abortMove \(n.moveID): \(n.reason ?? "no such Move")")
                return
            case "moveStateSent", "moveComplete":
                // The source's side of a Move, for the instance's log (the controller gets it too).
                emit(
                    "[\(name)] move \(n.moveID) out: \(n.outcome)\(n.reason.map { " (\($0))" } ?? ""); "
                        + "\(Self.counts(n))", to: 1, Self.metadata(n, direction: "out"))
            default:
                break
            }
            if n.type == "moveComplete" { countMove(n, out: true) }
            if n.type == "moveComplete", let c = countersMoving.removeValue(forKey: n.moveID), n.outcome == "completed"
            {
                stateStore.exportedCounters(c)
            }
            let notice = MoveNoticeMessage(
                type: n.type, moveID: n.moveID, outcome: n.outcome, reason: n.reason, counters: n.counters)
            if let (client, body) = service.moveNotice(
                notice, last: n.type == "moveComplete" || n.outcome == "refused"), let control
            {
                control.push(body, to: client)
            }
        }
    }

    static func counts(_ n: MoveNotice) -> String {
        n.counters.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }

    /// Sends the packets the workers raised to the controller connection that enabled events.
    func forwardEvents(to owner: Int32?) {
        plane.drainEvents { event in
            if let owner, let control {
                control.push(service.raised(event.frame, worker: event.worker), to: owner)
            } else {
                unclaimedEvents += 1
                emit("[\(name)] a packet raised with no controller to take it (\(unclaimedEvents) so far)", to: 2)
            }
        }
    }
}
