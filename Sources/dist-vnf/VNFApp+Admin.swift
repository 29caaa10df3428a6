import DistDataPlane
import DistFlow
import DistPacket
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
                var reply = plane.totalStats().dictionary
                reply["ok"] = true
                reply["id"] = name
                reply["uptime_s"] = Date().timeIntervalSince(startTime)
                reply["workers"] = plane.workerStats().map { $0.dictionary }
                return AdminReply.encode(reply)
            case "flows":
                let limit = try request.integer("limit", default: 100, max: 100_000)
                let (flows, complete) = plane.flows(limit: limit)
                return AdminReply.encode([
                    "ok": true, "id": name, "complete": complete, "count": flows.count,
                    "flows": flows.map { Self.flowReply(worker: $0.worker, entry: $0.entry) },
                ])
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
                return AdminReply.encode([
                    "ok": true, "id": name, "count": found.count,
                    "assets": found.map { asset in
                        ["asset": asset.asset, "records": asset.records.map { $0.description }] as [String: Any]
                    },
                ])
            case "ports":
                return AdminReply.encode(["ok": true, "id": name, "ports": portsReply()])
            case "help":
                return AdminReply.encode([
                    "ok": true, "commands": ["stats", "flows [limit]", "assets [prefix] [limit]", "ports", "help"],
                ])
            default:
                return AdminReply.error("unknown command '\(request.command)' (try help)")
            }
        } catch {
            return AdminReply.error("\(error)")
        }
    }

    func portsReply() -> [[String: Any]] {
        plane.ports.map { port in
            var entry: [String: Any] = [
                "id": Int(port.id), "name": port.name, "driver": port.driver,
                "mac": port.macString, "rss": port.rss,
            ]
            if let s = port.stats() {
                entry["stats"] = [
                    "rx_packets": s.rxPackets, "tx_packets": s.txPackets, "rx_bytes": s.rxBytes,
                    "tx_bytes": s.txBytes, "rx_missed": s.rxMissed, "rx_errors": s.rxErrors,
                    "tx_errors": s.txErrors, "rx_nombuf": s.rxNoMbuf,
                ]
            }
            return entry
        }
    }

    static func flowReply(worker: Int, entry e: FlowEntry) -> [String: Any] {
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
}
