import DistFlow
import DistMove
import DistPacket
import DistPipeline
import DistState
import Testing

/// Several workers of one instance: each flow's state lives at its owner whichever worker
/// receives its packets (worker handoff), and an order-preserving Move cuts each receiving
/// queue at its own copy of the in-band control packet.
@Suite struct HandoffTests {
    /// Workers of one instance, each with its fast path, joined by the handoff rings.
    final class Instance {
        let paths: [FastPath]
        let stats: [UnsafeMutablePointer<WorkerStats>]
        let links: [HandoffLinks<HandoffPacket>]
        let ownership: FlowOwnership
        /// Every frame received, where it stays: an owner reads a handed-off frame's bytes after
        /// its receiver is done with it.
        var buffers: [UnsafeMutableBufferPointer<UInt8>] = []

        init(workers: Int, ringCapacity: Int = 64) {
            let stats = (0..<workers).map { _ in
                let s = UnsafeMutablePointer<WorkerStats>.allocate(capacity: 1)
                s.initialize(to: WorkerStats())
                return s
            }
            self.stats = stats
            ownership = FlowOwnership(workers: workers)
            let links = HandoffLinks<HandoffPacket>.mesh(workers: workers, capacity: ringCapacity)
            self.links = links
            paths = (0..<workers).map { i in
                let p = FastPath(table: FlowTable(capacity: 1 << 14), stats: stats[i])
                p.ownership = FlowOwnership(workers: workers)
                p.index = i
                p.handoff = links[i]
                return p
            }
        }

        deinit {
            stats.forEach { $0.deallocate() }
            buffers.forEach { $0.deallocate() }
        }

        /// `frame` arrives at worker `w`: its verdict there, and (for a handoff) the packet's
        /// verdict at the owner, which takes it at once.
        @discardableResult
        func receive(_ frame: [UInt8], at w: Int, now: UInt64 = 2) -> FastPath.Verdict {
            let v = burst([frame], at: w, now: now)[0]
            guard v == .handoff else { return v }
            return takeHandoffs(at: ownership.owner(of: RedirectTests.key(frame)!), now: now).last ?? .forward
        }

        /// `frames` arrive at worker `w` as one burst, which then flushes its handoffs; their
        /// verdicts there.
        func burst(_ frames: [[UInt8]], at w: Int, now: UInt64 = 2) -> [FastPath.Verdict] {
            var data: [UnsafePointer<UInt8>?] = []
            for frame in frames {
                let b = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: frame.count)
                _ = b.initialize(from: frame)
                buffers.append(b)
                data.append(UnsafePointer(b.baseAddress))
            }
            var seg = frames.map { UInt16($0.count) }
            var len = frames.map { UInt32($0.count) }
            paths[w].process(count: frames.count, data: &data, segmentLengths: &seg, packetLengths: &len, now: now)
            links[w].flush(stats: stats[w])
            return (0..<frames.count).map { paths[w].verdicts[$0] }
        }

        /// Worker `w` takes what the others handed it, one packet at a time; their verdicts, and
        /// the frames as it found them.
        @discardableResult
        func takeHandoffs(at w: Int, now: UInt64 = 2) -> [FastPath.Verdict] {
            taken(at: w, now: now).map(\.verdict)
        }

        func taken(at w: Int, now: UInt64 = 2) -> [(verdict: FastPath.Verdict, frame: [UInt8])] {
            var out: [(FastPath.Verdict, [UInt8])] = []
            for ring in links[w].incoming {
                while true {
                    let (items, n) = ring.peek(limit: 64)
                    if n == 0 { break }
                    for k in 0..<n {
                        paths[w].processHandedOff(items + k, count: 1, now: now)
                        out.append(
                            (
                                paths[w].verdicts[0],
                                Array(UnsafeBufferPointer(start: items[k].frame, count: Int(items[k].segmentLength)))
                            ))
                    }
                    ring.consume(n)
                }
            }
            return out
        }

        var flows: [FlowKey: (worker: Int, entry: FlowEntry)] {
            var out: [FlowKey: (Int, FlowEntry)] = [:]
            for (w, p) in paths.enumerated() {
                p.table.forEach { _, e in
                    #expect(out[e.key] == nil, "flow \(e.key) at two workers")
                    out[e.key] = (w, e)
                    return true
                }
            }
            return out
        }
    }

    static let frames = Array(FastPathTests.frames.prefix(8000)).map { $0.bytes }

    @Test func framesOfOneFlowArrivingAtTwoWorkersKeepOneState() throws {
        // Every other frame at each worker (a flow's packets on both queues, the worst a port
        // can do): each flow is at its owner only, with the state one worker would have.
        let two = Instance(workers: 2)
        for (i, f) in Self.frames.enumerated() { two.receive(f, at: i % 2, now: UInt64(1_000 + i)) }
        let one = Instance(workers: 1)
        for (i, f) in Self.frames.enumerated() { one.receive(f, at: 0, now: UInt64(1_000 + i)) }
        let a = one.flows
        let b = two.flows
        #expect(a.count == b.count && a.count > 500)
        let ownership = FlowOwnership(workers: 2)
        var atEach = [0, 0]
        for (key, single) in a {
            guard let (w, e) = b[key] else {
                Issue.record("flow \(key) missing")
                continue
            }
            atEach[w] += 1
            #expect(w == ownership.owner(of: key))
            #expect(
                e.packetsToServer == single.entry.packetsToServer && e.packetsToClient == single.entry.packetsToClient)
            #expect(e.bytesToServer == single.entry.bytesToServer && e.tcpState == single.entry.tcpState)
            #expect(e.clientIsLo == single.entry.clientIsLo && e.lastSeen == single.entry.lastSeen)
        }
        #expect(atEach.allSatisfy { $0 > a.count / 4 }, "\(atEach)")
        // Received once, counted once where received; handed off and taken in alike.
        let s = two.stats.map { $0.pointee }
        #expect(s[0].rxPackets + s[1].rxPackets == UInt64(Self.frames.count))
        #expect(s[0].handedOff == s[1].handoffReceived && s[1].handedOff == s[0].handoffReceived)
        #expect(s[0].handedOff > 1000 && s[1].handedOff > 1000)
        #expect(s[0].handoffRingFull == 0 && s[1].handoffRingFull == 0)
    }

    /// The key the fast path makes of a frame's flow (a tunnelled flow's included).
    static func probeKey(_ frame: [UInt8]) -> FlowKey {
        frame.withUnsafeBufferPointer { b in
            var info = PacketInfo()
            PacketParser.parse(UnsafeRawPointer(b.baseAddress!), length: b.count, into: &info)
            return FlowProbe(info, frame: b.baseAddress!, seed: 0).key
        }
    }

    @Test func aBurstForSeveralOwnersReachesEachInOrder() throws {
        // Four workers, every frame received by worker 0 in bursts of 32, so that one burst
        // stages packets for three owners: each owner takes exactly its flows' frames, in the
        // order received, and keeps the state one worker would.
        let four = Instance(workers: 4)
        var expected: [[[UInt8]]] = Array(repeating: [], count: 4)
        var taken: [[[UInt8]]] = Array(repeating: [], count: 4)
        var start = 0
        while start < Self.frames.count {
            let burst = Array(Self.frames[start..<min(start + 32, Self.frames.count)])
            let verdicts = four.burst(burst, at: 0, now: UInt64(1_000 + start))
            for (frame, verdict) in zip(burst, verdicts) where verdict == .handoff {
                expected[four.ownership.owner(of: Self.probeKey(frame))].append(frame)
            }
            for w in 1..<4 { taken[w] += four.taken(at: w, now: UInt64(1_000 + start)).map(\.frame) }
            start += 32
        }
        for w in 1..<4 {
            #expect(taken[w].count > 500 && taken[w] == expected[w], "worker \(w)")
        }
        #expect(four.stats[0].pointee.handoffRingFull == 0)
        let one = Instance(workers: 1)
        start = 0
        while start < Self.frames.count {
            _ = one.burst(
                Array(Self.frames[start..<min(start + 32, Self.frames.count)]), at: 0, now: UInt64(1_000 + start))
            start += 32
        }
        let a = one.flows
        let b = four.flows
        #expect(a.count == b.count)
        for (key, single) in a {
            let e = try #require(b[key]?.entry)
            #expect(e.packetsToServer == single.entry.packetsToServer && e.bytesToClient == single.entry.bytesToClient)
        }
    }

    @Test func aFullHandoffRingIsCountedAndTouchesNoState() throws {
        let two = Instance(workers: 2, ringCapacity: 4)
        let theirs = Self.frames.filter { RedirectTests.key($0).map { two.ownership.owner(of: $0) == 1 } ?? false }
        // One burst of ten for a ring of four: four go, six are dropped and counted.
        let verdicts = two.burst(Array(theirs.prefix(10)), at: 0)
        #expect(verdicts == Array(repeating: .handoff, count: 4) + Array(repeating: .discard, count: 6))
        #expect(two.stats[0].pointee.handedOff == 4 && two.stats[0].pointee.handoffRingFull == 6)
        #expect(two.paths[0].table.count == 0 && two.paths[1].table.count == 0)
        // The owner takes them in the order they were handed off, with their bytes; then there
        // is room again.
        let taken = two.taken(at: 1)
        #expect(taken.map(\.frame) == Array(theirs.prefix(4)))
        #expect(taken.allSatisfy { $0.verdict == .forward })
        #expect(two.links[1].incoming[0].isEmpty)
        #expect(two.receive(theirs[4], at: 0) == .forward)
        #expect(two.stats[0].pointee.handedOff == 5 && two.stats[1].pointee.handoffReceived == 5)
    }

    @Test func theRingHandsItemsOverInOrderAcrossItsEnd() {
        // A ring of 8 filled and emptied unevenly, so runs wrap around its storage: every item
        // comes out once, in order; a full ring takes nothing until the consumer frees slots.
        let ring = HandoffRing<Int>(capacity: 8)
        var next = 0
        var expected = 0
        for round in 0..<50 {
            let add = round % 7 + 1
            for _ in 0..<add where ring.stage(next) { next += 1 }
            ring.publish()
            Self.consume(ring, upTo: round % 5 + 1, expecting: &expected)
        }
        #expect(expected > 50 && next - expected <= 8)
        while ring.stage(-1) {}
        #expect(!ring.stage(-1))
        ring.publish()
        var queued = 0
        while case (_, let n) = ring.peek(limit: 16), n > 0 {
            ring.consume(n)
            queued += n
        }
        #expect(queued == 8)
    }

    /// Takes up to `want` items off `ring` (in as many runs as its storage's end makes), each
    /// expected to be the next number; returns how many it took.
    @discardableResult
    static func consume(_ ring: HandoffRing<Int>, upTo want: Int, expecting expected: inout Int) -> Int {
        var taken = 0
        while taken < want {
            let (items, n) = ring.peek(limit: want - taken)
            if n == 0 { break }
            for k in 0..<n {
                #expect(items[k] == expected)
                expected += 1
            }
            ring.consume(n)
            taken += n
        }
        return taken
    }

    @Test func aWindowFillsTheRingInOrderAcrossItsEnd() {
        // A burst's window on a ring of 8: it gives slots until the ring is full (queued and
        // staged together), takes the consumer's frees into account when it opens, and what is
        // written through it comes out once, in order, across the end of the storage.
        let ring = HandoffRing<Int>(capacity: 8)
        var next = 0
        var expected = 0
        var queued = 0
        for round in 0..<60 {
            let add = round % 9 + 1
            var window = ring.window(wanted: add)
            var given = 0
            while given < add, let slot = window.take() {
                slot.initialize(to: next)
                next += 1
                given += 1
            }
            #expect(given == min(add, 8 - queued), "round \(round): only a full ring refuses")
            ring.commit(window)
            ring.publish()
            queued += given
            queued -= Self.consume(ring, upTo: round % 4 + 1, expecting: &expected)
        }
        #expect(expected > 60 && next - expected == queued)
    }

    @Test func theOwnerVisitsOnlyRingsThatHoldPackets() {
        // Three workers; worker 2 is handed items by worker 0 alone. The owner's round visits
        // that ring only, and says whether any held packets and whether more than were taken.
        let links = HandoffLinks<Int>.mesh(workers: 3, capacity: 8)
        var visited: [ObjectIdentifier] = []
        #expect(
            links[2].forEachPending { _ in
                Issue.record("an empty ring visited")
                return false
            } == (false, false))
        #expect(links[0].stage(7, to: 2) && links[0].stage(8, to: 2))
        let stats = UnsafeMutablePointer<WorkerStats>.allocate(capacity: 1)
        defer { stats.deallocate() }
        stats.initialize(to: WorkerStats())
        links[0].flush(stats: stats)
        let fromZero = links[2].incoming[0]
        let (any, more) = links[2].forEachPending { ring in
            visited.append(ObjectIdentifier(ring))
            let (items, n) = ring.peek(limit: 1)
            #expect(n == 1 && items[0] == 7)
            ring.consume(n)
            return true
        }
        #expect(any && more && visited == [ObjectIdentifier(fromZero)])
        // One item left: visited again, and nothing said more waited this time.
        #expect(links[2].forEachPending { $0.peek(limit: 4).count == 4 } == (true, false))
    }

    static let filter = try! FlowFilter(parsing: "nw_src=192.168.1.0/24")

    /// The filter's frames, split by owner under two workers.
    static func filterFrames() -> (mine: [[UInt8]], theirs: [[UInt8]]) {
        let ownership = FlowOwnership(workers: 2)
        let all = FastPathTests.frames.map { $0.bytes }.filter { RedirectTests.key($0).map(filter.matches) ?? false }
        return (
            all.filter { ownership.owner(of: RedirectTests.key($0)!) == 0 },
            all.filter { ownership.owner(of: RedirectTests.key($0)!) == 1 }
        )
    }

    @Test func eachQueueOfAnOrderPreservingDestinationIsCutAtItsOwnMarker() throws {
        let two = Instance(workers: 2)
        let (mine, theirs) = Self.filterFrames()
        try #require(mine.count > 20 && theirs.count > 20)
        for p in two.paths { _ = p.perform(.events(EventRule(filter: Self.filter, action: .gate, moveID: 7))) }
        let marker = InBandControl.frame(for: Self.filter, moveID: 7)
        // Queue 0 has its copy of the IBC; queue 1 not yet: what queue 1 gets are copies still.
        #expect(two.receive(marker, at: 0) == .discard)
        #expect(two.receive(theirs[0], at: 1) == .discard)
        #expect(two.receive(mine[0], at: 1) == .discard)
        // Past queue 0's cut: held at the owner, whichever worker that is.
        #expect(two.receive(theirs[1], at: 0) == .hold)
        #expect(two.receive(mine[1], at: 0) == .hold)
        // Queue 1's copy: from now on its packets wait at their owners too.
        #expect(two.receive(marker, at: 1) == .discard)
        #expect(two.receive(mine[2], at: 1) == .hold)
        #expect(two.receive(theirs[2], at: 1) == .hold)
        #expect(two.paths.allSatisfy { $0.table.count == 0 })
        // The source's end reaches both: the gates go and every packet is processed.
        #expect(two.paths[0].sourceEnded(moveID: 7) && two.paths[1].sourceEnded(moveID: 7))
        #expect(two.paths[0].eventRule == nil && two.paths[1].eventRule == nil)
        #expect(two.receive(theirs[3], at: 0) == .forward)
        #expect(two.paths[1].table.count == 1 && two.paths[0].table.count == 0)
        #expect(two.stats[1].pointee.duplicatesDropped == 2 && two.stats[0].pointee.markers == 1)
    }

    @Test func aDestinationWorkerWhoseSourceEndedBeforeItsMarkerReleasesWhatOthersHandedIt() throws {
        let two = Instance(workers: 2)
        let (_, theirs) = Self.filterFrames()
        for p in two.paths { _ = p.perform(.events(EventRule(filter: Self.filter, action: .gate, moveID: 7))) }
        let marker = InBandControl.frame(for: Self.filter, moveID: 7)
        #expect(two.receive(marker, at: 0) == .discard)
        #expect(two.receive(theirs[0], at: 0) == .hold)
        // Worker 1 held a packet queue 0 handed it; its own queue's copy has not come.
        #expect(two.paths[1].sourceEnded(moveID: 7) == true)
        #expect(two.paths[1].eventRule?.sourceEnded == true)
        #expect(!(two.paths[1].eventRule?.holds ?? true))
        // Its own queue's copies are still dropped until its marker; handed-off packets go on.
        #expect(two.receive(theirs[1], at: 1) == .discard)
        #expect(two.receive(theirs[2], at: 0) == .forward)
        #expect(two.receive(marker, at: 1) == .discard)
        #expect(two.paths[1].eventRule == nil)
        #expect(two.receive(theirs[3], at: 1) == .forward)
    }

    @Test func anOrderPreservingSourceDropsCopiesPerQueueAfterItsMarker() throws {
        let two = Instance(workers: 2)
        let (mine, theirs) = Self.filterFrames()
        let rule = EventRule(filter: Self.filter, action: .redirect, lateLocking: true, moveID: 9, ordered: true)
        for p in two.paths { _ = p.perform(.events(rule)) }
        let marker = InBandControl.frame(for: Self.filter, moveID: 9)
        // Unknown flows are redirected by their owner before the cut.
        #expect(two.receive(theirs[0], at: 0) == .redirect)
        // The marker goes to the transfer lcore from the queue that got it.
        #expect(two.receive(marker, at: 0) == .redirect)
        #expect(two.receive(theirs[1], at: 0) == .discard)
        #expect(two.receive(mine[1], at: 0) == .discard)
        // Queue 1 is not cut yet.
        #expect(two.receive(mine[2], at: 1) == .redirect)
        #expect(two.receive(marker, at: 1) == .redirect)
        #expect(two.receive(mine[3], at: 1) == .discard)
        #expect(two.stats[0].pointee.duplicatesDropped == 2 && two.stats[1].pointee.duplicatesDropped == 1)
    }

    @Test func ibcCopiesReachEveryOwnerOfEveryInstance() {
        for workers in [[1, 2], [2, 2], [3, 2], [4, 1]] {
            let frames = InBandControl.frames(for: Self.filter, moveID: 3, workers: workers)
            #expect(frames.count >= 16 * workers.max()!)
            for w in workers {
                let ownership = FlowOwnership(workers: w)
                let owners = Set(frames.map { ownership.owner(of: RedirectTests.key($0)!) })
                #expect(owners.count == w)
            }
            #expect(
                frames.allSatisfy {
                    InBandControl.marker(in: $0)?.moveID == 3 && Self.filter.matches(RedirectTests.key($0)!)
                })
            #expect(Set(frames).count == frames.count)
        }
        #expect(InBandControl.frames(for: Self.filter, moveID: 3, workers: [1, 1]).count == 1)
        // A filter naming one flow's ports varies the address within its prefix.
        let pinned = try! FlowFilter(parsing: "nw_src=10.0.0.0/8,nw_proto=6,tp_src=1000,tp_dst=80")
        let copies = InBandControl.frames(for: pinned, moveID: 3, workers: [2, 2])
        #expect(copies.count >= 32 && copies.allSatisfy { pinned.matches(RedirectTests.key($0)!) })
    }
}

@Suite struct HandoffSlotTests {
    /// The slots start on a pair of lines, and a slot is one line.
    @Test func aSlotIsOneLineOfItsOwn() {
        #expect(MemoryLayout<HandoffPacket>.stride == 64)
        let ring = HandoffRing<HandoffPacket>(capacity: 4096)
        let (items, _) = ring.peek(limit: 1)
        #expect(UInt(bitPattern: items) % UInt(CacheLines.size) == 0)
    }

    /// What the receiver streams into a slot reads back as the value its fields make.
    @Test func aStreamedSlotReadsAsTheValue() {
        let ring = HandoffRing<HandoffPacket>(capacity: 64)
        var checked = 0
        for frame in FastPathTests.frames.prefix(2_000) {
            frame.bytes.withUnsafeBufferPointer { b in
                guard let base = b.baseAddress else { return }
                var info = PacketInfo()
                PacketParser.parse(UnsafeRawPointer(base), length: b.count, into: &info)
                guard info.hasFlow else { return }
                let probe = FlowProbe(info, frame: base, seed: 7)
                let handle = OpaquePointer(bitPattern: 0x1234_5678 + checked)
                var expected = HandoffPacket(
                    probe: probe, info: info, frame: base, packet: handle, packetLength: UInt32(b.count) + 4,
                    segmentLength: UInt16(b.count), port: 3)
                expected.stampSeconds = UInt32(1_700_000_000 + checked)
                var window = ring.window(wanted: 1)
                let slot = window.take()!
                withUnsafePointer(to: probe) { probe in
                    withUnsafePointer(to: info) { info in
                        HandoffPacket.stream(
                            probe: probe, info: info, frame: base, packet: handle, packetLength: UInt32(b.count) + 4,
                            segmentLength: UInt16(b.count), port: 3, stampSeconds: expected.stampSeconds, to: slot)
                    }
                }
                let got = slot.pointee
                #expect(got.packet == expected.packet && got.frame == expected.frame && got.hash == expected.hash)
                #expect(got.loAddr == expected.loAddr && got.hiAddr == expected.hiAddr)
                #expect(
                    got.loPort == expected.loPort && got.hiPort == expected.hiPort && got.vlanKey == expected.vlanKey)
                #expect(got.packetLength == expected.packetLength && got.stampSeconds == expected.stampSeconds)
                #expect(got.segmentLength == expected.segmentLength && got.port == expected.port)
                #expect(
                    got.l3Offset == expected.l3Offset && got.proto == expected.proto
                        && got.tcpFlags == expected.tcpFlags)
                #expect(got.isTCP == expected.isTCP && got.isCompact == expected.isCompact)
                let a = got.probe(seed: 7)
                let e = expected.probe(seed: 7)
                #expect(a.key == e.key && a.hash == e.hash && a.fromLo == e.fromLo)
                checked += 1
            }
        }
        #expect(checked > 1_500)
    }

    /// The owner's probe of every flow frame of mix-a (IPv4, IPv6, tunnels, VLANs) is the one
    /// its receiver made: from the slot for an IPv4 flow outside tunnels, from the frame for the
    /// rest.
    @Test func theOwnerProbesEveryFrameAsItsReceiverDid() {
        let seed: UInt64 = 0x1234_5678_9ABC_DEF0
        var compact = 0
        var reparsed = 0
        for frame in FastPathTests.frames {
            frame.bytes.withUnsafeBufferPointer { b in
                guard let base = b.baseAddress else { return }
                var info = PacketInfo()
                PacketParser.parse(UnsafeRawPointer(base), length: b.count, into: &info)
                guard info.hasFlow else { return }
                let probe = FlowProbe(info, frame: base, seed: seed)
                let slot = HandoffPacket(
                    probe: probe, info: info, frame: base, packet: nil, packetLength: UInt32(b.count),
                    segmentLength: UInt16(b.count), port: 0)
                let owners = slot.probe(seed: seed)
                #expect(owners.key == probe.key && owners.hash == probe.hash && owners.fromLo == probe.fromLo)
                let fits = info.l3 == .ipv4 && info.tunnel == .none
                #expect(slot.isCompact == fits)
                if slot.isCompact { compact += 1 } else { reparsed += 1 }
            }
        }
        #expect(compact > 50_000 && reparsed > 1_000, "mix-a has both kinds")
    }
}
