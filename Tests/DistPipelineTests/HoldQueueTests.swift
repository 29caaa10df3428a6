import DistFlow
import DistPacket
import DistPipeline
import DistState
import Testing

/// The destination's hold queue: what a rule held leaves in order, paced at a multiple of the
/// rate it came at, with what arrives during the release queued behind it.
@Suite struct HoldQueueTests {
    static let ms: UInt64 = 1_000_000

    /// Holds packet `i` (`length` bytes, every byte `i % 251`) at time `now`.
    static func put(_ q: HoldQueue, _ i: Int, length: Int = 500, now: UInt64) {
        let room = q.room()!
        #expect(room.count >= length)
        for j in 0..<length { room[j] = UInt8(i % 251) }
        q.commit(length: length, port: UInt16(i % 2), now: now)
    }

    /// Releases what the pace allows every `step` ns from `start` until empty (at most `limit`
    /// rounds); returns the time it ended and the first byte of each packet, in release order.
    static func drain(
        _ q: HoldQueue, from start: UInt64, step: UInt64, arrivals: (UInt64) -> Void = { _ in },
        limit: Int = 100_000
    ) -> (end: UInt64, order: [UInt8]) {
        var now = start
        var order: [UInt8] = []
        for _ in 0..<limit where q.draining {
            arrivals(now)
            let n = q.releasable(now: now, limit: 32)
            for k in 0..<n { order.append(q.bytes[q.entry(k).offset]) }
            q.dropFirst(n)
            now += step
        }
        return (now, order)
    }

    @Test func aLongHoldLeavesAtTwiceTheRateItCameAt() {
        let q = HoldQueue(capacity: 8192, byteCapacity: 8 << 20)
        // 2,000 packets of 500 bytes over one second: 1 MB/s in.
        for i in 0..<2000 { Self.put(q, i, now: 1_000 * Self.ms + UInt64(i) * Self.ms / 2) }
        #expect(q.count == 2000)
        #expect(q.startRelease(now: 2_000 * Self.ms, pacing: .init(factor: 2, depth: 64 << 10)))
        #expect(abs(q.releaseRate - 2e6) < 2e4)
        // The first round goes in the bucket's depth (131 packets), no more.
        #expect(q.releasable(now: 2_000 * Self.ms, limit: 1000) == 131)
        let (end, order) = Self.drain(q, from: 2_000 * Self.ms, step: Self.ms)
        #expect(order == (0..<2000).map { UInt8($0 % 251) })
        // 1 MB at 2 MB/s after a 64 kB burst: about 0.47 s.
        let took = Double(end - 2_000 * Self.ms) / 1e9
        #expect(took > 0.44 && took < 0.50, "took \(took) s")
        #expect(!q.draining && q.isEmpty)
    }

    @Test func aShortHoldGoesAtOnce() {
        let q = HoldQueue()
        for i in 0..<100 { Self.put(q, i, now: 10 * Self.ms) }
        #expect(q.startRelease(now: 20 * Self.ms, pacing: .init()))
        #expect(q.releasable(now: 20 * Self.ms, limit: 1000) == 100)
        let empty = HoldQueue()
        #expect(!empty.startRelease(now: 1, pacing: .init()))
    }

    @Test func immediateReleaseHasNoPace() {
        let q = HoldQueue()
        for i in 0..<5000 { Self.put(q, i, now: UInt64(i) * 100_000) }
        #expect(q.startRelease(now: 500 * Self.ms, pacing: .immediate))
        #expect(q.releasable(now: 500 * Self.ms, limit: 10_000) == 5000)
    }

    /// Packets that come while the queue drains go behind it; a full arena moves what is left
    /// to the front and goes on taking packets.
    @Test func arrivalsDuringTheReleaseQueueBehindAndTheArenaCompacts() {
        let q = HoldQueue(capacity: 600, byteCapacity: 600 * 500)
        for i in 0..<500 { Self.put(q, i, now: UInt64(i) * Self.ms) }
        #expect(q.startRelease(now: 500 * Self.ms, pacing: .init(factor: 2, depth: 10_000)))
        var next = 500
        let (_, order) = Self.drain(
            q, from: 500 * Self.ms, step: Self.ms,
            arrivals: { now in
                // One packet a millisecond for 400 ms: half the release rate.
                if next < 900 {
                    Self.put(q, next, now: now)
                    next += 1
                }
            })
        #expect(next == 900)
        #expect(order == (0..<900).map { UInt8($0 % 251) })
        #expect(q.isEmpty && !q.draining)
    }

    @Test func aFullQueueRefuses() {
        let q = HoldQueue(capacity: 4, byteCapacity: 1 << 20)
        for i in 0..<4 { Self.put(q, i, now: 0) }
        #expect(q.room() == nil)
        q.dropFirst(1)
        #expect(q.room() != nil)
    }

    /// While a drain's filter is set, the fast path keeps that filter's packets (state
    /// untouched) and lets the others through.
    @Test func theFastPathKeepsTheDrainingFiltersPackets() throws {
        let filter = try FlowFilter(parsing: "nw_src=192.168.1.0/24")
        let frames = FastPathTests.frames.prefix(3000).map { $0.bytes }
        let stats = UnsafeMutablePointer<WorkerStats>.allocate(capacity: 1)
        defer { stats.deallocate() }
        stats.initialize(to: WorkerStats())
        let path = FastPath(table: FlowTable(capacity: 1 << 14), stats: stats)
        path.drainFilter = filter
        var kept = 0
        var forwarded = 0
        for f in frames {
            switch RedirectTests.verdict(path, f) {
            case .hold:
                kept += 1
                #expect(RedirectTests.key(f).map(filter.matches) == true)
            case .forward: forwarded += 1
            default: Issue.record("only kept or forwarded here")
            }
        }
        #expect(kept > 100 && forwarded > 100)
        var matching = 0
        path.table.forEach { _, e in
            if filter.matches(e.key) { matching += 1 }
            return true
        }
        #expect(matching == 0)
        // Without it, the same packets are processed.
        path.drainFilter = nil
        #expect(
            RedirectTests.verdict(path, frames.first { RedirectTests.key($0).map(filter.matches) == true }!) == .forward
        )
    }
}

/// The ring to the transfer lcore never holds more mbufs than the pool spares beyond the ports'
/// descriptors (half of it, shared among the workers), within 256 to 16,384.
@Suite struct TransferRingSizeTests {
    @Test func theRingFitsWhatThePoolSpares() {
        // The DPDK test bed: 14,624 mbufs, 4,096 RX and 4,096 TX descriptors, one worker.
        #expect(TransferRingSize.capacity(pool: 14_624, inPortRings: 8_192, workers: 1) == 2_048)
        // The kernel test bed: 8,191 mbufs, 1,024 + 1,024 descriptors.
        #expect(TransferRingSize.capacity(pool: 8_191, inPortRings: 2_048, workers: 1) == 2_048)
        #expect(TransferRingSize.capacity(pool: 8_191, inPortRings: 4_096, workers: 2) == 512)
        #expect(TransferRingSize.capacity(pool: 1 << 20, inPortRings: 8_192, workers: 1) == 16_384)
        #expect(TransferRingSize.capacity(pool: 1_000, inPortRings: 8_192, workers: 4) == 256)
        for pool in stride(from: 4_096, to: 200_000, by: 3_331) {
            let c = TransferRingSize.capacity(pool: pool, inPortRings: 4_096, workers: 2)
            #expect(c & (c - 1) == 0 && (256...16_384).contains(c))
            #expect(c == 256 || c * 2 * 2 <= pool - 4_096)
        }
    }
}

/// A wait for the workers' quiescent points lets its caller work meanwhile (the transfer lcore
/// empties its rings), until every counter has moved or the time is up.
@Suite struct QuiescentWaitTests {
    @Test func theCallerWorksWhileItWaits() {
        let counter = QuiescentCounter()
        counter.quiescent(7)
        var calls = 0
        let moved = QuiescentCounter.waitForAll([counter], timeout: 5_000_000_000) {
            calls += 1
            if calls == 3 { counter.quiescent(8) }
        }
        #expect(moved && calls == 3)
        calls = 0
        #expect(!QuiescentCounter.waitForAll([counter], timeout: 2_000_000) { calls += 1 })
        #expect(calls > 0)
    }
}
