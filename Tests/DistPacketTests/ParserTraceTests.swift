import DistPacket
import Foundation
import Testing

/// The parser on every frame of the project's trace, checked against tshark, and on damaged copies.
@Suite struct ParserTraceTests {
    /// tshark's view of one frame, reduced to the parser's categories.
    struct Expected: Equatable, CustomStringConvertible {
        var l3: L3Kind
        var l4: L4Kind
        var description: String { "\(l3)/\(l4)" }
    }

    static func tshark() -> String? {
        for dir in ["/usr/bin", "/usr/local/bin", "/bin"]
        where FileManager.default.isExecutableFile(atPath: dir + "/tshark") {
            return dir + "/tshark"
        }
        return nil
    }

    /// Runs tshark on the trace (reassembly off: each frame on its own, as the data plane sees it).
    static func tsharkClassification(_ path: String) throws -> [Expected] {
        guard let tshark = tshark() else {
            throw ParseFailure(
                "tshark is not installed (apt-get install -y tshark): the parser cannot be checked against it")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tshark)
        process.arguments = [
            "-r", path, "-n", "-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE",
            "-T", "fields", "-E", "separator=|", "-e", "frame.protocols", "-e", "ip.frag_offset",
            "-e", "ipv6.fraghdr.offset",
        ]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        return lines.filter { !$0.isEmpty }.map { line in
            let fields = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            return classify(
                protocols: fields[0],
                ipFragmentOffset: fields.count > 1 ? fields[1] : "",
                ipv6FragmentOffset: fields.count > 2 ? fields[2] : "")
        }
    }

    /// Maps tshark's `frame.protocols` of a frame (outermost headers first) to our categories.
    static func classify(protocols: String, ipFragmentOffset: String, ipv6FragmentOffset: String) -> Expected {
        var tokens = protocols.split(separator: ":").map(String.init)[...]
        if tokens.first == "eth" { tokens = tokens.dropFirst() }
        if tokens.first == "ethertype" { tokens = tokens.dropFirst() }
        while let t = tokens.first, t == "vlan" || t == "ieee8021ad" {
            tokens = tokens.dropFirst()
            if tokens.first == "ethertype" { tokens = tokens.dropFirst() }
        }
        func first(_ list: String) -> Int { Int(list.split(separator: ",").first ?? "") ?? 0 }
        switch tokens.first {
        case "arp": return Expected(l3: .arp, l4: .none)
        case "ip":
            if first(ipFragmentOffset) != 0 { return Expected(l3: .ipv4, l4: .fragment) }
            return Expected(l3: .ipv4, l4: transport(tokens.dropFirst(), v6: false))
        case "ipv6":
            var rest = tokens.dropFirst()
            while let t = rest.first, t.hasPrefix("ipv6.") { rest = rest.dropFirst() }
            if first(ipv6FragmentOffset) != 0 { return Expected(l3: .ipv6, l4: .fragment) }
            return Expected(l3: .ipv6, l4: transport(rest, v6: true))
        default:
            return Expected(l3: .other, l4: .none)
        }
    }

    static func transport(_ tokens: ArraySlice<String>, v6: Bool) -> L4Kind {
        switch tokens.first {
        case "tcp": .tcp
        case "udp": .udp
        case "icmp": v6 ? .other : .icmp
        case "icmpv6": v6 ? .icmpv6 : .other
        case nil: .none
        default: .other
        }
    }

    struct ParseFailure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    @Test func parsesEveryFrameOfTheTraceLikeTshark() throws {
        let frames = Fixtures.mixAFrames
        #expect(frames.count == 54_981)
        let expected = try Self.tsharkClassification(Fixtures.mixA)
        try #require(expected.count == frames.count, "tshark saw \(expected.count) frames")

        var ours: [String: Int] = [:]
        var theirs: [String: Int] = [:]
        var mismatches: [String] = []
        var tunnelled = 0
        for (i, frame) in frames.enumerated() {
            let info = PacketParser.parse(frame.bytes)
            // tshark classifies a tunnelled frame by its outer header: IP with another protocol.
            let got =
                info.tunnel == .none
                ? Expected(l3: info.l3, l4: info.l4)
                : Expected(l3: info.etherType == 0x86DD ? .ipv6 : .ipv4, l4: .other)
            if info.tunnel != .none { tunnelled += 1 }
            ours[got.description, default: 0] += 1
            theirs[expected[i].description, default: 0] += 1
            if got != expected[i] && mismatches.count < 20 {
                mismatches.append("frame \(i + 1): ours \(got) issue \(info.issue.name), tshark \(expected[i])")
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.joined(separator: "\n"))")
        #expect(ours == theirs)
        #expect(tunnelled == 17, "mix-a's IPv4 and IPv6 packets inside IPv4 and IPv6")
    }

    @Test func everyTruncationOfEveryFrameIsAccountedFor() {
        // Each frame cut at several lengths (and at every length for the first 300 frames):
        // no trap, no read past the end (the buffer is exactly the cut length), one outcome each.
        var parsed = 0
        var byIssue = [Int](repeating: 0, count: ParseIssue.allCases.count)
        for (i, frame) in Fixtures.mixAFrames.enumerated() {
            let cuts: [Int] =
                i < 300
                ? Array(0...min(frame.bytes.count, 200))
                : [0, 13, 14, 17, 33, 34, 37, 53, 54, frame.bytes.count / 2, frame.bytes.count - 1]
            for cut in cuts where cut >= 0 && cut <= frame.bytes.count {
                let info = PacketParser.parse(Array(frame.bytes[0..<cut]))
                byIssue[Int(info.issue.rawValue)] += 1
                parsed += 1
                #expect(Int(info.payloadOffset) <= max(cut, 0) || info.payloadLength == 0)
            }
        }
        #expect(byIssue.reduce(0, +) == parsed)
        #expect(byIssue[Int(ParseIssue.truncatedEthernet.rawValue)] > 0)
        #expect(byIssue[Int(ParseIssue.truncatedIPv4.rawValue)] > 0)
        #expect(byIssue[Int(ParseIssue.truncatedTCP.rawValue)] > 0)
    }

    @Test func bitFlippedFramesNeverTrapAndStayInBounds() {
        // Deterministic pseudo-random flips in the first 80 bytes (where the headers are).
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return state
        }
        var outcomes = 0
        for frame in Fixtures.mixAFrames {
            var bytes = frame.bytes
            for _ in 0..<3 where !bytes.isEmpty {
                let position = Int(next() % UInt64(min(bytes.count, 80)))
                bytes[position] ^= UInt8(truncatingIfNeeded: 1 << (next() % 8))
            }
            let info = PacketParser.parse(bytes)
            #expect(Int(info.payloadOffset) + Int(info.payloadLength) <= bytes.count)
            outcomes += 1
        }
        #expect(outcomes == Fixtures.mixAFrames.count)
    }
}
