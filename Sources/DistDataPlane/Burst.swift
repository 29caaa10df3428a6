import CDPDKShim
import DistFlow
import DistPipeline

/// A worker's buffers for one burst, allocated once when it starts: the mbufs, and what the
/// fast path reads of each (its first byte, its first segment's length, its whole length).
/// Every stage of the worker (receive, handoff, release of held packets, what the transfer
/// lcore hands over) fills and processes the same one.
struct Burst {
    let packets: UnsafeMutablePointer<OpaquePointer?>
    let data: UnsafeMutablePointer<UnsafePointer<UInt8>?>
    let segmentLengths: UnsafeMutablePointer<UInt16>
    let packetLengths: UnsafeMutablePointer<UInt32>
    /// Each packet's receive time (ns since the epoch; `.max`: none), when the ports stamp them.
    let stamps: UnsafeMutablePointer<UInt64>?

    init(capacity: Int, stamping: Bool = false) {
        packets = CacheLines.allocate(OpaquePointer?.self, capacity: capacity)
        data = CacheLines.allocate(UnsafePointer<UInt8>?.self, capacity: capacity)
        segmentLengths = CacheLines.allocate(UInt16.self, capacity: capacity)
        packetLengths = CacheLines.allocate(UInt32.self, capacity: capacity)
        stamps = stamping ? CacheLines.allocate(UInt64.self, capacity: capacity) : nil
    }

    func deallocate() {
        packets.deallocate()
        data.deallocate()
        segmentLengths.deallocate()
        packetLengths.deallocate()
        stamps?.deallocate()
    }

    /// Reads the first `count` mbufs' addresses and lengths (and prefetches their headers), and
    /// their receive times when stamping.
    func readMeta(_ count: Int) {
        dist_mbufs_meta(packets, UInt16(count), data, segmentLengths, packetLengths)
        if let stamps { dist_mbufs_stamps(packets, UInt16(count), stamps) }
    }

    /// Runs the first `count` packets through `fastPath`; true when any got a verdict other
    /// than forward (see ``Worker/sortOut(_:count:port:)``).
    @inline(__always)
    func process(_ count: Int, through fastPath: FastPath, now: UInt64, port: UInt16) -> Bool {
        fastPath.process(
            count: count, data: data, segmentLengths: segmentLengths, packetLengths: packetLengths, now: now,
            packets: packets, port: port)
    }
}
