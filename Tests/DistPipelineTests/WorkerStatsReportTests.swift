import DistAdmin
import DistPacket
import DistPipeline
import DistServer
import Foundation
import Testing

/// The counters as operators and tests read them: the admin socket's names, summed as the
/// instance's totals are.
struct WorkerStatsReportTests {
    /// The reply as JSON, decoded back into plain objects.
    static func object(_ stats: WorkerStats) throws -> [String: Any] {
        let text = AdminReply.encode(stats.report)
        return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test func countersCarryTheirSnakeCaseNames() throws {
        var s = WorkerStats()
        s.rxPackets = 7
        s.txBacklogHigh = 3
        s.transferDropped = 2
        s.transferBusyNanoseconds = 1_500
        s.handoffRingFull = 4
        s.activeFlows = 9
        s.flows.tableFull = 1
        s.assetsRefused = 5
        s.issues[Int(ParseIssue.truncatedIPv4.rawValue)] = 6
        s.l3[Int(L3Kind.ipv4.rawValue)] = 7
        let o = try Self.object(s)
        #expect(o["rx_packets"] as? Int == 7)
        #expect(o["tx_backlog_high"] as? Int == 3)
        let transfer = try #require(o["transfer"] as? [String: Any])
        #expect(transfer["ring_full"] as? Int == 2)
        #expect(transfer["busy_ns"] as? Int == 1_500)
        #expect((o["handoff"] as? [String: Any])?["ring_full"] as? Int == 4)
        let flows = try #require(o["flows"] as? [String: Any])
        #expect(flows["active"] as? Int == 9)
        #expect(flows["table_full"] as? Int == 1)
        #expect((o["detection"] as? [String: Any])?["refused"] as? Int == 5)
        // Parse issues are listed once seen, by their own names; every layer is listed.
        #expect(o["parse"] as? [String: Int] == ["truncated_ipv4": 6])
        #expect((o["l3"] as? [String: Int])?["ipv4"] == 7)
        #expect((o["l3"] as? [String: Int])?.count == L3Kind.allCases.count)
    }

    @Test func totalsSumEveryWorkersCounters() throws {
        var a = WorkerStats()
        a.redirected = 3
        a.transferBusyNanoseconds = 10
        var b = WorkerStats()
        b.redirected = 4
        b.transferBusyNanoseconds = 5
        let transfer = try #require(try Self.object(a + b)["transfer"] as? [String: Any])
        #expect(transfer["redirected"] as? Int == 7)
        #expect(transfer["busy_ns"] as? Int == 15)
    }
}
