import Atomics
import CDPDKShim
import DistFlow
import DistPRADS
import DistPipeline

/// How the data plane is sized. Everything is allocated once, at start.
public struct DataPlaneConfig: Sendable {
    /// Flow table capacity of each worker.
    public var flowsPerWorker = 1 << 20
    /// mbufs in the pool; 0 picks a size from ports, queues and descriptors.
    public var mbufs: UInt32 = 0
    /// Bytes of data room per mbuf (headroom included).
    public var mbufDataRoom: UInt16 = PacketPool.defaultDataRoom
    public var rxDescriptors: UInt16 = 1024
    public var txDescriptors: UInt16 = 1024
    public var timeouts = FlowTimeouts()
    /// PRADS signatures for the detection each worker runs; nil forwards and tracks only.
    public var signatures: PRADSSignatures?
    /// Learn hosts' Ethernet addresses from ARP replies (PRADS's `arp=1`).
    public var arp = false
    /// Hosts each worker's detection keeps (see ``Detector/maxAssets``).
    public var maxHostsPerWorker = 1 << 20
    /// How far into each direction of a flow detection matches payloads.
    public var inspection = InspectionLimit.standard
    /// Workers give their CPU up (sched_yield) after a poll round that found nothing: for hosts
    /// where lcores share CPUs with other busy threads (the one-machine test bed). Off: pure
    /// busy polling, as on dedicated cores.
    public var idleYield = false
    /// And after 32 rounds in a row that found nothing, sleep this long (µs; 0: never). See
    /// ``IdleBackoff``.
    public var idleSleepMicroseconds: UInt32 = 0
    var idleBackoff: IdleBackoff {
        IdleBackoff(yield: idleYield, sleepNanoseconds: UInt64(idleSleepMicroseconds) * 1000)
    }
    /// Reserve the last worker lcore for the transfer lcore (DiST's Move over the data port).
    public var transferLcore = false
    /// The port the channel's frames leave by (nil: the first route's, where port 0's packets go).
    public var channelPort: UInt16?
    /// Detection dates by the ports' receive timestamps (see ``FastPath/stamps``).
    public var captureTime = false
    /// How packets a rule held go on when it ends (a Move's destination): paced at a multiple of
    /// the rate they came at, so a long hold does not leave as one burst.
    public var holdPacing = HoldQueue.Pacing()
    public init() {}
}

/// The running data plane: ports, the mbuf pool, and one worker per worker lcore, each
/// polling its own RX queue (queue i for worker i) on every port.
public final class DataPlane: @unchecked Sendable {
    public private(set) var ports: [Port] = []
    public private(set) var workers: [Worker] = []
    public let pool: PacketPool
    public let config: DataPlaneConfig
    /// Which worker owns each flow (the fast path, imports and Moves all ask it).
    public let ownership: FlowOwnership
    public let clock = Clock()
    let stopFlag = UnsafeAtomic<Bool>.create(false)
    /// Workers still receiving, while they stop (see ``Worker/finishHandoffs``).
    let receiving = UnsafeAtomic<Int>.create(0)
    let slotStride: Int
    let slots: UnsafeMutableRawPointer
    private var launched = false
    /// The lcore reserved for the transfer lcore, if any, and what runs there once launched.
    public private(set) var transferLcore: UInt32?
    private var agent: TransferAgent?
    /// The transfer lcore's own counters (frames sent on its own queue, busy time), kept when it
    /// stops and its agent goes, for the final statistics.
    private var stoppedTransfer: (framesSent: UInt64, busyNanoseconds: UInt64) = (0, 0)
    /// The TX queue of the channel's port that the transfer lcore owns (nil: it has none, and
    /// hands its frames to worker 0).
    public private(set) var channelTxQueue: UInt16?
    /// The port the channel's frames leave by (``DataPlaneConfig/channelPort``).
    public private(set) var channelPort: UInt16 = 0
    /// Packets each ring between two workers holds (``HandoffRingSize``).
    public let handoffRingCapacity: Int
    private var portsStarted = false

    /// Sets the data plane up after ``EAL/initialize(arguments:)``: finds the ports and worker
    /// lcores, creates the pool and the flow tables, and starts every port.
    public init(config: DataPlaneConfig) throws {
        self.config = config
        var lcores = EAL.workerLcores
        if config.transferLcore {
            guard lcores.count >= 2 else {
                throw DataPlaneError(
                    "the channel needs a transfer lcore besides a worker: give EAL at least three lcores (e.g. -l 0-2)")
            }
            transferLcore = lcores.removeLast()
        }
        guard !lcores.isEmpty else {
            throw DataPlaneError(
                "no worker lcore: give EAL at least two lcores (e.g. -l 0-1); the main lcore only controls")
        }
        let queues = UInt16(lcores.count)
        var found = try Self.ports(queues: queues)
        let count = Self.poolSize(config, ports: found.count, queues: queues)
        pool = try Self.pool(count: count, config: config, socket: EAL.socket(of: lcores[0]), workers: lcores.count)
        slotStride = (MemoryLayout<WorkerStats>.stride + 63) & ~63
        slots = UnsafeMutableRawPointer.allocate(byteCount: slotStride * lcores.count, alignment: 64)
        ownership = FlowOwnership(workers: lcores.count)

        let routes = Route.pairs(portCount: UInt16(found.count))
        let inPortRings = found.count * Int(queues) * (Int(config.rxDescriptors) + Int(config.txDescriptors))
        // (What the default pool added for the handoff rings is theirs, not the transfer rings'.)
        let handoffReserve = config.mbufs > 0 ? 0 : HandoffRingSize.reserve(workers: lcores.count)
        let transferRing = TransferRingSize.capacity(
            pool: Int(count) - handoffReserve, inPortRings: inPortRings, workers: lcores.count)
        handoffRingCapacity = HandoffRingSize.capacity(
            spare: HandoffRingSize.spare(
                pool: Int(count), inPortRings: inPortRings,
                transferRings: config.transferLcore ? transferRing * lcores.count : 0,
                lcores: lcores.count + (config.transferLcore ? 2 : 1), cache: Int(Self.poolCache) * 3 / 2),
            workers: lcores.count)
        let mesh = HandoffLinks<HandoffPacket>.mesh(workers: lcores.count, capacity: handoffRingCapacity)
        for (i, lcore) in lcores.enumerated() {
            workers.append(makeWorker(i, lcore: lcore, routes: routes, handoff: mesh[i], transferRing: transferRing))
        }
        if lcores.count > 1 && found.contains(where: { Port.copyingReceiveDrivers.contains($0.driver) }) {
            for w in workers { w.warmsReceiveBuffers = true }
        }
        receiving.store(lcores.count, ordering: .relaxed)
        try start(&found, queues: queues, routes: routes)
        ports = found
        if config.captureTime && found.contains(where: \.timestamps) { for w in workers { w.stamping = true } }
    }

    /// The mbuf pool, with the handler ``PacketPool/handler(workers:user:)`` picks, or EAL's
    /// when that one cannot be had (its driver not loaded).
    static func pool(count: UInt32, config: DataPlaneConfig, socket: Int32, workers: Int) throws -> PacketPool {
        if let ops = PacketPool.handler(workers: workers, user: PacketPool.userOps),
            let pool = try? PacketPool(
                name: "dist_mbufs", count: count, dataRoom: config.mbufDataRoom, socket: socket,
                cacheSize: poolCache, ops: ops)
        {
            return pool
        }
        return try PacketPool(
            name: "dist_mbufs", count: count, dataRoom: config.mbufDataRoom, socket: socket, cacheSize: poolCache)
    }

    /// Per-lcore mbuf cache of the pool.
    static let poolCache: UInt32 = 256

    /// Every port EAL found, each with a queue per worker at least.
    static func ports(queues: UInt16) throws -> [Port] {
        let portCount = Port.count
        guard portCount > 0 else {
            throw DataPlaneError(
                "no ports: give EAL a device (--vdev net_pcap0,rx_pcap=IN,tx_pcap=OUT, --vdev "
                    + "net_af_packet0,iface=IF, or -a PCI)"
            )
        }
        var found: [Port] = []
        for id in 0..<portCount { found.append(try Port(id: id)) }
        for port in found where port.maxRxQueues < queues || port.maxTxQueues < queues {
            throw DataPlaneError(
                "port \(port.id) (\(port.name), \(port.driver)) has \(port.maxRxQueues) RX / \(port.maxTxQueues) TX "
                    + "queues; \(queues) worker lcores need as many: give fewer lcores or more queues"
            )
        }
        return found
    }

    /// mbufs in the pool: as configured, or what every queue's descriptors, the lcores' caches,
    /// bursts in flight and the handoff rings (``HandoffRingSize/reserve(workers:)``) hold, with
    /// room to spare.
    static func poolSize(_ config: DataPlaneConfig, ports: Int, queues: UInt16) -> UInt32 {
        let needed =
            UInt32(ports) * UInt32(queues)
            * (UInt32(config.rxDescriptors) + UInt32(config.txDescriptors) + UInt32(Worker.burstSize))
            + UInt32(queues) * poolCache + UInt32(config.txDescriptors) + 2048
            + UInt32(HandoffRingSize.reserve(workers: Int(queues)))
        return config.mbufs > 0 ? config.mbufs : max(8191, needed)
    }

    /// Worker `i` on `lcore`: its flow table, detection, statistics slot and links.
    func makeWorker(
        _ i: Int, lcore: UInt32, routes: [Route], handoff: HandoffLinks<HandoffPacket>, transferRing: Int
    ) -> Worker {
        let slot = (slots + i * slotStride).bindMemory(to: WorkerStats.self, capacity: 1)
        slot.initialize(to: WorkerStats())
        let table = FlowTable(capacity: config.flowsPerWorker, timeouts: config.timeouts)
        let records = RecordRing()
        var detector: Detector?
        if let signatures = config.signatures {
            detector = Detector(signatures: signatures, inspection: config.inspection)
            detector?.arp = config.arp
            detector?.maxAssets = config.maxHostsPerWorker
            detector?.onRecord = { records.push($0) }
        }
        let worker = Worker(
            index: i, lcore: lcore, queue: UInt16(i), routes: routes, table: table,
            detector: detector, records: records,
            statsSlot: slot, stopFlag: stopFlag, clock: clock, handoff: handoff, idle: config.idleBackoff,
            pacing: config.holdPacing)
        worker.pool = pool.pointer
        worker.fastPath.ownership = ownership
        worker.fastPath.index = i
        if config.transferLcore { worker.transfer = TransferLink(toTransfer: transferRing) }
        if ownership.workers > 1 { worker.receiving = receiving }
        return worker
    }

    /// Picks the channel's port (and the transfer lcore's own TX queue there, if it can have
    /// one), then starts every port with a queue per worker.
    func start(_ found: inout [Port], queues: UInt16, routes: [Route]) throws {
        // The transfer lcore sends the channel's frames on a TX queue of its own where the
        // channel's port has one more; else through worker 0's (see ``TransferAgent``). Not on
        // virtual links that pair each TX queue with an RX queue of the peer: an extra TX queue
        // there is a queue nobody reads, or a mismatch that keeps the link down.
        channelPort = config.channelPort ?? routes[0].tx
        guard Int(channelPort) < found.count else {
            throw DataPlaneError("--channel-port \(channelPort): no such port (ports 0 to \(found.count - 1))")
        }
        for worker in workers { worker.channelPort = channelPort }
        let port = found[Int(channelPort)]
        if config.transferLcore && port.maxTxQueues > queues && !Port.pairedQueueDrivers.contains(port.driver) {
            channelTxQueue = queues
        }
        for i in found.indices {
            try found[i].start(
                queues: queues, txQueues: i == Int(channelPort) && channelTxQueue != nil ? queues + 1 : queues,
                rxDescriptors: config.rxDescriptors, txDescriptors: config.txDescriptors, pool: pool,
                timestamps: config.captureTime)
            portsStarted = true
            found[i].steer(ownership, queues: queues)
        }
    }

    deinit {
        slots.deallocate()
        stopFlag.destroy()
        receiving.destroy()
    }

    /// Bytes held by all flow tables.
    public var flowTableBytes: Int { workers.reduce(0) { $0 + $1.table.memoryBytes } }
    /// Of ``flowTableBytes``, those on transparent huge pages.
    public var flowTableHugeBytes: Int { workers.reduce(0) { $0 + $1.table.hugePageBytes } }

    /// Starts every worker on its lcore.
    public func launch() throws {
        for worker in workers {
            let rc = dist_lcore_launch(workerMain, Unmanaged.passUnretained(worker).toOpaque(), worker.lcore)
            guard rc == 0 else { throw DataPlaneError.dpdk("rte_eal_remote_launch on lcore \(worker.lcore)", rc) }
        }
        launched = true
    }

    /// Starts the transfer lcore (after ``launch()``).
    public func launch(_ agent: TransferAgent) throws {
        let rc = dist_lcore_launch(transferMain, Unmanaged.passUnretained(agent).toOpaque(), agent.lcore)
        guard rc == 0 else { throw DataPlaneError.dpdk("rte_eal_remote_launch on lcore \(agent.lcore)", rc) }
        self.agent = agent
    }

    /// Tells the workers to stop, and waits for them to flush and return.
    public func stopWorkers() {
        stopFlag.store(true, ordering: .releasing)
        if launched {
            for worker in workers { _ = dist_lcore_wait(worker.lcore) }
            if let agent {
                _ = dist_lcore_wait(agent.lcore)
                stoppedTransfer = transferCounters(agent)
            }
            agent = nil
            launched = false
        }
    }

    /// Stops and closes every port (net_pcap writes its output file completely on close).
    public func closePorts() {
        guard portsStarted else { return }
        for port in ports { port.stop() }
        for port in ports { port.close() }
        portsStarted = false
    }

    /// Hands every asset record the workers queued since the last call to `body` (main lcore).
    public func drainRecords(_ body: (AssetRecord) -> Void) {
        for worker in workers { worker.records.drain(body) }
    }

    /// Hands every packet event the workers raised since the last call to `body` (main lcore).
    public func drainEvents(_ body: (PacketEvent) -> Void) {
        for worker in workers { worker.events.drain(body) }
    }

    /// Records lost because a worker's ring was full.
    public var droppedRecords: Int { workers.reduce(0) { $0 + $1.records.dropped } }

    /// A snapshot of each worker's counters.
    public func workerStats() -> [WorkerStats] {
        workers.map { $0.statsSlot.pointee }
    }

    public func totalStats() -> WorkerStats {
        var total = workerStats().reduce(WorkerStats(), +)
        // (Frames the transfer lcore sent on its own queue; with none, worker 0 counted them.)
        let transfer = agent.map(transferCounters) ?? stoppedTransfer
        total.channelFramesSent &+= transfer.framesSent
        total.transferBusyNanoseconds = transfer.busyNanoseconds
        return total
    }

    private func transferCounters(_ agent: TransferAgent) -> (framesSent: UInt64, busyNanoseconds: UInt64) {
        (UInt64(agent.framesSent.load(ordering: .relaxed)), agent.busyNanoseconds.load(ordering: .relaxed))
    }

    /// Which thread asks a worker (each has its own mailbox there).
    public enum Asker: Int, Sendable {
        /// The main lcore: the southbound API and the admin socket.
        case control = 0
        /// The transfer lcore: a Move's marks, exports and imports.
        case transfer = 1
    }

    /// Performs a state request on one worker (between its bursts when running, directly
    /// when not); a worker that does not answer within `timeout` seconds gives nil.
    public func perform(_ request: StateRequest, on worker: Worker, from asker: Asker = .control, timeout: Double = 2.0)
        -> StateResponse?
    {
        launched ? worker.mailboxes[asker.rawValue].ask(request, timeout: timeout) : worker.fastPath.perform(request)
    }

    /// Up to `limit` flows, asked of each worker in turn. Workers that do not answer in time are skipped.
    public func flows(limit: Int, timeout: Double = 1.0) -> (flows: [(worker: Int, entry: FlowEntry)], complete: Bool) {
        var result: [(worker: Int, entry: FlowEntry)] = []
        var complete = true
        for worker in workers where result.count < limit {
            guard case .flows(let entries)? = perform(.flows(limit: limit - result.count), on: worker, timeout: timeout)
            else {
                complete = false
                continue
            }
            result.append(contentsOf: entries.map { (worker.index, $0) })
        }
        return (result, complete)
    }
}

/// The C entry point of the transfer lcore.
private func transferMain(_ argument: UnsafeMutableRawPointer?) -> Int32 {
    guard let argument else { return -1 }
    return Unmanaged<TransferAgent>.fromOpaque(argument).takeUnretainedValue().run()
}

/// The C entry point each worker lcore runs.
private func workerMain(_ argument: UnsafeMutableRawPointer?) -> Int32 {
    guard let argument else { return -1 }
    return Unmanaged<Worker>.fromOpaque(argument).takeUnretainedValue().run()
}
