import CDPDKShim

/// A DPDK mbuf pool (`rte_pktmbuf_pool_create`).
public final class PacketPool: @unchecked Sendable {
    public let name: String
    public let count: UInt32
    public let dataRoom: UInt16
    public let pointer: OpaquePointer

    /// Default data room: 2048 bytes of packet plus DPDK's 128-byte headroom.
    public static let defaultDataRoom: UInt16 = 2048 + 128
    /// Data room for jumbo frames up to 9216 bytes in one segment.
    public static let jumboDataRoom: UInt16 = 9216 + 128

    /// `ops`: the mempool handler (nil: EAL's, `--mbuf-pool-ops-name` or the platform's).
    public init(
        name: String, count: UInt32, dataRoom: UInt16, socket: Int32, cacheSize: UInt32 = 256, ops: String? = nil
    ) throws {
        guard let p = dist_pktmbuf_pool_create(name, count, min(cacheSize, 512), dataRoom, socket, ops) else {
            throw DataPlaneError.dpdk(
                "rte_pktmbuf_pool_create(\(count) mbufs of \(dataRoom) bytes\(ops.map { ", handler \($0)" } ?? ""))",
                dist_errno())
        }
        self.name = name
        self.count = count
        self.dataRoom = dataRoom
        pointer = p
    }

    /// The mempool handler that holds the free mbufs ("ring_mp_mc", "stack", ...).
    public var ops: String { String(cString: dist_mempool_ops_name(pointer)) }

    /// The handler given to EAL with `--mbuf-pool-ops-name`, if any.
    public static var userOps: String? { dist_mbuf_user_pool_ops().map { String(cString: $0) } }

    /// The handler for a pool whose mbufs `workers` workers pass between them (worker
    /// handoff: one core receives into an mbuf, its flow's owner sends and frees it), unless
    /// the user chose one: with several, a stack (LIFO), whose next mbuf out is the last one
    /// in, still in a cache; a ring's is the oldest of all the free ones, from memory. Each
    /// lcore's own cache takes most frees and allocations either way; the shared store takes
    /// what one lcore frees more of than it allocates, and that is what handoff makes.
    public static func handler(workers: Int, user: String?) -> String? {
        user == nil && workers > 1 ? "stack" : nil
    }

    public var available: UInt32 { dist_mempool_avail(pointer) }
    public var inUse: UInt32 { dist_mempool_in_use(pointer) }
}
