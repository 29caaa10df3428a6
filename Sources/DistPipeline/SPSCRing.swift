import Atomics
import DistFlow
import DistPRADS

/// A bounded single-producer single-consumer queue from a worker (which never waits: a full
/// ring counts the item as dropped) to the main lcore: asset records for the log writer,
/// packet events for the controller.
public final class SPSCRing<Element>: @unchecked Sendable {
    public let capacity: Int
    let slots: UnsafeMutablePointer<Element?>
    let head = ManagedAtomic<Int>(0)  // next slot the consumer reads
    let tail = ManagedAtomic<Int>(0)  // next slot the producer writes
    let droppedCount = ManagedAtomic<Int>(0)

    public init(capacity: Int = 4096) {
        var size = 2
        while size < capacity { size <<= 1 }
        self.capacity = size
        slots = CacheLines.allocate(Element?.self, capacity: size)
        slots.initialize(repeating: nil, count: size)
    }

    deinit {
        slots.deinitialize(count: capacity)
        slots.deallocate()
    }

    /// Items lost because the consumer fell behind.
    public var dropped: Int { droppedCount.load(ordering: .relaxed) }

    /// Producer side. False (and counted) when the ring is full.
    @discardableResult
    public func push(_ item: Element) -> Bool {
        let t = tail.load(ordering: .relaxed)
        if t - head.load(ordering: .acquiring) >= capacity {
            droppedCount.wrappingIncrement(ordering: .relaxed)
            return false
        }
        slots[t & (capacity - 1)] = item
        tail.store(t + 1, ordering: .releasing)
        return true
    }

    /// Consumer side: nothing queued (a cheap check before ``drain(_:)``).
    @inline(__always)
    public var isEmpty: Bool { head.load(ordering: .relaxed) == tail.load(ordering: .acquiring) }

    /// Consumer side: hands every queued item to `body`, oldest first, each once. An item is
    /// taken before `body` sees it, so a `body` that drains the ring again (the main lcore's push
    /// of an event can find the controller gone, and ending its events drains them) takes the
    /// items after it, and this drain stops there.
    public func drain(_ body: (Element) -> Void) {
        let t = tail.load(ordering: .acquiring)
        while true {
            let h = head.load(ordering: .relaxed)
            guard h < t else { return }
            let slot = slots + (h & (capacity - 1))
            let item = slot.pointee
            slot.pointee = nil
            head.store(h + 1, ordering: .releasing)
            if let item { body(item) }
        }
    }
}

/// Asset records on their way from a worker to the log writer (rare: one per thing learnt).
public typealias RecordRing = SPSCRing<AssetRecord>
