import Atomics
import DistFlow
import DistMove
import DistPacket
import DistPipeline
import DistState
import Foundation
import Testing

/// The worker's per-packet pipeline on the project's trace, fed in bursts from memory.
@Suite struct FastPathTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let frames: [PcapFile.Frame] = {
        let data = (try? Data(contentsOf: root.appendingPathComponent("traces/mix-a.pcap"))) ?? Data()
        return (try? PcapFile(bytes: [UInt8](data)).frames) ?? []
    }()

    /// Runs `frames` through a FastPath in bursts of `burst`; returns it and its counters.
    static func run(
        _ frames: [PcapFile.Frame], burst: Int, capacity: Int = 1 << 16,
        prepare: (FlowTable) -> Void = { _ in }
    ) -> (FastPath, WorkerStats) {
        let stats = UnsafeMutablePointer<WorkerStats>.allocate(capacity: 1)
        stats.initialize(to: WorkerStats())
        defer { stats.deallocate() }
        let table = FlowTable(capacity: capacity)
        prepare(table)
        let path = FastPath(table: table, stats: stats, maxBurst: 64)
        let storage = frames.map { $0.bytes }
        var i = 0
        var now: UInt64 = 1_000_000_000
        while i < storage.count {
            let n = min(burst, storage.count - i)
            let buffers = (0..<n).map { j in
                UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(1, storage[i + j].count))
            }
            defer { buffers.forEach { $0.deallocate() } }
            var data: [UnsafePointer<UInt8>?] = []
            var segments: [UInt16] = []
            var lengths: [UInt32] = []
            for j in 0..<n {
                _ = buffers[j].initialize(from: storage[i + j])
                data.append(UnsafePointer(buffers[j].baseAddress))
                segments.append(UInt16(storage[i + j].count))
                lengths.append(UInt32(storage[i + j].count))
            }
            path.process(count: n, data: data, segmentLengths: segments, packetLengths: lengths, now: now)
            path.housekeeping(now: now, expiryBudget: 0)
            now += 1000
            i += n
        }
        return (path, stats.pointee)
    }

    /// The fast path reads its event rule every burst: a rule (its filter's prefixes among it)
    /// holds no reference, so reading it costs no reference counting, and prefixes still print
    /// as written.
    @Test func anEventRuleCopiesAsPlainBytes() throws {
        #expect(_isPOD(EventRule.self) && _isPOD(FlowFilter.self) && _isPOD(IPPrefix.self))
        let filter = try FlowFilter(parsing: "nw_src=198.18.0.0/15,nw_dst=2001:db8::1")
        #expect(filter.description == "nw_src=198.18.0.0/15,nw_dst=2001:db8::1")
    }

    @Test func burstsCountEveryFrameAndTrackEveryFlow() throws {
        try #require(Self.frames.count == 54_981)
        let (path, stats) = Self.run(Self.frames, burst: 32)
        #expect(stats.rxPackets == 54_981)
        #expect(stats.bursts == UInt64((54_981 + 31) / 32))
        var issues: UInt64 = 0
        for i in 0..<32 { issues += stats.issues[i] }
        #expect(issues == 54_981)
        #expect(stats.l3[Int(L3Kind.ipv4.rawValue)] + stats.l3[Int(L3Kind.ipv6.rawValue)] == 54_417)
        #expect(path.table.count == 5_523 && stats.flows.created == 5_523 && stats.activeFlows == 5_523)
    }

    @Test func burstSizeDoesNotChangeTheState() {
        // The prefetching three-pass burst must leave exactly the state packet-at-a-time tracking does.
        let sample = Array(Self.frames.prefix(6000))
        let (single, _) = Self.run(sample, burst: 1)
        let (bursts, _) = Self.run(sample, burst: 64)
        var a: [FlowKey: FlowEntry] = [:]
        var b: [FlowKey: FlowEntry] = [:]
        single.table.forEach { _, e in
            a[e.key] = e
            return true
        }
        bursts.table.forEach { _, e in
            b[e.key] = e
            return true
        }
        #expect(a.count == b.count && a.count > 100)
        for (key, e) in a {
            guard let f = b[key] else {
                Issue.record("flow \(key) missing")
                continue
            }
            #expect(e.packetsToServer == f.packetsToServer && e.packetsToClient == f.packetsToClient)
            #expect(e.bytesToServer == f.bytesToServer && e.bytesToClient == f.bytesToClient)
            #expect(e.tcpState == f.tcpState && e.clientIsLo == f.clientIsLo)
        }
    }

    @Test func aFullTableStillCountsEveryFrame() {
        let (path, stats) = Self.run(Array(Self.frames.prefix(5000)), burst: 32, capacity: 100)
        #expect(path.table.count == 100)
        #expect(stats.flows.tableFull > 0)
        #expect(stats.rxPackets == 5000)
    }
}

/// Event rules on the fast path: matching packets are raised, and dropped, held or processed.
@Suite struct FastPathEventTests {
    static func run(_ rule: EventRule?) throws -> (FastPath, raised: Int, held: Int, forwarded: Int) {
        let frames = Array(FastPathTests.frames.prefix(4000))
        let stats = UnsafeMutablePointer<WorkerStats>.allocate(capacity: 1)
        stats.initialize(to: WorkerStats())
        let path = FastPath(table: FlowTable(capacity: 1 << 14), stats: stats)
        path.eventRule = rule
        var raised = 0
        var held = 0
        var forwarded = 0
        for frame in frames {
            frame.bytes.withUnsafeBufferPointer { buffer in
                var data: [UnsafePointer<UInt8>?] = [buffer.baseAddress]
                var seg = [UInt16(frame.bytes.count)]
                var len = [frame.originalLength]
                _ = path.process(count: 1, data: &data, segmentLengths: &seg, packetLengths: &len, now: 1)
                switch path.verdicts[0] {
                case .forward: forwarded += 1
                case .raiseAndDrop: raised += 1
                case .raiseAndHold: held += 1
                case .raiseAndForward:
                    raised += 1
                    forwarded += 1
                case .divert, .redirect, .hold, .discard, .handoff, .pass:
                    Issue.record("no channel, no DiST rule and one worker here")
                }
            }
        }
        return (path, raised, held, forwarded)
    }

    @Test func droppedAndHeldPacketsLeaveStateAloneProcessedOnesDoNot() throws {
        let filter = try FlowFilter(parsing: "nw_src=192.168.1.0/24")
        let plain = try Self.run(nil)
        let dropped = try Self.run(EventRule(filter: filter, action: .drop))
        let buffered = try Self.run(EventRule(filter: filter, action: .buffer))
        let processed = try Self.run(EventRule(filter: filter, action: .process))
        #expect(plain.raised == 0 && plain.forwarded == 4000)
        #expect(dropped.raised > 100 && dropped.raised + dropped.forwarded == 4000 && dropped.held == 0)
        #expect(buffered.held == dropped.raised && buffered.forwarded == dropped.forwarded)
        #expect(processed.raised == dropped.raised && processed.forwarded == 4000)
        // No flow of the filter is in the table when its packets were raised and not processed.
        var matching = 0
        dropped.0.table.forEach { _, e in
            if filter.matches(e.key) { matching += 1 }
            return true
        }
        #expect(matching == 0)
        #expect(processed.0.table.count == plain.0.table.count)
        #expect(dropped.0.table.count < plain.0.table.count)
    }

    static func key(_ frame: PcapFile.Frame) -> FlowKey? {
        var info = PacketInfo()
        frame.bytes.withUnsafeBytes { PacketParser.parse($0.baseAddress!, length: $0.count, into: &info) }
        return info.hasFlow ? FlowKey.canonical(info).0 : nil
    }

    /// Late locking: flows present and not exported keep being processed here; an export with
    /// a lock raises their packets from then on; a flow with no state here is raised at once;
    /// removing the rule gives locked flows back.
    @Test func lateLockingRaisesOnlyLockedOrUnknownFlows() throws {
        let filter = try FlowFilter(parsing: "nw_src=192.168.1.0/24")
        let frames = Array(FastPathTests.frames.prefix(4000))
        let stats = UnsafeMutablePointer<WorkerStats>.allocate(capacity: 1)
        defer { stats.deallocate() }
        stats.initialize(to: WorkerStats())
        let path = FastPath(table: FlowTable(capacity: 1 << 14), stats: stats)
        path.process(frames: Array(frames.prefix(2000)))
        var known = 0
        path.table.forEach { _, e in
            if filter.matches(e.key) { known += 1 }
            return true
        }
        #expect(known > 0)
        _ = path.perform(.events(EventRule(filter: filter, action: .drop, lateLocking: true)))
        func raised(_ part: ArraySlice<PcapFile.Frame>) -> (raised: Int, ofKnown: Int) {
            var raised = 0
            var ofKnown = 0
            for frame in part {
                let known = Self.key(frame).map { path.table.find($0) != nil } ?? false
                frame.bytes.withUnsafeBufferPointer { buffer in
                    var data: [UnsafePointer<UInt8>?] = [buffer.baseAddress]
                    var seg = [UInt16(frame.bytes.count)]
                    var len = [frame.originalLength]
                    _ = path.process(count: 1, data: &data, segmentLengths: &seg, packetLengths: &len, now: 2)
                    if path.verdicts[0] == .raiseAndDrop {
                        raised += 1
                        if known { ofKnown += 1 }
                    }
                }
            }
            return (raised, ofKnown)
        }
        // Before the export: packets of flows known here are processed, not raised...
        let matchingKnown = frames[0..<1000].filter { f in Self.key(f).map { filter.matches($0) } ?? false }.count
        #expect(matchingKnown > 0)
        #expect(raised(frames[0..<1000]).raised == 0)
        // ...and only those of flows unknown here are.
        let before = raised(frames[2000..<3000])
        #expect(before.ofKnown == 0)
        guard case .flows(let exported) = path.perform(.exportFlows(filter, lock: true)) else {
            Issue.record("no flows")
            return
        }
        #expect(exported.count == known)
        var locked = 0
        path.table.forEach { i, e in
            if filter.matches(e.key) && path.table.mark(at: i) == .moving { locked += 1 }
            return true
        }
        #expect(locked == known)
        // After it: every packet of the filter is raised.
        let after = raised(frames[0..<1000])
        #expect(after.raised == matchingKnown && after.ofKnown == matchingKnown)
        // The rule goes without the state being deleted: the flows are this instance's again.
        _ = path.perform(.events(nil))
        var stillLocked = 0
        path.table.forEach { i, _ in
            if path.table.mark(at: i) != .normal { stillLocked += 1 }
            return true
        }
        #expect(stillLocked == 0)
    }
}

/// DiST's verdicts: channel frames for this instance go to the transfer lcore untouched; under
/// a redirect rule, packets of flows marked moving (and of flows unknown here) go to the peer,
/// the others are processed here; nothing expires while flows move out.
@Suite struct RedirectTests {
    static func key(_ frame: [UInt8]) -> FlowKey? {
        let info = PacketParser.parse(frame)
        return info.hasFlow ? FlowKey.canonical(info).0 : nil
    }

    static func verdict(_ path: FastPath, _ frame: [UInt8], now: UInt64 = 2) -> FastPath.Verdict {
        frame.withUnsafeBufferPointer { buffer in
            var data: [UnsafePointer<UInt8>?] = [buffer.baseAddress]
            var seg = [UInt16(frame.count)]
            var len = [UInt32(frame.count)]
            _ = path.process(count: 1, data: &data, segmentLengths: &seg, packetLengths: &len, now: now)
            return path.verdicts[0]
        }
    }

    @Test func channelFramesAndMovingFlowsLeaveTheNetworkFunctionAlone() throws {
        let filter = try FlowFilter(parsing: "nw_src=192.168.1.0/24")
        let frames = Array(FastPathTests.frames.prefix(3000)).map { $0.bytes }
        let stats = UnsafeMutablePointer<WorkerStats>.allocate(capacity: 1)
        defer { stats.deallocate() }
        stats.initialize(to: WorkerStats())
        let path = FastPath(table: FlowTable(capacity: 1 << 14), stats: stats)
        for f in frames.prefix(1500) { _ = Self.verdict(path, f) }
        // A UDP datagram to the channel's address and port: diverted, not tracked.
        var udp = frames.first {
            let info = PacketParser.parse($0)
            return info.l4 == .udp && info.tunnel == .none
        }!
        let info = PacketParser.parse(udp)
        path.channel = (info.dst, info.dstPort)
        let flows = path.table.count
        #expect(Self.verdict(path, udp) == .divert)
        udp[Int(info.l4Offset) + 3] ^= 1  // another port: ordinary traffic
        #expect(Self.verdict(path, udp) != .divert)
        path.channel = nil
        #expect(path.table.count >= flows)

        guard case .located(let located, _) = path.perform(.locate(filter, from: 0, limit: .max)) else {
            Issue.record("no answer")
            return
        }
        #expect(!located.isEmpty)
        _ = path.perform(.events(EventRule(filter: filter, action: .redirect, lateLocking: true)))
        let known = located[0]
        let ofKnown = frames.filter { Self.key($0) == known.key }
        #expect(!ofKnown.isEmpty)
        let before = path.table.entry(at: known.index)
        // Unmarked: processed here. Marked: redirected, its state frozen.
        #expect(Self.verdict(path, ofKnown[0]) == .forward)
        #expect(path.table.transitionMark(at: known.index, from: .normal, to: .moving))
        let frozen = path.table.entry(at: known.index)
        for f in ofKnown { #expect(Self.verdict(path, f) == .redirect) }
        #expect(
            path.table.entry(at: known.index).packetsToServer + path.table.entry(at: known.index).packetsToClient
                == frozen.packetsToServer + frozen.packetsToClient)
        #expect(frozen.packetsToServer + frozen.packetsToClient > before.packetsToServer + before.packetsToClient)
        // A flow of the filter this instance never saw starts at the peer.
        let unknown = frames.suffix(1500).first { f in
            Self.key(f).map { filter.matches($0) && path.table.find($0) == nil } ?? false
        }
        if let unknown { #expect(Self.verdict(path, unknown) == .redirect) }
        // Nothing expires under the rule, even far past every timeout.
        let count = path.table.count
        path.housekeeping(now: 1 << 62, expiryBudget: 1 << 20)
        #expect(path.table.count == count)
        // The rule goes: the marked flow is this instance's again.
        _ = path.perform(.events(nil))
        #expect(path.table.mark(at: known.index) == .normal)
        #expect(Self.verdict(path, ofKnown[0]) == .forward)
    }
}

/// A split Move's parts: the filter's flows by sub-prefix, counted where their address within
/// the filter's prefix falls.
@Suite struct FlowGroupTests {
    @Test func groupsCoverEveryFlowOfTheFilterOnce() throws {
        let (path, _) = FastPathTests.run(FastPathTests.frames, burst: 32)
        let store = PipelineStateStore(path)
        let filter = try FlowFilter(parsing: "nw_src=192.168.0.0/16")
        let groups = try store.flowGroups(filter, length: 96 + 24)
        guard case .located(let flows, _) = path.perform(.locate(filter, from: 0, limit: .max)) else {
            Issue.record("no answer")
            return
        }
        #expect(groups.count > 1)
        #expect(groups.reduce(0) { $0 + $1.flows } == flows.count)
        #expect(
            groups.allSatisfy {
                $0.prefix.length == 120 && $0.prefix.text.hasSuffix("/24") && $0.prefix.text.hasPrefix("192.168.")
            })
        #expect(groups.map { $0.prefix.address } == groups.map { $0.prefix.address }.sorted())
        // Each flow is in the part holding its address within 192.168.0.0/16.
        for g in groups {
            let part = try FlowFilter(parsing: "nw_src=\(g.prefix.text)")
            guard case .located(let inPart, _) = path.perform(.locate(part, from: 0, limit: .max)) else { continue }
            #expect(inPart.count >= g.flows)
        }
        #expect(throws: StateStoreError.self) {
            try store.flowGroups(FlowFilter(parsing: "nw_src=10.0.0.0/8,tp_dst=80"), length: 112)
        }
        #expect(throws: StateStoreError.self) { try store.flowGroups(filter, length: 104) }
    }

    @Test func aPrefixCoveringAnAddressIsCanonical() {
        let a = IPAddress(text: "10.1.2.3")!
        #expect(IPPrefix(covering: a, length: 96 + 16).text == "10.1.0.0/16")
        #expect(IPPrefix(covering: a, length: 96 + 16).contains(IPAddress(text: "10.1.255.1")!))
        #expect(!IPPrefix(covering: a, length: 96 + 16).contains(IPAddress(text: "10.2.0.1")!))
        #expect(IPPrefix(covering: IPAddress(text: "2001:db8:1:2::5")!, length: 48).text == "2001:db8:1::/48")
    }
}

/// All-flows state leaving with a Move: the counters as the Move began go, what came since stays.
@Suite struct CounterExportTests {
    @Test func exportedCountersNoLongerCountHere() {
        var total = InstanceCounters()
        total.packets = 100
        let store = PipelineStateStore(workers: 0, perform: { _, _ in nil }, totals: { total })
        let snapshot = store.exportCounters()
        #expect(snapshot.packets == 100)
        total.packets = 130
        store.exportedCounters(snapshot)
        #expect(store.exportCounters().packets == 30)
        var brought = InstanceCounters()
        brought.packets = 7
        store.importCounters(brought)
        #expect(store.exportCounters().packets == 37)
    }
}

/// The destination of a Move given up forgets exactly the flows it had imported.
@Suite struct ForgetFlowsTests {
    @Test func onlyTheNamedFlowsGo() {
        let (path, _) = FastPathTests.run(Array(FastPathTests.frames.prefix(2000)), burst: 32)
        guard case .flows(let all) = path.perform(.flows(limit: 1 << 20)) else {
            Issue.record("no answer")
            return
        }
        let doomed = all.prefix(5).map { $0.key }
        let unknown = FlowKey(
            loAddr: IPAddress(text: "198.18.0.1")!, hiAddr: IPAddress(text: "198.18.0.2")!, loPort: 1, hiPort: 2,
            proto: 17, vlanKey: 0)
        guard case .count(let n) = path.perform(.forgetFlows(doomed + [unknown])) else {
            Issue.record("no answer")
            return
        }
        #expect(n == 5)
        #expect(doomed.allSatisfy { path.table.find($0) == nil })
        #expect(path.table.count == all.count - 5)
    }
}
