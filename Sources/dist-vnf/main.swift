// dist-vnf: one DiST VNF instance. `dist-vnf <EAL options> -- <options>`.
import Atomics
import DistAdmin
import DistControl
import DistDataPlane
import DistFlow
import DistPacket
import DistPRADS
import DistPipeline
import DistState
import DistChannel
import DistTransfer
import Foundation

#if canImport(Glibc)
import Glibc
#endif

// ---- Arguments: EAL's before "--", ours after. --------------------------------------------

let argv = CommandLine.arguments
let separator = argv.firstIndex(of: "--")
let ealArguments = Array(argv[1..<(separator ?? argv.count)])
let appArguments = separator.map { Array(argv[($0 + 1)...]) } ?? []

let options: Options
do {
    options = try Options.parse(appArguments)
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
if let unknown = EALOptions.firstUnknown(in: ealArguments) {
    fail("unknown EAL option '\(unknown)' (EAL options come before '--'; see --help)", code: 2)
}

// ---- The channel's key (before EAL: a bad file costs nothing to report). ----------------------

let channelKey = options.channelKeyPath.map { path in
    do { return try ChannelKey.load(path: path) } catch { fail("--channel-key: \(error)", code: 2) }
}

// ---- Signatures (before EAL: a bad directory costs nothing to report). --------------------

var dataConfig = options.data
var signatureWarnings: [SignatureFileError] = []
if options.detection {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: options.signatureDirectory, isDirectory: &isDirectory),
          isDirectory.boolValue else {
        fail("--signatures: \(options.signatureDirectory) is not a directory (install Debian's prads, give another, or --no-detection)", code: 2)
    }
    do {
        let signatures = try PRADSSignatures.load(directory: options.signatureDirectory)
        signatureWarnings = signatures.errors
        dataConfig.signatures = signatures
    } catch {
        fail("--signatures: \(error)", code: 2)
    }
} else if options.assetLogPath != nil {
    fail("--asset-log needs detection (remove --no-detection)", code: 2)
}

let assets: AssetCollector
do {
    assets = try AssetCollector(logPath: options.assetLogPath, name: options.id)
} catch {
    fail("\(error)", code: 2)
}

// ---- EAL. Its output goes to a file while it starts: a failure becomes one line. --------

let ealStart: Result<Int, Error>
let ealOutput: String
(ealStart, ealOutput) = withCapturedOutput { Result { try EAL.initialize(arguments: [argv[0]] + ealArguments) } }
if case .failure(let error) = ealStart {
    fail("EAL arguments rejected: \(ealReason(ealOutput) ?? "\(error)")", code: 2)
}

// ---- Data plane. ---------------------------------------------------------------------------

let plane: DataPlane
do {
    plane = try DataPlane(config: dataConfig)
} catch {
    EAL.cleanup()
    // A device EAL could not create explains a missing port better than the absence does.
    let deviceFailure = ealOutput.split(separator: "\n").first { $0.contains("Couldn't") || $0.contains("failed to initialize") }
    fail("\(error)" + (deviceFailure.map { " [\($0)]" } ?? ""), code: 1)
}

// EAL's start-up log is shown once the data plane is up (a failure above is one line).
if !ealOutput.isEmpty { emit(String(ealOutput.dropLast(ealOutput.hasSuffix("\n") ? 1 : 0))) }
let name = options.id
emit("[\(name)] \(plane.ports.count) port(s), \(plane.workers.count) worker(s), pool \(plane.pool.count) mbufs of \(plane.pool.dataRoom - 128) bytes")
for port in plane.ports {
    let route = Route.pairs(portCount: UInt16(plane.ports.count))[Int(port.id)]
    emit("[\(name)] port \(port.id): \(port.name) (\(port.driver)) mac \(port.macString) -> port \(route.tx)\(plane.workers.count > 1 ? "; \(port.steering)" : "")")
}
if let disagreement = Port.checkOwnerFunction() {
    fail("flow ownership: the owner hash disagrees with DPDK's rte_softrss: \(disagreement)", code: 1)
}
emit("[\(name)] flow ownership: \(plane.workers.count) worker(s), owner hash checked against rte_softrss on \(512) flows")
for worker in plane.workers {
    emit("[\(name)] worker \(worker.index) on lcore \(worker.lcore): RX/TX queue \(worker.queue), flow table \(worker.table.capacity) flows")
}
if let signatures = dataConfig.signatures {
    let fingerprints = signatures.fingerprints.values.reduce(0) { $0 + $1.signatures.count }
    emit("[\(name)] detection: \(signatures.tcpServices.count) TCP service, \(signatures.tcpClients.count) TCP client, \(signatures.udpServices.count) UDP service signatures, \(fingerprints) OS fingerprints, \(signatures.macVendors.count) MAC prefixes from \(options.signatureDirectory)")
    for warning in signatureWarnings { emit("[\(name)] signature line skipped: \(warning)", to: 2) }
} else {
    emit("[\(name)] detection: off")
}
var agent: TransferAgent?
if let address = options.channel, let key = channelKey, let lcore = plane.transferLcore {
    let local = ChannelAddress(mac: plane.ports[0].mac, ip: address.ip, port: address.port, vlan: options.channelVLAN)
    do {
        agent = try TransferAgent(plane: plane, lcore: lcore, local: local, key: key, mtu: options.channelMTU,
                                  traceFile: options.channelTracePath)
    } catch {
        fail("\(error)", code: 2)
    }
    for worker in plane.workers { worker.fastPath.channel = (IPAddress(ipv4: local.ip), local.port) }
    emit("[\(name)] DiST channel \(local) on port 0; transfer lcore \(lcore); MTU \(options.channelMTU)")
}
let flowMiB = Double(plane.flowTableBytes) / 1_048_576
emit("[\(name)] flow tables: \(String(format: "%.1f", flowMiB)) MiB in all (\(MemoryLayout<FlowEntry>.stride) bytes per flow entry, fixed at start)")

// ---- Signals: SIGINT/SIGTERM stop the process cleanly. -----------------------------------

let stopRequested = ManagedAtomic<Bool>(false)
_ = stopRequested.load(ordering: .relaxed)
let onSignal: @convention(c) (Int32) -> Void = { _ in stopRequested.store(true, ordering: .relaxed) }
signal(SIGINT, onSignal)
signal(SIGTERM, onSignal)
signal(SIGPIPE, SIG_IGN)

// ---- Admin socket. ---------------------------------------------------------------------------

let startTime = Date()

func portsReply() -> [[String: Any]] {
    plane.ports.map { port in
        var entry: [String: Any] = ["id": Int(port.id), "name": port.name, "driver": port.driver,
                                    "mac": port.macString, "rss": port.rss]
        if let s = port.stats() {
            entry["stats"] = ["rx_packets": s.rxPackets, "tx_packets": s.txPackets, "rx_bytes": s.rxBytes,
                              "tx_bytes": s.txBytes, "rx_missed": s.rxMissed, "rx_errors": s.rxErrors,
                              "tx_errors": s.txErrors, "rx_nombuf": s.rxNoMbuf]
        }
        return entry
    }
}

func flowReply(worker: Int, entry e: FlowEntry) -> [String: Any] {
    [
        "worker": worker, "proto": Int(e.key.proto),
        "client": e.client.addr.text, "client_port": Int(e.client.port),
        "server": e.server.addr.text, "server_port": Int(e.server.port),
        "vlan": Int(e.key.vlanKey >> 12), "inner_vlan": Int(e.key.vlanKey & 0xFFF),
        "packets_to_server": e.packetsToServer, "packets_to_client": e.packetsToClient,
        "bytes_to_server": e.bytesToServer, "bytes_to_client": e.bytesToClient,
        "first_seen_ns": e.firstSeen, "last_seen_ns": e.lastSeen,
        "tcp_state": "\(e.tcpState)", "mark": "\(FlowMark(rawValue: e.markStorage) ?? .normal)",
    ]
}

func handle(_ request: AdminRequest) -> String {
    do {
        switch request.command {
        case "stats":
            var reply = plane.totalStats().dictionary
            reply["ok"] = true
            reply["id"] = name
            reply["uptime_s"] = Date().timeIntervalSince(startTime)
            reply["workers"] = plane.workerStats().map { $0.dictionary }
            return AdminReply.encode(reply)
        case "flows":
            let limit = try request.integer("limit", default: 100, max: 100_000)
            let (flows, complete) = plane.flows(limit: limit)
            return AdminReply.encode(["ok": true, "id": name, "complete": complete, "count": flows.count,
                                      "flows": flows.map { flowReply(worker: $0.worker, entry: $0.entry) }])
        case "assets":
            let limit = try request.integer("limit", default: 1000, max: 1_000_000)
            var prefix: IPPrefix?
            if let text = try request.string("prefix") {
                guard let parsed = IPPrefix(text) else { return AdminReply.error("prefix '\(text)' is not an IPv4 or IPv6 prefix") }
                prefix = parsed
            }
            assets.collect(from: plane)
            let found = assets.view.assets(within: prefix, limit: limit)
            return AdminReply.encode(["ok": true, "id": name, "count": found.count, "assets": found.map { asset in
                ["asset": asset.asset, "records": asset.records.map { $0.description }] as [String: Any]
            }])
        case "ports":
            return AdminReply.encode(["ok": true, "id": name, "ports": portsReply()])
        case "help":
            return AdminReply.encode(["ok": true, "commands": ["stats", "flows [limit]", "assets [prefix] [limit]", "ports", "help"]])
        default:
            return AdminReply.error("unknown command '\(request.command)' (try help)")
        }
    } catch {
        return AdminReply.error("\(error)")
    }
}

var admin: AdminServer?
if let path = options.adminPath {
    do {
        admin = try AdminServer(path: path, handler: handle)
        emit("[\(name)] admin socket \(path)")
    } catch {
        plane.closePorts()
        EAL.cleanup()
        fail("\(error)", code: 1)
    }
}

// ---- Southbound API: the controller reads and writes state through the workers' mailboxes. --

let stateStore = PipelineStateStore(
    workers: plane.workers.count,
    perform: { request, worker in plane.perform(request, on: plane.workers[worker]) },
    totals: { InstanceCounters(plane.totalStats()) })
var control: SocketServer?
let service = SouthboundService(store: stateStore)
if let agent {
    service.channelAddress = agent.local.description
    service.channelVersion = Int(ChannelFrame.version)
    service.startMove = { request in
        guard let dst = ChannelAddress(request.destination) else {
            throw SouthboundError("\"dst\": '\(request.destination)' is not IP:PORT@MAC")
        }
        guard dst.ip != agent.local.ip || dst.port != agent.local.port else { throw SouthboundError("\"dst\" is this instance") }
        guard options.channelPeers.admit(dst) else {
            throw SouthboundError("\"dst\" \(dst) is not a channel peer of this instance (see --channel-peer)")
        }
        var order = MoveOrder(moveID: request.moveID, filter: request.filter, guarantee: request.guarantee, destination: dst)
        order.perFlow = request.perFlow
        order.multiFlow = request.multiFlow
        order.lateLocking = request.lateLocking
        order.earlyRelease = request.earlyRelease
        order.redirectFirst = request.redirectFirst
        if let p = request.patience { order.patience = UInt64(p * 1e9) }
        if request.allFlows { order.counters = stateStore.exportCounters() }
        guard agent.orders.push(.start(order)) else { throw SouthboundError("the transfer lcore has too many Moves queued") }
        if let c = order.counters { countersMoving[request.moveID] = c }
        return agent.ibcToken(for: order)
    }
    service.abortMove = { id, reason in
        guard agent.orders.push(.abort(moveID: id, reason: reason)) else {
            throw SouthboundError("the transfer lcore has too many Moves queued")
        }
    }
}

/// Passes the transfer lcore's notices on to the controller connections that ordered the Moves.
/// All-flows counters on their way out, by Move: taken off this instance when the Move completes.
nonisolated(unsafe) var countersMoving: [UInt64: InstanceCounters] = [:]

@MainActor func forwardNotices() {
    agent?.importedCounters.drain { stateStore.importCounters($0) }
    agent?.notices.drain { n in
        if n.type == "incomingEnded" {
            service.incomingMove(n.moveID, started: false)
            let counts = n.counters.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            emit("[\(name)] move \(n.moveID) in: \(n.outcome)\(n.reason.map { " (\($0))" } ?? ""); \(counts)")
            return
        }
        if n.type == "incomingStarted" {
            service.incomingMove(n.moveID, started: true)
            return
        }
        if n.type == "abortUnknown" {
            emit("[\(name)] abortMove \(n.moveID): \(n.reason ?? "no such Move")")
            return
        }
        if n.type == "moveStateSent" || n.type == "moveComplete" {
            // The source's side of a Move, for the instance's log (the controller gets it too).
            let counts = n.counters.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            emit("[\(name)] move \(n.moveID) out: \(n.outcome)\(n.reason.map { " (\($0))" } ?? ""); \(counts)")
        }
        if n.type == "moveComplete", let c = countersMoving.removeValue(forKey: n.moveID), n.outcome == "completed" {
            stateStore.exportedCounters(c)
        }
        let notice = MoveNoticeMessage(type: n.type, moveID: n.moveID, outcome: n.outcome, reason: n.reason, counters: n.counters)
        if let (client, body) = service.moveNotice(notice, last: n.type == "moveComplete" || n.outcome == "refused"),
           let control {
            control.push(body, to: client)
        }
    }
}

/// Packets raised while no controller connection owned the events (it went away): counted.
nonisolated(unsafe) var unclaimedEvents = 0

/// Sends the packets the workers raised to the controller connection that enabled events.
@MainActor func forwardEvents(to owner: Int32?) {
    let server = control
    plane.drainEvents { event in
        if let owner, let server {
            server.push(SouthboundService.packetEvent(event.frame, worker: event.worker), to: owner)
        } else {
            unclaimedEvents += 1
            emit("[\(name)] a packet raised with no controller to take it (\(unclaimedEvents) so far)", to: 2)
        }
    }
}
if let endpoint = options.control {
    do {
        let tls = try options.controlTLS.map { try ControlTLS.server($0) }
        if tls == nil {
            emit("[\(name)] warning: the southbound API on \(endpoint.description) is plaintext (--insecure-control): "
                 + "whoever reaches it can read and write this instance's state", to: 2)
        }
        control = try SocketServer(endpoint, framing: .lengthPrefixed(max: SouthboundFraming.maxFrame),
                                   tooLarge: SouthboundService.error(nil, "frame over \(SouthboundFraming.maxFrame) bytes"),
                                   tls: tls,
                                   handler: { client, body in
                                       // Packets raised before a request took effect reach the
                                       // controller before its reply (a disableEvents' ack says
                                       // every event is in). Requests are served on the main thread.
                                       MainActor.assumeIsolated {
                                           let owner = service.eventsOwner
                                           let replies = service.handle(client: client, body)
                                           // Raised under the rule in force before the request:
                                           // its owner's; with none before, the rule this request
                                           // set raised them (enableEvents), so its owner's.
                                           forwardEvents(to: owner ?? service.eventsOwner)
                                           return replies
                                       }
                                   })
        control?.onDisconnect = { service.disconnected($0) }
        control?.isBusy = { service.hasWorkUnderWay($0) }
        emit("[\(name)] southbound API on \(endpoint.description) (port \(control!.boundPort)\(tls == nil ? "" : ", mutual TLS"))")
    } catch {
        plane.closePorts()
        EAL.cleanup()
        fail("--control: \(error)", code: 1)
    }
}

// ---- Run. ----------------------------------------------------------------------------------

do {
    try plane.launch()
} catch {
    plane.stopWorkers()
    plane.closePorts()
    EAL.cleanup()
    fail("\(error)", code: 1)
}
if let agent {
    do {
        try plane.launch(agent)
    } catch {
        plane.stopWorkers()
        plane.closePorts()
        EAL.cleanup()
        fail("\(error)", code: 1)
    }
}
emit("[\(name)] running; SIGINT or SIGTERM stops")

var lastPrint = Date()
var lastStats: WorkerStats? = plane.totalStats()
while !stopRequested.load(ordering: .relaxed) {
    // One wait for both sockets; a short one while events flow, so raised packets reach the
    // controller within a millisecond.
    let servers = [admin?.socketServer, control].compactMap { $0 }
    let wait: Int32 = service.eventsOwner != nil || !service.moveOwners.isEmpty ? 1 : 20
    if servers.isEmpty {
        usleep(UInt32(wait) * 1000)
    } else {
        SocketServer.poll(servers, timeoutMilliseconds: wait)
    }
    // Packet events go to the controller that asked for them.
    forwardEvents(to: service.eventsOwner)
    forwardNotices()
    assets.collect(from: plane)
    if options.statsPeriod > 0 {
        let elapsed = Date().timeIntervalSince(lastPrint)
        if elapsed >= options.statsPeriod {
            let now = plane.totalStats()
            emit("[\(name)] stats: \(summary(now, elapsed: elapsed, previous: lastStats, workers: plane.workerStats()))")
            lastStats = now
            lastPrint = Date()
        }
    }
}

// ---- Stop: workers flush and return, ports stop and close, then the final figures. ------

plane.stopWorkers()
assets.collect(from: plane)
assets.close()
let final = plane.totalStats()
let portStats = portsReply()
plane.closePorts()
admin = nil
control = nil
emit("[\(name)] stopped after \(String(format: "%.1f", Date().timeIntervalSince(startTime))) s")
emit("[\(name)] final: \(summary(final, elapsed: 0, previous: nil, workers: plane.workerStats()))")
var finalReply = final.dictionary
finalReply["id"] = name
finalReply["ports"] = portStats
finalReply["workers"] = plane.workerStats().map { $0.dictionary }
finalReply["dropped_records"] = plane.droppedRecords
finalReply["unclaimed_events"] = unclaimedEvents
if let agent {
    // Read after the transfer lcore has returned.
    finalReply["channel"] = ["rejected_frames": agent.rejectedFrames, "stray_redirects": agent.strayRedirects,
                             "duplicates_dropped": agent.duplicatesDropped, "push_dropped": agent.pushDropped,
                             "push_wait_max_ns": Int(clamping: agent.pushWaitMaxNs), "transmit_no_mbuf": agent.transmitNoMbuf,
                             "process_no_mbuf": agent.processNoMbuf,
                             "pool_low_water": Int(agent.poolLowWater == .max ? plane.pool.available : agent.poolLowWater)]
}
emit("final-stats-json: \(AdminReply.encode(finalReply))")
EAL.cleanup()
exit(0)
