import Testing

import DistPRADS

/// Signatures that are plain strings are found without PCRE2: exactly where PCRE2 finds them.
@Suite struct LiteralPatternTests {
    @Test func plainStringsAndTheirEscapesAreLiterals() {
        let dns = LiteralPattern(#"\x81\x80\x00\x01\x00"#)
        #expect(dns?.bytes == [0x81, 0x80, 0, 1, 0] && dns?.anchored == false)
        let syslog = LiteralPattern(#"^\x3c\x32\x37\x3e"#)
        #expect(syslog?.bytes == Array("<27>".utf8) && syslog?.anchored == true)
        #expect(LiteralPattern(#"220 mail\.example\-x ok"#)?.bytes == Array("220 mail.example-x ok".utf8))
        #expect(LiteralPattern(#"\x41F"#)?.bytes == Array("AF".utf8))  // \x takes two digits at most
    }

    @Test(arguments: [
        "a.b", "ab*", "a+", "a?", "(ab)", "[ab]", "a{2}", "a|b", "ab$", "a^b", #"\d"#, #"\n"#, #"\x4"#, #"\x{41}"#,
        "^", "", #"ab\"#, #"\Qab\E"#,
    ])
    func anythingElseIsLeftToPCRE2(pattern: String) {
        #expect(LiteralPattern(pattern) == nil)
    }

    /// Random payloads with the strings planted at random places (or not), against PCRE2.
    @Test func literalsAreFoundWherePCRE2FindsThem() throws {
        let patterns = [#"\x81\x80\x00\x01\x00"#, #"^\x3c\x32\x37\x3e"#, "SSH-", #"\x00\x00"#, "abab"]
        var random = SystemRandomNumberGenerator()
        for pattern in patterns {
            let literal = try #require(LiteralPattern(pattern))
            let matcher = Regex.Matcher(try Regex(pattern))
            for _ in 0..<2_000 {
                var subject = (0..<Int.random(in: 0...64, using: &random)).map { _ in
                    // Few distinct bytes, so that near misses and overlaps are common.
                    [0x00, 0x01, 0x80, 0x81, 0x3c, 0x32, 0x37, 0x3e, 0x61, 0x62][Int.random(in: 0..<10, using: &random)]
                        as UInt8
                }
                if Bool.random(using: &random) {
                    subject.insert(contentsOf: literal.bytes, at: Int.random(in: 0...subject.count, using: &random))
                }
                subject.withUnsafeBytes { raw in
                    let expected = matcher.matches(raw) ? matcher.groupRange(0, in: raw) : nil
                    #expect(literal.firstMatch(in: raw) == expected, "\(pattern) in \(subject)")
                }
            }
        }
    }

    /// Random patterns of literal bytes, escapes and metacharacters: whatever is taken for a
    /// plain string compiles under PCRE2 and matches exactly where PCRE2 does.
    @Test func whateverIsTakenForAStringIsOneToPCRE2() throws {
        let pieces = [
            "a", "b", "\\x61", "\\x6", "\\x{61}", "\\.", "\\-", "\\d", "\\n", "\\", ".", "^", "$", "*", "+", "?",
            "|", "(", ")", "[", "]", "{", "}", "{2}", "\\x00", " ", "-", "#", "\\Q", "\\E", "\\0", "\u{e9}",
        ]
        var random = SystemRandomNumberGenerator()
        var taken = 0
        for _ in 0..<5_000 {
            let pattern = (0..<Int.random(in: 1...6, using: &random)).map { _ in pieces.randomElement(using: &random)! }
                .joined()
            guard let literal = LiteralPattern(pattern) else { continue }
            taken += 1
            let matcher = Regex.Matcher(try Regex(pattern))
            for _ in 0..<20 {
                var subject = (0..<Int.random(in: 0...12, using: &random)).map { _ in
                    Array("ab.- #\0".utf8).randomElement(using: &random)!
                }
                if Bool.random(using: &random) {
                    subject.insert(contentsOf: literal.bytes, at: Int.random(in: 0...subject.count, using: &random))
                }
                subject.withUnsafeBytes { raw in
                    let expected = matcher.matches(raw) ? matcher.groupRange(0, in: raw) : nil
                    #expect(literal.firstMatch(in: raw) == expected, "\(pattern) in \(subject)")
                }
            }
        }
        #expect(taken > 200)
    }

    @Test func aListOfLiteralsNeedsNoPrefilterAndAMixedListKeepsIt() throws {
        let udp = try ServiceSignatureFile.load("/etc/prads/udp-service.sig").signatures
        #expect(ServiceMatcher(udp).literals != nil && ServiceMatcher(udp).scanner == nil)
        #expect(ServiceMatcher(udp, prefilter: false).literals == nil)
        let tcp = try ServiceSignatureFile.load("/etc/prads/tcp-service.sig").signatures
        #expect(ServiceMatcher(tcp).literals == nil)
    }
}
