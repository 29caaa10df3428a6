import DistPRADS
import DistPacket
import Foundation
import Testing

/// The prefilter chooses which signatures run: a matcher with it finds, for every payload, the
/// signature (and text) the whole walk in the list's order finds.
@Suite struct ServicePrefilterTests {
    static func lists() throws -> [(String, [ServiceSignature])] {
        try ["tcp-service.sig", "tcp-clients.sig", "udp-service.sig"].map { file in
            let (signatures, errors) = try ServiceSignatureFile.load("/etc/prads/" + file)
            #expect(errors.isEmpty)
            return (file, signatures)
        }
    }

    /// Subjects from mix-a: each frame from the offsets where TCP and UDP payloads of its
    /// frames start (untagged, one and two VLAN tags), as PRADS would cut it (600 bytes) and whole.
    static func subjects() throws -> [[UInt8]] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("traces/mix-a.pcap")
        let file = try PcapFile(bytes: [UInt8](try Data(contentsOf: url)))
        var subjects: [[UInt8]] = []
        for frame in file.frames {
            for offset in [42, 46, 50, 54, 58, 62, 66, 74, 78] where frame.bytes.count > offset {
                let payload = Array(frame.bytes[offset...])
                subjects.append(Array(payload.prefix(600)))
                if payload.count > 600 { subjects.append(payload) }
            }
        }
        return subjects
    }

    @Test func everyMixAPayloadFindsWhatTheWholeWalkFinds() throws {
        let subjects = try Self.subjects()
        for (file, signatures) in try Self.lists() {
            let filtered = ServiceMatcher(signatures)
            let walk = ServiceMatcher(signatures, prefilter: false)
            #expect(filtered.prefiltered && !walk.prefiltered)
            var found = 0
            var differ: [String] = []
            for subject in subjects {
                let a = filtered.match(subject)
                let b = walk.match(subject)
                if a?.service != b?.service || a?.info != b?.info {
                    differ.append("\(a.map { "\($0)" } ?? "nil") vs \(b.map { "\($0)" } ?? "nil")")
                }
                if b != nil { found += 1 }
            }
            #expect(differ.isEmpty, "\(file): \(differ.prefix(5))")
            // (Not a vacuous agreement: the capture's servers and clients are found.)
            #expect(found > 100, "\(file): \(found) subjects matched")
        }
    }

    @Test func edgesOfAPayloadAgreeToo() throws {
        let subjects: [[UInt8]] = [
            [], [0], Array("SSH-2.0-OpenSSH_9.2p1\n".utf8), Array("SSH-2.0-OpenSSH_9.2p1\r\n".utf8),
            Array("220 mail.example.org ESMTP Postfix\n\n".utf8),
            Array("HTTP/1.1 200 OK\r\nServer: nginx/1.22\r\n\r\n".utf8),
            [0, 0] + Array("HTTP/1.0 200 OK\r\nServer: Apache/2.4\r\n".utf8), Array(repeating: 0x41, count: 5000),
        ]
        for (file, signatures) in try Self.lists() {
            let filtered = ServiceMatcher(signatures)
            let walk = ServiceMatcher(signatures, prefilter: false)
            for subject in subjects {
                let a = filtered.match(subject)
                let b = walk.match(subject)
                #expect(a?.service == b?.service && a?.info == b?.info, "\(file): \(subject.prefix(40))")
            }
        }
    }

    /// Hyperscan refuses `\R` (PCRE2 takes it): such a signature runs for every payload, in its
    /// place in the list, and one that Hyperscan widens (a back reference) is still checked.
    @Test func signaturesHyperscanRefusesRunForEveryPayloadInTheirPlace() throws {
        let (signatures, errors) = ServiceSignatureFile.parse(
            """
            first,v/newline///,x\\Ry
            double,v/pair///,(a)\\1
            later,v/later///,y
            """, file: "t")
        try #require(errors.isEmpty && signatures.count == 3)
        let matcher = ServiceMatcher(signatures)
        #expect(matcher.prefiltered)
        #expect(matcher.match(Array("x\r\ny".utf8))?.service == "first")
        #expect(matcher.match(Array("x y".utf8))?.service == "later")
        #expect(matcher.match(Array("ab y".utf8))?.service == "later")
        #expect(matcher.match(Array("aa y".utf8))?.service == "double")
        #expect(matcher.match(Array("nothing".utf8)) == nil)
    }
}
