import DistFlow
import DistPacket
import Testing

/// What a worker writes on its fast path starts on a pair of cache lines of its own.
@Suite struct CacheLinesTests {
    static func aligned(_ p: UnsafeRawPointer) -> Bool { UInt(bitPattern: p) % UInt(CacheLines.size) == 0 }

    @Test func allocationsStartOnALinePairAndFillTheirLast() {
        // Small ones (malloc would pack them side by side) and large ones (malloc's mmap puts
        // them 16 bytes past a page's start).
        for capacity in [1, 3, 64, 100_000] {
            let a = CacheLines.allocate(UInt16.self, capacity: capacity)
            let b = CacheLines.allocate(UInt16.self, capacity: capacity)
            #expect(Self.aligned(a) && Self.aligned(b), "capacity \(capacity)")
            let rounded = (capacity * 2 + CacheLines.size - 1) / CacheLines.size * CacheLines.size
            let (lo, hi) = UInt(bitPattern: a) < UInt(bitPattern: b) ? (a, b) : (b, a)
            #expect(
                UInt(bitPattern: hi) - UInt(bitPattern: lo) >= UInt(rounded), "no other allocation on the last lines")
            a.deallocate()
            b.deallocate()
        }
    }

    @Test func aFlowTablesEntriesStartOnALinePair() {
        let table = FlowTable(capacity: 1 << 16)
        #expect(Self.aligned(table.pointer(at: 0)))
    }
}
