import DistFlow
import DistPacket
import Foundation
import Testing

/// The fast path makes each packet's probe from its parse where it lies; it must be the probe
/// made from a copy of the parse, for every kind of flow.
@Suite struct FlowProbeTests {
    static let frames: [PcapFile.Frame] = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let data = (try? Data(contentsOf: root.appendingPathComponent("traces/mix-a.pcap"))) ?? Data()
        return (try? PcapFile(bytes: [UInt8](data)).frames) ?? []
    }()

    @Test func theProbeOfAParseInPlaceIsTheProbeOfItsCopy() {
        var compared = 0
        var tunnelled = 0
        var fromHi = 0
        let info = UnsafeMutablePointer<PacketInfo>.allocate(capacity: 1)
        defer { info.deallocate() }
        for frame in Self.frames {
            frame.bytes.withUnsafeBytes { raw in
                info.initialize(to: PacketInfo())
                PacketParser.parse(raw.baseAddress!, length: raw.count, into: &info.pointee)
                guard info.pointee.hasFlow else { return }
                let copied = FlowProbe(info.pointee, frame: raw.baseAddress!, seed: 0x5EED)
                let inPlace = FlowProbe(parse: info, frame: raw.baseAddress!, seed: 0x5EED)
                #expect(inPlace.key == copied.key && inPlace.hash == copied.hash && inPlace.fromLo == copied.fromLo)
                compared += 1
                if info.pointee.tunnel != .none { tunnelled += 1 }
                if !inPlace.fromLo { fromHi += 1 }
            }
        }
        #expect(compared > 50_000 && tunnelled > 0 && fromHi > 0)
    }
}
