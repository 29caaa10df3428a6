import DistControl
import DistFlow
import DistPacket
import DistPipeline
import DistState
import Foundation
import Testing

/// opennf-mode events whose controller goes away: the source keeps what it raised until the
/// controller says it sent it on, and processes the rest itself; the destination lists the
/// Move until `endImport`.
@Suite struct KeptEventsTests {
    @Test func copiesGoAsTheyAreReleasedAndTheRestComeBackInOrder() {
        var kept = KeptEvents(limit: 100, limitBytes: 1000)
        #expect(kept.raised([0], worker: 0) == 1, "not keeping: numbered all the same")
        #expect(kept.count == 0)
        kept.start(keeping: true)
        let seqs = (0..<10).map { i in kept.raised([UInt8(i)], worker: i % 2) }
        #expect(seqs == Array(2...11))
        kept.released([3...4, 8...8, 500...600])
        #expect(kept.count == 7 && kept.bytes == 7)
        // A forged range as wide as can be is walked over the copies, not its numbers.
        kept.released([11...UInt64.max])
        let rest = kept.takeAll()
        #expect(rest.map(\.frame) == [[0], [3], [4], [5], [7], [8]])
        #expect(rest.map(\.worker) == [0, 1, 0, 1, 1, 0])
        #expect(kept.count == 0 && !kept.keeping)
    }

    @Test func pastItsBoundAPacketIsSentNotKeptAndCounted() {
        var kept = KeptEvents(limit: 3, limitBytes: 5)
        kept.start(keeping: true)
        _ = kept.raised([1, 2], worker: 0)
        _ = kept.raised([3, 4], worker: 0)
        _ = kept.raised([5, 6], worker: 0)
        _ = kept.raised([7], worker: 0)
        #expect(kept.count == 3 && kept.notKept == 1)
    }

    static func send(_ service: SouthboundService, _ client: Int32, _ object: [String: Any]) throws -> [String: Any]? {
        let replies = service.handle(client: client, try JSONSerialization.data(withJSONObject: object).map { $0 })
        guard let first = replies.first else { return nil }
        return try JSONSerialization.jsonObject(with: Data(first)) as? [String: Any]
    }

    static func udp(_ i: UInt8) -> [UInt8] {
        let eth: [UInt8] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]
        var ip: [UInt8] = [0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, i, 198, 18, 0, 1]
        var sum: UInt32 = 0
        for j in stride(from: 0, to: 20, by: 2) { sum += UInt32(ip[j]) << 8 | UInt32(ip[j + 1]) }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        ip[10] = UInt8(~sum >> 8 & 0xFF)
        ip[11] = UInt8(~sum & 0xFF)
        return eth + ip + [0x30, 0x39, 0x00, 0x35, 0, 8, 0, 0]
    }

    /// A controller that asked for copies and went away: the copies it had not released are
    /// processed at the source (its flows count them), those it released are not, and the
    /// rule is gone; one that ended its events itself leaves nothing to process.
    @Test func aControllerGoneLeavesWhatItHadNotSentOnToTheSource() throws {
        let path = try SouthboundTests.pipeline(run: [])
        let service = SouthboundService(store: PipelineStateStore(path))
        let enable: [String: Any] = [
            "type": "enableEvents", "id": 1, "filter": "nw_src=10.0.0.0/8", "action": "drop", "keep": true,
        ]
        #expect(try Self.send(service, 3, enable)?["type"] as? String == "ack")
        var seqs: [UInt64] = []
        for i in 1...6 {
            let body = service.raised(Self.udp(UInt8(i)), worker: 0)
            guard case .packetEvent(_, let frame, let seq?)? = SouthboundReply.decode(body)?.reply else {
                Issue.record("no sequence number")
                return
            }
            #expect(frame == Self.udp(UInt8(i)))
            seqs.append(seq)
        }
        // Another connection cannot release them; this one has no reply for it.
        #expect(
            try Self.send(service, 4, ["type": "eventsReleased", "id": 2, "seqs": [[seqs[0], seqs[5]]]])?["type"]
                as? String == "error")
        #expect(
            try Self.send(
                service, 3, ["type": "eventsReleased", "id": 3, "seqs": [[seqs[0], seqs[1]], [seqs[4], seqs[4]]]])
                == nil)
        #expect(service.kept.count == 3)
        #expect(path.table.count == 0)
        var drained = false
        let replayed = try service.disconnected(3) {
            drained = true
            #expect(path.eventRule?.action == .hold, "the filter's packets wait while the copies go")
        }
        #expect(drained && replayed == 3)
        #expect(path.eventRule == nil && service.eventsOwner == nil)
        guard case .flows(let flows) = path.perform(.flows(limit: 100)) else {
            Issue.record("no flows")
            return
        }
        let hosts = Set(flows.flatMap { [$0.key.loAddr.text, $0.key.hiAddr.text] }).subtracting(["198.18.0.1"])
        #expect(hosts == ["10.0.0.3", "10.0.0.4", "10.0.0.6"], "\(hosts)")

        // Ended by its controller: nothing comes back.
        let other = try SouthboundTests.pipeline(run: [])
        let calm = SouthboundService(store: PipelineStateStore(other))
        #expect(try Self.send(calm, 5, enable)?["type"] as? String == "ack")
        _ = calm.raised(Self.udp(9), worker: 0)
        #expect(try Self.send(calm, 5, ["type": "disableEvents", "id": 4])?["type"] as? String == "ack")
        #expect(try calm.disconnected(5) == nil)
        #expect(other.table.count == 0)
    }

    /// An opennf-mode Move's state in is listed until `endImport`; undone, its flows go.
    /// Of what a controller sent before it went away, only which packets it sent on still
    /// counts: a request that starts work (an export, events) is not taken up for no one.
    @Test func onlyReleasesStillCountOnceTheControllerIsGone() throws {
        func body(_ object: [String: Any]) throws -> [UInt8] {
            try JSONSerialization.data(withJSONObject: object).map { $0 }
        }
        #expect(
            SouthboundService.stillCounts(
                afterTheClientLeft: try body(["type": "eventsReleased", "id": 2, "seqs": [[1, 4]]])))
        #expect(
            !SouthboundService.stillCounts(
                afterTheClientLeft: try body(["type": "getPerFlow", "id": 3, "filter": "nw_src=10.0.0.0/8"])))
        #expect(!SouthboundService.stillCounts(afterTheClientLeft: try body(["type": "disableEvents", "id": 4])))
        #expect(!SouthboundService.stillCounts(afterTheClientLeft: Array("not json".utf8)))
    }

    @Test func anImportIsListedUntilItEnds() throws {
        let source = SouthboundService(
            store: PipelineStateStore(try SouthboundTests.pipeline(run: SouthboundTests.frames)))
        let path = try SouthboundTests.pipeline(run: [])
        let destination = SouthboundService(store: PipelineStateStore(path))
        let chunks = SouthboundTests.chunks(
            try SouthboundTests.request(source, ["type": "getPerFlow", "id": 1, "filter": "nw_src=192.168.0.0/16"]))
        #expect(chunks.count > 10)
        let tag: [String: Any] = ["moveID": 31, "filter": "nw_src=192.168.0.0/16", "source": "vnf1"]
        #expect(
            try Self.send(destination, 1, ["type": "putPerFlow", "id": 2, "chunks": chunks, "move": tag])?["count"]
                as? Int == chunks.count)
        let listed = try #require(
            try Self.send(destination, 1, ["type": "moves", "id": 3])?["moves"] as? [[String: Any]])
        #expect(listed.count == 1)
        #expect(listed.first?["guarantee"] as? String == "opennf" && listed.first?["src"] as? String == "vnf1")
        #expect(listed.first?["filter"] as? String == "nw_src=192.168.0.0/16")
        // A controller that goes away leaves it listed (the next one ends it).
        #expect(try destination.disconnected(1) == nil)
        #expect(destination.imports.count == 1)
        #expect(
            try Self.send(destination, 2, ["type": "endImport", "id": 4, "moveID": 32, "keep": false])?["type"]
                as? String == "error")
        #expect(
            try Self.send(destination, 2, ["type": "endImport", "id": 5, "moveID": 31, "keep": false])?["count"]
                as? Int == chunks.count)
        #expect(path.table.count == 0 && destination.imports.isEmpty)
        // Kept: the flows stay.
        _ = try Self.send(destination, 2, ["type": "putPerFlow", "id": 6, "chunks": chunks, "move": tag])
        #expect(
            try Self.send(destination, 2, ["type": "endImport", "id": 7, "moveID": 31, "keep": true])?["count"]
                as? Int == 0)
        #expect(path.table.count == chunks.count)
    }
}
