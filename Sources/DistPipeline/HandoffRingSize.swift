/// How many packets each ring between two workers may hold, and the mbufs the default pool sets
/// aside for the rings. A packet waiting in a ring holds its mbuf. When a worker falls behind,
/// every ring into it fills; if the rings could hold more mbufs than the pool spares, the pool
/// would run dry and every queue would stop receiving, the other workers' own flows included.
/// A ring that is full only drops what is handed to the late worker (counted,
/// `handoff.ring_full`). So the rings are sized to what the pool spares (all of them full at
/// once still leave the ports their mbufs), and the default pool spares room for them.
public enum HandoffRingSize {
    /// About 1 ms of one worker's packets at 4 Mpps: an owner that serves its rings between
    /// bursts rarely has more than a few bursts waiting.
    public static let largest = 4096
    /// Below this a ring drops whenever an owner is late by a burst or two.
    public static let smallest = 64
    /// What the default pool adds for each worker's incoming rings, together: a worker's rings
    /// share it (one ring of 4,096 with two workers, three of 1,024 with four). Two workers
    /// sharing a CPU, as on the test bed, fill a ring of 2,048 while the other waits for its
    /// turn.
    public static let reservePerWorker = 4096

    /// mbufs the default pool adds for the handoff rings of `workers` workers (none with one:
    /// there are no rings).
    public static func reserve(workers: Int) -> Int {
        workers > 1 ? workers * reservePerWorker : 0
    }

    /// A power of two from ``smallest`` to ``largest``: the largest such that a worker's rings
    /// together hold at most ``reservePerWorker`` and every ring between `workers` workers, full
    /// at once, takes at most `spare` mbufs (``smallest`` if even that does not fit).
    public static func capacity(spare: Int, workers: Int) -> Int {
        let sources = max(1, workers - 1)
        let rings = max(1, workers * sources)
        var size = smallest
        while size * 2 <= min(largest, reservePerWorker / sources, max(0, spare) / rings) { size *= 2 }
        return size
    }

    /// The mbufs a pool of `pool` spares for the handoff rings: what the ports' descriptors
    /// (`inPortRings`), the rings to the transfer lcore (`transferRings`, all of them) and each
    /// of `lcores` lcores' cache (up to `cache` mbufs, and its burst) do not hold.
    public static func spare(pool: Int, inPortRings: Int, transferRings: Int, lcores: Int, cache: Int) -> Int {
        pool - inPortRings - transferRings - lcores * (cache + 32)
    }
}
