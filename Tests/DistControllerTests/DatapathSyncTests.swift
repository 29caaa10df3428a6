import Foundation
import NIOCore
import NIOPosix
import Testing

@testable import DistController

/// Open vSwitch's control socket as the controller uses it: JSON-RPC replies read from a stream
/// of bytes, and every way a request can fail (an error reply, a peer that closes or never
/// answers, no socket). A real ovs-vswitchd answers `revalidator/purge` in the integration test
/// `test_dist_order_preserving_while_the_datapath_lags`.
@Suite struct DatapathSyncTests {
    @Test func aReplyIsReadOnceItsObjectIsWhole() throws {
        let text = #"{"id":3,"result":"","error":null}"#
        let bytes = Array(text.utf8)
        for cut in 0..<bytes.count {
            #expect(try UnixctlReply(reading: Array(bytes[..<cut])) == nil)
        }
        #expect(try UnixctlReply(reading: bytes) == UnixctlReply(id: 3, error: nil))
        // What follows the object (the next message) is not read.
        #expect(try UnixctlReply(reading: bytes + Array("{\"id\"".utf8)) == UnixctlReply(id: 3, error: nil))
    }

    @Test func bracesInsideStringsDoNotEndTheObject() throws {
        let text = #"{"id":1,"error":"bad \"}\" here {","result":null}"#
        #expect(UnixctlReply.objectEnd(Array(text.utf8)) == text.utf8.count)
        #expect(try UnixctlReply(reading: Array(text.utf8))?.error == #"bad "}" here {"#)
    }

    @Test func whatIsNotAReplyIsRefused() {
        for text in [#"{"result":""}"#, #"{"id":"x","result":""}"#, #"{"id":1}"#, "[1,2]", "{not json}"] {
            #expect(throws: (any Error).self, "\(text)") { try UnixctlReply(reading: Array(text.utf8)) }
        }
    }

    @Test func theRequestIsOVSsJSONRPC() throws {
        let object = try JSONSerialization.jsonObject(with: Data(UnixctlReply.request("revalidator/purge", id: 7)))
        let dict = try #require(object as? [String: Any])
        #expect(dict["method"] as? String == "revalidator/purge")
        #expect((dict["params"] as? [Any])?.isEmpty == true)
        #expect(dict["id"] as? Int == 7)
    }

    /// A Unix socket whose peer answers each connection with `answer` (nil: says nothing) and
    /// then, if `close`, closes it.
    final class Peer {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("dist-unixctl-\(UUID()).sock").path
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var server: Channel?

        init(answer: String?, close: Bool) throws {
            server = try ServerBootstrap(group: group)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(Answer(answer: answer, close: close))
                    }
                }
                .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).wait()
        }

        func stop() {
            try? server?.close().wait()
            try? group.syncShutdownGracefully()
            unlink(path)
        }

        final class Answer: ChannelInboundHandler {
            typealias InboundIn = ByteBuffer
            let answer: String?
            let close: Bool
            init(answer: String?, close: Bool) {
                self.answer = answer
                self.close = close
            }
            func channelRead(context: ChannelHandlerContext, data: NIOAny) {
                if let answer {
                    context.writeAndFlush(NIOAny(context.channel.allocator.buffer(string: answer)), promise: nil)
                }
                if close { context.close(promise: nil) }
            }
        }
    }

    func purge(against peer: Peer?, timeout: TimeAmount = .seconds(2)) -> Result<Void, Error> {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let path = peer?.path ?? "/nonexistent/dist-unixctl.sock"
        let sync = DatapathSync(path: path, loop: group.next(), timeout: timeout)
        return Result { try group.next().flatSubmit { sync.purge() }.wait() }
    }

    @Test func aPurgeSucceedsOnTheSwitchsReply() throws {
        let peer = try Peer(answer: #"{"id":1,"result":"","error":null}"#, close: false)
        defer { peer.stop() }
        #expect(throws: Never.self) { try purge(against: peer).get() }
    }

    @Test func aPurgeFailsOnAnErrorAClosedConnectionSilenceOrNoSocket() throws {
        let refused = try Peer(
            answer: #"{"id":1,"result":null,"error":"\"revalidator/purge\" is not a valid command"}"#, close: false)
        defer { refused.stop() }
        let closed = try Peer(answer: nil, close: true)
        defer { closed.stop() }
        let silent = try Peer(answer: nil, close: false)
        defer { silent.stop() }
        let cases: [(Peer?, String)] = [
            (refused, "not a valid command"), (closed, "closed the connection"), (silent, "no reply"),
            (nil, "control socket"),
        ]
        for (peer, reason) in cases {
            guard case .failure(let error) = purge(against: peer, timeout: .milliseconds(200)) else {
                Issue.record("succeeded: \(reason)")
                continue
            }
            #expect("\(error)".contains(reason), "\(error)")
        }
    }
}
