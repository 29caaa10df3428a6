import Foundation

/// One line of PRADS's `tcp-service.sig`, `tcp-clients.sig`, `udp-service.sig` or
/// `web-application.sig`: `service,v/application/version/info/,regex`. The regex may itself
/// contain commas; `$1`..`$9` in the title take the regex's groups.
public struct ServiceSignature: Sendable {
    public var service: String
    public var application: String
    public var version: String
    public var info: String
    public let regex: Regex
    /// Where it came from, for messages: "file:line".
    public var origin: String
}

/// A problem with one line of a signature file. The line is skipped; the rest still loads.
public struct SignatureFileError: Error, CustomStringConvertible, Sendable, Equatable {
    public var file: String
    public var line: Int
    public var reason: String
    public var description: String { "\(file):\(line): \(reason)" }
}

/// Reads service signature files.
public enum ServiceSignatureFile {
    /// Parses the text of a signature file. Blank lines and `#` comments are skipped; a malformed
    /// line or a regex PCRE2 rejects becomes an error naming the file and line.
    public static func parse(_ text: String, file: String) -> (
        signatures: [ServiceSignature], errors: [SignatureFileError]
    ) {
        var signatures: [ServiceSignature] = []
        var errors: [SignatureFileError] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let number = index + 1
            var line = Substring(rawLine)
            if line.hasSuffix("\r") { line = line.dropLast() }
            if line.isEmpty || line.first == "#" { continue }
            if line.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
            func fail(_ reason: String) { errors.append(SignatureFileError(file: file, line: number, reason: reason)) }
            // service , title , regex (the regex keeps any further commas)
            let fields = line.split(separator: ",", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else {
                fail("expected 'service,v/application/version/info/,regex'")
                continue
            }
            let service = String(fields[0])
            let title = fields[1].split(separator: "/", omittingEmptySubsequences: false)
            guard !service.isEmpty else {
                fail("empty service name")
                continue
            }
            guard title.count >= 4, title[0] == "v" else {
                fail("title '\(fields[1])' is not 'v/application/version/info/'")
                continue
            }
            let pattern = String(fields[2])
            guard !pattern.isEmpty else {
                fail("empty regular expression")
                continue
            }
            do {
                let regex = try Regex(pattern)
                signatures.append(
                    ServiceSignature(
                        service: service, application: String(title[1]),
                        version: String(title[2]), info: String(title[3]),
                        regex: regex, origin: "\(file):\(number)"))
            } catch {
                fail("regular expression rejected by PCRE2: \(error)")
            }
        }
        return (signatures, errors)
    }

    /// Reads and parses a file.
    public static func load(_ path: String) throws -> (signatures: [ServiceSignature], errors: [SignatureFileError]) {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return parse(String(decoding: data, as: UTF8.self), file: path)
    }
}

/// Matches payloads against an ordered list of service signatures, as PRADS does: the first
/// signature whose regex matches wins, and its title becomes the asset's service-info. A
/// ``ServicePrefilter`` names the signatures that can match, and only those run.
public final class ServiceMatcher {
    public let signatures: [ServiceSignature]
    let matchers: [Regex.Matcher]
    /// The matchers' handles, walked per payload.
    let handles: [Regex.Handles]
    /// This matcher's scans of its list's prefilter (nil: every signature runs).
    package let scanner: ServicePrefilter.Scanner?
    /// Each signature's application text before its groups are put in (see ``template(_:)``).
    let templates: [[UInt8]]
    /// When every signature of the list is a plain string (``LiteralPattern``), those strings:
    /// found directly, without a prefilter (none is compiled) or PCRE2.
    package let literals: [LiteralPattern]?

    /// One matcher per worker: it owns the PCRE2 match state and the prefilter's scratch space.
    /// `prefilter: false` walks every signature (the reference the prefilter is tested against).
    public init(_ signatures: [ServiceSignature], matchLimit: UInt32 = Regex.defaultMatchLimit, prefilter: Bool = true)
    {
        self.signatures = signatures
        matchers = signatures.map { Regex.Matcher($0.regex, matchLimit: matchLimit) }
        handles = matchers.map(\.handles)
        templates = signatures.map(Self.template)
        let literals = signatures.compactMap { LiteralPattern($0.regex.pattern) }
        self.literals = prefilter && !signatures.isEmpty && literals.count == signatures.count ? literals : nil
        scanner =
            prefilter && self.literals == nil
            ? ServicePrefilter.shared(for: signatures.map(\.regex.pattern)).flatMap(ServicePrefilter.Scanner.init) : nil
    }

    /// Whether a prefilter chooses the signatures to run, or they are plain strings found
    /// without one.
    public var prefiltered: Bool { scanner != nil || literals != nil }

    /// Matches that gave up at the match limit (pathological payloads), over all signatures.
    public private(set) var limitHits = 0

    /// The first signature matching `payload`, and its service-info text.
    public func match(_ payload: UnsafeRawBufferPointer) -> (service: String, info: String)? {
        if let literals {
            for i in literals.indices {
                guard let found = literals[i].firstMatch(in: payload) else { continue }
                // A literal's only group is the whole match.
                let info = ServiceMatcher.expand(templates[i], subject: payload) { $0 == 0 ? found : nil }
                return (signatures[i].service, info)
            }
            return nil
        }
        if let scanner, scanner.scan(payload) {
            let words = scanner.candidates
            for w in words.indices {
                var bits = words[w]
                while bits != 0 {
                    let i = w << 6 | bits.trailingZeroBitCount
                    bits &= bits &- 1
                    if let found = attempt(i, payload) { return found }
                }
            }
            return nil
        }
        for i in handles.indices {
            if let found = attempt(i, payload) { return found }
        }
        return nil
    }

    /// Signature `i` against `payload`: its service and text if it matches.
    @inline(__always)
    private func attempt(_ i: Int, _ payload: UnsafeRawBufferPointer) -> (service: String, info: String)? {
        // (Plain handles: walking the matchers retained and released each of them.)
        let rc = handles[i].match(payload)
        if rc >= 0 {
            let matcher = matchers[i]
            let info = ServiceMatcher.expand(templates[i], subject: payload) { matcher.groupRange($0, in: payload) }
            return (signatures[i].service, info)
        }
        if Regex.Handles.gaveUp(rc) { limitHits += 1 }
        return nil
    }

    public func match(_ payload: [UInt8]) -> (service: String, info: String)? {
        payload.withUnsafeBytes { match($0) }
    }

    /// The text ``expand(_:subject:group:)`` fills in: "application[ version][ (info)]", each
    /// part cut to PRADS's lengths (100, 25, 100 bytes). Made once per signature.
    static func template(_ signature: ServiceSignature) -> [UInt8] {
        var template = Array(signature.application.utf8.prefix(100))
        if !signature.version.isEmpty {
            template += Array(" ".utf8) + Array(signature.version.utf8.prefix(25))
        }
        if !signature.info.isEmpty {
            template += Array(" (".utf8) + Array(signature.info.utf8.prefix(100)) + Array(")".utf8)
        }
        return template
    }

    /// PRADS's application text: the signature's template with `$N` replaced by group N of the
    /// match (where `group` says it lies in `subject`; an unset group by nothing), cut to 511 bytes.
    static func expand(
        _ template: [UInt8], subject: UnsafeRawBufferPointer, group: (Int) -> Range<Int>?
    ) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(template.count + 64)
        var i = 0
        let limit = 511
        while i < template.count && out.count < limit {
            if template[i] == UInt8(ascii: "$") {
                i += 1
                var n = 0
                var digits = 0
                while i + digits < template.count, let d = digit(template[i + digits]) {
                    n = n * 10 + d
                    digits += 1
                    if n > 99 { break }
                }
                // PRADS skips exactly one character after '$' (its number), whatever it was.
                i += 1
                for byte in subject[group(n) ?? 0..<0] where out.count < limit {
                    if byte == 0 { break }
                    out.append(byte)
                }
            } else {
                out.append(template[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func digit(_ byte: UInt8) -> Int? {
        byte >= 0x30 && byte <= 0x39 ? Int(byte - 0x30) : nil
    }
}

/// PRADS's built-in port names, used when no signature matches a flow's payload
/// ("unknown:@https"). Protocol 6 is TCP, 17 UDP.
public enum KnownPorts {
    package static let table: [(proto: UInt8, port: UInt16, name: String)] = [
        (6, 20, "@ftp-data"), (6, 21, "@ftp"), (6, 22, "@ssh"), (6, 25, "@smtp"), (17, 53, "@domain"),
        (6, 80, "@www"), (6, 110, "@pop3"), (6, 111, "@sunrpc"), (17, 111, "@sunrpc"), (6, 113, "@auth"),
        (6, 115, "@sftp"), (6, 119, "@nntp"), (17, 123, "@ntp"), (6, 143, "@imap2"), (6, 161, "@snmp"),
        (17, 161, "@snmp"), (6, 162, "@snmp-trap"), (17, 162, "@snmp-trap"), (6, 389, "@ldap"),
        (6, 443, "@https"), (6, 445, "@microsoft-ds"), (17, 514, "@syslog"), (6, 554, "@rtsp"),
        (17, 554, "@rtsp"), (6, 631, "@ipp"), (6, 990, "@ftps"), (6, 992, "@telnets"), (6, 993, "@imaps"),
        (6, 995, "@pop3s"), (17, 1194, "@openvpn"), (6, 2049, "@nfs"), (17, 2049, "@nfs"),
        (6, 3306, "@mysql"), (6, 6667, "@irc"),
    ]

    /// The table's keys (protocol << 16 | port), sorted, and their names: a binary search of 34
    /// keys costs less than hashing one (every UDP payload no signature names is looked up).
    static let sorted: (keys: [UInt32], names: [String]) = {
        let entries = table.map { (UInt32($0.proto) << 16 | UInt32($0.port), $0.name) }.sorted { $0.0 < $1.0 }
        return (entries.map(\.0), entries.map(\.1))
    }()

    /// The highest port the table names. Most ports looked up are above it (a client's own,
    /// which PRADS tries first), and go without a search.
    static let highestPort: UInt16 = table.map(\.port).max() ?? 0

    /// The name of a well-known port for a protocol, if PRADS knows one.
    public static func name(proto: UInt8, port: UInt16) -> String? {
        guard port <= highestPort else { return nil }
        let key = UInt32(proto) << 16 | UInt32(port)
        let keys = sorted.keys
        var low = 0
        var high = keys.count
        while low < high {
            let mid = (low + high) >> 1
            if keys[mid] < key { low = mid + 1 } else { high = mid }
        }
        return low < keys.count && keys[low] == key ? sorted.names[low] : nil
    }
}
