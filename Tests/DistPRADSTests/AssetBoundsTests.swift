import DistLoopback
import DistPRADS
import DistPacket
import Foundation
import Testing

/// The detector's tables are bounded: hosts learnt from traffic, and OS fingerprints and
/// services per host; what does not fit is counted, and nothing is recorded for it.
@Suite struct AssetBoundsTests {
    static func run(maxAssets: Int?, maxEntries: Int?) throws -> (Detector, [AssetRecord]) {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("traces/mix-a.pcap")
        let file = try PcapFile(bytes: [UInt8](try Data(contentsOf: url)))
        let engine = PRADSEngine(signatures: try PRADSSignatures.load(directory: "/etc/prads"))
        if let maxAssets { engine.detector.maxAssets = maxAssets }
        if let maxEntries { engine.detector.maxEntriesPerHost = maxEntries }
        var records: [AssetRecord] = []
        engine.onRecord = { records.append($0) }
        for frame in file.frames.prefix(10_000) {
            engine.process(frame: frame.bytes, wireLength: Int(frame.originalLength), timestamp: UInt64(frame.seconds))
        }
        return (engine.detector, records)
    }

    @Test func hostsAndTheirEntriesStopAtTheirLimitsCounted() throws {
        let (free, _) = try Self.run(maxAssets: nil, maxEntries: nil)
        #expect(free.assets.count > 5 && free.assets.values.contains { $0.os.count + $0.services.count > 4 })
        #expect(free.counters.assetsRefused == 0 && free.counters.entriesRefused == 0)
        #expect(free.counters.assetsEvicted == 0)
        let (bounded, records) = try Self.run(maxAssets: 5, maxEntries: 2)
        #expect(bounded.assets.count == 5)
        #expect(bounded.counters.assetsEvicted > 0 && bounded.counters.entriesRefused > 0)
        #expect(bounded.assets.values.allSatisfy { $0.os.count <= 2 && $0.services.count <= 2 })
        let known = Set(bounded.assets.keys.map(\.text))
        #expect(known.allSatisfy { host in records.contains { $0.asset == host } }, "every host kept was recorded")
    }

    /// A flood of sources seen once each churns through itself: the host that keeps talking
    /// stays, the table holds its bound, and every host forgotten is counted.
    @Test func aFloodOfSpoofedSourcesLeavesTheHostsThatKeepTalking() throws {
        let engine = PRADSEngine(signatures: try PRADSSignatures.load(directory: "/etc/prads"))
        engine.detector.maxAssets = 100
        let talker: UInt32 = 0xC612_0001
        var t: UInt64 = 1
        for i in 0..<2_000 {
            if i % 50 == 0 {
                let frame = SampleTraffic.syn(from: talker, port: UInt16(1024 + i))
                engine.process(frame: frame, wireLength: frame.count, timestamp: t)
                t += 1
            }
            let frame = SampleTraffic.syn(from: 0x0A00_0000 + UInt32(i), port: 40000)
            engine.process(frame: frame, wireLength: frame.count, timestamp: t)
            t += 1
        }
        let d = engine.detector
        #expect(d.assets.count == 100)
        #expect(d.assets[IPAddress(ipv4: talker)] != nil, "the host that kept talking was forgotten")
        #expect(d.counters.assetsEvicted == 2_000 + 1 - 100)
        #expect(d.counters.assetsRefused == 0)
    }
}
