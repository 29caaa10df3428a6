import DistPipeline
import Testing

/// The ring from a worker to the main lcore (packet events, asset records).
@Suite struct SPSCRingTests {
    @Test func itemsComeOutInOrderAndAFullRingCounts() {
        let ring = SPSCRing<Int>(capacity: 4)
        for i in 0..<6 { ring.push(i) }
        #expect(ring.dropped == 2)
        var out: [Int] = []
        ring.drain { out.append($0) }
        #expect(out == [0, 1, 2, 3] && ring.isEmpty)
    }

    /// A drain whose body drains again (the main lcore pushing an event finds the controller's
    /// connection closed, and ending its events drains the rest): every item once, in order.
    @Test func aDrainWithinADrainTakesEachItemOnce() {
        let ring = SPSCRing<Int>(capacity: 16)
        for i in 0..<8 { ring.push(i) }
        var out: [Int] = []
        ring.drain { item in
            out.append(item)
            if item == 2 { ring.drain { out.append($0 + 100) } }
        }
        #expect(out == [0, 1, 2, 103, 104, 105, 106, 107])
        ring.push(9)
        var after: [Int] = []
        ring.drain { after.append($0) }
        #expect(after == [9])
    }
}
