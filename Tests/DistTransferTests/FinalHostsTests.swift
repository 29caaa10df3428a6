import DistFlow
import DistLoopback
import DistPRADS
import DistPacket
import DistTransfer
import Foundation
import Testing

/// Late locking's final hosts go a slice an engine step: between two, the channel takes its
/// acknowledgements and sends, and the rings from the workers are emptied (all in one step, a
/// 100,000-flow Move's 67,000 hosts held the transfer lcore for 700 ms).
@Suite struct FinalHostsTests {
    @Test func theFinalHostsGoASliceAStep() throws {
        let signatures = try PRADSSignatures.load(directory: "/etc/prads")
        let a = MoveInstance(
            workers: 1, address: "198.18.100.1:7700@02:00:00:00:00:01",
            detector: { _ in Detector(signatures: signatures) })
        let b = MoveInstance(
            workers: 1, address: "198.18.100.2:7700@02:00:00:00:00:02",
            detector: { _ in Detector(signatures: signatures) })
        a.engine.hostSlice = 3
        for i in 0..<10 { a.receive(SampleTraffic.syn(from: 0xC612_0100 + UInt32(i), port: 40000)) }
        a.startLossFreeMove(filter: "nw_src=198.18.0.0/16", to: b, multiFlow: true)
        a.exchange(with: b, until: "moveStateSent", rounds: 200)
        #expect(a.notice("moveStateSent") != nil)
        // 10 hosts, 3 a slice: 4 slices, each in a round of its own.
        #expect(a.slicesAsked.count == 4 && Set(a.slicesAsked).count == 4, "\(a.slicesAsked)")
        let hosts = (0..<10).map { IPAddress(ipv4: 0xC612_0100 + UInt32($0)) }
        for _ in 0..<5 { b.round() }
        #expect(hosts.allSatisfy { b.paths[0].detector?.asset(at: $0) != nil }, "every host reached the destination")
    }
}
