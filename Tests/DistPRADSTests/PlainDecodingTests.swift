import DistPRADS
import DistPacket
import Foundation
import Testing

/// A plain packet (untagged IPv4 with a 20-byte header, whole TCP or UDP) is given to the
/// detection from the fast path's parse: it must see exactly what PRADS's own decoding of the
/// frame gives it.
@Suite struct PlainDecodingTests {
    static let frames: [PcapFile.Frame] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("traces/mix-a.pcap")
        return (try? PcapFile(bytes: [UInt8](Data(contentsOf: url))).frames) ?? []
    }()

    static func same(_ a: DetectionPacket, _ b: DetectionPacket) -> Bool {
        a.frame.baseAddress == b.frame.baseAddress && a.frame.count == b.frame.count && a.end == b.end
            && a.timestamp == b.timestamp && a.vlan == b.vlan && a.l3 == b.l3 && a.v6 == b.v6 && a.source == b.source
            && a.destination == b.destination && a.ttl == b.ttl && a.proto == b.proto && a.l4 == b.l4
            && a.sourcePort == b.sourcePort && a.destinationPort == b.destinationPort && a.payload == b.payload
            && a.payloadLength == b.payloadLength && a.ipPayloadBytes == b.ipPayloadBytes
    }

    /// Calls `body` with each frame of mix-a, its number and its parse.
    static func eachParse(_ body: (Int, PcapFile.Frame, UnsafeRawBufferPointer, UnsafePointer<PacketInfo>) -> Void) {
        let info = UnsafeMutablePointer<PacketInfo>.allocate(capacity: 1)
        defer { info.deallocate() }
        for (n, frame) in frames.enumerated() {
            frame.bytes.withUnsafeBytes { raw in
                info.initialize(to: PacketInfo())
                PacketParser.parse(raw.baseAddress!, length: raw.count, into: &info.pointee)
                body(n, frame, raw, info)
            }
        }
    }

    @Test func aPlainPacketFromItsParseIsWhatPRADSDecodes() {
        var plain = 0
        Self.eachParse { n, frame, raw, info in
            guard info.pointee.isPlain else { return }
            plain += 1
            // Wire lengths above, at and below PRADS's snap length, and the captured length.
            let wire = [frame.bytes.count, Int(frame.originalLength), 1604, 3000][n % 4]
            var walked = DetectionPacket(frame: raw, end: 0, timestamp: 0, vlan: 0, l3: 0)
            #expect(PRADSDecoder.decode(raw, wireLength: wire, timestamp: 7, into: &walked))
            var parsed = DetectionPacket(frame: raw, end: 0, timestamp: 0, vlan: 0, l3: 0)
            PRADSDecoder.decode(raw, plain: info, wireLength: wire, timestamp: 7, into: &parsed)
            #expect(Self.same(walked, parsed), "frame \(n)")
        }
        #expect(plain > Self.frames.count * 8 / 10)
    }

    @Test func tunnelsTagsFragmentsAndCutHeadersAreNotPlain() {
        var kinds = Set<String>()
        Self.eachParse { _, _, _, info in
            let p = info.pointee
            guard
                p.tunnel != .none || p.vlanCount > 0 || p.fragment != .none || p.issue != .none
                    || p.l3 != .ipv4 || p.l4Offset != 34
            else { return }
            #expect(!info.pointee.isPlain)
            if p.tunnel != .none { kinds.insert("tunnel") }
            if p.l3 == .ipv6 { kinds.insert("ipv6") }
        }
        #expect(kinds.isSuperset(of: ["tunnel", "ipv6"]))
    }
}
