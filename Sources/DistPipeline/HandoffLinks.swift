/// One worker's ends of the worker handoff (VPP's pattern): a single-producer single-consumer
/// ring to each other worker, and the rings from them. A packet whose flow another worker owns
/// goes to that worker's ring, in the order received, so a flow's packets keep their order; the
/// owner takes them between its own bursts. Nothing waits: a full ring is counted and the
/// packet is the caller's to drop (no state has been touched anywhere, as when a port drops).
public final class HandoffLinks<Element>: @unchecked Sendable {
    /// The ring to each worker (nil at this worker's own index).
    public let outgoing: [SPSCRing<Element>?]
    /// The rings from the other workers.
    public private(set) var incoming: [SPSCRing<Element>] = []

    init(outgoing: [SPSCRing<Element>?]) {
        self.outgoing = outgoing
    }

    /// The links of `workers` workers, each pair joined by a ring of `capacity` each way.
    public static func mesh(workers: Int, capacity: Int) -> [HandoffLinks<Element>] {
        let links = (0..<workers).map { i in
            HandoffLinks(outgoing: (0..<workers).map { $0 == i ? nil : SPSCRing<Element>(capacity: capacity) })
        }
        for (i, link) in links.enumerated() {
            link.incoming = links.compactMap { $0.outgoing[i] }
        }
        return links
    }

    /// Hands `item` to worker `owner`, counting it in `stats` (handed off, or the ring full:
    /// false, and the item stays the caller's).
    @inlinable @inline(__always)
    public func send(_ item: Element, to owner: Int, stats: UnsafeMutablePointer<WorkerStats>) -> Bool {
        if owner < outgoing.count, let ring = outgoing[owner], ring.push(item) {
            stats.pointee.handedOff &+= 1
            return true
        }
        stats.pointee.handoffRingFull &+= 1
        return false
    }
}
