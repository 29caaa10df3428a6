import DistAdmin
import DistDataPlane
import DistFlow
import DistPRADS
import DistPacket
import DistPipeline
import DistServer
import Foundation

/// The admin socket (`--admin PATH`): JSON lines for operators and tests (stats, flows, assets,
/// ports).
extension VNFApp {
    func openAdmin() {
        guard let path = options.adminPath else { return }
        do {
            admin = try AdminServer(path: path) { [unowned self] request in handle(request) }
            emit("[\(name)] admin socket \(path)")
        } catch {
            abandon("\(error)")
        }
    }

    func handle(_ request: AdminRequest) -> String {
        do {
            switch request.command {
            case "stats":
                return AdminReply.encode(
                    WithTotals(
                        totals: plane.totalStats().report,
                        more: StatsReply(
                            id: name, uptimeS: Date().timeIntervalSince(startTime),
                            workers: plane.workerStats().map(\.report), assetView: AssetViewCounters(assets.view))))
            case "flows":
                let limit = try request.integer("limit", default: 100, max: 100_000)
                let (flows, complete) = plane.flows(limit: limit)
                return AdminReply.encode(
                    FlowsReply(
                        id: name, complete: complete, count: flows.count,
                        flows: flows.map { FlowReport(worker: $0.worker, entry: $0.entry) }))
            case "assets":
                let limit = try request.integer("limit", default: 1000, max: 1_000_000)
                var prefix: IPPrefix?
                if let text = try request.string("prefix") {
                    guard let parsed = IPPrefix(text) else {
                        return AdminReply.error("prefix '\(text)' is not an IPv4 or IPv6 prefix")
                    }
                    prefix = parsed
                }
                assets.collect(from: plane)
                let found = assets.view.assets(within: prefix, limit: limit)
                return AdminReply.encode(
                    AssetsReply(
                        id: name, count: found.count,
                        assets: found.map { .init(asset: $0.asset, records: $0.records.map(\.description)) }))
            case "ports":
                return AdminReply.encode(PortsReply(id: name, ports: portsReply()))
            case "help":
                return AdminReply.encode(HelpReply())
            default:
                return AdminReply.error("unknown command '\(request.command)' (try help)")
            }
        } catch {
            return AdminReply.error("\(error)")
        }
    }

    func portsReply() -> [PortReport] {
        plane.ports.map { port in
            PortReport(
                id: Int(port.id), name: port.name, driver: port.driver, mac: port.macString, rss: port.rss,
                stats: port.stats().map {
                    .init(
                        rxPackets: $0.rxPackets, txPackets: $0.txPackets, rxBytes: $0.rxBytes, txBytes: $0.txBytes,
                        rxMissed: $0.rxMissed, rxErrors: $0.rxErrors, txErrors: $0.txErrors, rxNombuf: $0.rxNoMbuf)
                })
        }
    }
}

// MARK: - Replies (snake_case keys when encoded: see AdminReply)

/// A reply with the instance's totals at its top level and `more` beside them.
struct WithTotals<More: Encodable>: Encodable {
    var totals: WorkerStats.Report
    var more: More

    func encode(to encoder: any Encoder) throws {
        try totals.encode(to: encoder)
        try more.encode(to: encoder)
    }
}

/// `stats`, beside the totals: each worker's counters.
struct StatsReply: Encodable {
    let ok = true
    var id: String
    var uptimeS: Double
    var workers: [WorkerStats.Report]
    var assetView: AssetViewCounters
}

struct AssetViewCounters: Encodable {
    var assets, evicted: Int

    init(_ view: AssetView) {
        assets = view.assetCount
        evicted = view.evicted
    }
}

struct FlowsReply: Encodable {
    let ok = true
    var id: String
    var complete: Bool
    var count: Int
    var flows: [FlowReport]
}

struct FlowReport: Encodable {
    var worker, proto: Int
    var client: String
    var clientPort: Int
    var server: String
    var serverPort, vlan, innerVlan: Int
    var packetsToServer, packetsToClient, bytesToServer, bytesToClient, firstSeenNs, lastSeenNs: UInt64
    var tcpState, mark: String
    /// A tunnelled flow's: how it is carried, and the hosts and protocol inside (absent
    /// otherwise; `client` and `server` are then the tunnel's ends).
    var tunnel: String?
    var innerClient, innerServer: String?
    var innerProto: Int?

    init(worker: Int, entry e: FlowEntry) {
        self.worker = worker
        proto = Int(e.key.proto)
        client = e.client.addr.text
        clientPort = Int(e.client.port)
        server = e.server.addr.text
        serverPort = Int(e.server.port)
        vlan = Int(e.key.vlanKey >> 12)
        innerVlan = Int(e.key.vlanKey & 0xFFF)
        packetsToServer = e.packetsToServer
        packetsToClient = e.packetsToClient
        bytesToServer = e.bytesToServer
        bytesToClient = e.bytesToClient
        firstSeenNs = e.firstSeen
        lastSeenNs = e.lastSeen
        tcpState = "\(e.tcpState)"
        mark = "\(FlowMark(rawValue: e.markStorage) ?? .normal)"
        if e.key.isTunnelled {
            tunnel = e.key.tunnel == .gre ? "gre" : "ip_in_ip"
            innerClient = e.innerClient?.text
            innerServer = e.innerServer?.text
            innerProto = Int(e.key.innerProto)
        }
    }
}

struct AssetsReply: Encodable {
    struct Asset: Encodable {
        var asset: String
        var records: [String]
    }
    let ok = true
    var id: String
    var count: Int
    var assets: [Asset]
}

struct PortReport: Encodable {
    struct Counters: Encodable {
        var rxPackets, txPackets, rxBytes, txBytes, rxMissed, rxErrors, txErrors, rxNombuf: UInt64
    }
    var id: Int
    var name, driver, mac: String
    var rss: Bool
    /// Absent when the driver gives none.
    var stats: Counters?
}

struct PortsReply: Encodable {
    let ok = true
    var id: String
    var ports: [PortReport]
}

struct HelpReply: Encodable {
    let ok = true
    let commands = ["stats", "flows [limit]", "assets [prefix] [limit]", "ports", "help"]
}

/// `final-stats-json`, beside the totals: the ports, each worker's counters, the records the
/// workers' rings lost, events no controller took, and the transfer lcore's own counters.
struct FinalStats: Encodable {
    struct Channel: Encodable {
        var rejectedFrames, strayRedirects, duplicatesDropped, pushDropped: Int
        var pushWaitMaxNs: UInt64
        var transmitNoMbuf, processNoMbuf: Int
        var poolLowWater: UInt32
    }
    var id: String
    var ports: [PortReport]
    var workers: [WorkerStats.Report]
    var droppedRecords, unclaimedEvents: Int
    /// The merged view of every worker's assets: how many it holds, how many it forgot for room.
    var assetView: AssetViewCounters
    /// Absent without a transfer lcore.
    var channel: Channel?
}
