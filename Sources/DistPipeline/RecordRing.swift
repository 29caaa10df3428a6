import Atomics
import DistPRADS

/// A bounded single-producer single-consumer queue of asset records, from a worker (which
/// never waits: a full ring counts the record as dropped) to the main lcore's log writer.
/// Records are rare (one per thing learnt), so the ring is small and the fast path untouched.
public final class RecordRing: @unchecked Sendable {
    public let capacity: Int
    let slots: UnsafeMutablePointer<AssetRecord?>
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

    /// Records lost because the consumer fell behind.
    public var dropped: Int { droppedCount.load(ordering: .relaxed) }

    /// Producer side. False (and counted) when the ring is full.
    @discardableResult
    public func push(_ record: AssetRecord) -> Bool {
        let t = tail.load(ordering: .relaxed)
        if t - head.load(ordering: .acquiring) >= capacity {
            droppedCount.wrappingIncrement(ordering: .relaxed)
            return false
        }
        slots[t & (capacity - 1)] = record
        tail.store(t + 1, ordering: .releasing)
        return true
    }

    /// Consumer side: hands every queued record to `body`, oldest first.
    public func drain(_ body: (AssetRecord) -> Void) {
        var h = head.load(ordering: .relaxed)
        let t = tail.load(ordering: .acquiring)
        while h < t {
            let slot = slots + (h & (capacity - 1))
            if let record = slot.pointee { body(record) }
            slot.pointee = nil
            h += 1
            head.store(h, ordering: .releasing)
        }
    }
}
