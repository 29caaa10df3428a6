import DistFlow
import DistPacket

/// The controller's buffer of redirected packets in an OpenNF-mode Move (loss-free and
/// order-preserving). A packet of a flow whose state is not yet at the destination waits;
/// the others go on at once. Without early release every packet waits until all state is in,
/// and then all go in the order they arrived; with it a flow's packets go as soon as that
/// flow's state is in (order kept within each flow, not across flows, as the paper says).
public struct RedirectBuffer<Packet: RedirectedPacket> {
    public let earlyRelease: Bool
    /// Frames waiting, in arrival order (nil once sent on).
    var waiting: [(key: FlowKey?, packet: Packet)?] = []
    /// Per flow, the positions of its waiting frames (early release).
    var waitingByFlow: [FlowKey: [Int]] = [:]
    /// Flows whose state is at the destination (early release).
    var flowsIn: Set<FlowKey> = []
    /// Every flow the source exported, once the export is complete (early release: a flow
    /// outside it has no state to wait for).
    var exported: Set<FlowKey>?
    /// All state is in: nothing waits any more.
    public private(set) var open = false
    /// Packets that had to wait.
    public private(set) var buffered = 0
    /// Packets waiting now, and their bytes.
    public private(set) var waitingCount = 0
    public private(set) var waitingBytes = 0
    /// The most bytes that wait at once: a packet that would go beyond is dropped and counted
    /// (``dropped``), so that a Move whose state is slow to come cannot fill the controller's
    /// memory with the traffic of the flows it moves.
    public let limitBytes: Int
    /// Packets dropped because the buffer was full.
    public private(set) var dropped = 0

    public init(earlyRelease: Bool, limitBytes: Int = 256 << 20) {
        self.earlyRelease = earlyRelease
        self.limitBytes = limitBytes
    }

    func mayGo(_ key: FlowKey?) -> Bool {
        if open { return true }
        guard earlyRelease, let key else { return false }
        if flowsIn.contains(key) { return true }
        if let exported, !exported.contains(key) { return true }
        return false
    }

    /// A redirected packet arrives; returns what may be sent on now (it, or nothing).
    public mutating func arrived(_ packet: Packet, key: FlowKey?) -> [Packet] {
        // A flow with packets still waiting keeps its order behind them.
        if mayGo(key) && (key.map { waitingByFlow[$0] == nil } ?? true) { return [packet] }
        guard waitingBytes + packet.frameBytes <= limitBytes else {
            dropped += 1
            return []
        }
        buffered += 1
        waitingCount += 1
        waitingBytes += packet.frameBytes
        waiting.append((key, packet))
        if earlyRelease, let key { waitingByFlow[key, default: []].append(waiting.count - 1) }
        return []
    }

    /// State for these flows is at the destination (early release): their packets go on.
    public mutating func stateIn(_ keys: [FlowKey]) -> [Packet] {
        guard earlyRelease, !open else { return [] }
        var out: [Packet] = []
        for key in keys {
            flowsIn.insert(key)
            out += releaseFlow(key)
        }
        return out
    }

    /// The source's export is complete: flows outside it (begun during the Move) have nothing
    /// to wait for (early release).
    public mutating func exportComplete(_ keys: Set<FlowKey>) -> [Packet] {
        guard earlyRelease, !open else { return [] }
        exported = keys
        var out: [Packet] = []
        for key in Array(waitingByFlow.keys) where !keys.contains(key) {
            out += releaseFlow(key)
        }
        return out
    }

    mutating func releaseFlow(_ key: FlowKey) -> [Packet] {
        guard let positions = waitingByFlow.removeValue(forKey: key) else { return [] }
        var out: [Packet] = []
        for p in positions {
            if let item = waiting[p] {
                out.append(item.packet)
                waitingBytes -= item.packet.frameBytes
            }
            waiting[p] = nil
            waitingCount -= 1
        }
        return out
    }

    /// All state is in: everything still waiting goes, in arrival order, and from now on every
    /// packet goes at once.
    public mutating func releaseAll() -> [Packet] {
        open = true
        let out = waiting.compactMap { $0?.packet }
        waiting = []
        waitingCount = 0
        waitingBytes = 0
        waitingByFlow = [:]
        return out
    }
}

/// What a ``RedirectBuffer`` holds: a frame, perhaps with what its holder needs to know of it
/// (the controller's: the sequence number the source raised it with).
public protocol RedirectedPacket {
    /// The frame's size (the buffer's bound counts it).
    var frameBytes: Int { get }
}

extension Array: RedirectedPacket where Element == UInt8 {
    public var frameBytes: Int { count }
}
