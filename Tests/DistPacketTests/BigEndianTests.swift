import DistPacket
import Testing

/// The byte-order helper and the Internet checksum every wire module uses.
@Suite struct BigEndianTests {
    @Test func valuesGoOutMostSignificantFirstAndComeBack() {
        #expect(BigEndian.bytes(UInt16(0x1234)) == [0x12, 0x34])
        #expect(BigEndian.bytes(UInt32(0xDEAD_BEEF)) == [0xDE, 0xAD, 0xBE, 0xEF])
        #expect(BigEndian.bytes(UInt64(0x0102_0304_0506_0708)) == [1, 2, 3, 4, 5, 6, 7, 8])
        #expect(BigEndian.bytes(UInt64(0xAABB_CCDD), count: 2) == [0xCC, 0xDD])
        var out: [UInt8] = [9]
        BigEndian.append(0x0A0B_0C0D, count: 4, to: &out)
        #expect(out == [9, 0x0A, 0x0B, 0x0C, 0x0D])
        #expect(BigEndian.value(out[1...]) == 0x0A0B_0C0D)
        out.withUnsafeBytes { raw in
            #expect(BigEndian.uint16(raw, at: 1) == 0x0A0B)
            #expect(BigEndian.uint32(raw, at: 1) == 0x0A0B_0C0D)
        }
    }

    /// RFC 1071's own example, and an IPv4 header whose checksum field is right sums to 0.
    @Test func theInternetChecksumIsRFC1071s() {
        #expect(InternetChecksum.of([0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7]) == ~UInt16(0xDDF2))
        var header: [UInt8] = [
            0x45, 0, 0, 0x73, 0, 0, 0x40, 0, 0x40, 0x11, 0, 0, 0xC0, 0xA8, 0, 1, 0xC0, 0xA8, 0, 0xC7,
        ]
        let sum = InternetChecksum.of(header)
        #expect(sum == 0xB861)
        header[10] = UInt8(sum >> 8)
        header[11] = UInt8(sum & 0xFF)
        #expect(InternetChecksum.of(header) == 0)
        #expect(InternetChecksum.of([0xFF]) == ~UInt16(0xFF00), "an odd byte is padded with zero")
    }
}
