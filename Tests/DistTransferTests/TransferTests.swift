import Crypto
import DistChannel
import DistFlow
import DistPRADS
import DistPacket
import DistPipeline
import DistState
import DistTransfer
import Foundation
import Testing

@Suite struct TransferSessionTests {
    /// Runs one Move: states, then packets interleaved with more states (as late locking sends
    /// them), the release at `releaseAt` (or at the end), and the end. Returns what the
    /// destination delivered, in order.
    static func move(
        _ chunks: [StateChunk], packets: [[UInt8]], releaseAt: Int?, wire ab: inout Wire, _ ba: inout Wire,
        src: TransferSource, dst: TransferDestination, limit: UInt64 = 60_000_000_000
    ) -> [TransferDestination.Delivery] {
        var delivered: [TransferDestination.Delivery] = []
        src.open(filter: "nw_src=10.0.0.0/8", switchTraffic: .gate, replyTo: "198.18.100.1:7400#3901")
        let perPacket = max(1, chunks.count / max(1, packets.count))
        var c = 0
        for (i, p) in packets.enumerated() {
            if i == releaseAt { src.release() }
            for chunk in chunks[c..<min(chunks.count, c + perPacket)] { src.add(chunk) }
            c = min(chunks.count, c + perPacket)
            src.redirect(p)
        }
        for chunk in chunks[c...] { src.add(chunk) }
        src.end()
        var now: UInt64 = 0
        while now < limit && !(src.complete && dst.complete) {
            ab.put(src.poll(now: now), now: now)
            ba.put(dst.poll(now: now), now: now)
            for f in ab.take(now) { delivered += dst.receive(f, now: now) }
            for f in ba.take(now) { src.receive(f, now: now) }
            if src.endpoint.state != .open || dst.endpoint.state != .open { break }
            now += 100_000
        }
        return delivered
    }

    @Test(arguments: [(0.0, 0.0, 0.0, 0.0), (0.1, 0.0, 0.0, 0.0), (0.1, 0.1, 0.2, 0.05), (0.3, 0.05, 0.1, 0.02)])
    func everyStateAndPacketArrivesOnceAndPacketsNeverPrecedeTheirState(
        drop: Double, duplicate: Double, late: Double, corrupt: Double
    ) throws {
        let chunks = Trace.loaded.chunks
        try #require(chunks.count > 100, "mix-a and /etc/prads are needed")
        let packets = Array(Trace.loaded.frames.map { $0.bytes }.filter { $0.count <= 1400 }.prefix(800))
        for release in [nil, 0, 400] as [Int?] {
            var ab = Wire(drop: drop, duplicate: duplicate, late: late, corrupt: corrupt, seed: 11)
            var ba = Wire(drop: drop, duplicate: duplicate, late: late, corrupt: corrupt, seed: 29)
            let src = TransferSource(moveID: 9, key: key, maxPayload: 1400)
            let dst = TransferDestination(moveID: 9, key: key)
            let got = Self.move(chunks, packets: packets, releaseAt: release, wire: &ab, &ba, src: src, dst: dst)
            #expect(
                src.complete && dst.complete,
                Comment(
                    rawValue: "release \(String(describing: release)) drop \(drop): \(src.endpoint.state) "
                        + "\(dst.endpoint.state) \(src.endpoint.counters) \(dst.endpoint.counters)")
            )
            var flows: [FlowEntry] = []
            var assets: [AssetState] = []
            var out: [[UInt8]] = []
            for d in got {
                switch d {
                case .flows(let f): flows += f
                case .assets(let a): assets += a
                case .packet(let p): out.append(Array(p))
                case .counters, .open, .end: break
                }
            }
            // The filter opens the Move; the end comes after the last packet.
            #expect(
                got.first == .open(filter: "nw_src=10.0.0.0/8", switchTraffic: .gate, replyTo: "198.18.100.1:7400#3901")
            )
            #expect(got.last == .end)
            // Every state once, bit for bit; every packet once, in the order redirected.
            #expect(flows.map { StateChunk.perFlow($0) } == chunks.filter { $0.scope == .perFlow })
            let sentAssets = chunks.filter { $0.scope == .multiFlow }
            let arrived = assets.map { StateChunk.multiFlow($0) }
            let firstDifference = zip(arrived, sentAssets).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            #expect(
                assets.count == sentAssets.count && arrived == sentAssets,
                """
                \(assets.count) of \(sentAssets.count) assets; differ at \(String(describing: firstDifference)), \
                sizes \(sentAssets.map { StateCodec.encode($0).count }.max() ?? 0)
                """
            )
            #expect(
                out.count == packets.count && out == packets,
                "\(out.count) of \(packets.count) packets, in order: \(out == Array(packets.prefix(out.count)))")
            // Before the release nothing is processed: the packets come after the release point.
            if let release {
                let firstPacket = got.firstIndex { if case .packet = $0 { return true } else { return false } }
                #expect(firstPacket != nil)
                #expect(dst.summary.buffered == release)
            } else {
                let lastState = got.lastIndex {
                    if case .flows = $0 { return true } else if case .assets = $0 { return true } else { return false }
                }!
                #expect(got[(lastState + 1)...].count == packets.count + 1)
            }
            #expect(src.summary == dst.summary)
            #expect(src.summary?.perFlowStates == flows.count)
            // Several states per frame.
            #expect(src.counters.stateFrames < src.counters.perFlowStates + src.counters.multiFlowStates)
            if drop > 0 { #expect(src.endpoint.counters.retransmissions > 0) }
        }
    }

    @Test func theBufferBoundIsCountedAndNothingIsDropped() {
        var ab = Wire(seed: 5)
        var ba = Wire(seed: 6)
        let src = TransferSource(moveID: 2, key: key)
        let dst = TransferDestination(moveID: 2, key: key, bufferLimit: 10)
        let packets = (0..<25).map { [UInt8](repeating: UInt8($0), count: 60) }
        let got = Self.move([], packets: packets, releaseAt: nil, wire: &ab, &ba, src: src, dst: dst)
        #expect(got.compactMap { if case .packet(let p) = $0 { p } else { nil } }.count == 25)
        #expect(dst.summary.overflow == 15 && dst.summary.maxBuffered == 10)
        #expect(src.summary?.overflow == 15)
    }

    /// The destination tells the source, once and reliably, that the switch's copies reach it.
    @Test func theCopiesNoticeReachesTheSourceOnce() {
        var ab = Wire(drop: 0.3, seed: 15)
        var ba = Wire(drop: 0.3, seed: 16)
        let src = TransferSource(moveID: 6, key: key)
        let dst = TransferDestination(moveID: 6, key: key)
        src.open(filter: "nw_src=10.0.0.0/8", switchTraffic: .gate)
        var now: UInt64 = 0
        var told = false
        while now < 5_000_000_000 && !(src.copiesArrive && dst.endpoint.idle) {
            ab.put(src.poll(now: now), now: now)
            ba.put(dst.poll(now: now), now: now)
            for f in ab.take(now) { _ = dst.receive(f, now: now) }
            for f in ba.take(now) { src.receive(f, now: now) }
            if !told && now > 3_000_000 {
                dst.copiesArriving()
                dst.copiesArriving()
                told = true
            }
            now += 100_000
        }
        #expect(src.copiesArrive && dst.copiesReported)
        #expect(dst.endpoint.sentThrough == 1, "one message, sent once")
        #expect(src.summary == nil)
    }

    @Test func aDeadPeerAbortsAndTheSourceGetsBackWhatWasNotProcessed() {
        var ab = Wire(seed: 7)
        var ba = Wire(seed: 8)
        let src = TransferSource(moveID: 4, key: key)
        let dst = TransferDestination(moveID: 4, key: key)
        let packets = (0..<40).map { [UInt8](repeating: UInt8($0), count: 80) }
        // The destination goes away after the first 20 packets are through (released at 10).
        var now: UInt64 = 0
        for (i, p) in packets.prefix(20).enumerated() {
            if i == 10 { src.release() }
            src.redirect(p)
        }
        var processed: [[UInt8]] = []
        while now < 50_000_000 {
            ab.put(src.poll(now: now), now: now)
            ba.put(dst.poll(now: now), now: now)
            for f in ab.take(now) {
                processed += dst.receive(f, now: now).compactMap {
                    if case .packet(let p) = $0 { Array(p) } else { nil }
                }
            }
            for f in ba.take(now) { src.receive(f, now: now) }
            now += 100_000
        }
        #expect(processed == Array(packets.prefix(20)))
        ab.alive = false
        for p in packets[20...] { src.redirect(p) }
        while src.endpoint.state == .open && now < 120_000_000_000 {
            ab.put(src.poll(now: now), now: now)
            now += 1_000_000
        }
        guard case .aborted = src.endpoint.state else {
            Issue.record("no abort")
            return
        }
        #expect(src.unprocessed() == Array(packets[20...]))
        #expect(!src.redirect(packets[0]))
    }

    /// The source keeps a redirected packet only while an abort could give it back: once
    /// the release and the packet are acknowledged it is forgotten (and not before the
    /// release, whatever is acknowledged), and an abort after that returns exactly the rest.
    @Test func processedPacketsAreForgottenAndTheRestKept() {
        var ab = Wire(seed: 3)
        var ba = Wire(seed: 4)
        let src = TransferSource(moveID: 5, key: key)
        let dst = TransferDestination(moveID: 5, key: key)
        var now: UInt64 = 0
        func exchange(until done: () -> Bool) {
            for _ in 0..<2000 where !done() {
                ab.put(src.poll(now: now), now: now)
                ba.put(dst.poll(now: now), now: now)
                for f in ab.take(now) { _ = dst.receive(f, now: now) }
                for f in ba.take(now) { src.receive(f, now: now) }
                now += 100_000
            }
        }
        let packets = (0..<3000).map { i in [UInt8](repeating: UInt8(i & 0xFF), count: 64) + [UInt8(i >> 8)] }
        for p in packets.prefix(1500) { src.redirect(p) }
        exchange { src.endpoint.idle }
        #expect(src.endpoint.idle && src.packetsKept == 1500, "before the release nothing is processed")
        src.release()
        for p in packets[1500..<2500] { src.redirect(p) }
        exchange { src.endpoint.idle }
        #expect(src.packetsKept == 0)
        ab.alive = false
        for p in packets[2500...] { src.redirect(p) }
        while src.endpoint.state == .open && now < 120_000_000_000 {
            ab.put(src.poll(now: now), now: now)
            now += 1_000_000
        }
        #expect(src.packetsKept == 500)
        #expect(src.unprocessed() == Array(packets[2500...]))
    }

    /// Packets still packing for the next frame are kept too: never sent, they come back in
    /// order after those that went out, behind them in `unsent()`.
    @Test func packetsStillPackingAreKeptAndComeBackInOrder() {
        let src = TransferSource(moveID: 8, key: key)
        let packets = (0..<40).map { i in [UInt8](repeating: UInt8(i), count: 100 + i) }
        for p in packets.prefix(30) { src.redirect(p) }
        let sentFrames = src.poll(now: 1_000)
        #expect(!sentFrames.isEmpty)
        for p in packets[30...] { src.redirect(p) }
        #expect(src.packetsKept == 40)
        #expect(src.unprocessed() == packets)
        #expect(src.unsent() == Array(packets[30...]))
        #expect(src.inDoubt == 30)
    }

    @Test func anOpeningWithAnUnknownTreatmentStopsTheDestination() {
        let src = ChannelEndpoint(moveID: 6, key: key)
        let dst = TransferDestination(moveID: 6, key: key)
        src.send(.open, [9, 0] + Array("nw_src=10.0.0.0/8".utf8))
        for f in src.poll(now: 0) { #expect(dst.receive(f, now: 0).isEmpty) }
        #expect(dst.failure?.contains("unknown treatment") == true)
    }

    /// Packets redirected between two polls travel together, as many as fit in a frame, and
    /// come out one by one, in order.
    @Test func packetsRedirectedTogetherShareAFrame() {
        let src = TransferSource(moveID: 3, key: key, maxPayload: 1400)
        let dst = TransferDestination(moveID: 3, key: key)
        src.open(filter: "nw_src=10.0.0.0/8", switchTraffic: .hold)
        src.release()
        let packets = (0..<30).map { i in [UInt8](repeating: UInt8(i), count: 100) }
        for p in packets { #expect(src.redirect(p)) }
        // 13 packets of 100 bytes and their lengths fit in 1,400 bytes: three frames.
        var got: [[UInt8]] = []
        for f in src.poll(now: 0) {
            for d in dst.receive(f, now: 0) { if case .packet(let p) = d { got.append(Array(p)) } }
        }
        #expect(src.counters.packetFrames == 3)
        #expect(src.endpoint.sentThrough == 2 + 3)
        #expect(got == packets)
        #expect(dst.summary.packets == 30)
        // One no mbuf could hold cannot go (counted).
        #expect(!src.redirect([UInt8](repeating: 1, count: TransferSource.largestPacket + 1)))
        #expect(src.counters.packetsTooLarge == 1)
    }

    /// A packet too large for a frame goes in parts, in frames of their own, and comes out
    /// whole, in its place among the others, over a path that loses, duplicates and reorders.
    @Test func aPacketTooLargeForAFrameGoesInParts() {
        let sizes = [100, 3_000, 100, 1_398, 1_399, 50, 9_000, 1_399 * 3]
        let packets = sizes.enumerated().map { i, n in (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ i) } }
        for seed: UInt64 in [3, 17, 99] {
            let src = TransferSource(moveID: 7, key: key, maxPayload: 1400)
            let dst = TransferDestination(moveID: 7, key: key)
            var ab = Wire(drop: 0.1, duplicate: 0.05, late: 0.1, seed: seed)
            var ba = Wire(drop: 0.1, seed: seed &* 3)
            let delivered = Self.move([], packets: packets, releaseAt: 0, wire: &ab, &ba, src: src, dst: dst)
            #expect(dst.failure == nil)
            #expect(delivered.compactMap { if case .packet(let p) = $0 { Array(p) } else { nil } } == packets)
            // 1,398 bytes and their length fill a frame; 1,399 do not.
            #expect(src.counters.packetsInParts == 4 && src.counters.packetsRedirected == sizes.count)
            #expect(dst.summary.packets == sizes.count)
        }
    }

    /// A host with `services` services: its state is about 40 bytes a service.
    static func host(_ services: Int, last octet: UInt8 = 9) -> StateChunk {
        let entries = (0..<services).map { (i: Int) -> Detector.ServiceEntry in
            let proto: UInt8 = i % 2 == 0 ? 6 : 17
            return Detector.ServiceEntry(
                port: UInt16(1 + i % 65_000), proto: proto, service: "SERVER",
                application: "app-\(i) version \(i * 7)", server: true, attempts: 1, ttl: 64)
        }
        let asset = Detector.Asset(vlan: 0, firstSeen: 1, lastSeen: 2, services: entries)
        return .multiFlow(AssetState(address: IPAddress(ipv4: 0x0A00_0000 | UInt32(octet)), asset: asset))
    }

    /// A state too large for a frame (a host with many services, over 65,535 bytes too) goes in
    /// parts and arrives whole, in its place among the others, over a path that loses,
    /// duplicates and reorders; states that fit still share frames.
    @Test func aStateTooLargeForAFrameGoesInParts() throws {
        let flows = Trace.loaded.chunks.filter { if case .perFlow = $0 { true } else { false } }.prefix(200)
        let big = [Self.host(300, last: 1), Self.host(2_000, last: 2)]
        #expect(StateCodec.encode(big[1]).count > 65_535)
        let chunks = Array(flows.prefix(100)) + [big[0]] + Array(flows.suffix(100)) + [big[1]]
        for seed: UInt64 in [4, 21] {
            let src = TransferSource(moveID: 7, key: key, maxPayload: 1400)
            let dst = TransferDestination(moveID: 7, key: key)
            var ab = Wire(drop: 0.1, duplicate: 0.05, late: 0.1, seed: seed)
            var ba = Wire(drop: 0.1, seed: seed &* 5)
            let delivered = Self.move(chunks, packets: [], releaseAt: nil, wire: &ab, &ba, src: src, dst: dst)
            #expect(dst.failure == nil)
            var hosts: [StateChunk] = []
            var moved = 0
            for d in delivered {
                if case .assets(let a) = d { hosts += a.map { StateChunk.multiFlow($0) } }
                if case .flows(let f) = d { moved += f.count }
            }
            #expect(hosts == big)
            #expect(moved == flows.count)
            #expect(src.counters.statesInParts == 2 && dst.summary.multiFlowStates == 2)
            #expect(src.counters.stateFrames < flows.count)
        }
    }

    /// A state's parts that stop before the last, or that add up to more than any state: the
    /// destination stops with a reason.
    @Test(arguments: [
        ([[UInt8]([0, 1, 2])], "end before its last"),
        ([[UInt8]](repeating: [0] + [UInt8](repeating: 1, count: 8_800), count: 120), "limit"),
        ([[UInt8]([1, 1, 2, 3])], "does not decode"),
    ])
    func badStatePartsStopTheDestination(parts: [[UInt8]], why: String) {
        Self.partsStopTheDestination(.statePart, parts: parts, why: why)
    }

    /// Until its last part is acknowledged, a packet in parts is the source's to process if the
    /// Move gives up.
    @Test func aPacketInPartsIsProcessedOnceItsLastPartIsIn() {
        let src = TransferSource(moveID: 8, key: key, maxPayload: 1400)
        let dst = TransferDestination(moveID: 8, key: key)
        src.open(filter: "nw_src=10.0.0.0/8", switchTraffic: .hold)
        src.release()
        let big = [UInt8](repeating: 5, count: 4_000)
        #expect(src.redirect(big))
        let frames = src.poll(now: 0)
        #expect(frames.count == 2 + 3)
        // All but the last part arrive, and are acknowledged.
        var got: [TransferDestination.Delivery] = []
        for f in frames.dropLast() { got += dst.receive(f, now: 1) }
        for f in dst.poll(now: 1) { src.receive(f, now: 2) }
        #expect(got.allSatisfy { if case .packet = $0 { false } else { true } })
        #expect(src.endpoint.acknowledgedThrough == 4 && src.unprocessed() == [big])
        got = dst.receive(frames.last!, now: 3)
        #expect(got == [.packet(big[...])])
        for f in dst.poll(now: 3) { src.receive(f, now: 4) }
        #expect(src.unprocessed().isEmpty)
    }

    /// Parts that are malformed, that stop before the last, or that add up to more than any
    /// packet: the destination stops with a reason.
    @Test(arguments: [
        ([[UInt8]([2, 1, 2])], "malformed"),
        ([[UInt8]([1])], "malformed"),
        ([[UInt8]([0, 1, 2])], "end before its last"),
        (
            [[UInt8]([0] + [UInt8](repeating: 1, count: 8_000))]
                + [[UInt8]](repeating: [0] + [UInt8](repeating: 1, count: 8_000), count: 8), "over 65535"
        ),
    ])
    func badPartsStopTheDestination(parts: [[UInt8]], why: String) {
        Self.partsStopTheDestination(.packetPart, parts: parts, why: why)
    }

    /// Sends `parts` of `kind` then a frame of packets; the destination delivers nothing and
    /// stops saying `why`.
    static func partsStopTheDestination(_ kind: ChannelFrame.Kind, parts: [[UInt8]], why: String) {
        let src = ChannelEndpoint(moveID: 9, key: key)
        let dst = TransferDestination(moveID: 9, key: key)
        for p in parts { src.send(kind, p) }
        src.send(.packets, [0, 1, 7])
        var t: UInt64 = 0
        while !src.idle && t < 1_000_000_000 {
            for f in src.poll(now: t) { #expect(dst.receive(f, now: t).isEmpty) }
            for f in dst.poll(now: t) { _ = src.receive(f, now: t) }
            t += 100_000
        }
        #expect(dst.failure?.contains(why) == true, "\(dst.failure ?? "no failure")")
    }

    /// While the channel's window is full, redirected packets keep packing into full frames
    /// instead of queueing a small frame per poll; once it drains they go at the next poll.
    @Test func aBlockedChannelCarriesFullFrames() {
        let src = TransferSource(moveID: 5, key: key, maxPayload: 1400)
        let dst = TransferDestination(moveID: 5, key: key)
        src.open(filter: "nw_src=10.0.0.0/8", switchTraffic: .hold)
        src.release()
        // Fill the window (256 frames) with state frames not acknowledged yet.
        for i in 0..<300 {
            var c = InstanceCounters()
            c.packets = UInt64(i)
            src.add(.allFlows(c))
            src.flushState()
        }
        _ = src.poll(now: 0)
        #expect(src.endpoint.backlog > 0)
        var packets: [[UInt8]] = []
        for i in 0..<130 {
            let p = [UInt8](repeating: UInt8(i & 0xFF), count: 98)
            packets.append(p)
            #expect(src.redirect(p))
            _ = src.poll(now: UInt64(i) * 1000)
        }
        // 130 packets of 100 bytes with their lengths: 14 to a 1,400-byte frame, 9 frames
        // full and one packing, not 130 frames.
        #expect(src.counters.packetFrames == 9)
        // Delivered in order once acknowledgements come.
        var got: [[UInt8]] = []
        var now: UInt64 = 1_000_000
        while now < 5_000_000_000 && got.count < packets.count {
            for f in src.poll(now: now) {
                for d in dst.receive(f, now: now) { if case .packet(let p) = d { got.append(Array(p)) } }
            }
            for f in dst.poll(now: now) { src.receive(f, now: now) }
            now += 100_000
        }
        #expect(got == packets)
        #expect(src.counters.packetFrames == 10)
    }

    @Test func aFrameOfPacketsThatDoesNotDecodeStopsTheDestination() {
        for bad: [UInt8] in [[0, 9, 1, 2], [0, 0], [0]] {
            let src = ChannelEndpoint(moveID: 6, key: key)
            let dst = TransferDestination(moveID: 6, key: key)
            src.send(.packets, bad)
            for f in src.poll(now: 0) { #expect(dst.receive(f, now: 0).isEmpty) }
            #expect(dst.failure?.contains("redirected packets") == true)
        }
    }

    @Test func aStateThatDoesNotDecodeStopsTheDestination() {
        let src = ChannelEndpoint(moveID: 6, key: key)
        let dst = TransferDestination(moveID: 6, key: key)
        src.send(.state, [0, 4, 1, 2, 3, 4])
        for f in src.poll(now: 0) { #expect(dst.receive(f, now: 0).isEmpty) }
        #expect(dst.failure?.contains("does not decode") == true)
    }
}
