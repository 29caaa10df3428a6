import DistPacket

/// The Move mark of a flow (DESIGN.md, "Fast path and lock-free marks"). Stored in each entry
/// and read by the owning worker with an atomic load on every packet of the flow; written
/// only by the transfer lcore (through ``FlowTable/transitionMark(at:from:to:)``).
public enum FlowMark: UInt8, Sendable, CustomStringConvertible {
    /// Packets update the local state.
    case normal = 0
    /// The state is being exported: packets go to the peer instead of touching local state.
    case moving = 1
    /// The state now lives elsewhere; the entry waits for its owner to reclaim it.
    case gone = 2

    /// Whether a mark may change from `self` to `next`. Normal -> moving starts a Move;
    /// moving -> normal aborts it; moving -> gone completes it. Gone is final.
    @inlinable
    public func canTransition(to next: FlowMark) -> Bool {
        switch (self, next) {
        case (.normal, .moving), (.moving, .normal), (.moving, .gone): true
        default: false
        }
    }

    public var description: String {
        switch self {
        case .normal: "normal"
        case .moving: "moving"
        case .gone: "gone"
        }
    }
}

/// TCP connection state as far as a passive observer can tell.
public enum TCPState: UInt8, Sendable, Codable, CustomStringConvertible {
    case none = 0
    /// A SYN was seen, no SYN-ACK yet.
    case synSent
    /// A SYN-ACK was seen.
    case synReceived
    /// Data or a bare ACK after the handshake (or a connection first seen mid-stream).
    case established
    /// One side sent FIN.
    case closing
    /// Both sides sent FIN.
    case closed
    /// Either side sent RST.
    case reset

    public var description: String {
        switch self {
        case .none: "none"
        case .synSent: "syn_sent"
        case .synReceived: "syn_received"
        case .established: "established"
        case .closing: "closing"
        case .closed: "closed"
        case .reset: "reset"
        }
    }

    /// The state after a segment with `flags` (FIN 0x01, SYN 0x02, RST 0x04, ACK 0x10).
    @inlinable @inline(__always)
    public func next(flags: UInt8) -> TCPState {
        if flags & 0x04 != 0 { return .reset }
        switch self {
        case .reset, .closed:
            return self
        case .closing:
            return flags & 0x01 != 0 ? .closed : .closing
        default:
            break
        }
        if flags & 0x01 != 0 { return .closing }
        if flags & 0x12 == 0x12 { return .synReceived }
        if flags & 0x02 != 0 { return self == .none ? .synSent : self }
        if flags & 0x10 != 0 || self == .none { return .established }
        return self
    }
}

/// Per-flow state (the "per-flow" scope of DESIGN.md). A plain value: Move's codec can copy
/// it without reflection. Direction index 0 is client to server, 1 is server to client; the
/// client is the side that sent the first packet seen (or the SYN's sender).
public struct FlowEntry: Sendable, Codable {
    public var key: FlowKey
    /// Nanoseconds since the Unix epoch.
    public var firstSeen: UInt64
    public var lastSeen: UInt64
    public var packetsToServer: UInt64
    public var packetsToClient: UInt64
    public var bytesToServer: UInt64
    public var bytesToClient: UInt64
    /// The key's hash, kept so that removal and rehash need not recompute it.
    public var hash: UInt32
    /// TCP flags seen, OR-ed, per direction.
    public var flagsToServer: UInt8
    public var flagsToClient: UInt8
    public var tcpState: TCPState
    /// True when the key's low endpoint is the client.
    public var clientIsLo: Bool
    /// Atomic storage of ``FlowMark``; access it only through the table.
    public var markStorage: UInt8
    /// Whether this slot of the entry pool holds a flow.
    public var inUse: Bool
    /// How far the network function's inspection of this flow got (for PRADS detection:
    /// which payload checks are done). Opaque to the flow table.
    public var inspection: UInt8

    public init(key: FlowKey, hash: UInt32, clientIsLo: Bool, now: UInt64) {
        self.key = key
        self.firstSeen = now
        self.lastSeen = now
        self.packetsToServer = 0
        self.packetsToClient = 0
        self.bytesToServer = 0
        self.bytesToClient = 0
        self.hash = hash
        self.flagsToServer = 0
        self.flagsToClient = 0
        self.tcpState = .none
        self.clientIsLo = clientIsLo
        self.markStorage = FlowMark.normal.rawValue
        self.inUse = true
        self.inspection = 0
    }

    /// Makes the other side the client (PRADS reverses a flow when later packets show it had
    /// the roles the wrong way round); per-direction counters follow their sides.
    public mutating func swapRoles() {
        clientIsLo.toggle()
        swap(&packetsToServer, &packetsToClient)
        swap(&bytesToServer, &bytesToClient)
        swap(&flagsToServer, &flagsToClient)
    }

    static let empty = FlowEntry(
        key: FlowKey(loAddr: .zero, hiAddr: .zero, loPort: 0, hiPort: 0, proto: 0, vlanKey: 0),
        hash: 0, clientIsLo: true, now: 0, unused: ())

    init(key: FlowKey, hash: UInt32, clientIsLo: Bool, now: UInt64, unused: Void) {
        self.init(key: key, hash: hash, clientIsLo: clientIsLo, now: now)
        self.inUse = false
    }

    /// Client address and port, as PRADS writes them (the side that opened the flow). A
    /// tunnelled flow's are its tunnel's end on the client's side (what filters match) and the
    /// inner port; ``innerClient`` is the host inside.
    public var client: (addr: IPAddress, port: UInt16) {
        clientIsLo ? (key.loAddr, key.loPort) : (key.hiAddr, key.hiPort)
    }

    public var server: (addr: IPAddress, port: UInt16) {
        clientIsLo ? (key.hiAddr, key.hiPort) : (key.loAddr, key.loPort)
    }

    /// A tunnelled flow's inner endpoints on the client's and the server's side (nil otherwise).
    public var innerClient: IPAddress? { key.isTunnelled ? (clientIsLo ? key.innerLo : key.innerHi) : nil }
    public var innerServer: IPAddress? { key.isTunnelled ? (clientIsLo ? key.innerHi : key.innerLo) : nil }
}
