import DistControl
import DistFlow
import DistState
import Foundation
import Testing

/// The southbound's typed messages: what the controller encodes, the VNF decodes to the same
/// request (and the other way for replies), and a field of the wrong type is named.
@Suite struct SouthboundMessageTests {
    static let filter = try! FlowFilter(parsing: "nw_src=10.0.0.0/8,tp_dst=80")

    static var move: MoveRequest {
        var m = MoveRequest(
            moveID: 77, filter: filter, guarantee: "op", destination: "198.18.100.2:7400@02:00:00:00:00:02#3902")
        m.multiFlow = false
        m.allFlows = true
        m.lateLocking = true
        m.patience = 2.5
        m.switchNotice = false
        return m
    }

    static let requests: [SouthboundRequest] = [
        .getPerFlow(filter: filter, batch: 64, lock: true), .getPerFlow(filter: .all, batch: nil, lock: false),
        .getMultiFlow(filter: filter, batch: nil, peers: true), .getAllFlows,
        .putPerFlow(chunks: ["AAEC", "AwQ="]),
        .putPerFlow(chunks: [], move: ImportTag(moveID: 12, filter: filter, source: "vnf1")), .putMultiFlow(chunks: []),
        .putAllFlows(chunks: ["AA=="]),
        .delPerFlow(filter: filter, hosts: true), .delMultiFlow(filter: filter), .delAllFlows,
        .enableEvents(filter: filter, action: .buffer, lateLocking: true), .disableEvents,
        .enableEvents(filter: filter, action: .drop, lateLocking: false, keep: true),
        .eventsReleased(seqs: [1...1, 3...7, 9...UInt64.max]), .endImport(moveID: 12, keep: true),
        .endImport(moveID: 13, keep: false),
        .flowGroups(filter: filter, length: 16), .info, .movePerFlow(move), .abortMove(moveID: 9, reason: "gone"),
        .abortMove(moveID: 9, reason: "", peerGone: true),
        .moves,
    ]

    @Test func everyRequestDecodesToWhatWasEncoded() throws {
        for (i, request) in Self.requests.enumerated() {
            let decoded = try #require(SouthboundRequest.decode(request.encoded(id: i + 1)))
            #expect(decoded.id == i + 1)
            #expect(try decoded.request.get() == request, "\(request.type)")
        }
    }

    static let replies: [SouthboundReply] = [
        .state(.init(scope: .multiFlow, count: 2, last: false, serializeNanoseconds: 1234, chunks: ["AAEC", "AwQ="])),
        .ack(.init(count: 3, deserializeNanoseconds: 99, ibcToken: 0xFEED_0000_0000_0001)), .ack(.init(count: 1)),
        .error(reason: "no such thing"),
        .info(.init(workers: 4, channel: "198.18.100.1:7400@02:00:00:00:00:01#3901", channelVersion: 6)),
        .info(.init(workers: 1)), .flowGroups([.init(prefix: "10.1.0.0/16", flows: 3, packets: 5000)]),
        .moves([
            .init(moveID: 5, role: "destination", phase: "receiving"),
            .init(
                moveID: 8, role: "source", phase: "exporting", filter: "nw_src=10.0.0.0/8", guarantee: "lf",
                destination: "198.18.100.2:7400", ibcToken: 42),
            .init(
                moveID: 9, role: "destination", phase: "importing", filter: "nw_src=10.0.0.0/8", guarantee: "opennf",
                source: "vnf1"),
        ]),
        .packetEvent(worker: 1, frame: [1, 2, 3, 255]), .packetEvent(worker: 0, frame: [7], seq: 41),
        .notice(
            MoveNoticeMessage(type: "moveComplete", moveID: 8, outcome: "aborted", reason: "why", counters: ["a": 1])),
    ]

    @Test func everyReplyDecodesToWhatWasEncoded() throws {
        for reply in Self.replies {
            let decoded = try #require(SouthboundReply.decode(reply.encoded(id: 7)))
            #expect(decoded.id == 7 && decoded.reply == reply, "\(reply)")
        }
        #expect(SouthboundReply.decode(SouthboundReply.info(.init(workers: 2)).encoded(id: nil))?.id == nil)
        #expect(SouthboundReply.decode(Array(#"{"type":"teleported","id":1}"#.utf8)) == nil)
    }

    /// The VNF's answer to a request with a field of the wrong type names the field: nothing
    /// defaults (a `lock` of "yes" was read as false).
    @Test(arguments: [
        (#"{"type":"getPerFlow","id":1,"lock":"yes"}"#, "\"lock\""),
        (#"{"type":"getPerFlow","id":1,"batch":0}"#, "\"batch\""),
        (#"{"type":"getPerFlow","id":1,"filter":7}"#, "\"filter\""),
        (#"{"type":"getPerFlow","id":1,"filter":"nw_src=10.0.0.0/33"}"#, "nw_src"),
        (#"{"type":"putPerFlow","id":1,"chunks":"AAEC"}"#, "\"chunks\""),
        (#"{"type":"enableEvents","id":1,"action":"redirect"}"#, "\"action\""),
        (#"{"type":"flowGroups","id":1,"filter":"nw_src=10.0.0.0/8"}"#, "\"length\""),
        (#"{"type":"movePerFlow","id":1,"moveID":-3,"dst":"x"}"#, "\"moveID\""),
        (#"{"type":"movePerFlow","id":1,"moveID":3,"dst":"x","scopes":["per","some"]}"#, "\"scopes\""),
        (#"{"type":"movePerFlow","id":1,"moveID":3,"dst":"x","earlyRelease":1}"#, "\"earlyRelease\""),
        (#"{"type":"abortMove","id":1,"moveID":3,"reason":5}"#, "\"reason\""),
        (#"{"type":"enableEvents","id":1,"action":"buffer","keep":true}"#, "\"keep\""),
        (#"{"type":"eventsReleased","id":1,"seqs":[[5,4]]}"#, "\"seqs\""),
        (#"{"type":"eventsReleased","id":1,"seqs":[[1,2,3]]}"#, "\"seqs\""),
        (#"{"type":"eventsReleased","id":1,"seqs":[[-1,2]]}"#, "\"seqs\""),
        (#"{"type":"endImport","id":1,"moveID":0}"#, "\"moveID\""),
        (#"{"type":"putPerFlow","id":1,"chunks":[],"move":{"moveID":3,"filter":"x=1","source":"v"}}"#, "\"move\""),
        (#"{"type":"putPerFlow","id":1,"chunks":[],"move":{"moveID":3,"source":""}}"#, "\"move\""),
        (#"{"id":1}"#, "no \"type\""),
        (#"{"type":"teleport","id":1}"#, "unknown request type"),
    ])
    func aBadFieldIsNamed(json: String, named: String) throws {
        let decoded = try #require(SouthboundRequest.decode(Array(json.utf8)))
        #expect(decoded.id == 1 || !json.contains("\"id\":1"))
        guard case .failure(let error) = decoded.request else {
            Issue.record("\(json) decoded")
            return
        }
        #expect(error.description.contains(named), "\(error)")
    }

    @Test func whatIsNotAnObjectIsNoRequest() {
        for text in ["[1,2]", "\"getPerFlow\"", "{", ""] {
            #expect(SouthboundRequest.decode(Array(text.utf8)) == nil, "\(text)")
        }
    }
}
