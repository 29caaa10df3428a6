// dist-channel-bench: DiST's channel (ChannelEndpoint, no DPDK) carrying a Move's load over a
// simulated path like the test bed's: 100 Mbit/s from source to destination, 2.5 ms one way
// each way and 1.5 ms of jitter on average (round trips of 6 to 14 ms, as measured on the test
// bed at 10,000 pps), and a share of the frames dropped at random each way. The load: a Move's state (20 frames of 8.7 kB, queued at once) and the moved
// flows' packets (300 bytes each, at PPS), packed per poll as the transfer lcore packs them
// (one frame per poll while nothing waits, full frames while the window is full), for as long
// as the Move redirects: until the state is acknowledged and REDIRECT_MS after that.
//
// Prints, per drop rate, the median and the worst over seeds of: when the state was
// acknowledged, when the last packet was (the Move's tail), timeouts and retransmissions.
//   dist-channel-bench [PPS] [SEEDS] [DROP_PERCENT,...]
//   dist-channel-bench --crypto      (what sealing a frame costs: see Crypto.swift)
import Crypto
import DistChannel
import Foundation

let arguments = CommandLine.arguments
if arguments.dropFirst().first == "--crypto" {
    cryptoBenchmark()
    exit(0)
}
let pps = arguments.count > 1 ? max(1, Int(arguments[1]) ?? 10_000) : 10_000
let seeds = arguments.count > 2 ? max(1, Int(arguments[2]) ?? 20) : 20
let drops = arguments.count > 3 ? arguments[3].split(separator: ",").compactMap { Double($0) } : [0, 1, 5, 10, 20]
let redirectAfterState: UInt64 = 60_000_000  // switch update and IBC, as on the test bed (ns)
let key = SymmetricKey(data: [UInt8](repeating: 0x42, count: 32))

/// One direction of the path: a rate (0 = unlimited), a one-way delay, random drop, and jitter
/// (the test bed's two cores shared by the switch, the delay lines and the VNFs: each frame waits
/// a random extra time, exponentially distributed with mean `jitter`, behind the one before it).
struct Path {
    var rate: Double  // bytes per ns
    var delay: UInt64
    var drop: Double
    var seed: UInt64
    var jitter: Double = 1_500_000
    var free: UInt64 = 0
    var last: UInt64 = 0
    var inTransit: [(at: UInt64, bytes: [UInt8])] = []

    mutating func random() -> Double {
        seed ^= seed << 13
        seed ^= seed >> 7
        seed ^= seed << 17
        return Double(seed % 1_000_000) / 1_000_000
    }

    mutating func carry(_ frames: [[UInt8]], now: UInt64) {
        for f in frames {
            var leaves = now
            if rate > 0 {
                free = max(free, now) + UInt64(Double(f.count) / rate)
                leaves = free
            }
            // Dropped after the bottleneck (the test bed's delay line drops as it forwards).
            if random() < drop { continue }
            let extra = UInt64(-log(max(random(), 1e-6)) * jitter)
            last = max(last, leaves + delay + extra)
            inTransit.append((last, f))
        }
    }

    mutating func due(_ now: UInt64) -> [[UInt8]] {
        guard inTransit.contains(where: { $0.at <= now }) else { return [] }
        let out = inTransit.filter { $0.at <= now }.sorted { $0.at < $1.at }.map { $0.bytes }
        inTransit.removeAll { $0.at <= now }
        return out
    }
}

struct Outcome {
    var stateAcked: UInt64 = 0, tail: UInt64 = 0, timeouts = 0, retransmissions = 0, aborted = false
}

func move(drop: Double, seed: UInt64) -> Outcome {
    var ab = Path(rate: 12.5e6 / 1e9, delay: 2_500_000, drop: drop, seed: seed | 1)
    var ba = Path(rate: 0, delay: 2_500_000, drop: drop, seed: (seed &* 0x9E37_79B9) | 1)
    let a = ChannelEndpoint(moveID: 1, key: key)
    let b = ChannelEndpoint(moveID: 1, key: key)
    let stateFrames = 20
    for i in 0..<stateFrames { a.send(.state, [UInt8](repeating: UInt8(i), count: 8_700)) }
    let stateThrough = a.sentThrough &+ UInt32(stateFrames)
    let interval = 1_000_000_000 / UInt64(pps)
    let tick: UInt64 = 50_000  // the transfer lcore's poll
    var outcome = Outcome()
    var now: UInt64 = 0
    var nextPacket: UInt64 = 0
    var pending = 0
    var stopAt = UInt64.max
    var lastQueued: UInt32 = 0
    while now < 30_000_000_000 {
        if now < stopAt {
            while nextPacket <= now {
                pending += 1
                nextPacket += interval
            }
        }
        // The transfer lcore: packets flush into a frame when nothing waits, or when a frame is full.
        if pending > 0 && (a.backlog == 0 || pending * 302 >= 8_900) {
            a.send(.packets, [UInt8](repeating: 0, count: min(pending * 302, 8_900)))
            pending = 0
            lastQueued = a.sentThrough &+ UInt32(a.backlog)
        }
        ab.carry(a.poll(now: now), now: now)
        ba.carry(b.poll(now: now), now: now)
        for f in ab.due(now) { _ = b.receive(f, now: now) }
        for f in ba.due(now) { _ = a.receive(f, now: now) }
        if outcome.stateAcked == 0 && a.acknowledgedThrough >= stateThrough {
            outcome.stateAcked = now
            stopAt = now + redirectAfterState
        }
        if now >= stopAt && pending == 0 && a.idle && a.acknowledgedThrough >= lastQueued {
            outcome.tail = now
            break
        }
        if a.state != .open || b.state != .open {
            outcome.aborted = true
            print("aborted (drop \(drop), seed \(seed)): \(a.state) / \(b.state)")
            break
        }
        now += tick
    }
    outcome.timeouts = a.counters.timeouts
    outcome.retransmissions = a.counters.retransmissions
    return outcome
}

func ms(_ ns: UInt64) -> String { String(format: "%.1f", Double(ns) / 1e6) }

print(
    "channel: state 20 x 8.7 kB, packets 300 B at \(pps) pps until \(redirectAfterState / 1_000_000) ms after the "
        + "state is in; 100 Mbit/s, 5 ms round trip + jitter; \(seeds) seeds"
)
print(
    "drop%  state-acked ms (median / worst)  tail after redirect ends ms (median / worst)  timeouts (median / worst)  "
        + "retransmissions (median)  aborted"
)
for drop in drops {
    let runs = (0..<seeds).map { move(drop: drop / 100, seed: UInt64($0) &* 7919 &+ 17) }
    func median<T: Comparable>(_ values: [T]) -> T { values.sorted()[values.count / 2] }
    let acked = runs.map(\.stateAcked)
    let tails = runs.map {
        $0.tail > $0.stateAcked + redirectAfterState ? $0.tail - $0.stateAcked - redirectAfterState : 0
    }
    print(
        String(format: "%5.1f", drop), " ", ms(median(acked)), "/", ms(acked.max()!), "   ", ms(median(tails)), "/",
        ms(tails.max()!),
        "   ", median(runs.map(\.timeouts)), "/", runs.map(\.timeouts).max()!, "   ",
        median(runs.map(\.retransmissions)),
        "   ", runs.filter(\.aborted).count)
}
