import Foundation

/// PRADS's `mac.sig`: Ethernet address prefixes (OUI, or longer with `/bits`) and vendor names.
public struct MACVendors: Sendable {
    struct Entry: Sendable {
        var prefix: UInt64  // the address bits, left-aligned in 48 bits
        var bits: Int
        var vendor: String
    }
    var entries: [Entry] = []

    public init() {}

    public var count: Int { entries.count }

    /// Parses the file's text: `xx:xx:xx[:xx...][/bits] <whitespace> vendor [# comment]`.
    public static func parse(_ text: String, file: String) -> (vendors: MACVendors, errors: [SignatureFileError]) {
        var vendors = MACVendors()
        var errors: [SignatureFileError] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line =
                raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if fields.isEmpty { continue }
            guard fields.count >= 2 else {
                errors.append(SignatureFileError(file: file, line: index + 1, reason: "expected 'prefix vendor'"))
                continue
            }
            // (Empty parts kept: "/24" alone is a prefix with no address, an error, not a trap.)
            let prefixField = fields[0].split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            let bytes = prefixField[0].split(whereSeparator: { $0 == ":" || $0 == "-" || $0 == "." })
            var value: UInt64 = 0
            var ok = !bytes.isEmpty && bytes.count <= 6
            for b in bytes {
                guard let v = UInt8(b, radix: 16) else {
                    ok = false
                    break
                }
                value = value << 8 | UInt64(v)
            }
            var bits = bytes.count * 8
            if prefixField.count == 2 {
                if let n = Int(prefixField[1]), n > 0, n <= 48 { bits = n } else { ok = false }
            }
            guard ok else {
                errors.append(
                    SignatureFileError(file: file, line: index + 1, reason: "bad address prefix '\(fields[0])'"))
                continue
            }
            value <<= UInt64(48 - bytes.count * 8)
            vendors.entries.append(Entry(prefix: value, bits: bits, vendor: String(fields[1])))
        }
        vendors.entries.sort { $0.bits > $1.bits }
        return (vendors, errors)
    }

    public static func load(_ path: String) throws -> (vendors: MACVendors, errors: [SignatureFileError]) {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return parse(String(decoding: data, as: UTF8.self), file: path)
    }

    /// The vendor of the longest prefix matching a 6-byte address.
    public func vendor(of mac: [UInt8]) -> String? {
        guard mac.count == 6 else { return nil }
        let address = mac.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        for entry in entries {
            let mask: UInt64 =
                entry.bits >= 48 ? 0xFFFF_FFFF_FFFF : ((1 << UInt64(entry.bits)) - 1) << UInt64(48 - entry.bits)
            if address & mask == entry.prefix & mask { return entry.vendor }
        }
        return nil
    }
}
