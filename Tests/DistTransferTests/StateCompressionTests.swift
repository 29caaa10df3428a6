import DistChannel
import DistFlow
import DistPRADS
import DistPacket
import DistState
import DistTransfer
import Testing

@Suite struct StateCompressionTests {
    /// What a Move delivered: its flows and hosts, as chunks, in order.
    static func states(_ delivered: [TransferDestination.Delivery]) -> (flows: [StateChunk], hosts: [StateChunk]) {
        var flows: [StateChunk] = []
        var hosts: [StateChunk] = []
        for d in delivered {
            if case .flows(let f) = d { flows += f.map { .perFlow($0) } }
            if case .assets(let a) = d { hosts += a.map { .multiFlow($0) } }
        }
        return (flows, hosts)
    }

    static func move(_ chunks: [StateChunk], compress: Bool, seed: UInt64 = 5) -> (
        TransferSource, TransferDestination, [TransferDestination.Delivery]
    ) {
        let src = TransferSource(moveID: 4, key: key, maxPayload: 1400, compress: compress)
        let dst = TransferDestination(moveID: 4, key: key)
        var ab = Wire(drop: 0.05, duplicate: 0.05, late: 0.1, seed: seed)
        var ba = Wire(drop: 0.05, seed: seed &* 3)
        let delivered = TransferSessionTests.move(
            chunks, packets: [], releaseAt: nil, wire: &ab, &ba, src: src, dst: dst)
        return (src, dst, delivered)
    }

    /// A host's fingerprints and services repeat from host to host: compressed, the same states
    /// take a fraction of the frames and bytes, and arrive bit for bit, over a path that loses,
    /// duplicates and reorders.
    @Test func compressedStatesTakeFewerFramesAndArriveWhole() throws {
        let chunks = Trace.loaded.chunks
        try #require(chunks.count > 100, "mix-a and /etc/prads are needed")
        let (plain, _, plainDelivered) = Self.move(chunks, compress: false)
        let (packed, dst, delivered) = Self.move(chunks, compress: true)
        #expect(packed.complete && dst.failure == nil)
        let got = Self.states(delivered)
        #expect(got.flows == chunks.filter { $0.scope == .perFlow })
        #expect(got.hosts == chunks.filter { $0.scope == .multiFlow })
        #expect(Self.states(plainDelivered).flows == got.flows)
        #expect(plain.counters.compressedFrames == 0)
        #expect(plain.counters.stateBytesSent == plain.counters.stateBytes)
        #expect(packed.counters.stateBytes == plain.counters.stateBytes)
        #expect(packed.counters.compressedFrames > 0)
        #expect(
            packed.counters.stateBytesSent * 2 < packed.counters.stateBytes,
            "\(packed.counters.stateBytesSent) of \(packed.counters.stateBytes) bytes")
        #expect(
            packed.counters.stateFrames * 3 < plain.counters.stateFrames * 2,
            "\(packed.counters.stateFrames) against \(plain.counters.stateFrames) frames, \(packed.counters.stateBytesSent) of \(packed.counters.stateBytes) bytes"
        )
    }

    /// Hosts whose texts are noise: a pack of their states does not compress into one frame;
    /// it goes in halves, and halves of those, until each fits, and every state arrives.
    @Test func statesThatCompressLittleGoInFramesThatFit() {
        var seed: UInt64 = 0x9E37_79B9
        func noise(_ n: Int) -> String {
            String(
                String.UnicodeScalarView(
                    (0..<n).map { _ in
                        seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                        return Unicode.Scalar(UInt32(0x4E00 + (seed >> 33) % 0x5000))!
                    }))
        }
        let chunks = (0..<60).map { (i: Int) -> StateChunk in
            let services = (0..<3).map { j in
                Detector.ServiceEntry(
                    port: UInt16(80 + j), proto: 6, service: "SERVER", application: noise(40), server: true,
                    attempts: 1, ttl: 64)
            }
            let asset = Detector.Asset(vlan: 0, firstSeen: 1, lastSeen: 2, services: services)
            return .multiFlow(AssetState(address: IPAddress(ipv4: 0x0A00_0100 | UInt32(i)), asset: asset))
        }
        let (src, dst, delivered) = Self.move(chunks, compress: true)
        #expect(src.complete && dst.failure == nil)
        #expect(Self.states(delivered).hosts == chunks)
        #expect(src.counters.stateBytesSent * 3 > src.counters.stateBytes * 2)
    }

    /// A compressed frame that is not one, that would inflate past any pack a source makes, or
    /// whose states do not decode: the destination stops and says why.
    @Test func badCompressedFramesStopTheDestination() throws {
        let compressor = StateCompressor()
        let bomb = try #require(compressor.compress([UInt8](repeating: 0, count: 200_000), limit: 8_900))
        let notStates = try #require(compressor.compress([0, 4, 1, 2, 3, 4], limit: 100))
        let good = try #require(compressor.compress([UInt8](repeating: 7, count: 100), limit: 100))
        let cases: [([UInt8], String)] = [
            ([1, 2, 3, 4, 5, 6, 7, 8], "not one compressed frame"),
            (Array(good.dropLast(2)), "not one compressed frame"),
            (good + [0], "not one compressed frame"),
            (bomb, "inflate to 200000"),
            (notStates, "does not decode"),
        ]
        for (payload, why) in cases { Self.stops(.stateCompressed, payload, "compressed state frame", why) }
    }

    /// A frame of `kind` with `payload` stops the destination, which says `what` and `why`.
    static func stops(_ kind: ChannelFrame.Kind, _ payload: [UInt8], _ what: String, _ why: String) {
        let src = ChannelEndpoint(moveID: 6, key: key)
        let dst = TransferDestination(moveID: 6, key: key)
        src.send(kind, payload)
        for f in src.poll(now: 0) { #expect(dst.receive(f, now: 0).isEmpty) }
        #expect(dst.failure?.contains(what) == true, "\(why): \(dst.failure ?? "no failure")")
        #expect(dst.failure?.contains(why) == true, "\(why): \(dst.failure ?? "no failure")")
    }

    /// Redirected packets of the same flows share much of their headers: frames of them that
    /// compress go compressed (mix-a's by a sixth; a flow's own packets far more), and every
    /// packet arrives once, in order.
    @Test func redirectedPacketsGoCompressedAndArriveInOrder() throws {
        let packets = Array(Trace.loaded.frames.map { $0.bytes }.filter { $0.count <= 1400 }.prefix(800))
        try #require(packets.count == 800, "mix-a is needed")
        let src = TransferSource(moveID: 4, key: key, maxPayload: 1400)
        let dst = TransferDestination(moveID: 4, key: key)
        var ab = Wire(drop: 0.05, duplicate: 0.05, late: 0.1, seed: 8)
        var ba = Wire(drop: 0.05, seed: 24)
        let delivered = TransferSessionTests.move(
            [], packets: packets, releaseAt: 0, wire: &ab, &ba, src: src, dst: dst)
        let arrived = delivered.compactMap { d -> [UInt8]? in if case .packet(let p) = d { Array(p) } else { nil } }
        #expect(arrived == packets)
        #expect(src.counters.compressedFrames > 0)
        #expect(
            src.counters.packetBytesSent < src.counters.redirectedBytes,
            "\(src.counters.packetBytesSent) of \(src.counters.redirectedBytes) bytes")
    }

    /// A compressed frame of packets that does not inflate, or whose packets do not decode.
    @Test func badCompressedPacketFramesStopTheDestination() throws {
        let notPackets = try #require(StateCompressor().compress([0, 9, 1, 2], limit: 100))
        for (payload, why) in [
            ([UInt8]([9, 9, 9, 9, 9, 9]), "not one compressed frame"), (notPackets, "does not decode"),
        ] {
            Self.stops(.packetsCompressed, payload, "redirected packets", why)
        }
    }

    @Test func aCompressionThatDoesNotFitIsRefused() throws {
        let compressor = StateCompressor()
        var seed: UInt64 = 1
        let noise = (0..<4_000).map { _ -> UInt8 in
            seed = seed &* 6_364_136_223_846_793_005 &+ 1
            return UInt8(truncatingIfNeeded: seed >> 56)
        }
        #expect(compressor.compress(noise, limit: 4_000) == nil)
        let text = [UInt8](String(repeating: "S44:64:1:60:M1460,S,T,N,W7:Z ", count: 100).utf8)
        let packed = try #require(compressor.compress(text, limit: 1_000))
        #expect(try StateDecompressor().decompress(packed, limit: text.count) == text)
        #expect(throws: StateDecompressor.Failure.tooLarge(text.count)) {
            try StateDecompressor().decompress(packed, limit: text.count - 1)
        }
    }
}
