import Crypto
import DistChannel

var key: SymmetricKey { SymmetricKey(data: [UInt8](repeating: 7, count: 32)) }

/// A link with loss, duplication, reordering and corruption, driven by a seeded generator;
/// optionally a bottleneck: frames leave one after the other at `rate` (bytes per ns) from a
/// queue of `queueLimit` bytes, and a frame that finds the queue full is dropped.
struct Link {
    var drop = 0.0, duplicate = 0.0, reorder = 0.0, corrupt = 0.0
    var delay: UInt64 = 500_000
    var rate = 0.0
    var queueLimit = Int.max
    var linkFree: UInt64 = 0
    /// Frames the full queue dropped, and the most bytes queued at once.
    var overflowed = 0, mostQueued = 0
    var alive = true
    var state: UInt64
    var inTransit: [(at: UInt64, bytes: [UInt8])] = []

    init(seed: UInt64) { state = seed | 1 }

    mutating func random() -> Double {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return Double(state % 1_000_000) / 1_000_000
    }

    mutating func carry(_ frames: [[UInt8]], now: UInt64) {
        for var f in frames where alive {
            if random() < drop { continue }
            var leaves = now
            if rate > 0 {
                let queued = linkFree > now ? Int(Double(linkFree - now) * rate) : 0
                guard queued + f.count <= queueLimit else {
                    overflowed += 1
                    continue
                }
                mostQueued = max(mostQueued, queued + f.count)
                linkFree = max(linkFree, now) + UInt64(Double(f.count) / rate)
                leaves = linkFree
            }
            if random() < corrupt { f[Int(random() * Double(f.count))] ^= 0x5A }
            let extra = random() < reorder ? UInt64(random() * 3_000_000) : 0
            inTransit.append((leaves + delay + extra, f))
            if random() < duplicate { inTransit.append((leaves + delay + UInt64(random() * 2_000_000), f)) }
        }
    }

    mutating func due(_ now: UInt64) -> [[UInt8]] {
        let out = inTransit.filter { $0.at <= now }.sorted { $0.at < $1.at }.map { $0.bytes }
        inTransit.removeAll { $0.at <= now }
        return out
    }
}
