import DistLoopback
import DistMove
import NIOCore
import NIOEmbedded
import Testing

@testable import DistController

/// An opennf-mode Move's in-band control packet (IBC) must be the last packet of the moved flows
/// the source gets: it goes once the switch's datapath follows the new rule.
@Suite struct OpenNFDrainTests {
    let loop = EmbeddedEventLoop()
    let a: LoopbackVNF, b: LoopbackVNF
    let sw: LoopbackSwitch

    init() {
        a = LoopbackVNF(name: "vnf1", switchPort: 11, address: "198.18.0.1:7700@02:00:00:00:00:01", loop: loop)
        b = LoopbackVNF(name: "vnf2", switchPort: 12, address: "198.18.0.2:7700@02:00:00:00:00:02", loop: loop)
        sw = LoopbackSwitch(loop: loop, targets: [a.switchPort])
        sw.vnfs = [11: a, 12: b]
    }

    func move() throws -> OpenNFMove {
        let spec = try MoveSpec(
            source: "vnf1", destination: "vnf2", filter: SampleTraffic.filter, scope: "per", guarantee: "op",
            optimizations: "pz,ll,er", mode: "opennf")
        return try OpenNFMove(
            id: 3, spec: spec, source: a, destination: b, switch: sw, ingressPort: 1, settle: .milliseconds(10),
            progress: { _ in })
    }

    @Test func theIBCGoesOnceTheSwitchsDatapathIsPurged() throws {
        sw.purges = true
        let run = try move()
        _ = run.drainSource(phase: 1)
        #expect(sw.log == ["purge", "PACKET_OUT 11"])
        #expect(run.report.phases.map(\.name) == ["datapath-synced-1"])
    }

    @Test func withoutTheSwitchsControlSocketTheIBCWaitsTheSettle() throws {
        let run = try move()
        _ = run.drainSource(phase: 1)
        loop.advanceTime(by: .milliseconds(9))
        #expect(sw.log.isEmpty)
        loop.advanceTime(by: .milliseconds(1))
        #expect(sw.log == ["PACKET_OUT 11"])
        // The IBC never comes back here: the Move goes on after 3 s, with a warning.
        loop.advanceTime(by: .seconds(3))
        #expect(run.report.warnings.contains { $0.contains("did not come back") })
    }
}
