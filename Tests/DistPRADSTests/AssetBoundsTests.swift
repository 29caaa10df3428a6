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
        let (bounded, records) = try Self.run(maxAssets: 5, maxEntries: 2)
        #expect(bounded.assets.count == 5)
        #expect(bounded.counters.assetsRefused > 0 && bounded.counters.entriesRefused > 0)
        #expect(bounded.assets.values.allSatisfy { $0.os.count <= 2 && $0.services.count <= 2 })
        let known = Set(bounded.assets.keys.map(\.text))
        #expect(records.allSatisfy { known.contains($0.asset) }, "nothing is recorded for a host not kept")
    }
}
