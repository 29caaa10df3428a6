import Foundation

/// One line of a p0f-style signature file (`tcp-syn.fp` and friends):
/// `wss:ttl:df:size:options:quirks:genre:description`.
public struct TCPSignature: Sendable {
    public enum Modulo: Sendable { case none, constant, mss, mtu }
    public var windowSize: Int = 0
    public var windowModulo: Modulo = .none
    public var ttl: Int = 0
    public var dontFragment = false
    /// 0 stands for "*" (any size of at least 100 bytes).
    public var size: Int = 0
    public var options = TCPOptionList()
    public var zeroStamp = true
    public var mss: Int = 0
    public var mssModulo = false
    public var windowScale: Int = 0
    public var windowScaleModulo = false
    public var quirks: TCPQuirks = []
    public var os: String = ""
    public var description: String = ""
    public var noDetail = false
    public var generic = false
    public var userland = false
    public var line: Int = 0
}

/// The signatures of one fingerprint kind, looked up as PRADS does (p0f's hashed buckets: the
/// bucket, and the order within it, decide which signature wins).
public struct TCPFingerprintDatabase: Sendable {
    public static let bigPacket: UInt16 = 100
    static let hashSize = 241
    static let maxDistance = 512
    public private(set) var signatures: [TCPSignature] = []
    var buckets: [[Int]] = Array(repeating: [], count: hashSize)

    public init() {}

    static func bucket(size: Int, optionCount: Int, quirks: TCPQuirks, df: Bool) -> Int {
        Int(
            ((UInt32(truncatingIfNeeded: size) << 2) ^ (UInt32(optionCount) << 1) ^ (df ? 1 : 0) ^ quirks.rawValue)
                % UInt32(hashSize))
    }

    mutating func add(_ signature: TCPSignature) {
        buckets[
            Self.bucket(
                size: signature.size, optionCount: signature.options.count,
                quirks: signature.quirks, df: signature.dontFragment)
        ].append(signatures.count)
        signatures.append(signature)
    }

    /// Parses a signature file's text; a malformed line is reported (file:line) and skipped.
    public static func parse(_ text: String, file: String) -> (
        database: TCPFingerprintDatabase, errors: [SignatureFileError]
    ) {
        var db = TCPFingerprintDatabase()
        var errors: [SignatureFileError] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            do {
                var signature = try parseLine(line)
                signature.line = index + 1
                db.add(signature)
            } catch let error as LineError {
                errors.append(SignatureFileError(file: file, line: index + 1, reason: error.reason))
            } catch {
                errors.append(SignatureFileError(file: file, line: index + 1, reason: "\(error)"))
            }
        }
        return (db, errors)
    }

    public static func load(_ path: String) throws -> (database: TCPFingerprintDatabase, errors: [SignatureFileError]) {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return parse(String(decoding: data, as: UTF8.self), file: path)
    }

    struct LineError: Error { var reason: String }

    static func parseLine(_ line: String) throws -> TCPSignature {
        let fields = line.split(separator: ":", maxSplits: 7, omittingEmptySubsequences: false).map(String.init)
        guard fields.count == 8 else { throw LineError(reason: "expected 8 ':'-separated fields") }
        var s = TCPSignature()
        // Window size: *, %n, Sn, Tn or a number.
        let w = fields[0]
        guard let first = w.first else { throw LineError(reason: "empty window size") }
        switch first {
        case "*":
            s.windowSize = 1
            s.windowModulo = .constant
        case "S", "s":
            guard let n = Int(w.dropFirst()) else { throw LineError(reason: "bad Snn window size '\(w)'") }
            s.windowSize = n
            s.windowModulo = .mss
        case "T", "t":
            guard let n = Int(w.dropFirst()) else { throw LineError(reason: "bad Tnn window size '\(w)'") }
            s.windowSize = n
            s.windowModulo = .mtu
        case "%":
            guard let n = Int(w.dropFirst()), n != 0 else { throw LineError(reason: "bad %nn window size '\(w)'") }
            s.windowSize = n
            s.windowModulo = .constant
        default:
            guard let n = Int(w) else { throw LineError(reason: "bad window size '\(w)'") }
            s.windowSize = n
        }
        guard let ttl = Int(fields[1]), let df = Int(fields[2]), df == 0 || df == 1 else {
            throw LineError(reason: "bad TTL or DF field")
        }
        s.ttl = ttl
        s.dontFragment = df == 1
        if fields[3] == "*" {
            s.size = 0
        } else {
            guard let size = Int(fields[3]) else { throw LineError(reason: "bad size '\(fields[3])'") }
            s.size = size
        }
        try parseOptions(fields[4], into: &s)
        for q in fields[5].uppercased() {
            switch q {
            case "K": s.quirks.insert(.rstAck)
            case "D": s.quirks.insert(.data)
            case "Q": s.quirks.insert(.seqEqualsAck)
            case "0": s.quirks.insert(.seqZero)
            case "P": s.quirks.insert(.past)
            case "Z": s.quirks.insert(.zeroID)
            case "I": s.quirks.insert(.ipOptions)
            case "U": s.quirks.insert(.urgent)
            case "X": s.quirks.insert(.x2)
            case "A": s.quirks.insert(.ack)
            case "T": s.quirks.insert(.t2)
            case "F": s.quirks.insert(.flags)
            case "N": s.quirks.insert(.finAck)
            case "L": s.quirks.insert(.flowLabel)
            case "!": s.quirks.insert(.broken)
            case ".": break
            default: throw LineError(reason: "bad quirk '\(q)'")
            }
        }
        var genre = Substring(fields[6])
        while let c = genre.first, "-*@".contains(c) {
            switch c {
            case "-": s.userland = true
            case "*": s.noDetail = true
            default: s.generic = true
            }
            genre = genre.dropFirst()
        }
        guard !genre.isEmpty else { throw LineError(reason: "empty OS genre") }
        s.os = String(genre)
        s.description = fields[7]
        return s
    }

    static func parseOptions(_ text: String, into s: inout TCPSignature) throws {
        var chars = Array(text)
        if chars.first == "." { chars.removeFirst() }
        let options = OptionText(chars: chars)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            switch c.lowercased() {
            case "n": s.options.append(TCPOption.nop)
            case "e": s.options.append(TCPOption.eol)
            case "s": s.options.append(TCPOption.sackOK)
            case "t":
                s.options.append(TCPOption.timestamp)
                let next = options.at(i + 1)
                if next != "0" {
                    s.zeroStamp = false
                    if next.isNumber { throw LineError(reason: "bogus timestamp option") }
                }
            case "w":
                s.options.append(TCPOption.windowScale)
                (s.windowScale, s.windowScaleModulo) = try options.value(after: i, name: "W")
            case "m":
                s.options.append(TCPOption.mss)
                (s.mss, s.mssModulo) = try options.value(after: i, name: "M")
            case "?":
                guard let n = options.number(from: i + 1), n <= 255 else { throw LineError(reason: "bad ?nn option") }
                s.options.append(UInt8(n))
            default:
                throw LineError(reason: "unknown TCP option '\(c)'")
            }
            if s.options.count >= 16 { throw LineError(reason: "too many TCP options") }
            // Skip to the next option letter (or '?').
            repeat { i += 1 } while i < chars.count && !chars[i].isLetter && chars[i] != "?"
        }
    }

    /// A signature's option text, for the numbers and values after its letters.
    struct OptionText {
        let chars: [Character]

        func at(_ i: Int) -> Character { i < chars.count ? chars[i] : "\0" }

        func number(from start: Int) -> Int? {
            var j = start
            var n = 0
            var any = false
            while j < chars.count, let d = chars[j].wholeNumberValue, chars[j].isASCII {
                // (No option value needs more than 32 bits: a longer number is malformed, not a trap.)
                guard n <= Int(UInt32.max) / 10 else { return nil }
                n = n * 10 + d
                j += 1
                any = true
            }
            return any ? n : nil
        }

        /// The value after W or M: "*" (any: modulo 1), "%n" (a multiple of n) or a number.
        func value(after i: Int, name: String) throws -> (Int, Bool) {
            let next = at(i + 1)
            if next == "*" { return (1, true) }
            if next == "%" {
                guard let n = number(from: i + 2), n != 0 else { throw LineError(reason: "bad \(name)% value") }
                return (n, true)
            }
            guard let n = number(from: i + 1) else { throw LineError(reason: "bad \(name) value") }
            return (n, false)
        }
    }

    /// The signature matching a fingerprint, following p0f's order of checks. `fingerprint`
    /// may come back with DF set: like p0f, a packet without DF that matches nothing is
    /// tried again as if DF were set (and stays so when nothing matches then either).
    public func match(_ fingerprint: inout TCPFingerprint) -> Int? {
        for attempt in 0..<2 {
            if attempt == 1 {
                guard !fingerprint.dontFragment else { break }
                fingerprint.dontFragment = true
            }
            let bucket = Self.bucket(
                size: Int(fingerprint.size), optionCount: fingerprint.options.count,
                quirks: fingerprint.quirks, df: fingerprint.dontFragment)
            for index in buckets[bucket] where matches(signatures[index], fingerprint) {
                return index
            }
        }
        return nil
    }

    func matches(_ p: TCPSignature, _ e: TCPFingerprint) -> Bool {
        let size = Int(e.size)
        let wsize = Int(e.windowSize)
        let mss = Int(e.mss)
        let wsc = Int(e.windowScale)
        if size != 0 {
            if p.size != 0 {
                if size != p.size { return false }
            } else if e.size < Self.bigPacket {
                return false
            }
        }
        if e.options.count != p.options.count { return false }
        if p.zeroStamp != (e.timestamp == 0) { return false }
        if p.dontFragment != e.dontFragment { return false }
        if p.quirks != e.quirks { return false }
        if !p.mssModulo {
            if mss != p.mss { return false }
        } else if mss % p.mss != 0 {
            return false
        }
        if !p.windowScaleModulo {
            if wsc != p.windowScale { return false }
        } else if wsc % p.windowScale != 0 {
            return false
        }
        switch p.windowModulo {
        case .none:
            if wsize != p.windowSize { return false }
        case .constant:
            if wsize % p.windowSize != 0 { return false }
        case .mss:
            if mss != 0 && wsize % mss == 0 {
                if wsize / mss != p.windowSize { return false }
            } else if wsize % 1460 == 0 {
                if wsize / 1460 != p.windowSize { return false }
            } else {
                return false
            }
        case .mtu:
            if mss != 0 && wsize % (mss + 40) == 0 {
                if wsize / (mss + 40) != p.windowSize { return false }
            } else if wsize % 1500 == 0 {
                if wsize / 1500 != p.windowSize { return false }
            } else {
                return false
            }
        }
        if p.options != e.options { return false }
        if p.ttl < Int(e.ttl) { return false }
        if !p.noDetail && p.ttl - Int(e.ttl) > Self.maxDistance { return false }
        return true
    }
}
