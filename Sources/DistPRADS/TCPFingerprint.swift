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
    static let letters: [(TCPQuirks, UInt8)] = [
        (.rstAck, UInt8(ascii: "K")), (.seqEqualsAck, UInt8(ascii: "Q")), (.seqZero, UInt8(ascii: "0")),
        (.past, UInt8(ascii: "P")), (.zeroID, UInt8(ascii: "Z")),
        (.ipOptions, UInt8(ascii: "I")), (.urgent, UInt8(ascii: "U")), (.x2, UInt8(ascii: "X")),
        (.ack, UInt8(ascii: "A")), (.t2, UInt8(ascii: "T")), (.flags, UInt8(ascii: "F")),
        (.data, UInt8(ascii: "D")), (.finAck, UInt8(ascii: "N")), (.flowLabel, UInt8(ascii: "L")),
        (.broken, UInt8(ascii: "!")),
    ]

    /// The quirks field of a fingerprint: "." when there are none.
    public var text: String {
        let out = RecordText()
        write(to: out)
        return out.string
    }

    func write(to out: RecordText) {
        if isEmpty { return out.put(".") }
        for (quirk, letter) in TCPQuirks.letters where contains(quirk) { out.put(letter) }
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

    /// Writes PRADS's text of the fingerprint at the end of `out`:
    /// `wss:ttl:df:size:options:quirks`.
    func write(to out: RecordText, uptime: UInt32) {
        let wss = Int(windowSize)
        let mssValue = Int(mss)
        if mssValue != 0 && wss != 0 && wss % mssValue == 0 {
            out.put("S")
            out.put(wss / mssValue)
        } else if wss != 0 && wss % 1460 == 0 {
            out.put("S")
            out.put(wss / 1460)
        } else if mssValue != 0 && wss != 0 && wss % (mssValue + 40) == 0 {
            out.put("T")
            out.put(wss / (mssValue + 40))
        } else if wss != 0 && wss % 1500 == 0 {
            out.put("T")
            out.put(wss / 1500)
        } else if wss == 12345 {
            out.put("*(12345)")
        } else {
            out.put(wss)
        }
        out.put(":")
        out.put(Int(ttl))
        out.put(dontFragment ? ":1:" : ":0:")
        if size < TCPFingerprintDatabase.bigPacket {
            out.put(Int(size))
        } else {
            out.put("*(")
            out.put(Int(size))
            out.put(")")
        }
        out.put(":")
        let start = out.count
        for i in 0..<options.count {
            if i > 0 { out.put(",") }
            let option = options[i]
            switch option {
            case TCPOption.nop: out.put("N")
            case TCPOption.windowScale:
                out.put("W")
                out.put(Int(windowScale))
            case TCPOption.mss:
                out.put("M")
                out.put(Int(mss))
            case TCPOption.timestamp: out.put(uptime == 0 ? "T0" : "T")
            case TCPOption.sackOK: out.put("S")
            case TCPOption.eol: out.put("E")
            default:
                out.put("?")
                out.put(Int(option))
            }
        }
        if out.count - start < 2 { out.put(".") }
        out.put(":")
        quirks.write(to: out)
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
