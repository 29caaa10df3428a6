/// How many mbufs a worker's ring to the transfer lcore may hold. The ring takes no more than
/// the pool has beyond what the ports' descriptors hold, shared among the workers. A transfer
/// lcore that falls behind then fills its ring (its own packets dropped, counted as
/// `transfer.ring_full`) rather than the pool, which would stop every queue from receiving, the
/// channel's acknowledgements included. (On the DPDK test bed a ring of 16,384 emptied a pool of
/// 14,624 mbufs, and the source received nothing for a second.)
public enum TransferRingSize {
    /// A power of two from 256 to 16,384.
    public static func capacity(pool: Int, inPortRings: Int, workers: Int) -> Int {
        let share = max(0, pool - inPortRings) / (2 * max(1, workers))
        var size = 256
        while size * 2 <= min(share, 16384) { size *= 2 }
        return size
    }
}
