import DistFlow
import Foundation
import Testing

/// A flow table's entries and slots lie on memory the kernel may back with huge pages (the
/// fast path reads them at random: on 4 kB pages most lookups also missed the TLB).
@Suite struct HugePagesTests {
    /// Whether this kernel gives anonymous memory huge pages when asked (`madvise` or `always`).
    static let transparentHugePages: Bool = {
        let mode = (try? String(contentsOfFile: "/sys/kernel/mm/transparent_hugepage/enabled", encoding: .utf8)) ?? ""
        return mode.contains("[madvise]") || mode.contains("[always]")
    }()

    @Test func largeRoomStartsOnAHugePageAndIsAllUsable() {
        let room = HugePages(byteCount: 3 << 20)
        #expect(UInt(bitPattern: room.base) % UInt(HugePages.size) == 0)
        #expect(room.byteCount == 4 << 20)
        let bytes = room.base.bindMemory(to: UInt8.self, capacity: room.byteCount)
        bytes[0] = 1
        bytes[room.byteCount - 1] = 2
        #expect(bytes[0] == 1 && bytes[room.byteCount - 1] == 2)
        #expect(room.eligible == Self.transparentHugePages)
        #expect(room.hugeBytes <= room.byteCount)
        room.deallocate()
    }

    @Test func smallRoomIsOrdinaryMemoryOnALinePair() {
        let room = HugePages(byteCount: 4096)
        #expect(UInt(bitPattern: room.base) % UInt(CacheLines.size) == 0)
        #expect(!room.eligible && room.hugeBytes == 0)
        room.deallocate()
    }

    @Test func aLargeFlowTableAsksForHugePages() {
        let large = FlowTable(capacity: 1 << 16)
        #expect(UInt(bitPattern: large.pointer(at: 0)) % UInt(HugePages.size) == 0)
        #expect(large.hugePagesEligible == Self.transparentHugePages)
        #expect(!FlowTable(capacity: 16).hugePagesEligible)
    }
}
