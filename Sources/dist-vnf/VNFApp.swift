import Atomics
import Crypto
import DistAdmin
import DistChannel
import DistControl
import DistDataPlane
import DistFlow
import DistMetrics
import DistPRADS
import DistPacket
import DistPipeline
import DistServer
import DistState
import DistTransfer
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Set by SIGINT or SIGTERM (a C signal handler reaches only a global).
let stopRequested = ManagedAtomic<Bool>(false)
/// Set by SIGHUP: the asset log is reopened (after logrotate moved it).
let reopenRequested = ManagedAtomic<Bool>(false)

/// One dist-vnf process: its data plane (ports, workers, the transfer lcore), the asset log,
/// and the main lcore's sockets (admin, southbound). Used from the main thread only.
final class VNFApp {
    let options: Options
    let name: String
    let plane: DataPlane
    let assets: AssetCollector
    let agent: TransferAgent?
    let stateStore: PipelineStateStore
    let service: SouthboundService
    var admin: AdminServer?
    var control: SocketServer?
    let startTime = Date()
    /// Packets raised while no controller connection owned the events (it went away): counted.
    var unclaimedEvents = 0
    /// All-flows counters on their way out, by Move: taken off this instance when the Move completes.
    var countersMoving: [UInt64: InstanceCounters] = [:]
    /// `--metrics`: what is published, its server, and the Moves' totals kept for it.
    var metrics: MetricsBook?
    var metricsServer: MetricsServer?
    var movesEnded: [String: UInt64] = [:]
    var movesRetransmissions: UInt64 = 0
    var movesTimeouts: UInt64 = 0

    init(options: Options, plane: DataPlane, assets: AssetCollector, agent: TransferAgent?) {
        self.options = options
        name = options.id
        self.plane = plane
        self.assets = assets
        self.agent = agent
        stateStore = PipelineStateStore(
            workers: plane.workers.count,
            perform: { request, worker in plane.perform(request, on: plane.workers[worker]) },
            totals: { InstanceCounters(plane.totalStats()) })
        service = SouthboundService(store: stateStore)
    }

    /// Everything up to the workers' launch; a failure exits with one line (2: bad arguments
    /// or files, 1: the host or DPDK).
    static func start(arguments argv: [String]) -> VNFApp {
        let separator = argv.firstIndex(of: "--")
        let ealArguments = Array(argv[1..<(separator ?? argv.count)])
        let options: Options
        do {
            options = try Options.parse(separator.map { Array(argv[($0 + 1)...]) } ?? [])
        } catch {
            fail("\(error)", code: 2)
        }
        if options.help || ealArguments.contains("-h") || ealArguments.contains("--help") {
            emit(Options.usage)
            emit("\nDPDK EAL options:")
            // EAL prints its own usage for --help and exits.
            _ = try? EAL.initialize(arguments: [argv[0], "--help"])
            exit(0)
        }
        startLogging(format: options.logFormat, level: options.logLevel, id: options.id)
        if let unknown = EALOptions.firstUnknown(in: ealArguments) {
            fail("unknown EAL option '\(unknown)' (EAL options come before '--'; see --help)", code: 2)
        }
        // (Before EAL: a bad file costs nothing to report.)
        let channelKey = options.channelKeyPath.map { path in
            do { return try ChannelKey.load(path: path) } catch { fail("--channel-key: \(error)", code: 2) }
        }
        var dataConfig = options.data
        let signatureWarnings = loadSignatures(options, into: &dataConfig)
        let assets: AssetCollector
        do {
            assets = try AssetCollector(logPath: options.assetLogPath, name: options.id)
        } catch {
            fail("\(error)", code: 2)
        }
        let plane = startDataPlane(argv[0], ealArguments, dataConfig)
        assets.view.maxAssets = plane.workers.count * dataConfig.maxHostsPerWorker
        let app = VNFApp(
            options: options, plane: plane, assets: assets,
            agent: startTransfer(options, channelKey, plane))
        app.describe(dataConfig.signatures, signatureWarnings)
        installSignalHandlers()
        app.openAdmin()
        app.openSouthbound()
        app.openMetrics()
        return app
    }

    /// PRADS's signatures into `config` (with detection on); the lines it skipped.
    static func loadSignatures(_ options: Options, into config: inout DataPlaneConfig) -> [SignatureFileError] {
        guard options.detection else {
            if options.assetLogPath != nil { fail("--asset-log needs detection (remove --no-detection)", code: 2) }
            return []
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: options.signatureDirectory, isDirectory: &isDirectory),
            isDirectory.boolValue
        else {
            fail(
                "--signatures: \(options.signatureDirectory) is not a directory (install Debian's prads, give "
                    + "another, or --no-detection)",
                code: 2)
        }
        do {
            let signatures = try PRADSSignatures.load(directory: options.signatureDirectory)
            config.signatures = signatures
            return signatures.errors
        } catch {
            fail("--signatures: \(error)", code: 2)
        }
    }

    /// EAL (its output goes to a file while it starts: a failure becomes one line), then the
    /// ports, pool and workers.
    static func startDataPlane(_ program: String, _ ealArguments: [String], _ config: DataPlaneConfig) -> DataPlane {
        let (started, output) = withCapturedOutput {
            Result { try EAL.initialize(arguments: [program] + ealArguments) }
        }
        if case .failure(let error) = started {
            fail("EAL arguments rejected: \(ealReason(output) ?? "\(error)")", code: 2)
        }
        let plane: DataPlane
        do {
            plane = try DataPlane(config: config)
        } catch {
            EAL.cleanup()
            // A device EAL could not create explains a missing port better than the absence does.
            let deviceFailure = output.split(separator: "\n").first {
                $0.contains("Couldn't") || $0.contains("failed to initialize")
            }
            fail("\(error)" + (deviceFailure.map { " [\($0)]" } ?? ""), code: 1)
        }
        // EAL's start-up log is shown once the data plane is up (a failure above is one line).
        if !output.isEmpty { emit(String(output.dropLast(output.hasSuffix("\n") ? 1 : 0))) }
        return plane
    }

    /// The transfer lcore's Move engine, where the instance has a DiST channel.
    static func startTransfer(_ options: Options, _ key: SymmetricKey?, _ plane: DataPlane) -> TransferAgent? {
        guard let address = options.channel, let key, let lcore = plane.transferLcore else { return nil }
        let local = ChannelAddress(
            mac: plane.ports[Int(plane.channelPort)].mac, ip: address.ip, port: address.port, vlan: options.channelVLAN)
        do {
            let agent = try TransferAgent(
                plane: plane, lcore: lcore, local: local, key: key, mtu: options.channelMTU ?? 9000,
                traceFile: options.channelTracePath, compressStates: options.channelCompression)
            for worker in plane.workers { worker.fastPath.channel = (IPAddress(ipv4: local.ip), local.port) }
            return agent
        } catch {
            fail("\(error)", code: 2)
        }
    }

    /// The start-up lines: ports, ownership, workers, detection, the channel, memory.
    func describe(_ signatures: PRADSSignatures?, _ warnings: [SignatureFileError]) {
        emit(
            "[\(name)] \(plane.ports.count) port(s), \(plane.workers.count) worker(s), pool \(plane.pool.count) mbufs "
                + "of \(plane.pool.dataRoom - 128) bytes (mempool handler \(plane.pool.ops))"
                + (plane.workers.count > 1 ? ", handoff rings of \(plane.handoffRingCapacity) packets" : "")
        )
        for port in plane.ports {
            let route = Route.pairs(portCount: UInt16(plane.ports.count))[Int(port.id)]
            emit(
                "[\(name)] port \(port.id): \(port.name) (\(port.driver)) mac \(port.macString) -> port "
                    + "\(route.tx)\(plane.workers.count > 1 ? "; \(port.steering)" : "")"
            )
        }
        if options.data.captureTime {
            for port in plane.ports where !port.timestamps {
                emit(
                    "[\(name)] warning: port \(port.id) (\(port.driver)) stamps nothing: its packets are dated by the clock",
                    to: 2)
            }
        }
        if let disagreement = Port.checkOwnerFunction() {
            fail("flow ownership: the owner hash disagrees with DPDK's rte_softrss: \(disagreement)", code: 1)
        }
        emit(
            "[\(name)] flow ownership: \(plane.workers.count) worker(s), owner hash checked against rte_softrss on "
                + "\(512) flows"
        )
        for worker in plane.workers {
            emit(
                "[\(name)] worker \(worker.index) on lcore \(worker.lcore): RX/TX queue \(worker.queue), flow table "
                    + "\(worker.table.capacity) flows"
            )
        }
        if let signatures {
            let fingerprints = signatures.fingerprints.values.reduce(0) { $0 + $1.signatures.count }
            emit(
                "[\(name)] detection: \(signatures.tcpServices.count) TCP service, "
                    + "\(signatures.tcpClients.count) TCP client, \(signatures.udpServices.count) UDP service "
                    + "signatures, \(fingerprints) OS fingerprints, \(signatures.macVendors.count) MAC prefixes from "
                    + "\(options.signatureDirectory)"
            )
            for warning in warnings { emit("[\(name)] signature line skipped: \(warning)", to: 2) }
        } else {
            emit("[\(name)] detection: off")
        }
        if let agent, let lcore = plane.transferLcore {
            let queue = plane.channelTxQueue.map { "its own TX queue \($0)" } ?? "worker 0's TX queue"
            let ring = plane.workers[0].transfer.map { "; a ring of \($0.toTransfer.capacity) from each worker" } ?? ""
            emit(
                "[\(name)] DiST channel \(agent.local) on port \(plane.channelPort) (\(queue)); transfer lcore "
                    + "\(lcore)\(ring); "
                    + "MTU \(options.channelMTU ?? 9000)")
        }
        let flowMiB = Double(plane.flowTableBytes) / 1_048_576
        let hugeMiB = Double(plane.flowTableHugeBytes) / 1_048_576
        emit(
            "[\(name)] flow tables: \(String(format: "%.1f", flowMiB)) MiB in all (\(MemoryLayout<FlowEntry>.stride) "
                + "bytes per flow entry, fixed at start), \(String(format: "%.1f", hugeMiB)) MiB of it on huge pages"
        )
    }

    /// SIGINT and SIGTERM stop the process cleanly; SIGHUP reopens the asset log; a closed
    /// socket's SIGPIPE is ignored.
    static func installSignalHandlers() {
        _ = stopRequested.load(ordering: .relaxed)
        _ = reopenRequested.load(ordering: .relaxed)
        let onSignal: @convention(c) (Int32) -> Void = { _ in stopRequested.store(true, ordering: .relaxed) }
        signal(SIGINT, onSignal)
        signal(SIGTERM, onSignal)
        signal(SIGHUP) { _ in reopenRequested.store(true, ordering: .relaxed) }
        signal(SIGPIPE, SIG_IGN)
    }

    /// Gives up start-up after the ports were opened: they close and EAL ends first.
    func abandon(_ message: String) -> Never {
        plane.closePorts()
        EAL.cleanup()
        fail(message, code: 1)
    }

    /// The workers and the transfer lcore start.
    func launch() {
        do {
            try plane.launch()
            if let agent { try plane.launch(agent) }
        } catch {
            plane.stopWorkers()
            abandon("\(error)")
        }
        emit("[\(name)] running; SIGINT or SIGTERM stops")
    }

    /// The main lcore until a signal: the sockets, packet events to the controller that asked
    /// for them, Move notices, asset records, the statistics line.
    func run() {
        var lastPrint = Date()
        var lastPublished = Date()
        var lastStats: WorkerStats? = plane.totalStats()
        while !stopRequested.load(ordering: .relaxed) {
            // One wait for both sockets; a short one while events flow, so raised packets reach
            // the controller within a millisecond.
            let servers = [admin?.socketServer, control].compactMap { $0 }
            let wait: Int32 = service.eventsOwner != nil || !service.moveOwners.isEmpty ? 1 : 20
            if servers.isEmpty {
                usleep(UInt32(wait) * 1000)
            } else {
                SocketServer.poll(servers, timeoutMilliseconds: wait)
            }
            forwardEvents(to: service.eventsOwner)
            forwardNotices()
            assets.collect(from: plane)
            if reopenRequested.exchange(false, ordering: .relaxed) { assets.reopen() }
            if metrics != nil && Date().timeIntervalSince(lastPublished) >= Self.metricsPeriod {
                publishMetrics()
                lastPublished = Date()
            }
            if options.statsPeriod > 0 {
                let elapsed = Date().timeIntervalSince(lastPrint)
                if elapsed >= options.statsPeriod {
                    let now = plane.totalStats()
                    emit(
                        "[\(name)] stats: "
                            + "\(summary(now, elapsed: elapsed, previous: lastStats, workers: plane.workerStats()))"
                    )
                    lastStats = now
                    lastPrint = Date()
                }
            }
        }
    }

    /// Workers flush and return, ports stop and close, then the final figures; exits.
    func stop() -> Never {
        plane.stopWorkers()
        assets.collect(from: plane)
        assets.close()
        metricsServer?.close()
        let final = plane.totalStats()
        let portStats = portsReply()
        plane.closePorts()
        admin = nil
        control = nil
        emit("[\(name)] stopped after \(String(format: "%.1f", Date().timeIntervalSince(startTime))) s")
        emit("[\(name)] final: \(summary(final, elapsed: 0, previous: nil, workers: plane.workerStats()))")
        // (The transfer lcore's counters are read after it has returned.)
        let finalReply = WithTotals(
            totals: final.report,
            more: FinalStats(
                id: name, ports: portStats, workers: plane.workerStats().map(\.report),
                droppedRecords: plane.droppedRecords, unclaimedEvents: unclaimedEvents,
                assetView: AssetViewCounters(assets.view),
                channel: agent.map { agent in
                    FinalStats.Channel(
                        rejectedFrames: agent.rejectedFrames, strayRedirects: agent.strayRedirects,
                        duplicatesDropped: agent.duplicatesDropped, pushDropped: agent.pushDropped,
                        pushWaitMaxNs: agent.pushWaitMaxNs, transmitNoMbuf: agent.transmitNoMbuf,
                        processNoMbuf: agent.processNoMbuf,
                        poolLowWater: agent.poolLowWater == .max ? plane.pool.available : agent.poolLowWater)
                }))
        emit("final-stats-json: \(AdminReply.encode(finalReply))")
        EAL.cleanup()
        exit(0)
    }
}
