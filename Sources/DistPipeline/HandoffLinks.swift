import Atomics

/// A bounded single-producer single-consumer ring of plain values between two workers, moved in
/// bursts: one release store of the tail per burst enqueued and of the head per burst taken.
/// The two indices sit on cache lines of their own, and each side keeps a copy of the other's
/// index that it reloads only when the ring looks full (or empty), so a burst usually costs one
/// cache-line transfer each way, as DPDK's `rte_ring` does.
public final class HandoffRing<Element: BitwiseCopyable>: @unchecked Sendable {
    public let capacity: Int
    @usableFromInline let mask: Int
    @usableFromInline let slots: UnsafeMutablePointer<Element>
    /// Three cache lines: the consumer's head, the producer's tail, each side's cached copy.
    let indices: UnsafeMutableRawPointer
    @usableFromInline let head: UnsafeAtomic<Int>
    @usableFromInline let tail: UnsafeAtomic<Int>
    /// The producer's view of the head, and the consumer's of the tail (each side's own line).
    @usableFromInline var producerHead: UnsafeMutablePointer<Int>
    @usableFromInline var consumerTail: UnsafeMutablePointer<Int>

    public init(capacity: Int) {
        var size = 2
        while size < capacity { size <<= 1 }
        self.capacity = size
        mask = size - 1
        slots = .allocate(capacity: size)
        indices = .allocate(byteCount: 256, alignment: 64)
        let headStorage = indices.bindMemory(to: UnsafeAtomic<Int>.Storage.self, capacity: 1)
        headStorage.initialize(to: .init(0))
        let tailStorage = (indices + 64).bindMemory(to: UnsafeAtomic<Int>.Storage.self, capacity: 1)
        tailStorage.initialize(to: .init(0))
        head = UnsafeAtomic(at: headStorage)
        tail = UnsafeAtomic(at: tailStorage)
        producerHead = (indices + 128).bindMemory(to: Int.self, capacity: 1)
        producerHead.initialize(to: 0)
        consumerTail = (indices + 192).bindMemory(to: Int.self, capacity: 1)
        consumerTail.initialize(to: 0)
    }

    deinit {
        slots.deallocate()
        indices.deallocate()
    }

    /// Producer side: appends up to `count` items, oldest first; returns how many it took (the
    /// rest did not fit).
    @inlinable @inline(__always)
    public func enqueue(_ items: UnsafePointer<Element>, count: Int) -> Int {
        let t = tail.load(ordering: .relaxed)
        if t + count - producerHead.pointee > capacity {
            producerHead.pointee = head.load(ordering: .acquiring)
        }
        let n = min(count, capacity - (t - producerHead.pointee))
        guard n > 0 else { return 0 }
        for i in 0..<n { slots[(t + i) & mask] = items[i] }
        tail.store(t + n, ordering: .releasing)
        return n
    }

    /// Consumer side: takes up to `limit` items into `out`, oldest first; returns how many.
    @inlinable @inline(__always)
    public func dequeue(into out: UnsafeMutablePointer<Element>, limit: Int) -> Int {
        let h = head.load(ordering: .relaxed)
        if consumerTail.pointee - h < limit {
            consumerTail.pointee = tail.load(ordering: .acquiring)
        }
        let n = min(limit, consumerTail.pointee - h)
        guard n > 0 else { return 0 }
        for i in 0..<n { out[i] = slots[(h + i) & mask] }
        head.store(h + n, ordering: .releasing)
        return n
    }

    /// Consumer side: whether nothing is queued (one load when the cached tail says so).
    @inlinable @inline(__always)
    public var isEmpty: Bool {
        let h = head.load(ordering: .relaxed)
        if consumerTail.pointee != h { return false }
        consumerTail.pointee = tail.load(ordering: .acquiring)
        return consumerTail.pointee == h
    }
}

/// One worker's ends of the worker handoff (VPP's pattern): a single-producer single-consumer
/// ring to each other worker, and the rings from them. A packet whose flow another worker owns
/// goes to that worker's ring, in the order received, so a flow's packets keep their order; the
/// owner takes them between its own bursts. Nothing waits: what a full ring does not take is
/// counted and the caller's to drop (no state has been touched anywhere, as when a port drops).
///
/// Packets are staged per owner while a burst is sorted and enqueued once at its end
/// (``stage(_:to:)``, ``flush(stats:dropped:)``).
public final class HandoffLinks<Element: BitwiseCopyable>: @unchecked Sendable {
    /// The ring to each worker (nil at this worker's own index).
    public let outgoing: [HandoffRing<Element>?]
    /// The rings from the other workers.
    public let incoming: [HandoffRing<Element>]
    /// Per owner, what this burst hands it.
    @usableFromInline let staged: UnsafeMutablePointer<Element>
    @usableFromInline let stagedCounts: UnsafeMutablePointer<Int>
    public let burst: Int

    init(outgoing: [HandoffRing<Element>?], incoming: [HandoffRing<Element>], burst: Int) {
        self.outgoing = outgoing
        self.incoming = incoming
        self.burst = burst
        staged = .allocate(capacity: max(1, outgoing.count * burst))
        stagedCounts = .allocate(capacity: max(1, outgoing.count))
        stagedCounts.initialize(repeating: 0, count: max(1, outgoing.count))
    }

    deinit {
        staged.deallocate()
        stagedCounts.deallocate()
    }

    /// The links of `workers` workers, each pair joined by a ring of `capacity` each way; at most
    /// `burst` items staged per owner between flushes.
    public static func mesh(workers: Int, capacity: Int, burst: Int = 64) -> [HandoffLinks<Element>] {
        // rings[i][j]: from worker i to worker j.
        let rings: [[HandoffRing<Element>?]] = (0..<workers).map { i in
            (0..<workers).map { j in i == j ? nil : HandoffRing<Element>(capacity: capacity) }
        }
        return (0..<workers).map { i in
            HandoffLinks(outgoing: rings[i], incoming: (0..<workers).compactMap { rings[$0][i] }, burst: burst)
        }
    }

    /// Stages `item` for worker `owner` (sent at the next ``flush(stats:dropped:)``). False when
    /// `owner` is not another worker or its stage is full: the item stays the caller's.
    @inlinable @inline(__always)
    public func stage(_ item: Element, to owner: Int) -> Bool {
        guard owner < outgoing.count, outgoing[owner] != nil, stagedCounts[owner] < burst else { return false }
        staged[owner * burst + stagedCounts[owner]] = item
        stagedCounts[owner] += 1
        return true
    }

    /// Enqueues what was staged, counting in `stats` what went (handed off) and what a full ring
    /// did not take (handed to `dropped`, oldest first, and counted as ring full).
    @inlinable
    public func flush(stats: UnsafeMutablePointer<WorkerStats>, dropped: (Element) -> Void) {
        for owner in 0..<outgoing.count where stagedCounts[owner] > 0 {
            let count = stagedCounts[owner]
            stagedCounts[owner] = 0
            let base = staged + owner * burst
            let sent = outgoing[owner]!.enqueue(base, count: count)
            stats.pointee.handedOff &+= UInt64(sent)
            if sent < count {
                stats.pointee.handoffRingFull &+= UInt64(count - sent)
                for i in sent..<count { dropped(base[i]) }
            }
        }
    }
}
