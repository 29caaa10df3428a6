import CDPDKShim

/// One DPDK ethernet port: what it is, and its set-up, statistics and shutdown.
public struct Port: Sendable {
    public let id: UInt16
    public let driver: String
    public let name: String
    public let maxRxQueues: UInt16
    public let maxTxQueues: UInt16
    public let socket: Int32
    public let mac: [UInt8]
    public private(set) var rss = false

    public static var count: UInt16 { dist_port_count() }

    public init(id: UInt16) throws {
        var info = dist_port_info()
        let rc = dist_port_info(id, &info)
        guard rc == 0 else { throw DataPlaneError.dpdk("port \(id): rte_eth_dev_info_get", rc) }
        self.id = id
        driver = withUnsafeBytes(of: info.driver) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        name = withUnsafeBytes(of: info.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        maxRxQueues = info.max_rx_queues
        maxTxQueues = info.max_tx_queues
        socket = info.socket
        mac = withUnsafeBytes(of: info.mac) { Array($0) }
    }

    public var macString: String { mac.map { String($0, radix: 16).leftPadded(2) }.joined(separator: ":") }

    /// Configures `queues` RX and TX queues on `pool` and starts the port.
    public mutating func start(queues: UInt16, rxDescriptors: UInt16, txDescriptors: UInt16, pool: PacketPool) throws {
        var message = [CChar](repeating: 0, count: 256)
        var rssOn: Int32 = 0
        let rc = dist_port_setup(id, queues, queues, rxDescriptors, txDescriptors, pool.pointer, &rssOn,
                                 &message, message.count)
        guard rc == 0 else {
            throw DataPlaneError("port \(id) (\(name)): \(String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
        }
        rss = rssOn != 0
    }

    public func stop() { _ = dist_port_stop(id) }
    public func close() { _ = dist_port_close(id) }

    public struct Stats: Sendable {
        public var rxPackets, txPackets, rxBytes, txBytes, rxMissed, rxErrors, txErrors, rxNoMbuf: UInt64
    }

    public func stats() -> Stats? {
        var s = dist_port_stats()
        guard dist_port_stats(id, &s) == 0 else { return nil }
        return Stats(rxPackets: s.ipackets, txPackets: s.opackets, rxBytes: s.ibytes, txBytes: s.obytes,
                     rxMissed: s.imissed, rxErrors: s.ierrors, txErrors: s.oerrors, rxNoMbuf: s.rx_nombuf)
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
