import Crypto
import DistAdmin
import DistChannel
import DistControl
import DistFlow
import DistNorthbound
import DistOpenFlow
import DistPRADS
import DistPacket
import DistPipeline
import DistState
import DistTransfer
import Foundation

/// One decoder under the fuzzer: what it does with an input (it must not trap, leak or hang),
/// and seed inputs that reach its fields.
struct FuzzTarget: @unchecked Sendable {
    let name: String
    let about: String
    let run: ([UInt8]) -> Void
    let seeds: () -> [[UInt8]]
}

/// The channel key the channel targets tag their frames with (any key: the tag is made right,
/// so that decoding goes past it).
nonisolated(unsafe) let fuzzKey = SymmetricKey(data: [UInt8](repeating: 0x5A, count: 32))
/// The keys the channel target seals with (derived once: a key derivation per frame would be
/// most of each input's time), and its transmissions so far (each seals under a new counter).
nonisolated(unsafe) let fuzzCipher = ChannelCipher(key: fuzzKey, binding: .unbound)
nonisolated(unsafe) var fuzzTransmissions: UInt64 = 0

enum Targets {
    static let all: [FuzzTarget] = [
        packet, state, channel, openflow, southbound, northbound, pcap, admin, signatures,
    ]

    /// Frames from the project's trace, for seeds.
    static func traceFrames(_ count: Int) -> [[UInt8]] {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("traces/mix-a.pcap").path
        guard let data = FileManager.default.contents(atPath: path), let pcap = try? PcapFile(bytes: [UInt8](data))
        else { return [] }
        return pcap.frames.prefix(count).map(\.bytes)
    }

    /// A frame through a worker's whole fast path (parse, flow table, PRADS detection when
    /// Debian's signatures are installed), twice (the second meets its flow).
    static let packet = FuzzTarget(
        name: "packet", about: "a frame through the fast path and PRADS detection",
        run: { bytes in
            checkCommonParse(bytes)
            let frame = PcapFile.Frame(seconds: 1, fraction: 0, originalLength: UInt32(bytes.count), bytes: bytes)
            fastPath.process(frames: [frame, frame])
        }, seeds: { traceFrames(64) })

    /// The parser's straight pass for common frames gives what its general walk gives.
    static func checkCommonParse(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            var common = PacketInfo()
            guard PacketParser.parseCommon(base, length: raw.count, into: &common) else { return }
            var any = PacketInfo()
            PacketParser.parseAny(base, length: raw.count, into: &any)
            if common != any { fatalError("the parser's two passes disagree on a frame of \(raw.count) bytes") }
        }
    }

    nonisolated(unsafe) static let fastPath: FastPath = {
        let stats = UnsafeMutablePointer<WorkerStats>.allocate(capacity: 1)
        stats.initialize(to: WorkerStats())
        let signatures = try? PRADSSignatures.load(directory: "/etc/prads")
        return FastPath(
            table: FlowTable(capacity: 1 << 12), stats: stats, detector: signatures.map { Detector(signatures: $0) })
    }()

    /// A state chunk, its checksum made right so that the fields are decoded.
    static let state = FuzzTarget(
        name: "state", about: "a state chunk (checksum recomputed)",
        run: { bytes in
            var b = bytes
            if b.count >= StateCodec.headerSize {
                let sum = b[StateCodec.headerSize...].withUnsafeBytes { CRC32C.checksum($0) }
                for i in 0..<4 { b[8 + i] = UInt8(truncatingIfNeeded: sum >> (8 * UInt32(i))) }
            }
            if let chunk = try? StateCodec.decode(b) { _ = StateCodec.encode(chunk) }
        },
        seeds: {
            let stats = UnsafeMutablePointer<WorkerStats>.allocate(capacity: 1)
            stats.initialize(to: WorkerStats())
            let signatures = try? PRADSSignatures.load(directory: "/etc/prads")
            let path = FastPath(
                table: FlowTable(capacity: 1 << 12), stats: stats, detector: signatures.map { Detector(signatures: $0) }
            )
            path.process(
                frames: traceFrames(2000).map {
                    PcapFile.Frame(seconds: 1, fraction: 0, originalLength: UInt32($0.count), bytes: $0)
                })
            var chunks: [StateChunk] = []
            if case .flows(let flows) = path.perform(.exportFlows(.all, lock: false)) {
                chunks += flows.prefix(8).map { .perFlow($0) }
            }
            if case .assets(let assets) = path.perform(.exportAssets(.all, peers: false)) {
                chunks += assets.prefix(8).map { .multiFlow($0) }
            }
            return chunks.map { StateCodec.encode($0) }
        })

    /// Channel frames into a Move's receiving end: the input cut in frames (a length byte,
    /// a kind byte, a sequence byte, then the payload), each tagged right.
    static let channel = FuzzTarget(
        name: "channel", about: "channel frames into a Move's receiving end",
        run: { bytes in
            let destination = TransferDestination(moveID: 7, key: fuzzKey)
            var at = 0
            var now: UInt64 = 1_000_000_000
            while at + 3 <= bytes.count {
                let n = min(Int(bytes[at]) * 8, bytes.count - at - 3)
                let kind = ChannelFrame.Kind.allCases[Int(bytes[at + 1]) % ChannelFrame.Kind.allCases.count]
                let frame = ChannelFrame(
                    kind: kind, moveID: 7, sequence: UInt32(bytes[at + 2]), ack: 0,
                    payload: Array(bytes[(at + 3)..<(at + 3 + n)]))
                at += 3 + n
                now += 1_000_000
                fuzzTransmissions &+= 1
                for d in destination.receive(frame.sealed(with: fuzzCipher, counter: fuzzTransmissions), now: now) {
                    _ = d
                }
                _ = destination.poll(now: now)
            }
            _ = try? ChannelFrame.decode(bytes, key: fuzzKey)
        },
        seeds: {
            let source = TransferSource(moveID: 7, key: fuzzKey)
            source.open(filter: "nw_src=10.0.0.0/8", switchTraffic: .hold, replyTo: "198.18.0.1:7400@02:00:00:00:00:01")
            // (A frame of states, compressed, among them.)
            for chunk in state.seeds().compactMap({ try? StateCodec.decode($0) }) { source.add(chunk) }
            for frame in traceFrames(4) { _ = source.redirect(frame) }
            source.release()
            source.end()
            return source.poll(now: 1_000_000_000).compactMap { bytes -> [UInt8]? in
                guard let f = try? ChannelFrame.decode(bytes, key: fuzzKey), f.payload.count <= 255 * 8 else {
                    return nil
                }
                return [UInt8((f.payload.count + 7) / 8), f.kind.rawValue, UInt8(truncatingIfNeeded: f.sequence)]
                    + f.payload
            }
        })

    static let openflow = FuzzTarget(
        name: "openflow", about: "an OpenFlow 1.3 message",
        run: { bytes in
            if let m = try? OFMessage.decode(bytes) { _ = m.encoded() }
        },
        seeds: {
            [
                OFMessage.hello(xid: 1, body: []).encoded(), OFMessage.barrierRequest(xid: 2).encoded(),
                OFMessage.echoRequest(xid: 3, data: [1, 2, 3]).encoded(),
            ]
        })

    /// A southbound request (JSON) against an instance with state.
    static let southbound = FuzzTarget(
        name: "southbound", about: "a southbound API request",
        run: { bytes in
            _ = service.handle(client: 1, bytes)
        },
        seeds: {
            [
                #"{"type":"getPerFlow","id":1,"filter":"nw_src=10.0.0.0/8","batch":4}"#, #"{"type":"info","id":2}"#,
                #"{"type":"flowGroups","id":3,"filter":"nw_src=10.0.0.0/8","length":16}"#,
                #"{"type":"putPerFlow","id":4,"chunks":["AAAA"]}"#,
                #"{"type":"abortMove","id":5,"moveID":1,"peerGone":true}"#,
                #"{"type":"enableEvents","id":6,"filter":"tp_dst=80","action":"drop"}"#, #"{"type":"moves","id":7}"#,
                #"{"type":"enableEvents","id":8,"filter":"nw_src=10.0.0.0/8","action":"drop","keep":true}"#,
                #"{"type":"eventsReleased","id":9,"seqs":[[1,3],[5,18446744073709551615]]}"#,
                #"{"type":"putPerFlow","id":10,"chunks":[],"move":{"moveID":4,"filter":"nw_src=10.0.0.0/8","source":"v"}}"#,
                #"{"type":"endImport","id":11,"moveID":4,"keep":false}"#,
            ]
            .map { Array($0.utf8) }
        })

    nonisolated(unsafe) static let service: SouthboundService = {
        let s = SouthboundService(store: PipelineStateStore(fastPath))
        s.abortMove = { _, _, _ in }
        return s
    }()

    /// A northbound request line (distctl to dist-controller), a Move's options read as the
    /// controller reads them; what decodes must encode to a line that decodes the same.
    static let northbound = FuzzTarget(
        name: "northbound", about: "a northbound request line",
        run: { bytes in
            guard let request = try? NorthboundRequest(line: String(decoding: bytes, as: UTF8.self)) else { return }
            if case .move(let command) = request { _ = try? command.spec() }
            guard (try? NorthboundRequest(line: request.line)) == request else {
                fatalError("a northbound request does not survive its own encoding: \(request.line)")
            }
        },
        seeds: {
            [
                #"{"command":"vnfs"}"#, #"{"command":"stats","vnf":"vnf1"}"#,
                #"{"command":"flows","vnf":"vnf1","filter":"nw_src=10.0.0.0/8,tp_dst=80","limit":5}"#,
                #"{"command":"assets","vnf":"vnf2","filter":"nw_dst=2001:db8::/32"}"#,
                #"{"command":"move","from":"vnf1","to":"vnf2","filter":"nw_src=198.18.0.0/16","guarantee":"lf","#
                    + #""opt":"pz,ll,er","mode":"dist"}"#,
                #"{"command":"move","from":"vnf1","to":"vnf2","filter":"nw_src=10.0.0.0/8","split":16,"#
                    + #""splitOrder":"traffic","scope":"per,multi,all"}"#,
            ]
            .map { Array($0.utf8) }
        })

    /// An admin socket request line.
    static let admin = FuzzTarget(
        name: "admin", about: "an admin request line",
        run: { bytes in
            if let request = try? AdminRequest.parse(String(decoding: bytes, as: UTF8.self)) {
                _ = try? request.integer("limit", default: 10, max: 100_000)
                _ = try? request.string("filter")
            }
        },
        seeds: {
            [#"{"cmd":"stats"}"#, #"{"cmd":"flows","limit":5,"filter":"nw_src=10.0.0.0/8"}"#, #"{"cmd":"assets"}"#].map
            { Array($0.utf8) }
        })

    /// A PRADS signature file's text, as each of its loaders reads it (the first byte picks
    /// which: services, TCP fingerprints, MAC vendors).
    static let signatures = FuzzTarget(
        name: "signatures", about: "PRADS signature-file text",
        run: { bytes in
            guard let kind = bytes.first else { return }
            let text = String(decoding: bytes.dropFirst(), as: UTF8.self)
            switch kind % 3 {
            case 0: _ = ServiceSignatureFile.parse(text, file: "fuzz")
            case 1: _ = TCPFingerprintDatabase.parse(text, file: "fuzz")
            default: _ = MACVendors.parse(text, file: "fuzz")
            }
        },
        seeds: {
            [(0, "tcp-service.sig"), (1, "tcp-syn.fp"), (1, "tcp-synack.fp"), (2, "mac.sig")].compactMap { kind, file in
                guard let data = FileManager.default.contents(atPath: "/etc/prads/" + file) else { return nil }
                // (A slice of each file: its first lines, whole.)
                let lines = String(decoding: data, as: UTF8.self).split(
                    separator: "\n", omittingEmptySubsequences: false
                ).prefix(60)
                return [UInt8(kind)] + Array(lines.joined(separator: "\n").utf8)
            }
        })

    static let pcap = FuzzTarget(
        name: "pcap", about: "a pcap file",
        run: { bytes in
            _ = try? PcapFile(bytes: bytes)
        },
        seeds: {
            let frames = traceFrames(4)
            var file: [UInt8] =
                [0xD4, 0xC3, 0xB2, 0xA1, 2, 0, 4, 0] + [UInt8](repeating: 0, count: 8) + [0xFF, 0xFF, 0, 0, 1, 0, 0, 0]
            for f in frames {
                let n = UInt32(f.count)
                file +=
                    [1, 0, 0, 0, 0, 0, 0, 0] + withUnsafeBytes(of: n.littleEndian, Array.init)
                    + withUnsafeBytes(of: n.littleEndian, Array.init) + f
            }
            return [file]
        })
}
