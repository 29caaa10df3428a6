import DistPipeline
import Testing

/// The rings between workers never hold, full at once, more mbufs than the pool spares: a late
/// worker fills only its own rings (counted drops), never the pool every queue receives into.
@Suite struct HandoffRingSizeTests {
    /// The default pool of `workers` workers on `ports` ports, as dist-vnf sizes it (1,024 RX and
    /// TX descriptors, caches of 256), and its rings to the transfer lcore.
    static func defaults(workers: Int, ports: Int) -> (pool: Int, inPortRings: Int, transfer: Int) {
        let inPortRings = ports * workers * 2048
        let pool = max(
            8191,
            ports * workers * (2048 + 32) + workers * 256 + 1024 + 2048 + HandoffRingSize.reserve(workers: workers))
        let transfer = TransferRingSize.capacity(
            pool: pool - HandoffRingSize.reserve(workers: workers), inPortRings: inPortRings, workers: workers)
        return (pool, inPortRings, transfer * workers)
    }

    @Test func theRingsOfTheReadmesFourWorkersFitTheDefaultPool() {
        // `dist-vnf -l 0-4` on a NIC with two ports: four workers, twelve rings.
        let (pool, inPortRings, transfer) = Self.defaults(workers: 4, ports: 2)
        let spare = HandoffRingSize.spare(
            pool: pool, inPortRings: inPortRings, transferRings: transfer, lcores: 6, cache: 384)
        let ring = HandoffRingSize.capacity(spare: spare, workers: 4)
        #expect(ring == 1024)
        #expect(12 * ring <= spare)
        // Without the pool's reserve the same rings would not fit.
        #expect(12 * ring > spare - HandoffRingSize.reserve(workers: 4))
    }

    @Test func twoWorkersKeepLongRings() {
        let (pool, inPortRings, transfer) = Self.defaults(workers: 2, ports: 2)
        let spare = HandoffRingSize.spare(
            pool: pool, inPortRings: inPortRings, transferRings: transfer, lcores: 4, cache: 384)
        #expect(HandoffRingSize.capacity(spare: spare, workers: 2) == 4096)
        // The forwarding benchmark's pool of 150,000 mbufs: the longest ring.
        #expect(HandoffRingSize.capacity(spare: 150_000 - 8192 - 3 * 416, workers: 2) == 4096)
    }

    @Test func everyRingFullAtOnceFitsWhatThePoolSpares() {
        for workers in 2...16 {
            #expect(HandoffRingSize.reserve(workers: workers) == workers * HandoffRingSize.reservePerWorker)
            for spare in stride(from: -1000, to: 300_000, by: 1_777) {
                let c = HandoffRingSize.capacity(spare: spare, workers: workers)
                #expect(c & (c - 1) == 0)
                #expect((HandoffRingSize.smallest...HandoffRingSize.largest).contains(c))
                #expect(c == HandoffRingSize.smallest || c * workers * (workers - 1) <= spare)
                #expect(c == HandoffRingSize.smallest || c * (workers - 1) <= HandoffRingSize.reservePerWorker)
                // The largest that fits: twice as long would not (or is past a bound).
                #expect(
                    c == HandoffRingSize.largest || 2 * c * (workers - 1) > HandoffRingSize.reservePerWorker
                        || 2 * c * workers * (workers - 1) > spare)
            }
        }
        #expect(HandoffRingSize.reserve(workers: 1) == 0)
    }
}
