import DistPRADS
import DistPacket
import Testing

/// PRADS's decoding of a tunnel's inner packet: it inspects the inner packet, and counts its
/// payload from the whole frame less the inner headers alone, so an inner client's empty ACK
/// looks like 34 bytes of payload that no signature matches (Debian's prads then logs the
/// client's service as unknown, by port).
@Suite struct TunnelDecodingTests {
    static func frame(_ proto: UInt8, inner: [UInt8]) -> [UInt8] {
        let length = 20 + inner.count
        return [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00]
            + [0x45, 0, UInt8(length >> 8), UInt8(length & 0xFF), 0, 0, 0x40, 0, 64, proto, 0, 0]
            + [198, 18, 0, 1, 198, 18, 0, 2] + inner
    }

    static func tcp(_ src: UInt8, _ dst: UInt8, sport: UInt16, dport: UInt16, flags: UInt8) -> [UInt8] {
        let t: [UInt8] =
            [UInt8(sport >> 8), UInt8(sport & 0xFF), UInt8(dport >> 8), UInt8(dport & 0xFF)]
            + [0, 0, 0, 1, 0, 0, 0, 1, 0x50, flags, 0xFF, 0xFF, 0, 0, 0, 0]
        return [0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, src, 10, 0, 0, dst] + t
    }

    @Test func anInnerEmptyPacketLooksLikePayloadAsToPRADS() throws {
        let signatures = try PRADSSignatures.load(directory: "/etc/prads")
        for (proto, expected) in [(UInt8(94), true), (4, false)] {
            let engine = PRADSEngine(signatures: signatures)
            var records: [String] = []
            engine.onRecord = { records.append("\($0.asset),\($0.port),\($0.kind),\($0.info)") }
            for inner in [
                Self.tcp(1, 2, sport: 40000, dport: 21, flags: 0x02),
                Self.tcp(2, 1, sport: 21, dport: 40000, flags: 0x12),
                Self.tcp(1, 2, sport: 40000, dport: 21, flags: 0x10),
            ] {
                engine.process(frame: Self.frame(proto, inner: inner), timestamp: 1)
            }
            // Inside protocol 4 PRADS reads nothing; inside 94 the inner hosts.
            #expect(records.contains("10.0.0.1,21,CLIENT,unknown:@ftp") == expected, "\(proto): \(records)")
            #expect(records.allSatisfy { $0.hasPrefix("10.0.0.") } && records.isEmpty != expected)
        }
    }
}
