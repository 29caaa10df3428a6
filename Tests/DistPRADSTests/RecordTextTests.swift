import Testing

import DistPRADS

/// The byte writer asset records' text is built with: it must write what `String` would.
@Suite struct RecordTextTests {
    @Test func numbersAreWrittenAsStringWritesThem() {
        let out = RecordText(capacity: 16)
        for n in [0, 7, 9, 10, 99, 100, 360_000, 65_535, -1, -10, Int.max, Int.min] {
            out.reset()
            out.put(n)
            #expect(out.string == String(n))
        }
    }

    @Test func piecesGrowTheBufferPastItsCapacity() {
        let out = RecordText(capacity: 16)
        var expected = ""
        for i in 0..<50 {
            out.put("S")
            out.put(UInt8(ascii: ":"))
            out.put("Linux:2.6 (\(i))")
            out.put(i * 1_234)
            expected += "S:Linux:2.6 (\(i))\(i * 1_234)"
        }
        #expect(out.string == expected)
        #expect(out.count == expected.utf8.count)
    }

    @Test func quirksAreWrittenInPRADSOrder() {
        #expect(TCPQuirks().text == ".")
        #expect(TCPQuirks([.broken, .zeroID, .rstAck, .data]).text == "KZD!")
    }
}
