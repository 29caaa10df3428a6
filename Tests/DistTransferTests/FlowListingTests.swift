import DistFlow
import DistLoopback
import DistPacket
import DistTransfer
import Testing

/// Late locking lists the flows to move a slice an engine step: between two, the worker polls
/// its queues and the transfer lcore empties the rings (in one answer, 100,000 flows held the
/// source's worker for 58 ms, longer than its port's ring lasts at 50,000 pps).
@Suite struct FlowListingTests {
    func move(workers: Int, flows: Int, slice: Int) -> (MoveInstance, MoveInstance) {
        let a = MoveInstance(workers: workers, address: "198.18.100.1:7700@02:00:00:00:00:01")
        let b = MoveInstance(workers: workers, address: "198.18.100.2:7700@02:00:00:00:00:02")
        a.engine.locateSlice = slice
        for i in 0..<flows { a.receive(SampleTraffic.syn(from: 0xC612_0100 + UInt32(i), port: 40000)) }
        a.startLossFreeMove(filter: "nw_src=198.18.0.0/16", to: b, multiFlow: false)
        a.exchange(with: b, until: "moveStateSent", rounds: 300)
        for _ in 0..<5 { b.round() }
        return (a, b)
    }

    func flowCount(_ i: MoveInstance) -> Int { i.paths.reduce(0) { $0 + $1.table.count } }

    @Test func theFlowsAreListedASliceAStep() {
        let (a, b) = move(workers: 1, flows: 10, slice: 3)
        #expect(a.notice("moveStateSent") != nil)
        // 10 flows, 3 a slice: 4 slices, each in a round of its own.
        let rounds = a.listingsAsked.map { $0.round }
        #expect(rounds.count == 4 && Set(rounds).count == 4, "\(a.listingsAsked)")
        #expect(flowCount(b) == 10, "every flow reached the destination")
    }

    @Test func everyWorkersFlowsAreListedOnce() {
        let (a, b) = move(workers: 2, flows: 40, slice: 4)
        #expect(a.notice("moveStateSent") != nil)
        let rounds = a.listingsAsked.map { $0.round }
        #expect(Set(rounds).count == rounds.count, "one slice a round: \(a.listingsAsked)")
        #expect(Set(a.listingsAsked.map { $0.worker }) == [0, 1])
        #expect(flowCount(b) == 40, "every flow reached the destination")
    }
}
