import Foundation

/// What a Move did, measured at the controller (the paper's Table 1 columns and more).
public struct MoveReport: Codable, Sendable, Equatable {
    public var id: UInt64 = 0
    public var move = ""
    /// `completed` or `aborted`.
    public var outcome = "completed"
    /// Why it aborted, or nil.
    public var reason: String?
    /// Start to the barrier reply of the final switch update.
    public var moveTime = 0.0
    /// Start of the state transfer to the last redirected packet sent on (0: none).
    public var redirTime = 0.0
    public var perFlowStates = 0
    public var multiFlowStates = 0
    public var allFlowsStates = 0
    /// Packets the source raised to the controller (OpenNF) or sent to the peer (DiST).
    public var packetsRedirected = 0
    /// Of those, how many had to wait for their state before going on.
    public var packetsBuffered = 0
    /// Packets the switch sent to the controller during OP's two-phase update.
    public var packetsFromSwitch = 0
    /// Of those, how many arrived after the final update's barrier reply.
    public var latePacketsFromSwitch = 0
    /// Redirected packets sent on to the destination.
    public var packetsReleased = 0
    /// Bytes the controller sent and received during the Move (southbound and OpenFlow).
    public var bytesSent = 0
    public var bytesReceived = 0
    /// Time the VNFs spent serializing (export) and deserializing (import) state.
    public var serializeSeconds = 0.0
    public var deserializeSeconds = 0.0
    /// Messages the controller sent and received during the Move.
    public var messagesSent = 0
    public var messagesReceived = 0
    /// Those messages by kind and peer ("to vnf1 movePerFlow": 1, "from switch BARRIER_REPLY": 1).
    public var messageKinds: [String: Int] = [:]
    /// In-band control packets the controller sent (PACKET_OUTs, among the messages): copies,
    /// one per receiving queue and more, when a VNF has several workers.
    public var ibcCopies = 0
    /// Retransmitted data-plane frames (DiST's channel; 0 in opennf mode).
    public var retransmissions = 0
    /// DiST's channel: retransmission timeouts (the congestion window back to one frame).
    public var channelTimeouts = 0
    /// DiST's channel: frames the source sent, and bytes of state and redirected packets.
    public var channelFrames = 0
    public var channelBytes = 0
    /// DiST's channel: the states' bytes as encoded, before the channel compressed them.
    public var stateBytes = 0
    public var warnings: [String] = []
    /// A split Move's parts, in the order they moved (empty otherwise).
    public var parts: [MovePart] = []
    /// Where the time went (dist mode): the Move's steps as the controller saw them, in order,
    /// in seconds from its start.
    public var phases: [MovePhase] = []
    /// dist mode: the source's steps, on its own clock, from when its order came (the export
    /// began, the last state was queued on the channel, the destination acknowledged it all).
    public var sourcePhases: [MovePhase] = []

    public init() {}

    public var serializePercent: Double { moveTime > 0 ? 100 * serializeSeconds / moveTime : 0 }
    public var deserializePercent: Double { moveTime > 0 ? 100 * deserializeSeconds / moveTime : 0 }

    /// The report as a two-column table.
    public var table: String {
        let rows: [(String, String)] =
            [
                ("Move", move),
                ("Outcome", outcome + (reason.map { ": \($0)" } ?? "")),
                ("MoveTime", String(format: "%.4f s", moveTime)),
                ("RedirTime", String(format: "%.4f s", redirTime)),
                (
                    "States per-flow / multi-flow / all-flows",
                    "\(perFlowStates) / \(multiFlowStates) / \(allFlowsStates)"
                ),
                ("Packets redirected", "\(packetsRedirected)"),
                ("Packets buffered", "\(packetsBuffered)"),
                ("Packets released to destination", "\(packetsReleased)"),
                ("Packets from switch (OP) / late", "\(packetsFromSwitch) / \(latePacketsFromSwitch)"),
                ("Bytes sent / received", "\(bytesSent) / \(bytesReceived)"),
                ("Serialize", String(format: "%.4f s (%.2f%% of MoveTime)", serializeSeconds, serializePercent)),
                ("Deserialize", String(format: "%.4f s (%.2f%% of MoveTime)", deserializeSeconds, deserializePercent)),
                ("Controller messages sent / received", "\(messagesSent) / \(messagesReceived)"),
                (
                    "Controller messages by kind",
                    messageKinds.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                ),
                ("Channel frames / bytes (dist)", "\(channelFrames) / \(channelBytes)"),
                ("State bytes encoded (dist, before compression)", "\(stateBytes)"),
                ("Retransmissions / timeouts", "\(retransmissions) / \(channelTimeouts)"),
            ]
            + (phases.isEmpty
                ? []
                : [
                    (
                        "Phases (s from start)",
                        phases.map { String(format: "%@ %.4f", $0.name, $0.at) }.joined(separator: ", ")
                    )
                ])
            + (sourcePhases.isEmpty
                ? []
                : [
                    (
                        "Source (s from its order)",
                        sourcePhases.map { String(format: "%@ %.4f", $0.name, $0.at) }.joined(separator: ", ")
                    )
                ])
            + parts.map { p in
                (
                    "Part \(p.filter)",
                    String(
                        format: "%@, %d states, %d packets seen, MoveTime %.4f s, %d messages", p.outcome, p.states,
                        p.packets, p.moveTime, p.messages)
                )
            } + warnings.map { ("Warning", $0) }
        let width = rows.map { $0.0.count }.max() ?? 0
        let line = String(repeating: "-", count: width + 2) + "+" + String(repeating: "-", count: 44)
        return
            ([line] + rows.map { " " + $0.0.padding(toLength: width, withPad: " ", startingAt: 0) + " | " + $0.1 } + [
                line
            ])
            .joined(separator: "\n")
    }
}

/// One part of a split Move.
public struct MovePart: Codable, Sendable, Equatable {
    public var filter: String
    public var outcome: String
    public var states: Int
    /// Packets the part's flows had seen at the source when the parts were ordered.
    public var packets: Int
    public var moveTime: Double
    public var messages: Int
    public init(filter: String, outcome: String, states: Int, packets: Int, moveTime: Double, messages: Int) {
        self.filter = filter
        self.outcome = outcome
        self.states = states
        self.packets = packets
        self.moveTime = moveTime
        self.messages = messages
    }
}

/// One step of a Move and when it happened, in seconds from the Move's start.
public struct MovePhase: Codable, Sendable, Equatable {
    public var name: String
    public var at: Double
    public init(name: String, at: Double) {
        self.name = name
        self.at = at
    }
}
