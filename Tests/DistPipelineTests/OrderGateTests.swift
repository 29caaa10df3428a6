import Atomics
import DistFlow
import DistMove
import DistPacket
import DistPipeline
import DistState
import Foundation
import Testing

/// The destination of an order-preserving Move (the paper's section 3.1): under a `gate` rule
/// the switch's packets of the filter are copies of what the source redirects until the
/// switch's in-band control packet, and dropped; those after it wait until the source's
/// stream has ended. Both orders of the two ends work (the paper's Event1 and Event2).
@Suite struct OrderGateTests {
    static let filter = try! FlowFilter(parsing: "nw_src=192.168.1.0/24")

    /// The filter's packets of the trace, and the path under a gate for Move 7.
    static func setUp() -> (FastPath, [[UInt8]], UnsafeMutablePointer<WorkerStats>) {
        let frames = FastPathTests.frames.map { $0.bytes }.filter { RedirectTests.key($0).map(filter.matches) ?? false }
        let stats = UnsafeMutablePointer<WorkerStats>.allocate(capacity: 1)
        stats.initialize(to: WorkerStats())
        let path = FastPath(table: FlowTable(capacity: 1 << 14), stats: stats)
        _ = path.perform(.events(EventRule(filter: filter, action: .gate, moveID: 7)))
        return (path, Array(frames.prefix(40)), stats)
    }

    /// A marker of the Move without its token (forged, or made without the source's word)
    /// opens no gate: dropped and counted.
    @Test func aForgedMarkerOpensNoGate() throws {
        let stats = UnsafeMutablePointer<WorkerStats>.allocate(capacity: 1)
        defer { stats.deallocate() }
        stats.initialize(to: WorkerStats())
        let path = FastPath(table: FlowTable(capacity: 1 << 10), stats: stats)
        _ = path.perform(.events(EventRule(filter: Self.filter, action: .gate, moveID: 7, ibcToken: 0xABCD)))
        for token: UInt64 in [0, 0xABCE] {
            #expect(
                RedirectTests.verdict(path, InBandControl.frame(for: Self.filter, moveID: 7, token: token)) == .discard)
        }
        #expect(path.eventRule?.markerSeen == false)
        #expect(stats.pointee.markersForged == 2 && stats.pointee.markers == 0)
        #expect(
            RedirectTests.verdict(path, InBandControl.frame(for: Self.filter, moveID: 7, token: 0xABCD)) == .discard)
        #expect(path.eventRule?.markerSeen == true)
    }

    @Test func theSwitchMarkerComesFirst() throws {
        let (path, frames, stats) = Self.setUp()
        defer { stats.deallocate() }
        #expect(frames.count == 40)
        for f in frames.prefix(10) { #expect(RedirectTests.verdict(path, f) == .discard) }
        // Another Move's marker does not open the gate.
        #expect(RedirectTests.verdict(path, InBandControl.frame(for: Self.filter, moveID: 8)) == .discard)
        #expect(path.eventRule?.markerSeen == false)
        #expect(RedirectTests.verdict(path, InBandControl.frame(for: Self.filter, moveID: 7)) == .discard)
        #expect(path.eventRule?.markerSeen == true)
        for f in frames[10..<20] { #expect(RedirectTests.verdict(path, f) == .hold) }
        #expect(path.table.count == 0)
        #expect(stats.pointee.duplicatesDropped == 11)
        #expect(stats.pointee.markers == 1)
        // The source's end: the gate goes (the worker releases what it kept), traffic goes on.
        #expect(path.sourceEnded(moveID: 8) == false)
        #expect(path.sourceEnded(moveID: 7) == true)
        #expect(path.eventRule == nil)
        #expect(RedirectTests.verdict(path, frames[20]) == .forward)
    }

    @Test func theSourcesEndComesFirst() throws {
        let (path, frames, stats) = Self.setUp()
        defer { stats.deallocate() }
        for f in frames.prefix(5) { #expect(RedirectTests.verdict(path, f) == .discard) }
        // (True: what the worker holds may go; here nothing, its queue not cut yet.)
        #expect(path.sourceEnded(moveID: 7) == true)
        #expect(path.eventRule?.sourceEnded == true)
        #expect(RedirectTests.verdict(path, frames[5]) == .discard)
        // In one burst: a copy, the marker, then packets processed at once.
        let burst = [frames[6], InBandControl.frame(for: Self.filter, moveID: 7), frames[7], frames[8]]
        let copies = burst.map { f -> UnsafeMutablePointer<UInt8> in
            let p = UnsafeMutablePointer<UInt8>.allocate(capacity: f.count)
            p.initialize(from: f, count: f.count)
            return p
        }
        defer { copies.forEach { $0.deallocate() } }
        var data: [UnsafePointer<UInt8>?] = copies.map { UnsafePointer($0) }
        var seg = burst.map { UInt16($0.count) }
        var len = burst.map { UInt32($0.count) }
        _ = path.process(count: burst.count, data: &data, segmentLengths: &seg, packetLengths: &len, now: 2)
        #expect((0..<4).map { path.verdicts[$0] } == [.discard, .discard, .forward, .forward])
        #expect(path.eventRule == nil)
        #expect(path.table.count > 0)
        #expect(stats.pointee.duplicatesDropped == 7)
    }

    @Test func theSourceAfterItsMarkerDropsWhatTheSwitchStillCopies() throws {
        let (path, frames, stats) = Self.setUp()
        defer { stats.deallocate() }
        _ = path.perform(.events(EventRule(filter: Self.filter, action: .discard, moveID: 7)))
        for f in frames.prefix(10) { #expect(RedirectTests.verdict(path, f) == .discard) }
        #expect(RedirectTests.verdict(path, InBandControl.frame(for: Self.filter, moveID: 7)) == .discard)
        #expect(stats.pointee.duplicatesDropped == 10)
        #expect(stats.pointee.markers == 1)
        #expect(path.table.count == 0)
        // Traffic outside the filter goes on.
        let other = FastPathTests.frames.map { $0.bytes }.first {
            RedirectTests.key($0).map { !Self.filter.matches($0) } ?? false
        }!
        #expect(RedirectTests.verdict(path, other) == .forward)
    }

    /// The source of an order-preserving Move sends a request to reflect its IBC back out as it
    /// came, before its cut and after it, without taking it for the cut or tracking it; a
    /// request for another Move, or at a destination, is dropped and no cut either.
    @Test func onlyTheSourceReflectsItsMovesRequests() throws {
        let (path, frames, stats) = Self.setUp()
        defer { stats.deallocate() }
        let request = InBandControl.reflectRequest(InBandControl.frame(for: Self.filter, moveID: 7), vlan: 3901)
        let untagged = InBandControl.reflectRequest(InBandControl.frame(for: Self.filter, moveID: 7), vlan: nil)
        // At the destination (the gate): dropped, the gate still shut.
        #expect(RedirectTests.verdict(path, request) == .discard)
        #expect(path.eventRule?.markerSeen == false)
        _ = path.perform(.events(EventRule(filter: Self.filter, action: .redirect, moveID: 7, ordered: true)))
        for r in [request, untagged] { #expect(RedirectTests.verdict(path, r) == .pass) }
        #expect(path.eventRule?.markerSeen == false)
        #expect(path.table.count == 0)
        #expect(
            RedirectTests.verdict(
                path, InBandControl.reflectRequest(InBandControl.frame(for: Self.filter, moveID: 8), vlan: nil))
                == .discard)
        // The reflected copy is the cut; requests still go back out after it.
        #expect(RedirectTests.verdict(path, InBandControl.frame(for: Self.filter, moveID: 7)) == .redirect)
        #expect(path.eventRule?.markerSeen == true)
        #expect(RedirectTests.verdict(path, request) == .pass)
        #expect(RedirectTests.verdict(path, frames[0]) == .discard)
        // Under an LF redirect no request is reflected.
        _ = path.perform(.events(EventRule(filter: Self.filter, action: .redirect, moveID: 7)))
        #expect(RedirectTests.verdict(path, request) != .pass)
    }
}
