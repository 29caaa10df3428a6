import DistPRADS
import DistPacket
import Testing

import DistState

/// The codec's checksum and strings: what the CPU computes is CRC-32C as the table computes it,
/// and a string comes back as it went, or is refused.
@Suite struct ByteCodingTests {
    @Test func theChecksumIsCRC32CWithOrWithoutTheInstruction() {
        let check = Array("123456789".utf8)
        check.withUnsafeBytes { b in
            #expect(CRC32C.checksum(b) == 0xE306_9283)
            #expect(CRC32C.bytewise(b) == 0xE306_9283)
        }
        var generator = SystemRandomNumberGenerator()
        for length in 0..<70 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            bytes.withUnsafeBytes { b in #expect(CRC32C.checksum(b) == CRC32C.bytewise(b), "\(length) bytes") }
        }
    }

    func vendorRoundTrip(_ vendor: String) throws -> String? {
        let asset = Detector.Asset(vlan: 0, firstSeen: 1, lastSeen: 2, mac: [0, 1, 2, 3, 4, 5], vendor: vendor)
        let chunk = StateChunk.multiFlow(AssetState(address: IPAddress(ipv4: 0xC612_0001), asset: asset))
        guard case .multiFlow(let back) = try StateCodec.decode(StateCodec.encode(chunk)) else { return nil }
        return back.asset.vendor
    }

    @Test func stringsComeBackAsTheyWent() throws {
        for text in ["Vmware", "Ünïcödé ✓ 😀", String(repeating: "é", count: 1000)] {
            #expect(try vendorRoundTrip(text) == text)
        }
    }

    /// A string longer than a field holds (65,535 bytes) is cut before the first character that
    /// would not fit whole: what arrives is UTF-8 still, not a refused state.
    @Test func aLongStringIsCutAtACharacter() throws {
        let text = String(repeating: "a", count: 65_534) + "é" + "tail"
        let back = try #require(try vendorRoundTrip(text))
        #expect(back == String(repeating: "a", count: 65_534))
    }

    func readString(_ field: [UInt8]) throws -> String {
        try field.withUnsafeBytes { b in
            var reader = ByteReader(bytes: b)
            return try reader.string()
        }
    }

    /// Bytes that are not UTF-8 in a string field (a forged or corrupted state whose checksum
    /// was made to match) are refused, not repaired.
    @Test func aStringThatIsNotUTF8IsRefused() throws {
        for bad: [UInt8] in [[0xFF], [0xC3], [0xF0, 0x90, 0x80, 0x41], [0xED, 0xA0, 0x80], [0x61, 0xC0, 0xAF]] {
            #expect(throws: StateCodecError.malformed("string is not UTF-8")) {
                try readString([UInt8(bad.count), 0] + bad)
            }
        }
        #expect(try readString([2, 0, 0xC3, 0xA9]) == "é")
        #expect(throws: StateCodecError.self) { try readString([5, 0, 0x61]) }
    }
}
