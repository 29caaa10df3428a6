/// The packets a worker holds while a rule keeps them (a Move's destination, until the source's
/// last redirected packet is in), copied out of their mbufs in arrival order, and their paced
/// release once the rule goes.
///
/// A hold lasts as long as the Move's channel needs to deliver what the source redirected: a
/// few milliseconds on a clean link, seconds over a lossy one. Sent back to back at the end,
/// a long hold is a burst of megabytes that overflows the queue of the next slow link (18,432
/// packets held for 1.8 s at 10,000 pps became a 5 MB burst, and the sink's link dropped
/// 14,161 of them). So the release is paced: a token bucket whose rate is `factor` times the
/// rate the held packets arrived at, and whose depth lets a short hold go at once. While it
/// drains, new packets of the held flows queue behind it (the worker keeps the rule's filter),
/// so nothing overtakes a held packet of its flow.
///
/// Single-threaded (the worker's own); allocates only at creation.
public final class HoldQueue {
    public struct Entry: Sendable, Equatable {
        public var offset: Int
        public var length: Int
        public var port: UInt16
    }

    /// How fast held packets go once the rule goes: `factor` times the rate they arrived at
    /// (bytes over the hold's duration), after a burst of `depth` bytes. `factor` 0 sends them
    /// all at once.
    public struct Pacing: Sendable, Equatable {
        public var factor: Double
        public var depth: Int
        public init(factor: Double = 2, depth: Int = 256 << 10) {
            self.factor = factor
            self.depth = depth
        }
        public static let immediate = Pacing(factor: 0, depth: 0)
    }

    public let capacity: Int
    public let byteCapacity: Int
    let entries: UnsafeMutablePointer<Entry>
    public let bytes: UnsafeMutablePointer<UInt8>
    /// Entries `head..<tail` are held, oldest first; their bytes are `bytes[entries[head].offset..<used]`.
    public private(set) var head = 0
    public private(set) var tail = 0
    var used = 0
    /// When the current hold took its first packet, and the bytes it took since.
    var startedAt: UInt64 = 0
    var bytesSinceStart = 0
    /// While draining: bytes per nanosecond, the bucket's tokens (bytes) and when they were counted.
    public private(set) var draining = false
    var rate = 0.0
    var tokens = 0.0
    var lastFill: UInt64 = 0
    var depth = 0

    public init(capacity: Int = 131_072, byteCapacity: Int = 64 << 20) {
        self.capacity = max(1, capacity)
        self.byteCapacity = max(1, byteCapacity)
        entries = .allocate(capacity: self.capacity)
        bytes = .allocate(capacity: self.byteCapacity)
    }

    deinit {
        entries.deallocate()
        bytes.deallocate()
    }

    public var count: Int { tail - head }
    public var isEmpty: Bool { head == tail }

    /// Where the next packet's bytes go and how many fit, or nil when no packet fits (the
    /// entries or the bytes are full even after moving what is held to the front).
    public func room() -> UnsafeMutableRawBufferPointer? {
        if tail == capacity || used == byteCapacity { compact() }
        guard tail < capacity, used < byteCapacity else { return nil }
        return UnsafeMutableRawBufferPointer(start: bytes + used, count: byteCapacity - used)
    }

    /// Takes the `length` bytes just written at ``room()`` as the newest held packet.
    public func commit(length: Int, port: UInt16, now: UInt64) {
        if isEmpty && !draining {
            startedAt = now
            bytesSinceStart = 0
        }
        entries[tail] = Entry(offset: used, length: length, port: port)
        tail += 1
        used += length
        bytesSinceStart += length
    }

    /// The oldest held packet.
    public var first: Entry? { isEmpty ? nil : entries[head] }

    public func entry(_ i: Int) -> Entry { entries[head + i] }

    /// Removes the `n` oldest packets (sent), and spends their bytes from the bucket.
    public func dropFirst(_ n: Int) {
        let n = min(n, count)
        for i in 0..<n { tokens -= Double(entries[head + i].length) }
        head += n
        if isEmpty { reset() }
    }

    /// The rule went: from now on packets leave at the pace's rate (``releasable(now:)``).
    /// Returns whether there is anything to drain.
    public func startRelease(now: UInt64, pacing: Pacing) -> Bool {
        guard !isEmpty else {
            reset()
            return false
        }
        if pacing.factor <= 0 {
            rate = .infinity
            tokens = .infinity
        } else {
            // Over at least a millisecond: a hold of a few packets goes in the bucket's burst.
            let span = Double(max(now &- startedAt, 1_000_000))
            rate = pacing.factor * Double(bytesSinceStart) / span
            tokens = Double(pacing.depth)
        }
        depth = pacing.depth
        lastFill = now
        draining = true
        return true
    }

    /// How many of the oldest packets may leave now (at least one when the bucket has room for
    /// the oldest, however large): 0 when the bucket is empty.
    public func releasable(now: UInt64, limit: Int) -> Int {
        guard draining, !isEmpty else { return 0 }
        if tokens.isFinite {
            tokens = min(Double(depth), tokens + Double(now &- lastFill) * rate)
        }
        lastFill = now
        var budget = tokens
        var n = 0
        while n < limit && head + n < tail {
            let length = Double(entries[head + n].length)
            if budget < length && !(n == 0 && budget >= Double(depth)) { break }
            budget -= length
            n += 1
        }
        return n
    }

    /// The rate of the current release in bytes per second (infinite: all at once).
    public var releaseRate: Double { rate * 1e9 }

    func reset() {
        head = 0
        tail = 0
        used = 0
        draining = false
        rate = 0
        tokens = 0
        bytesSinceStart = 0
    }

    /// Moves the held packets to the front of both arenas.
    func compact() {
        guard head > 0 else { return }
        let base = entries[head].offset
        let n = count
        UnsafeMutableRawPointer(bytes).copyMemory(from: bytes + base, byteCount: used - base)  // memmove
        for i in 0..<n {
            var e = entries[head + i]
            e.offset -= base
            entries[i] = e
        }
        used -= base
        head = 0
        tail = n
    }
}
