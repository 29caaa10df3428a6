import Atomics
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
        slots = .allocate(capacity: size)
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

    /// Consumer side: hands every queued item to `body`, oldest first.
    public func drain(_ body: (Element) -> Void) {
        var h = head.load(ordering: .relaxed)
        let t = tail.load(ordering: .acquiring)
        while h < t {
            let slot = slots + (h & (capacity - 1))
            if let item = slot.pointee { body(item) }
            slot.pointee = nil
            h += 1
            head.store(h, ordering: .releasing)
        }
    }
}

/// Asset records on their way from a worker to the log writer (rare: one per thing learnt).
public typealias RecordRing = SPSCRing<AssetRecord>
