import DistMove
import DistOpenFlow
import NIOCore

/// Cuts the southbound byte stream into frames: a 4-byte big-endian length, then the body.
/// A frame over the limit is an error (the connection closes: the stream cannot resynchronise).
struct LengthPrefixedDecoder: ByteToMessageDecoder {
    typealias InboundOut = [UInt8]
    let maxFrame: Int

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        guard Int(length) <= maxFrame else {
            throw ControllerError("peer sent a frame of \(length) bytes (limit \(maxFrame))")
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        context.fireChannelRead(wrapInboundOut(buffer.readBytes(length: Int(length))!))
        return .continue
    }
}

/// Cuts an OpenFlow connection's byte stream into messages (length at offset 2).
struct OpenFlowDecoder: ByteToMessageDecoder {
    typealias InboundOut = OFMessage

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex + 2, as: UInt16.self) else { return .needMoreData }
        guard Int(length) >= OpenFlow.headerSize else { throw ControllerError("OpenFlow message of length \(length)") }
        guard buffer.readableBytes >= Int(length) else { return .needMoreData }
        let bytes = buffer.readBytes(length: Int(length))!
        context.fireChannelRead(wrapInboundOut(try OFMessage.decode(bytes)))
        return .continue
    }
}

/// Cuts a byte stream into lines (the northbound socket: one JSON object per line).
struct LineDecoder: ByteToMessageDecoder {
    typealias InboundOut = String
    static let maxLine = 1 << 20

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let newline = buffer.readableBytesView.firstIndex(of: 0x0A) else {
            if buffer.readableBytes > Self.maxLine { throw ControllerError("request line over \(Self.maxLine) bytes") }
            return .needMoreData
        }
        let length = newline - buffer.readerIndex
        let line = buffer.readString(length: length)!
        buffer.moveReaderIndex(forwardBy: 1)
        context.fireChannelRead(wrapInboundOut(line))
        return .continue
    }
}

public struct ControllerError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// Messages and bytes one connection has carried, for a Move's report; and the messages by
/// peer and kind ("to vnf1 movePerFlow", "from switch BARRIER_REPLY"), so a report says which
/// they were. (Counted under a key of the strings as they are, not one text made per message:
/// in opennf mode every redirected packet is two messages.)
struct TrafficCounters {
    struct Kind: Hashable {
        var sent: Bool
        var peer: String
        var kind: String
    }

    var messagesSent = 0
    var messagesReceived = 0
    var bytesSent = 0
    var bytesReceived = 0
    var byKind: [Kind: Int] = [:]

    /// The messages by kind, as a report lists them.
    var kinds: [String: Int] {
        Dictionary(
            uniqueKeysWithValues: byKind.map {
                ("\($0.key.sent ? "to" : "from") \($0.key.peer) \($0.key.kind)", $0.value)
            })
    }

    mutating func sent(to peer: String, _ kind: String, bytes: Int) {
        messagesSent += 1
        bytesSent += bytes
        byKind[Kind(sent: true, peer: peer, kind: kind), default: 0] += 1
    }

    mutating func received(from peer: String, _ kind: String, bytes: Int) {
        messagesReceived += 1
        bytesReceived += bytes
        byKind[Kind(sent: false, peer: peer, kind: kind), default: 0] += 1
    }

    static func - (a: TrafficCounters, b: TrafficCounters) -> TrafficCounters {
        TrafficCounters(
            messagesSent: a.messagesSent - b.messagesSent, messagesReceived: a.messagesReceived - b.messagesReceived,
            bytesSent: a.bytesSent - b.bytesSent, bytesReceived: a.bytesReceived - b.bytesReceived,
            byKind: a.byKind.merging(b.byKind.mapValues { -$0 }, uniquingKeysWith: +).filter { $0.value != 0 })
    }

    static func + (a: TrafficCounters, b: TrafficCounters) -> TrafficCounters {
        TrafficCounters(
            messagesSent: a.messagesSent + b.messagesSent, messagesReceived: a.messagesReceived + b.messagesReceived,
            bytesSent: a.bytesSent + b.bytesSent, bytesReceived: a.bytesReceived + b.bytesReceived,
            byKind: a.byKind.merging(b.byKind, uniquingKeysWith: +))
    }
}

extension MoveReport {
    /// The controller's messages and bytes during a Move, into the report.
    mutating func count(_ traffic: TrafficCounters) {
        messagesSent = traffic.messagesSent
        messagesReceived = traffic.messagesReceived
        bytesSent = traffic.bytesSent
        bytesReceived = traffic.bytesReceived
        messageKinds = traffic.kinds
    }
}
