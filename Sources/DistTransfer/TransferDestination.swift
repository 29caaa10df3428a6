import Crypto
import DistChannel
import DistFlow
import DistMove
import DistState
import Foundation

/// What the destination of a Move does with the packets the switch sends it of the moved
/// flows, until the source's last redirected packet has been processed.
public enum SwitchTraffic: UInt8, Sendable {
    /// No guarantee: processes them as they come.
    case process = 0
    /// Loss-free: holds them, so none overtakes a redirected packet of its flow.
    case hold = 1
    /// Order-preserving (the two-phase switch update): drops them until the switch's in-band
    /// control packet (the source redirects a copy of each), and holds those after it.
    case gate = 2
}

/// The destination's side of one Move: authenticates and orders what the source sends,
/// decodes state, and holds redirected packets until the release (then hands each on as it
/// comes). Its output goes to the workers in order, so no packet of a flow is processed
/// before the flow's state.
public final class TransferDestination {
    public enum Delivery: Sendable, Equatable {
        /// The Move's filter, what to do with the switch's packets of it until `end`, and
        /// where the source takes answers.
        case open(filter: String, switchTraffic: SwitchTraffic, replyTo: String)
        /// Every redirected packet has been handed on.
        case end
        case flows([FlowEntry])
        case assets([AssetState])
        case counters(InstanceCounters)
        /// A redirected packet: a slice of the frame it came in (no copy of its own).
        case packet(ArraySlice<UInt8>)
    }

    public let endpoint: ChannelEndpoint
    public let bufferLimit: Int
    public private(set) var summary = DestinationSummary()
    public private(set) var released = false
    public private(set) var ended = false
    /// A state that did not decode: the Move cannot go on (why).
    public private(set) var failure: String?
    var held: [ArraySlice<UInt8>] = []
    /// The parts of a redirected packet or a state received so far
    /// (``ChannelFrame/Kind/packetPart``, ``ChannelFrame/Kind/statePart``; every part holds a
    /// byte at least, so empty: none pending), and of which kind.
    var partial: [UInt8] = []
    var partialKind = ChannelFrame.Kind.packetPart
    /// Inflates ``ChannelFrame/Kind/stateCompressed`` and ``ChannelFrame/Kind/packetsCompressed`` frames.
    let decompressor = StateDecompressor()
    /// Flows imported so far (deleted again if the Move aborts).
    public private(set) var importedFlows: [FlowKey] = []

    /// `binding`: the Move's nonce (its first frame's), this instance's channel id and the source's.
    public init(
        moveID: UInt64, key: SymmetricKey, binding: ChannelFrame.Binding = .unbound, bufferLimit: Int = 65536,
        config: ChannelEndpoint.Config = ChannelEndpoint.Config()
    ) {
        endpoint = ChannelEndpoint(moveID: moveID, key: key, binding: binding, config: config)
        self.bufferLimit = bufferLimit
    }

    public func receive(_ bytes: [UInt8], now: UInt64) -> [Delivery] {
        var out: [Delivery] = []
        for frame in endpoint.receive(bytes, now: now) {
            guard failure == nil else { break }
            if !partial.isEmpty && frame.kind != partialKind {
                failure =
                    partialKind == .packetPart
                    ? "a redirected packet's parts from the source end before its last"
                    : "a state's parts from the source end before its last"
                continue
            }
            switch frame.kind {
            case .state, .statePart, .stateCompressed:
                receiveState(frame, into: &out)
            case .packets, .packetsCompressed:
                let payload: [UInt8]
                do {
                    payload =
                        frame.kind == .packets
                        ? frame.payload : try decompressor.decompress(frame.payload, limit: TransferSource.largestPack)
                } catch {
                    failure = "a compressed frame of redirected packets from the source does not decode: \(error)"
                    continue
                }
                guard let packets = PacketPacking.slices(payload) else {
                    failure = "a frame of redirected packets from the source does not decode"
                    continue
                }
                for p in packets { take(p, into: &out) }
            case .packetPart:
                if let whole = assemble(
                    frame.payload, of: .packetPart, limit: TransferSource.largestPacket,
                    what: "a redirected packet", limitText: "\(TransferSource.largestPacket) bytes")
                {
                    take(whole[...], into: &out)
                }
            case .release:
                released = true
                out += held.map { .packet($0) }
                held = []
            case .open:
                if let opening = Self.opening(frame.payload) {
                    out.append(opening)
                } else {
                    failure = Self.badOpening(frame.payload)
                }
            case .end:
                released = true
                out += held.map { .packet($0) }
                held = []
                out.append(.end)
                if !ended {
                    ended = true
                    endpoint.send(.end, summary.encoded())
                }
            case .ack, .abort, .copies:
                break
            }
        }
        return out
    }

    /// A frame of state chunks, or a part of one chunk: decoded and applied (timed: the Move's
    /// deserialization); a failure says what did not decode.
    func receiveState(_ frame: ChannelFrame, into out: inout [Delivery]) {
        let chunks: [StateChunk]
        let start = DispatchTime.now().uptimeNanoseconds
        if frame.kind == .state {
            do {
                chunks = try StatePacking.unpack(frame.payload)
            } catch {
                failure = "a state frame from the source does not decode: \(error)"
                return
            }
        } else if frame.kind == .stateCompressed {
            do {
                let inflated = try decompressor.decompress(frame.payload, limit: TransferSource.largestPack)
                chunks = try StatePacking.unpack(inflated)
            } catch {
                failure = "a compressed state frame from the source does not decode: \(error)"
                return
            }
        } else {
            guard
                let whole = assemble(
                    frame.payload, of: .statePart, limit: StateCodec.headerSize + StateCodec.maxPayload,
                    what: "a state", limitText: "the \(StateCodec.maxPayload)-byte limit")
            else { return }
            do {
                chunks = [try StateCodec.decode(whole)]
            } catch {
                failure = "a state in parts from the source does not decode: \(error)"
                return
            }
        }
        apply(chunks, into: &out)
        summary.deserializeNanoseconds += DispatchTime.now().uptimeNanoseconds - start
    }

    /// The source's opening message: the treatment of the switch's packets, the address to
    /// answer, the filter; nil when malformed.
    static func opening(_ p: [UInt8]) -> Delivery? {
        guard p.count >= 2, p.count >= 2 + Int(p[1]), let traffic = SwitchTraffic(rawValue: p[0]) else { return nil }
        let replyTo = String(decoding: p[2..<(2 + Int(p[1]))], as: UTF8.self)
        return .open(
            filter: String(decoding: p[(2 + Int(p[1]))...], as: UTF8.self), switchTraffic: traffic, replyTo: replyTo)
    }

    /// Why an opening message is refused.
    static func badOpening(_ p: [UInt8]) -> String {
        guard p.count >= 2, p.count >= 2 + Int(p[1]) else { return "the source's opening message is malformed" }
        return "the source's opening message asks for an unknown treatment of the switch's packets (\(p[0]))"
    }

    /// Adds a part (a flags byte, bit 0: the last, then bytes) of a packet or state sent in
    /// parts; returns the whole once its last part is in. A malformed part, or one that makes it
    /// longer than `limit`, stops the Move (``failure``) and gives nil.
    func assemble(_ part: [UInt8], of kind: ChannelFrame.Kind, limit: Int, what: String, limitText: String) -> [UInt8]?
    {
        guard part.count >= 2, part[0] & ~1 == 0, partial.count + part.count - 1 <= limit else {
            failure = "a part of \(what) from the source is malformed or makes it over \(limitText)"
            return nil
        }
        partialKind = kind
        partial += part[1...]
        guard part[0] & 1 == 1 else { return nil }
        defer { partial = [] }
        return partial
    }

    /// Decoded states: flows and hosts to import, all-flows counters to add.
    func apply(_ chunks: [StateChunk], into out: inout [Delivery]) {
        var flows: [FlowEntry] = []
        var assets: [AssetState] = []
        for chunk in chunks {
            switch chunk {
            case .perFlow(let e): flows.append(e)
            case .multiFlow(let a): assets.append(a)
            case .allFlows(let c):
                out.append(.counters(c))
                summary.allFlowsStates += 1
            }
        }
        if !assets.isEmpty {
            out.append(.assets(assets))
            summary.multiFlowStates += assets.count
        }
        if !flows.isEmpty {
            out.append(.flows(flows))
            summary.perFlowStates += flows.count
            importedFlows += flows.map { $0.key }
        }
    }

    /// A redirected packet: on to the workers once the release is in, held until then.
    func take(_ packet: ArraySlice<UInt8>, into out: inout [Delivery]) {
        summary.packets += 1
        if released {
            out.append(.packet(packet))
        } else if held.count < bufferLimit {
            held.append(packet)
            summary.buffered += 1
            summary.maxBuffered = max(summary.maxBuffered, held.count)
        } else {
            // Full: this packet is processed now rather than dropped (counted; the report
            // says so).
            summary.overflow += 1
            out.append(.packet(packet))
        }
    }

    /// Order-preserving Moves: tells the source (once) that the switch's copies of the moved
    /// traffic reach this end, so the controller knows the switch's first phase is in force in
    /// its datapath, not only in its flow table, before the in-band control packet goes.
    public func copiesArriving() {
        guard !copiesReported, !ended else { return }
        copiesReported = true
        endpoint.send(.copies, [])
    }
    public private(set) var copiesReported = false

    /// The packets held (not yet released), handed over once: after an abort, the caller
    /// processes them or drops them.
    public func takeHeld() -> [ArraySlice<UInt8>] {
        defer { held = [] }
        return held
    }

    public func poll(now: UInt64) -> [[UInt8]] { endpoint.poll(now: now) }

    /// The summary went out and was acknowledged: nothing more to do.
    public var complete: Bool { ended && endpoint.idle }
}
