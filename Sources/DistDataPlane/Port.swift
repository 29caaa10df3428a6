import CDPDKShim
import DistFlow
import DistPacket

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
    /// The port stamps what it receives (asked for with `start(timestamps: true)`).
    public private(set) var timestamps = false
    /// How the port's queues meet flow ownership (see ``steer(_:queues:)``).
    public private(set) var steering = Steering.oneQueue

    /// Whether packets reach the worker that owns their flow.
    public enum Steering: Sendable, Equatable, CustomStringConvertible {
        /// One RX queue: its worker hands each packet to the flow's owner.
        case oneQueue
        /// RSS under the symmetric key with a redirection table of `tableSize` entries that
        /// agrees with ``FlowOwnership`` (checked in software): packets arrive at their owner.
        case hardwareAgrees(tableSize: Int)
        /// The device or the kernel spreads packets by a choice of its own (why, said): the
        /// receiving worker hands each packet that is not its own to the owner.
        case handoff(String)

        public var description: String {
            switch self {
            case .oneQueue: "one RX queue, flows handed to their owners"
            case .hardwareAgrees(let size):
                "RSS agrees with flow ownership (symmetric Toeplitz key, \(size)-entry redirection table, checked)"
            case .handoff(let why): "\(why); packets handed to their flows' owners"
            }
        }
    }

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

    /// Drivers whose queues pair with the peer's (memif, virtio-user against vhost-user,
    /// vhost): the peer reads only as many queues as it has.
    public static let pairedQueueDrivers: Set<String> = ["net_memif", "net_virtio_user", "net_vhost", "net_virtio"]

    /// Drivers that copy each received frame into its mbuf on the receiving lcore (from a
    /// capture file, the kernel's packet ring): the frame's lines are written by the core that
    /// receives, where a NIC or a vhost-user peer writes them itself.
    public static let copyingReceiveDrivers: Set<String> = ["net_pcap", "net_af_packet"]

    /// Configures `queues` RX and `txQueues` (default as many) TX queues on `pool` and starts the port.
    public mutating func start(
        queues: UInt16, txQueues: UInt16? = nil, rxDescriptors: UInt16, txDescriptors: UInt16, pool: PacketPool,
        timestamps: Bool = false
    ) throws {
        var message = [CChar](repeating: 0, count: 256)
        var rssOn: Int32 = 0
        var stamps: Int32 = timestamps ? 1 : 0
        let rc = dist_port_setup(
            id, queues, txQueues ?? queues, rxDescriptors, txDescriptors, pool.pointer, &rssOn, &stamps,
            &message, message.count)
        guard rc == 0 else {
            throw DataPlaneError(
                "port \(id) (\(name)): "
                    + "\(String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))"
            )
        }
        rss = rssOn != 0
        self.timestamps = stamps != 0
    }

    /// Programs RSS so the port's choice of queue is ``FlowOwnership``'s owner, and checks it in
    /// software (DPDK's `rte_softrss` under the key and table the port reports) on sample flows.
    public mutating func steer(_ ownership: FlowOwnership, queues: UInt16) {
        guard queues > 1 else {
            steering = .oneQueue
            return
        }
        guard rss else {
            steering = .handoff("\(driver) has no programmable RSS")
            return
        }
        let table = ownership.redirectionTable(size: FlowOwnership.tableEntries)!
        var reta = [UInt16](repeating: 0, count: 4096)
        var size: UInt16 = 0
        var key = [UInt8](repeating: 0, count: 255)
        var keyLength: UInt8 = 0
        var message = [CChar](repeating: 0, count: 256)
        let rc = dist_port_program_rss(
            id, table, UInt16(table.count), &reta, UInt16(reta.count), &size, &key,
            UInt8(key.count), &keyLength, &message, message.count)
        guard rc == 0 else {
            steering = .handoff(
                "RSS not programmable "
                    + "(\(String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)))"
            )
            return
        }
        let portKey = Array(key.prefix(Int(keyLength)))
        for flow in Port.sampleFlows() {
            let input = FlowOwnership.rssInput(flow)
            guard portKey.count >= input.count + 4 else {
                steering = .handoff("RSS key of \(portKey.count) bytes")
                return
            }
            let queue = Int(reta[Int(dist_softrss(input, UInt32(input.count), portKey) % UInt32(size))])
            if queue != ownership.owner(of: flow) {
                steering = .handoff(
                    "RSS picks queue \(queue) for \(flow), its owner is worker \(ownership.owner(of: flow))")
                return
            }
        }
        steering = .hardwareAgrees(tableSize: Int(size))
    }

    /// Checks ``FlowOwnership/hash(_:)`` against DPDK's `rte_softrss` under the symmetric key on
    /// sample flows of every kind; the first disagreement, or nil.
    public static func checkOwnerFunction() -> String? {
        for flow in sampleFlows() {
            let input = FlowOwnership.rssInput(flow)
            let expected = dist_softrss(input, UInt32(input.count), FlowOwnership.symmetricKey)
            if FlowOwnership.hash(flow) != expected {
                return "\(flow): owner hash \(FlowOwnership.hash(flow)), rte_softrss \(expected)"
            }
        }
        return nil
    }

    /// 512 flows of TCP, UDP and ICMP over IPv4 and IPv6, from a fixed seed.
    static func sampleFlows() -> [FlowKey] {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state ^ (state >> 29)
        }
        return (0..<512).map { i in
            let v6 = i % 4 == 3
            let a = v6 ? IPAddress(hi: next(), lo: next()) : IPAddress(ipv4: UInt32(truncatingIfNeeded: next()))
            let b = v6 ? IPAddress(hi: next(), lo: next()) : IPAddress(ipv4: UInt32(truncatingIfNeeded: next()))
            let (lo, hi) = a < b ? (a, b) : (b, a)
            let proto: UInt8 = [6, 17, 1][i % 3]
            let ports =
                proto == 1
                ? (UInt16(0), UInt16(0)) : (UInt16(truncatingIfNeeded: next()), UInt16(truncatingIfNeeded: next()))
            return FlowKey(loAddr: lo, hiAddr: hi, loPort: ports.0, hiPort: ports.1, proto: proto, vlanKey: 0)
        }
    }

    public func stop() { _ = dist_port_stop(id) }
    public func close() { _ = dist_port_close(id) }

    public struct Stats: Sendable {
        public var rxPackets, txPackets, rxBytes, txBytes, rxMissed, rxErrors, txErrors, rxNoMbuf: UInt64
    }

    public func stats() -> Stats? {
        var s = dist_port_stats()
        guard dist_port_stats(id, &s) == 0 else { return nil }
        return Stats(
            rxPackets: s.ipackets, txPackets: s.opackets, rxBytes: s.ibytes, txBytes: s.obytes,
            rxMissed: s.imissed, rxErrors: s.ierrors, txErrors: s.oerrors, rxNoMbuf: s.rx_nombuf)
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
