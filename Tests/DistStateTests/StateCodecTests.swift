import DistFlow
import DistPRADS
import DistPacket
import DistPipeline
import DistState
import Foundation
import Testing

/// The state chunk codec on every state the detection builds from the project's trace.
@Suite struct StateCodecTests {
    /// Every per-flow, multi-flow and all-flows state of mix-a run through the worker's pipeline.
    static let states: [StateChunk] = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        guard let data = try? Data(contentsOf: root.appendingPathComponent("traces/mix-a.pcap")),
            let file = try? PcapFile(bytes: [UInt8](data)),
            let signatures = try? PRADSSignatures.load(directory: "/etc/prads")
        else { return [] }
        let stats = UnsafeMutablePointer<WorkerStats>.allocate(capacity: 1)
        stats.initialize(to: WorkerStats())
        let detector = Detector(signatures: signatures)
        let path = FastPath(table: FlowTable(capacity: 1 << 14), stats: stats, detector: detector)
        path.process(frames: file.frames)
        var chunks: [StateChunk] = []
        path.table.forEach { _, e in
            chunks.append(.perFlow(e))
            return true
        }
        for address in detector.assets.keys.sorted() {
            chunks.append(.multiFlow(AssetState(address: address, asset: detector.asset(at: address)!)))
        }
        var counters = InstanceCounters()
        counters.packets = stats.pointee.rxPackets
        counters.bytes = stats.pointee.rxBytes
        counters.flowsCreated = stats.pointee.flows.created
        counters.assets = stats.pointee.assets
        counters.records = stats.pointee.assetRecords
        for i in 0..<8 { counters.byTransport[i] = stats.pointee.l4[i] }
        chunks.append(.allFlows(counters))
        return chunks
    }()

    @Test func everyStateOfTheTraceRoundTrips() throws {
        let flows = Self.states.filter { $0.scope == .perFlow }.count
        let assets = Self.states.filter { $0.scope == .multiFlow }.count
        #expect(flows == 5_523)
        #expect(assets > 500)
        for chunk in Self.states {
            let bytes = StateCodec.encode(chunk)
            #expect(try StateCodec.decode(bytes) == chunk)
        }
        // Packed end to end, as the data-plane channel sends them.
        var batch: [UInt8] = []
        for chunk in Self.states { StateCodec.encode(chunk, into: &batch) }
        #expect(try StateCodec.decodeAll(batch) == Self.states)
    }

    /// Version 2 halves a per-flow state; version 1 (an instance not yet upgraded) still reads.
    @Test func perFlowStatesAreCompactAndTheFixedWidthVersionStillReads() throws {
        let flows = Self.states.filter { $0.scope == .perFlow }
        var compact = 0
        var fixed = 0
        var tunnelled = 0
        for chunk in flows {
            let v2 = StateCodec.encode(chunk)
            let v1 = StateCodec.encode(chunk, format: 1)
            #expect(try StateCodec.decode(v1) == chunk)
            guard case .perFlow(let e) = chunk, !e.key.isTunnelled else {
                // Version 1 cannot carry a tunnelled flow: it goes in version 2.
                #expect(v1 == v2)
                tunnelled += 1
                continue
            }
            #expect(v2[2] == 2 && v1[2] == 1)
            compact += v2.count
            fixed += v1.count
        }
        #expect(tunnelled > 0 && tunnelled < 10)
        #expect(fixed == (flows.count - tunnelled) * 106)
        #expect(compact * 2 < fixed, "\(compact) bytes against \(fixed)")
        // IPv6 flows, times that run backwards and counters at their limits round-trip too.
        let v6 = FlowKey(
            loAddr: IPAddress(hi: 0x2001_0DB8_0000_0000, lo: 1), hiAddr: IPAddress(hi: 0x2001_0DB8_0000_0000, lo: 2),
            loPort: 1, hiPort: 2, proto: 17, vlanKey: 0xFF_FFFF)
        var e = FlowEntry(key: v6, hash: 0, clientIsLo: false, now: 9)
        e.firstSeen = .max
        e.lastSeen = 3
        e.packetsToServer = .max
        e.bytesToClient = 1 << 63
        #expect(try StateCodec.decode(StateCodec.encode(.perFlow(e))) == .perFlow(e))
        e.lastSeen = .max
        e.firstSeen = 0
        #expect(try StateCodec.decode(StateCodec.encode(.perFlow(e))) == .perFlow(e))
    }

    /// A varint longer than its value needs, or past 64 bits, is refused (one value, one form).
    @Test func oddVarintsAreRefused() throws {
        let good = StateCodec.encode(Self.states.first { $0.scope == .perFlow }!)
        // The payload of a v4 flow: flags, 8 bytes of addresses, 5 of ports and protocol, then
        // the VLAN key's varint (one byte: the key is small). Stretch it to two bytes.
        #expect(good[12] & 1 == 1 && good[26] < 0x80)
        func resealed(_ payload: [UInt8]) -> [UInt8] {
            var chunk = Array(good[0..<12]) + payload
            let length = UInt32(payload.count)
            let crc = payload.withUnsafeBytes { CRC32C.checksum($0) }
            for i in 0..<4 {
                chunk[4 + i] = UInt8(truncatingIfNeeded: length >> (8 * UInt32(i)))
                chunk[8 + i] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(i)))
            }
            return chunk
        }
        var payload = Array(good[12...])
        #expect(try StateCodec.decode(resealed(payload)) == StateCodec.decode(good))
        payload.replaceSubrange(14...14, with: [payload[14] | 0x80, 0])
        #expect(throws: StateCodecError.malformed("varint not in its shortest form")) {
            try StateCodec.decode(resealed(payload))
        }
        payload = Array(good[12...])
        payload.replaceSubrange(14...14, with: [UInt8](repeating: 0xFF, count: 9) + [0x02])
        #expect(throws: StateCodecError.malformed("varint past 64 bits")) { try StateCodec.decode(resealed(payload)) }
    }

    @Test func anAssetLearntFromARPKeepsItsAddressAndVendor() throws {
        let asset = Detector.Asset(vlan: 7, firstSeen: 1, lastSeen: 2, mac: [0, 0x0C, 0x29, 1, 2, 3], vendor: "Vmware")
        let chunk = StateChunk.multiFlow(AssetState(address: IPAddress(ipv4: 0xC612_0001), asset: asset))
        #expect(try StateCodec.decode(StateCodec.encode(chunk)) == chunk)
    }

    @Test func everyTruncationIsRefusedWithAReason() throws {
        let chunk = try #require(
            Self.states.first {
                if case .multiFlow(let a) = $0 { return !a.asset.services.isEmpty } else { return false }
            })
        let bytes = StateCodec.encode(chunk)
        for cut in 0..<bytes.count {
            #expect(throws: StateCodecError.self) { try StateCodec.decode(Array(bytes.prefix(cut))) }
        }
        #expect(throws: StateCodecError.truncated(needed: 12, available: 5)) {
            try StateCodec.decode(Array(bytes.prefix(5)))
        }
    }

    @Test func everySingleBitFlipIsRefused() throws {
        for chunk in [Self.states[0], Self.states.first { $0.scope == .multiFlow }!, Self.states.last!] {
            let bytes = StateCodec.encode(chunk)
            for bit in 0..<(bytes.count * 8) {
                var flipped = bytes
                flipped[bit / 8] ^= UInt8(1 << (bit % 8))
                #expect(throws: StateCodecError.self, "bit \(bit)") { try StateCodec.decode(flipped) }
            }
        }
    }

    @Test func wrongVersionOversizedAndForeignBytesAreRefused() {
        var bytes = StateCodec.encode(Self.states[0])
        bytes[2] = 3
        #expect(throws: StateCodecError.wrongVersion(3)) { try StateCodec.decode(bytes) }
        bytes[2] = 0
        #expect(throws: StateCodecError.wrongVersion(0)) { try StateCodec.decode(bytes) }
        bytes = StateCodec.encode(Self.states[0])
        bytes[4] = 0xFF
        bytes[5] = 0xFF
        bytes[6] = 0xFF
        bytes[7] = 0x00
        #expect(throws: StateCodecError.oversized(0xFF_FFFF)) { try StateCodec.decode(bytes) }
        #expect(throws: StateCodecError.badMagic) { try StateCodec.decode(Array("GET / HTTP/1.1\r\n".utf8)) }
        bytes = StateCodec.encode(Self.states[0])
        bytes[3] = 9
        #expect(throws: StateCodecError.unknownScope(9)) { try StateCodec.decode(bytes) }
    }

    @Test func aBatchWithOneBadChunkIsRefusedWhole() throws {
        var batch: [UInt8] = []
        for chunk in Self.states.prefix(5) { StateCodec.encode(chunk, into: &batch) }
        let good = batch.count
        StateCodec.encode(Self.states[5], into: &batch)
        batch[good + 20] ^= 0x40
        for chunk in Self.states.dropFirst(6).prefix(3) { StateCodec.encode(chunk, into: &batch) }
        #expect(throws: StateCodecError.checksumMismatch) { try StateCodec.decodeAll(batch) }
    }

    @Test func aChunkThatDecodesIntoAnImpossibleStateIsRefused() {
        // A well-formed chunk (right checksum) whose flow key is not in canonical order.
        var e = FlowEntry(
            key: FlowKey(
                loAddr: IPAddress(ipv4: 9), hiAddr: IPAddress(ipv4: 1), loPort: 1, hiPort: 2,
                proto: 6, vlanKey: 0), hash: 0, clientIsLo: true, now: 0)
        e.packetsToServer = 1
        #expect(throws: StateCodecError.malformed("flow key not canonical")) {
            try StateCodec.decode(StateCodec.encode(.perFlow(e)))
        }
    }
}
