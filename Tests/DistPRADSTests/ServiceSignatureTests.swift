import DistPRADS
import Foundation
import Testing

/// PRADS's service signature files and their matching, on Debian's own files.
@Suite struct ServiceSignatureTests {
    static let signatureDirectory = "/etc/prads"

    static func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

    // Debian's files hold this many signatures (web-application.sig ships commented out).
    @Test(arguments: [
        ("tcp-service.sig", 126), ("tcp-clients.sig", 11), ("udp-service.sig", 4), ("web-application.sig", 0),
    ])
    func debianSignatureFilesLoadWhole(file: String, minimum: Int) throws {
        let path = Self.signatureDirectory + "/" + file
        try #require(FileManager.default.fileExists(atPath: path), "Debian's prads package provides \(path)")
        let (signatures, errors) = try ServiceSignatureFile.load(path)
        #expect(errors.isEmpty, "\(errors)")
        #expect(signatures.count >= minimum)
        #expect(signatures.allSatisfy { $0.regex.jit }, "PCRE2's JIT compiles every signature")
    }

    @Test func malformedLinesAreReportedWithFileAndLineAndTheRestLoads() {
        let text = """
            # comment
            ssh,v/OpenSSH/$2/Protocol $1/,SSH-([.\\d]+)-OpenSSH[_-](\\S+)
            broken line without fields
            http,v/Apache///,Server: Apache(
            ,v/x///,abc
            ftp,x/y/,^220
            smtp,v/Postfix SMTP//$1/,^220 ([-\\w_.]+) ESMTP Postfix, more, commas

            """
        let (signatures, errors) = ServiceSignatureFile.parse(text, file: "test.sig")
        #expect(signatures.map(\.service) == ["ssh", "smtp"])
        #expect(signatures[1].regex.pattern == "^220 ([-\\w_.]+) ESMTP Postfix, more, commas")
        #expect(errors.map(\.line) == [3, 4, 5, 6])
        #expect(errors[0].description.hasPrefix("test.sig:3: "))
        #expect(errors[1].reason.contains("PCRE2"))
    }

    @Test func titlesTakeTheRegexGroupsAsPRADSWritesThem() throws {
        let (signatures, errors) = ServiceSignatureFile.parse(
            """
            ssh,v/OpenSSH/$2/Protocol $1/,SSH-([.\\d]+)-OpenSSH[_-](\\S+)
            http,v/$1///,Server: (nginx)
            smtp,v/Generic SMTP/$1/$2/,^220 (\\S+) ?(\\S+)?
            """, file: "t")
        try #require(errors.isEmpty && signatures.count == 3)
        let matcher = ServiceMatcher(signatures)
        let ssh = matcher.match(Self.bytes("SSH-2.0-OpenSSH_7.4p1 Debian\r\n"))
        #expect(ssh?.service == "ssh" && ssh?.info == "OpenSSH 7.4p1 (Protocol 2.0)")
        #expect(matcher.match(Self.bytes("HTTP/1.1 200 OK\r\nServer: nginx\r\n"))?.info == "nginx")
        // A group that did not take part leaves nothing behind.
        #expect(matcher.match(Self.bytes("220 mx.example"))?.info == "Generic SMTP mx.example ()")
        #expect(matcher.match(Self.bytes("nothing to see")) == nil)
    }

    @Test func theFirstMatchingSignatureWins() throws {
        let (signatures, _) = ServiceSignatureFile.parse(
            """
            a,v/first///,abc
            b,v/second///,ab
            """, file: "t")
        #expect(ServiceMatcher(signatures).match(Self.bytes("xxabcxx"))?.service == "a")
        #expect(ServiceMatcher(signatures).match(Self.bytes("xxabxx"))?.service == "b")
    }

    @Test func debianSignaturesRecogniseRealBanners() throws {
        let (signatures, _) = try ServiceSignatureFile.load(Self.signatureDirectory + "/tcp-service.sig")
        let matcher = ServiceMatcher(signatures)
        let ssh = matcher.match(Self.bytes("SSH-2.0-OpenSSH_7.4p1 Debian-10+deb9u7\r\n"))
        #expect(ssh?.service == "ssh")
        #expect(ssh?.info == "OpenSSH 7.4p1 (Protocol 2.0)")
        let http = matcher.match(Self.bytes("HTTP/1.1 200 OK\r\nServer: Apache\r\nContent-Length: 0\r\n\r\n"))
        #expect(http?.service == "http")
    }

    @Test func aPathologicalPayloadStopsAtTheMatchLimit() throws {
        let (signatures, errors) = ServiceSignatureFile.parse("evil,v/evil///,^(a+)+$", file: "t")
        try #require(errors.isEmpty)
        let payload = [UInt8](repeating: UInt8(ascii: "a"), count: 5000) + [UInt8(ascii: "b")]
        // PCRE2 backtracks on it until the limit stops it.
        let walk = ServiceMatcher(signatures, matchLimit: 10_000, prefilter: false)
        let start = Date()
        #expect(walk.match(payload) == nil)
        #expect(Date().timeIntervalSince(start) < 1)
        #expect(walk.limitHits == 1)
        // The prefilter (an automaton: it does not backtrack) rules the signature out first.
        let filtered = ServiceMatcher(signatures, matchLimit: 10_000)
        #expect(filtered.match(payload) == nil)
        #expect(filtered.limitHits == 0)
    }

    @Test func wellKnownPortsAreNamedLikePRADS() {
        #expect(KnownPorts.name(proto: 6, port: 443) == "@https")
        #expect(KnownPorts.name(proto: 17, port: 53) == "@domain")
        #expect(KnownPorts.name(proto: 6, port: 53) == nil)
        #expect(KnownPorts.name(proto: 17, port: 1194) == "@openvpn")
        // The ends of the sorted table, and just past them.
        #expect(KnownPorts.name(proto: 6, port: 20) == "@ftp-data")
        #expect(KnownPorts.name(proto: 6, port: 6667) == "@irc")
        #expect(KnownPorts.name(proto: 17, port: 2049) == "@nfs")
        for (proto, port) in [(6, 19), (6, 6668), (0, 0), (17, 2050), (255, 65535)] as [(UInt8, UInt16)] {
            #expect(KnownPorts.name(proto: proto, port: port) == nil)
        }
    }

    @Test func everyPortIsNamedAsPRADSsTableSays() {
        // A linear scan of PRADS's list against the lookup, for every port of TCP and UDP.
        let list = KnownPorts.table
        var named = 0
        for proto: UInt8 in [6, 17] {
            for port in 0...UInt16.max {
                let expected = list.first { $0.proto == proto && $0.port == port }?.name
                if KnownPorts.name(proto: proto, port: port) != expected {
                    Issue.record("\(proto)/\(port): \(String(describing: KnownPorts.name(proto: proto, port: port)))")
                }
                if expected != nil { named += 1 }
            }
        }
        #expect(named == list.count)
    }
}
