import DistMove
import DistOpenFlow
import NIOCore

/// The switch as the controller's Moves use it, whichever connection it is on now. A switch
/// that restarts (or whose connection breaks) comes back on a new connection, and one that
/// restarted has lost its flow table: every rule a Move puts in force is kept here
/// (``SwitchTable``) and installed again when the switch connects, so the moved flows' traffic
/// goes on reaching the VNF that has their state. A Move under way learns that the switch went
/// away (``onDisconnect``) and ends; what it changes meanwhile is kept and goes to the switch
/// once it is back.
final class SwitchLink: MoveSwitch {
    let loop: EventLoop
    let log: (String) -> Void
    private(set) var connection: SwitchConnection?
    private(set) var table = SwitchTable()
    /// What connections before this one carried (a Move's report takes the difference).
    private var earlier = TrafficCounters()
    private var droppedWhileAway = 0
    private var earlierDropped = 0
    /// `--switch-unixctl`: the switch's control socket, to bring its datapath up to date.
    var datapathSync: DatapathSync?
    /// Its requests and replies, counted with the OpenFlow messages.
    private var syncs = TrafficCounters()
    /// Whether the switch's own table was read (once, at the first connection).
    private var tableRead = false
    /// The cookie of the channel rules the controller installs at every connection.
    static let channelCookie: UInt64 = 0xD157
    /// Called when the connection in use closes, and once a new one has the rules kept.
    var onDisconnect: (() -> Void)?
    var onConnect: (() -> Void)?

    init(loop: EventLoop, log: @escaping (String) -> Void) {
        self.loop = loop
        self.log = log
    }

    /// The switch connected and said who it is: `connection` is used from now, and gets the
    /// rules kept (before the caller's base rules, so that no moved flow's packet takes a base
    /// rule to the VNF it left; ADD replaces a rule of the same match and priority, so a
    /// switch that kept its table is not changed).
    func use(_ connection: SwitchConnection) {
        loop.preconditionInEventLoop()
        if let old = self.connection {
            earlier = earlier + old.counters
            earlierDropped += old.packetOutsDropped
        }
        connection.onPacketIn = self.connection?.onPacketIn
        connection.onPacketOutsSent = self.connection?.onPacketOutsSent
        self.connection = connection
        if !tableRead { takeOver(connection) }
        guard !table.rules.isEmpty else {
            onConnect?()
            return
        }
        let xids = table.rules.map { connection.flowMod($0) }
        connection.barrier(covering: xids).whenComplete { result in
            switch result {
            case .success:
                self.log("switch: the Moves' rules installed again (\(xids.count))")
                self.onConnect?()
            case .failure(let e): self.log("switch: installing the Moves' rules again failed: \(e)")
            }
        }
    }

    /// A controller that starts again takes over the Moves' rules its predecessor left at the
    /// switch (read from its table: rules with a cookie, which the base rules lack, other than
    /// the channel's), so that they too reach the switch again after it restarts.
    func takeOver(_ connection: SwitchConnection) {
        connection.flowStats().whenComplete { result in
            switch result {
            case .success(let rules):
                self.tableRead = true
                let taken = self.table.adopt(rules.filter { $0.cookie != 0 && $0.cookie != Self.channelCookie })
                if taken > 0 { self.log("switch: took over \(taken) rules of earlier Moves from its table") }
            case .failure(let e): self.log("switch: reading its flow table failed: \(e)")
            }
        }
    }

    /// `connection` closed: if it was the one in use, the switch is away until the next.
    func gone(_ connection: SwitchConnection) {
        guard self.connection === connection else { return }
        onDisconnect?()
    }

    var counters: TrafficCounters { (connection.map { earlier + $0.counters } ?? earlier) + syncs }
    var closed: Bool { connection?.closed ?? true }
    var queuedPacketOuts: Int { connection?.queuedPacketOuts ?? 0 }
    var packetOutsDropped: Int { earlierDropped + droppedWhileAway + (connection?.packetOutsDropped ?? 0) }

    var onPacketIn: ((OFPacketIn) -> Bool)? {
        get { connection?.onPacketIn }
        set { connection?.onPacketIn = newValue }
    }

    var onPacketOutsSent: (([UInt64]) -> Void)? {
        get { connection?.onPacketOutsSent }
        set { connection?.onPacketOutsSent = newValue }
    }

    /// Kept, and sent if the switch is there (else it gets the rule when it connects).
    /// Returns the FLOW_MOD's xid (0: not sent; a barrier fails then anyway).
    @discardableResult
    func flowMod(_ mod: OFFlowMod) -> UInt32 {
        table.apply(mod)
        guard let connection, !connection.closed else { return 0 }
        return connection.flowMod(mod)
    }

    func packetOut(_ frame: [UInt8], port: UInt32, inPort: UInt32) {
        guard let connection, !connection.closed else {
            droppedWhileAway += 1
            return
        }
        connection.packetOut(frame, port: port, inPort: inPort)
    }

    func packetOuts(_ batch: [(frame: [UInt8], tag: UInt64?)], port: UInt32) {
        guard let connection, !connection.closed else {
            droppedWhileAway += batch.count
            return
        }
        connection.packetOuts(batch, port: port)
    }

    func packetOutsSent() -> EventLoopFuture<Void> {
        guard let connection, !connection.closed else {
            return loop.makeFailedFuture(ControllerError("the switch is not connected"))
        }
        return connection.packetOutsSent()
    }

    func barrier(covering covers: [UInt32], timeout: TimeAmount) -> EventLoopFuture<Void> {
        guard let connection else { return loop.makeFailedFuture(ControllerError("the switch is not connected")) }
        return connection.barrier(covering: covers, timeout: timeout)
    }

    var syncsDatapath: Bool { datapathSync != nil }

    func syncDatapath() -> EventLoopFuture<Void> {
        guard let datapathSync else {
            return loop.makeFailedFuture(ControllerError("no control socket of the switch (--switch-unixctl)"))
        }
        syncs.sent(to: "switch", "revalidator/purge", bytes: 0)
        return datapathSync.purge().map { self.syncs.received(from: "switch", "revalidator/purge reply", bytes: 0) }
    }
}
