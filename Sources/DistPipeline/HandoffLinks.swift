import Atomics
import CDistIntrinsics
import DistFlow
import DistPacket

/// A bounded single-producer single-consumer ring of plain values between two workers, moved in
/// bursts. The producer writes each item straight into its slot (``stage(_:)``) and makes a
/// burst visible with one release store of the tail (``publish()``); the consumer works on the
/// items where they lie (``peek(limit:)``) and frees their slots with one release store of the
/// head (``consume(_:)``). The two indices sit on cache lines of their own, and each side keeps
/// a copy of the other's index that it reloads only when the ring looks full (or empty), so a
/// burst usually costs one cache-line transfer each way, as DPDK's `rte_ring` does.
public final class HandoffRing<Element: BitwiseCopyable>: @unchecked Sendable {
    public let capacity: Int
    @usableFromInline let mask: Int
    @usableFromInline let slots: UnsafeMutablePointer<Element>
    /// Three cache lines: the consumer's head, the producer's tail, each side's own state.
    let indices: UnsafeMutableRawPointer
    @usableFromInline let head: UnsafeAtomic<Int>
    @usableFromInline let tail: UnsafeAtomic<Int>
    /// The producer's view of the head and its staged items (written, not yet published).
    @usableFromInline let producerHead: UnsafeMutablePointer<Int>
    @usableFromInline let staged: UnsafeMutablePointer<Int>
    /// The consumer's view of the tail.
    @usableFromInline let consumerTail: UnsafeMutablePointer<Int>

    public init(capacity: Int) {
        var size = 2
        while size < capacity { size <<= 1 }
        self.capacity = size
        mask = size - 1
        slots = CacheLines.allocate(Element.self, capacity: size)
        indices = .allocate(byteCount: 256, alignment: 64)
        let headStorage = indices.bindMemory(to: UnsafeAtomic<Int>.Storage.self, capacity: 1)
        headStorage.initialize(to: .init(0))
        let tailStorage = (indices + 64).bindMemory(to: UnsafeAtomic<Int>.Storage.self, capacity: 1)
        tailStorage.initialize(to: .init(0))
        head = UnsafeAtomic(at: headStorage)
        tail = UnsafeAtomic(at: tailStorage)
        let producer = (indices + 128).bindMemory(to: Int.self, capacity: 2)
        producer.initialize(repeating: 0, count: 2)
        producerHead = producer
        staged = producer + 1
        consumerTail = (indices + 192).bindMemory(to: Int.self, capacity: 1)
        consumerTail.initialize(to: 0)
    }

    deinit {
        slots.deallocate()
        indices.deallocate()
    }

    /// Producer side: writes `item` after what is queued and staged, unseen by the consumer until
    /// ``publish()``. False when the ring is full (the item stays the caller's).
    @inlinable @inline(__always)
    public func stage(_ item: Element) -> Bool {
        var window = window(wanted: 1)
        guard let slot = window.take() else { return false }
        slot.initialize(to: item)
        commit(window)
        return true
    }

    /// Producer side: up to `wanted` free slots after what is queued and staged, to be filled in
    /// order (``Window/take()``) and staged together (``commit(_:)``): a burst looks at the
    /// indices once, not once a packet. The consumer's head is reloaded only when the copy of
    /// it says there is less room than wanted.
    @inlinable @inline(__always)
    public func window(wanted: Int) -> Window {
        let t = tail.load(ordering: .relaxed) &+ staged.pointee
        if capacity &- (t &- producerHead.pointee) < wanted {
            producerHead.pointee = head.load(ordering: .acquiring)
        }
        return Window(slots: slots, mask: mask, next: t, end: producerHead.pointee &+ capacity)
    }

    /// Producer side: stages what was written into the slots `window` gave.
    @inlinable @inline(__always)
    public func commit(_ window: Window) {
        staged.pointee = window.next &- tail.load(ordering: .relaxed)
    }

    /// Free slots of a ring, taken in order (see ``HandoffRing/window(wanted:)``).
    public struct Window {
        @usableFromInline let slots: UnsafeMutablePointer<Element>?
        @usableFromInline let mask: Int
        @usableFromInline var next: Int
        @usableFromInline let end: Int

        @inlinable @inline(__always)
        init(slots: UnsafeMutablePointer<Element>?, mask: Int, next: Int, end: Int) {
            self.slots = slots
            self.mask = mask
            self.next = next
            self.end = end
        }

        /// A window with no room (the ring to a worker's own index).
        @usableFromInline static var closed: Window { Window(slots: nil, mask: 0, next: 0, end: 0) }

        /// The next free slot, or nil when the window is full.
        @inlinable @inline(__always)
        public mutating func take() -> UnsafeMutablePointer<Element>? {
            guard next < end else { return nil }
            let slot = slots.unsafelyUnwrapped + (next & mask)
            next &+= 1
            return slot
        }
    }

    /// Producer side: makes the staged items visible to the consumer; returns how many.
    @inlinable @inline(__always) @discardableResult
    public func publish() -> Int {
        let n = staged.pointee
        guard n > 0 else { return 0 }
        tail.store(tail.load(ordering: .relaxed) + n, ordering: .releasing)
        staged.pointee = 0
        return n
    }

    /// Consumer side: the oldest queued items, at most `limit`, where they lie (the run stops at
    /// the end of the ring's storage: a later call gets the rest). They stay valid until
    /// ``consume(_:)``.
    @inlinable @inline(__always)
    public func peek(limit: Int) -> (items: UnsafePointer<Element>, count: Int) {
        let h = head.load(ordering: .relaxed)
        if consumerTail.pointee - h < limit {
            consumerTail.pointee = tail.load(ordering: .acquiring)
        }
        let at = h & mask
        return (UnsafePointer(slots + at), min(limit, consumerTail.pointee - h, capacity - at))
    }

    /// Consumer side: frees the slots of the oldest `count` items (after ``peek(limit:)``).
    @inlinable @inline(__always)
    public func consume(_ count: Int) {
        guard count > 0 else { return }
        head.store(head.load(ordering: .relaxed) + count, ordering: .releasing)
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
/// goes into that worker's ring, in the order received, so a flow's packets keep their order;
/// the owner takes them between its own bursts. Nothing waits: a packet a full ring does not take
/// is counted and the caller's to drop (no state has been touched anywhere, as when a port
/// drops). Packets are written into the rings as a burst is sorted (``stage(_:to:)``) and
/// published once at its end (``flush(stats:)``).
public final class HandoffLinks<Element: BitwiseCopyable>: @unchecked Sendable {
    /// The rings to the other workers, held by this array; the fast path reads them through
    /// ``rings`` without touching its reference count.
    let outgoing: [HandoffRing<Element>?]
    /// The rings from the other workers.
    public let incoming: [HandoffRing<Element>]
    /// The ring to each worker (nil at this worker's own index).
    @usableFromInline let rings: UnsafeMutablePointer<Unmanaged<HandoffRing<Element>>?>
    @usableFromInline let workers: Int
    /// ``incoming``, read without touching the rings' reference counts: a ring's count sits on
    /// the cache line of the fields its producer reads at every burst, so a retain on the
    /// consumer's core would pull that line away from the producer's at every round.
    @usableFromInline let sources: UnsafeMutablePointer<Unmanaged<HandoffRing<Element>>>
    @usableFromInline let sourceCount: Int
    /// The open window on each ring to another worker, while a burst is staged
    /// (``open(wanted:)``).
    @usableFromInline let windows: UnsafeMutablePointer<HandoffRing<Element>.Window>

    init(outgoing: [HandoffRing<Element>?], incoming: [HandoffRing<Element>]) {
        self.outgoing = outgoing
        self.incoming = incoming
        workers = outgoing.count
        rings = .allocate(capacity: max(1, outgoing.count))
        for (i, ring) in outgoing.enumerated() { (rings + i).initialize(to: ring.map { Unmanaged.passUnretained($0) }) }
        sourceCount = incoming.count
        sources = .allocate(capacity: max(1, incoming.count))
        for (i, ring) in incoming.enumerated() { (sources + i).initialize(to: Unmanaged.passUnretained(ring)) }
        windows = .allocate(capacity: max(1, outgoing.count))
        windows.initialize(repeating: .closed, count: max(1, outgoing.count))
    }

    deinit {
        rings.deallocate()
        sources.deallocate()
        windows.deallocate()
    }

    /// Calls `body` with each ring from another worker that holds packets (without retaining
    /// it: see ``sources``); returns whether any did, and whether `body` said true for any.
    @inlinable @inline(__always)
    public func forEachPending(_ body: (HandoffRing<Element>) -> Bool) -> (any: Bool, more: Bool) {
        var any = false
        var more = false
        for i in 0..<sourceCount {
            sources[i]._withUnsafeGuaranteedRef { ring in
                guard !ring.isEmpty else { return }
                any = true
                if body(ring) { more = true }
            }
        }
        return (any, more)
    }

    /// The links of `workers` workers, each pair joined by a ring of `capacity` each way.
    public static func mesh(workers: Int, capacity: Int) -> [HandoffLinks<Element>] {
        // rings[i][j]: from worker i to worker j.
        let rings: [[HandoffRing<Element>?]] = (0..<workers).map { i in
            (0..<workers).map { j in i == j ? nil : HandoffRing<Element>(capacity: capacity) }
        }
        return (0..<workers).map { i in
            HandoffLinks(outgoing: rings[i], incoming: (0..<workers).compactMap { rings[$0][i] })
        }
    }

    /// Writes `item` into worker `owner`'s ring (seen there after the next
    /// ``flush(stats:)``). False when `owner` is not another worker or its ring is full: the
    /// item stays the caller's, to drop and count as ``WorkerStats/handoffRingFull``.
    @inlinable @inline(__always)
    public func stage(_ item: Element, to owner: Int) -> Bool {
        guard owner >= 0, owner < workers, let ring = rings[owner] else { return false }
        return ring._withUnsafeGuaranteedRef { $0.stage(item) }
    }

    /// Opens a window on the ring to each other worker, for a burst of up to `wanted` packets:
    /// ``slot(for:)`` then hands out slots to fill in place, and ``close()`` stages them (seen
    /// by their owners after the next ``flush(stats:)``).
    @inlinable @inline(__always)
    public func open(wanted: Int) {
        for owner in 0..<workers {
            guard let ring = rings[owner] else { continue }
            windows[owner] = ring._withUnsafeGuaranteedRef { $0.window(wanted: wanted) }
        }
    }

    /// The next free slot of worker `owner`'s ring in the open window; nil when the ring is
    /// full (the packet stays the caller's, to drop and count as ``WorkerStats/handoffRingFull``)
    /// or `owner` is no other worker.
    @inlinable @inline(__always)
    public func slot(for owner: Int) -> UnsafeMutablePointer<Element>? {
        guard owner >= 0, owner < workers else { return nil }
        return windows[owner].take()
    }

    /// Stages what was written into the slots of the open windows.
    @inlinable @inline(__always)
    public func close() {
        for owner in 0..<workers {
            guard let ring = rings[owner] else { continue }
            ring._withUnsafeGuaranteedRef { $0.commit(windows[owner]) }
        }
    }

    /// Publishes what was staged, counting in `stats` what went (handed off).
    @inlinable
    public func flush(stats: UnsafeMutablePointer<WorkerStats>) {
        // Slots may have been written with non-temporal stores (``HandoffPacket/stream``),
        // which a release store does not order before it: the fence does.
        dist_store_fence()
        for owner in 0..<workers {
            guard let ring = rings[owner] else { continue }
            let n = ring._withUnsafeGuaranteedRef { $0.publish() }
            stats.pointee.handedOff &+= UInt64(n)
        }
    }
}
