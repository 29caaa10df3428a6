import Foundation

/// Quirks of a TCP/IP header, as p0f and PRADS name them (one letter each in a fingerprint).
public struct TCPQuirks: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let past = TCPQuirks(rawValue: 0x1)  // P: data past the end-of-options
    public static let zeroID = TCPQuirks(rawValue: 0x2)  // Z: IP id 0 (IPv6: flow label 0)
    public static let ipOptions = TCPQuirks(rawValue: 0x4)  // I
    public static let urgent = TCPQuirks(rawValue: 0x8)  // U: urgent pointer set
    public static let x2 = TCPQuirks(rawValue: 0x10)  // X: reserved bits set
    public static let ack = TCPQuirks(rawValue: 0x20)  // A: ack number non-zero
    public static let t2 = TCPQuirks(rawValue: 0x40)  // T: peer timestamp non-zero
    public static let flags = TCPQuirks(rawValue: 0x80)  // F: unusual flags
    public static let data = TCPQuirks(rawValue: 0x100)  // D: payload present
    public static let broken = TCPQuirks(rawValue: 0x200)  // !: options cut short
    public static let rstAck = TCPQuirks(rawValue: 0x400)  // K: RST with ACK
    public static let seqEqualsAck = TCPQuirks(rawValue: 0x800)  // Q
    public static let seqZero = TCPQuirks(rawValue: 0x1000)  // 0
    public static let finAck = TCPQuirks(rawValue: 0x2000)  // N: FIN with ACK
    public static let flowLabel = TCPQuirks(rawValue: 0x4000)  // L: IPv6 flow label set

    /// PRADS's letters, in the order it writes them.
    static let letters: [(TCPQuirks, Character)] = [
        (.rstAck, "K"), (.seqEqualsAck, "Q"), (.seqZero, "0"), (.past, "P"), (.zeroID, "Z"),
        (.ipOptions, "I"), (.urgent, "U"), (.x2, "X"), (.ack, "A"), (.t2, "T"), (.flags, "F"),
        (.data, "D"), (.finAck, "N"), (.flowLabel, "L"), (.broken, "!"),
    ]

    /// The quirks field of a fingerprint: "." when there are none.
    public var text: String {
        if isEmpty { return "." }
        return String(TCPQuirks.letters.compactMap { contains($0.0) ? $0.1 : nil })
    }
}

/// Which packets a fingerprint describes; each kind has its own signature file.
public enum FingerprintKind: String, Sendable, CaseIterable, Codable {
    case syn = "SYN"
    case synAck = "SYNACK"
    case rst = "RST"
    case fin = "FIN"
    case ack = "ACK"

    /// Position in `allCases`.
    var index: Int {
        switch self {
        case .syn: 0
        case .synAck: 1
        case .rst: 2
        case .fin: 3
        case .ack: 4
        }
    }

    public var file: String {
        switch self {
        case .syn: "tcp-syn.fp"
        case .synAck: "tcp-synack.fp"
        case .rst: "tcp-rst.fp"
        case .fin: "tcp-fin.fp"
        case .ack: "tcp-stray-ack.fp"
        }
    }
}

/// The TCP option kinds a fingerprint spells out.
enum TCPOption {
    static let eol: UInt8 = 0, nop: UInt8 = 1, mss: UInt8 = 2, windowScale: UInt8 = 3, sackOK: UInt8 = 4
    static let timestamp: UInt8 = 8
}

/// A fingerprint measured from one packet (p0f's `fp_entry`, packet side).
public struct TCPFingerprint: Sendable, Equatable {
    public var windowSize: UInt16 = 0
    public var ttl: UInt8 = 0
    public var dontFragment = false
    /// IP total length (IPv6: payload length); 0 for stray ACKs.
    public var size: UInt16 = 0
    public var options = TCPOptionList()
    public var mss: UInt16 = 0
    public var windowScale: UInt8 = 0
    public var quirks: TCPQuirks = []
    /// The sender's TCP timestamp (0 when absent).
    public var timestamp: UInt32 = 0

    public init() {}

    /// A hash of every field, for the detector's match cache.
    var cacheHash: UInt64 {
        var h = UInt64(windowSize) | UInt64(ttl) << 16 | UInt64(dontFragment ? 1 : 0) << 24 | UInt64(size) << 32
        h = (h ^ options.low) &* 0x9E37_79B9_7F4A_7C15
        h = (h ^ options.high ^ UInt64(options.count) << 56) &* 0xC2B2_AE3D_27D4_EB4F
        h =
            (h ^ UInt64(mss) ^ UInt64(windowScale) << 16 ^ UInt64(quirks.rawValue) << 24 ^ UInt64(timestamp) << 48)
            &* 0x1656_67B1_9E37_79F9
        return h ^ (h >> 29)
    }

    /// PRADS's text of the fingerprint: `wss:ttl:df:size:options:quirks`. (Written as bytes: built
    /// by string interpolation it cost about 9,000 instructions, at every OS record learnt.)
    public func text(uptime: UInt32) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        func put(_ s: StaticString) {
            s.withUTF8Buffer { out.append(contentsOf: $0) }
        }
        func put(_ n: Int) {
            if n < 0 {
                out.append(UInt8(ascii: "-"))
                put(-n)
                return
            }
            if n >= 10 { put(n / 10) }
            out.append(UInt8(ascii: "0") + UInt8(n % 10))
        }
        let wss = Int(windowSize)
        let mssValue = Int(mss)
        if mssValue != 0 && wss != 0 && wss % mssValue == 0 {
            put("S")
            put(wss / mssValue)
        } else if wss != 0 && wss % 1460 == 0 {
            put("S")
            put(wss / 1460)
        } else if mssValue != 0 && wss != 0 && wss % (mssValue + 40) == 0 {
            put("T")
            put(wss / (mssValue + 40))
        } else if wss != 0 && wss % 1500 == 0 {
            put("T")
            put(wss / 1500)
        } else if wss == 12345 {
            put("*(12345)")
        } else {
            put(wss)
        }
        put(":")
        put(Int(ttl))
        put(dontFragment ? ":1:" : ":0:")
        if size < TCPFingerprintDatabase.bigPacket {
            put(Int(size))
        } else {
            put("*(")
            put(Int(size))
            put(")")
        }
        put(":")
        let start = out.count
        for i in 0..<options.count {
            if i > 0 { put(",") }
            let option = options[i]
            switch option {
            case TCPOption.nop: put("N")
            case TCPOption.windowScale:
                put("W")
                put(Int(windowScale))
            case TCPOption.mss:
                put("M")
                put(Int(mss))
            case TCPOption.timestamp: put(uptime == 0 ? "T0" : "T")
            case TCPOption.sackOK: put("S")
            case TCPOption.eol: put("E")
            default:
                put("?")
                put(Int(option))
            }
        }
        if out.count - start < 2 { put(".") }
        put(":")
        out.append(contentsOf: quirks.text.utf8)
        return String(decoding: out, as: UTF8.self)
    }
}

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

/// Up to 16 TCP option kinds in order, held inline (a fingerprint is measured on the fast path
/// and must not allocate).
public struct TCPOptionList: Sendable, Equatable, Sequence, ExpressibleByArrayLiteral {
    public static let capacity = 16
    var low: UInt64 = 0
    var high: UInt64 = 0
    public private(set) var count = 0

    public init() {}

    public init(arrayLiteral elements: UInt8...) {
        for e in elements { append(e) }
    }

    /// Appends an option kind; beyond 16 the list stays as it is.
    @inline(__always)
    public mutating func append(_ kind: UInt8) {
        guard count < Self.capacity else { return }
        if count < 8 {
            low |= UInt64(kind) << UInt64(8 * count)
        } else {
            high |= UInt64(kind) << UInt64(8 * (count - 8))
        }
        count += 1
    }

    @inline(__always)
    public subscript(i: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: (i < 8 ? low >> UInt64(8 * i) : high >> UInt64(8 * (i - 8))))
    }

    public var isEmpty: Bool { count == 0 }

    public func makeIterator() -> AnyIterator<UInt8> {
        var i = 0
        return AnyIterator {
            guard i < self.count else { return nil }
            defer { i += 1 }
            return self[i]
        }
    }
}
