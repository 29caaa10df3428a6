import Foundation
import NIOCore
import NIOPosix

/// Open vSwitch's datapath brought up to date with its flow table, through its control socket
/// (`ovs-vswitchd --unixctl=PATH`, the one `ovs-appctl` uses: JSON-RPC on a Unix socket).
///
/// A BARRIER reply says the switch's flow table has a rule; Open vSwitch's datapath keeps
/// forwarding by the flows it cached until its revalidator threads get to them, at their own
/// pace, flow by flow (11 ms after the reply was seen on the loaded test bed). OpenFlow has no
/// message that waits for that. `revalidator/purge` deletes every cached datapath flow before
/// it replies, so from then on each packet is forwarded by the rules in the table (its flow is
/// translated again on its first packet: a few dozen flows on the test bed, about 10 ms for
/// the request). `revalidator/wait`, the other candidate, replies at the end of the round under
/// way, which may have begun before the rule changed.
final class DatapathSync {
    let path: String
    let loop: EventLoop
    let timeout: TimeAmount
    private var nextID = 0

    init(path: String, loop: EventLoop, timeout: TimeAmount = .seconds(2)) {
        self.path = path
        self.loop = loop
        self.timeout = timeout
    }

    /// Succeeds once the switch has no datapath flow cached from before this call.
    func purge() -> EventLoopFuture<Void> {
        request("revalidator/purge")
    }

    /// Runs one unixctl `command` on a connection of its own; fails on an error reply, a closed
    /// connection or no reply within ``timeout``.
    func request(_ command: String) -> EventLoopFuture<Void> {
        nextID += 1
        let id = nextID
        let replied = loop.makePromise(of: Void.self)
        let body = UnixctlReply.request(command, id: id)
        ClientBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(UnixctlHandler(id: id, replied: replied))
                }
            }
            .connect(unixDomainSocketPath: path)
            .whenComplete { result in
                switch result {
                case .failure(let e):
                    replied.fail(ControllerError("the switch's control socket \(self.path): \(e)"))
                case .success(let channel):
                    let timer = channel.eventLoop.scheduleTask(in: self.timeout) {
                        replied.fail(ControllerError("\(command): no reply from \(self.path) within \(self.timeout)"))
                    }
                    replied.futureResult.whenComplete { _ in
                        timer.cancel()
                        channel.close(promise: nil)
                    }
                    var buffer = channel.allocator.buffer(capacity: body.count)
                    buffer.writeBytes(body)
                    channel.writeAndFlush(buffer, promise: nil)
                }
            }
        return replied.futureResult
    }
}

/// Reads one JSON-RPC reply off a unixctl connection.
private final class UnixctlHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let id: Int
    let replied: EventLoopPromise<Void>
    var bytes: [UInt8] = []
    var done = false

    init(id: Int, replied: EventLoopPromise<Void>) {
        self.id = id
        self.replied = replied
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        bytes += Self.unwrapInboundIn(data).readableBytesView
        do {
            guard let reply = try UnixctlReply(reading: bytes) else {
                if bytes.count > UnixctlReply.maxBytes { finish(.failure(ControllerError("unixctl: reply too long"))) }
                return
            }
            guard reply.id == id else {
                return finish(.failure(ControllerError("unixctl: a reply to another request")))
            }
            if let error = reply.error { return finish(.failure(ControllerError("unixctl: \(error)"))) }
            finish(.success(()))
        } catch {
            finish(.failure(ControllerError("unixctl: \(error)")))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(.failure(ControllerError("unixctl: the switch closed the connection before it replied")))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        finish(.failure(ControllerError("unixctl: \(error)")))
    }

    private func finish(_ result: Result<Void, Error>) {
        guard !done else { return }
        done = true
        replied.completeWith(result)
    }
}

/// A unixctl request's bytes, and its reply parsed from the bytes read so far.
struct UnixctlReply: Equatable {
    var id: Int
    /// The error the switch gave (nil: the command succeeded).
    var error: String?
    /// No reply of ovs-vswitchd's to a command of ours comes near this.
    static let maxBytes = 64 * 1024

    static func request(_ method: String, id: Int) -> [UInt8] {
        let object: [String: Any] = ["method": method, "params": [String](), "id": id]
        return Array(try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
    }

    init(id: Int, error: String?) {
        self.id = id
        self.error = error
    }

    /// nil: the object is not complete yet. Throws when the bytes are not a JSON-RPC reply.
    init?(reading bytes: [UInt8]) throws {
        guard let end = Self.objectEnd(bytes) else { return nil }
        let value = try JSONSerialization.jsonObject(with: Data(bytes[..<end]))
        guard let object = value as? [String: Any], let id = object["id"] as? Int else {
            throw ControllerError("not a JSON-RPC reply")
        }
        self.id = id
        switch object["error"] {
        case nil, is NSNull: error = nil
        case let text as String: error = text
        case let other?: error = "\(other)"
        }
        if error == nil && object["result"] == nil { throw ControllerError("a reply with neither result nor error") }
    }

    /// Where the first JSON object in `bytes` ends (one past its closing brace), if it does:
    /// JSON-RPC over a stream has no other framing.
    static func objectEnd(_ bytes: [UInt8]) -> Int? {
        var depth = 0
        var inString = false
        var escaped = false
        for (i, b) in bytes.enumerated() {
            if inString {
                if escaped {
                    escaped = false
                } else if b == UInt8(ascii: "\\") {
                    escaped = true
                } else if b == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch b {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if depth <= 0 { return i + 1 }
            default: break
            }
        }
        return nil
    }
}
