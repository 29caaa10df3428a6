import Atomics
import DistFlow
import DistMove
import DistPacket
import DistPipeline
import DistState
import Foundation
import Testing

/// The lock-free marks under concurrency: a worker thread runs the trace through its fast
/// path while another thread marks the filter's flows a few at a time, waits on the worker's
/// quiescent counter and reads each marked flow's state. The states read, with the packets the
/// worker redirected after each mark replayed on them elsewhere, equal what one pass without
/// a Move builds: no update lost, none applied twice.
@Suite struct MarkConcurrencyTests {
    final class Box<T>: @unchecked Sendable {
        var value: T
        init(_ v: T) { value = v }
    }

    static func process(
        _ path: FastPath, _ frames: ArraySlice<[UInt8]>, now: UInt64, redirected: ((Int) -> Void)? = nil
    ) {
        let n = frames.count
        var storage = Array(frames)
        storage.withUnsafeMutableBufferPointer { buffers in
            var data = (0..<n).map { i in buffers[i].withUnsafeBufferPointer { $0.baseAddress } }
            var seg = (0..<n).map { UInt16(clamping: buffers[$0].count) }
            var len = (0..<n).map { UInt32(buffers[$0].count) }
            if path.process(count: n, data: &data, segmentLengths: &seg, packetLengths: &len, now: now), let redirected
            {
                for i in 0..<n where path.verdicts[i] == .redirect { redirected(i) }
            }
        }
    }

    static func now(_ start: Int) -> UInt64 { 1_000_000_000 + UInt64(start) * 1000 }

    static func fresh() -> FastPath {
        let stats = UnsafeMutablePointer<WorkerStats>.allocate(capacity: 1)
        stats.initialize(to: WorkerStats())
        return FastPath(table: FlowTable(capacity: 1 << 15), stats: stats)
    }

    @Test func marksWhileTheWorkerRunsLoseNoUpdateAndApplyNoneTwice() throws {
        let frames = FastPathTests.frames.prefix(24000).map { $0.bytes }
        try #require(frames.count == 24000)
        let filter = try FlowFilter(parsing: "nw_src=192.168.0.0/16")
        let burst = 32
        let warm = 6016  // a multiple of the burst: the same bursts as the reference

        // One pass, no Move.
        let reference = Self.fresh()
        for s in stride(from: 0, to: frames.count, by: burst) {
            Self.process(reference, frames[s..<min(s + burst, frames.count)], now: Self.now(s))
        }

        for attempt in 0..<3 {
            let source = Self.fresh()
            for s in stride(from: 0, to: warm, by: burst) {
                Self.process(source, frames[s..<(s + burst)], now: Self.now(s))
            }
            _ = source.perform(.events(EventRule(filter: filter, action: .redirect, lateLocking: true)))
            guard case .located(let candidates, _) = source.perform(.locate(filter, from: 0, limit: .max)) else {
                Issue.record("no flows")
                return
            }
            try #require(candidates.count > 50)
            let qc = QuiescentCounter()
            let shared = Box(source)
            let redirected = Box<[(index: Int, now: UInt64)]>([])
            let snapshots = Box<[FlowEntry]>([])
            let done = ManagedAtomic<Bool>(false)
            let worker = Thread {
                var round: UInt64 = 0
                for s in stride(from: warm, to: frames.count, by: burst) {
                    round += 1
                    qc.quiescent(round)
                    Self.process(shared.value, frames[s..<min(s + burst, frames.count)], now: Self.now(s)) {
                        redirected.value.append((s + $0, Self.now(s)))
                    }
                    if attempt == 1 && s % 256 == 0 { usleep(50) }  // a slower worker
                }
                done.store(true, ordering: .releasing)
            }
            let marker = Thread {
                var next = 0
                while next < candidates.count {
                    let part = candidates[next..<min(next + 4 + attempt * 6, candidates.count)]
                    next += part.count
                    let marked = part.map {
                        shared.value.table.transitionMark(at: $0.index, from: .normal, to: .moving)
                    }
                    // A worker that has finished has no burst in hand: nothing to wait for.
                    while !QuiescentCounter.waitForAll([qc], timeout: 1_000_000) && !done.load(ordering: .acquiring) {}
                    for (c, m) in zip(part, marked) where m {
                        let e = shared.value.table.entry(at: c.index)
                        if e.key == c.key { snapshots.value.append(e) }
                    }
                }
            }
            worker.start()
            marker.start()
            while !done.load(ordering: .acquiring) || !marker.isFinished { usleep(1000) }
            #expect(snapshots.value.count == candidates.count)

            // The destination: the states read, then the redirected packets in the order they left.
            let destination = Self.fresh()
            _ = destination.perform(.importFlows(snapshots.value))
            for r in redirected.value { Self.process(destination, frames[r.index...r.index], now: r.now) }
            var merged: [FlowKey: FlowEntry] = [:]
            source.table.forEach { i, e in
                if source.table.mark(at: i) == .normal { merged[e.key] = e }
                return true
            }
            destination.table.forEach { _, e in
                #expect(merged[e.key] == nil, "flow \(e.key) is both here and there")
                merged[e.key] = e
                return true
            }
            var expected: [FlowKey: FlowEntry] = [:]
            reference.table.forEach { _, e in
                expected[e.key] = e
                return true
            }
            #expect(merged.count == expected.count, "attempt \(attempt)")
            var differing = 0
            for (key, e) in expected {
                guard let m = merged[key] else {
                    differing += 1
                    continue
                }
                if m.packetsToServer != e.packetsToServer || m.packetsToClient != e.packetsToClient
                    || m.bytesToServer != e.bytesToServer
                    || m.bytesToClient != e.bytesToClient || m.lastSeen != e.lastSeen || m.tcpState != e.tcpState
                {
                    differing += 1
                }
            }
            #expect(differing == 0, "attempt \(attempt): \(differing) flows differ")
            #expect(!redirected.value.isEmpty)
        }
    }
}
