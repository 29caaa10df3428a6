import DistDataPlane
import DistMetrics
import DistPipeline
import DistServer
import DistTransfer
import Foundation

/// `--metrics HOST:PORT`: the counters the main lcore already sums, published for Prometheus
/// every half second (the workers are never asked: they only count), served by a thread of
/// the HTTP server's own.
extension VNFApp {
    static let metricsPeriod = 0.5

    func openMetrics() {
        guard case .tcp(let host, let port)? = options.metrics else { return }
        let book = MetricsBook()
        do {
            metricsServer = try MetricsServer(host: host, port: port, book: book)
        } catch {
            abandon("--metrics \(options.metrics!): \(error)")
        }
        metrics = book
        publishMetrics()
        emit(
            "[\(name)] metrics on http://\(SocketServer.Endpoint.tcp(host: host, port: UInt16(metricsServer!.port)))/metrics"
        )
    }

    /// The instance's totals, each worker's and each port's, into the book.
    func publishMetrics() {
        guard let book = metrics else { return }
        book.level("dist_vnf_up_seconds", [("id", name)], Date().timeIntervalSince(startTime))
        for (w, stats) in plane.workerStats().enumerated() {
            publish(stats.report, worker: String(w), into: book)
        }
        for port in plane.ports {
            guard let s = port.stats() else { continue }
            let p = [("port", port.name)]
            book.total("dist_vnf_port_received_packets_total", p, s.rxPackets)
            book.total("dist_vnf_port_received_bytes_total", p, s.rxBytes)
            book.total("dist_vnf_port_sent_packets_total", p, s.txPackets)
            book.total("dist_vnf_port_sent_bytes_total", p, s.txBytes)
            book.total("dist_vnf_port_dropped_total", p + [("reason", "rx_missed")], s.rxMissed)
            book.total("dist_vnf_port_dropped_total", p + [("reason", "rx_no_mbuf")], s.rxNoMbuf)
            book.total("dist_vnf_port_errors_total", p + [("direction", "rx")], s.rxErrors)
            book.total("dist_vnf_port_errors_total", p + [("direction", "tx")], s.txErrors)
        }
        book.level("dist_vnf_asset_view_hosts", [], Double(assets.view.assetCount))
        book.total("dist_vnf_dropped_records_total", [], UInt64(plane.droppedRecords))
        if let agent {
            book.total("dist_vnf_channel_rejected_frames_total", [], UInt64(agent.rejectedFrames))
            book.total("dist_vnf_channel_push_dropped_total", [], UInt64(agent.pushDropped))
        }
    }

    func publish(_ r: WorkerStats.Report, worker: String, into book: MetricsBook) {
        let w = [("worker", worker)]
        book.total("dist_vnf_received_packets_total", w, r.rxPackets)
        book.total("dist_vnf_received_bytes_total", w, r.rxBytes)
        book.total("dist_vnf_sent_packets_total", w, r.txPackets)
        book.total("dist_vnf_dropped_total", w + [("reason", "tx")], r.txDropped)
        book.total("dist_vnf_dropped_total", w + [("reason", "handoff_ring_full")], r.handoff.ringFull)
        book.total("dist_vnf_dropped_total", w + [("reason", "transfer_ring_full")], r.transfer.ringFull)
        book.total("dist_vnf_dropped_total", w + [("reason", "hold_overflow")], r.events.holdOverflow)
        for (reason, n) in r.parse where reason != "ok" {
            book.total("dist_vnf_parse_errors_total", w + [("reason", reason)], n)
        }
        book.level("dist_vnf_flows", w, Double(r.flows.active))
        book.total("dist_vnf_flows_created_total", w, r.flows.created)
        book.total("dist_vnf_flows_expired_total", w, r.flows.expired)
        book.total("dist_vnf_flow_table_full_total", w, r.flows.tableFull)
        book.level("dist_vnf_hosts", w, Double(r.detection.assets))
        book.total("dist_vnf_asset_records_total", w, r.detection.records)
        book.total("dist_vnf_hosts_evicted_total", w, r.detection.evicted)
        book.total("dist_vnf_handoff_packets_total", w + [("direction", "out")], r.handoff.handedOff)
        book.total("dist_vnf_handoff_packets_total", w + [("direction", "in")], r.handoff.received)
        book.total("dist_vnf_redirected_packets_total", w, r.transfer.redirected)
        book.total("dist_vnf_delivered_packets_total", w, r.transfer.delivered)
        book.total("dist_vnf_channel_frames_sent_total", w, r.transfer.channelFramesSent)
        book.level("dist_vnf_held_packets", w, Double(r.events.held))
    }

    /// A Move that ended on this instance: counted by direction and outcome; a Move out's time,
    /// its channel's retransmissions and timeouts, into their totals.
    func countMove(_ n: MoveNotice, out: Bool) {
        guard let book = metrics else { return }
        let labels = [("direction", out ? "out" : "in"), ("outcome", n.outcome)]
        movesEnded[labels.map { $0.1 }.joined(separator: "/"), default: 0] += 1
        book.total("dist_vnf_moves_total", labels, movesEnded[labels.map { $0.1 }.joined(separator: "/")]!)
        guard out else { return }
        if let ns = n.counters["elapsedNs"] {
            book.duration("dist_vnf_move_seconds", labels, seconds: Double(ns) / 1e9)
        }
        movesRetransmissions += UInt64(max(0, n.counters["retransmissions"] ?? 0))
        movesTimeouts += UInt64(max(0, n.counters["timeouts"] ?? 0))
        book.total("dist_vnf_channel_retransmissions_total", [], movesRetransmissions)
        book.total("dist_vnf_channel_timeouts_total", [], movesTimeouts)
    }
}
