/// The copies of packets an instance raised and dropped for a controller that asked it to
/// keep them (`enableEvents` with `keep`), by the sequence number each `packetEvent` carries,
/// until the controller says it sent them on. Should the controller go away first, what is
/// left here was processed nowhere: the instance processes it itself.
public struct KeptEvents {
    /// Whether copies are kept (the events in force asked for it).
    public private(set) var keeping = false
    /// The next packet event's sequence number (every event has one, kept or not).
    public private(set) var next: UInt64 = 1
    var copies: [UInt64: (worker: Int, frame: [UInt8])] = [:]
    public private(set) var bytes = 0
    /// Events raised while the copies were at their bound: sent, not kept (counted).
    public private(set) var notKept = 0
    public let limit: Int
    public let limitBytes: Int

    public init(limit: Int = 131_072, limitBytes: Int = 64 << 20) {
        self.limit = limit
        self.limitBytes = limitBytes
    }

    public var count: Int { copies.count }

    /// Starts over (new events): no copies, kept from now on or not.
    public mutating func start(keeping: Bool) {
        self.keeping = keeping
        copies = [:]
        bytes = 0
    }

    /// A packet raised: its sequence number (a copy kept, if keeping and there is room).
    public mutating func raised(_ frame: [UInt8], worker: Int) -> UInt64 {
        let seq = next
        next &+= 1
        guard keeping else { return seq }
        guard copies.count < limit, bytes + frame.count <= limitBytes else {
            notKept += 1
            return seq
        }
        copies[seq] = (worker, frame)
        bytes += frame.count
        return seq
    }

    /// The controller sent these on: their copies go (numbers it never had are ignored).
    public mutating func released(_ ranges: [ClosedRange<UInt64>]) {
        for range in ranges {
            // (A range wider than what is kept is walked over the copies, not over its numbers.)
            if range.upperBound - range.lowerBound >= UInt64(copies.count) {
                for seq in copies.keys where range.contains(seq) { drop(seq) }
            } else {
                for seq in range { drop(seq) }
            }
        }
    }

    mutating func drop(_ seq: UInt64) {
        if let c = copies.removeValue(forKey: seq) { bytes -= c.frame.count }
    }

    /// Every copy not released, in the order raised; none are kept after.
    public mutating func takeAll() -> [(worker: Int, frame: [UInt8])] {
        let out = copies.keys.sorted().map { copies[$0]! }
        start(keeping: false)
        return out
    }
}
