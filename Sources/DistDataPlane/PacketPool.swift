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

    public init(name: String, count: UInt32, dataRoom: UInt16, socket: Int32, cacheSize: UInt32 = 256) throws {
        guard let p = dist_pktmbuf_pool_create(name, count, min(cacheSize, 512), dataRoom, socket) else {
            throw DataPlaneError.dpdk(
                "rte_pktmbuf_pool_create(\(count) mbufs of \(dataRoom) bytes)", dist_errno())
        }
        self.name = name
        self.count = count
        self.dataRoom = dataRoom
        pointer = p
    }

    public var available: UInt32 { dist_mempool_avail(pointer) }
    public var inUse: UInt32 { dist_mempool_in_use(pointer) }
}
