import Foundation

/// Link types by MTU (MSS + 40), named in OS fingerprints as p0f does. PRADS 0.3.3 prints the
/// table compiled into it (p0f's `mtu.h`); `mtu.sig` ships beside it with two lines that differ
/// (1408 named "OpenVPN", no 1460). So that the log equals prads's, the compiled-in names win
/// and `mtu.sig` adds only MTUs the table lacks.
public struct LinkTypes: Sendable {
    static let builtin: [(mtu: Int, name: String)] = [
        (256, "radio modem"), (386, "ethernut"), (552, "SLIP line / encap ppp"), (576, "sometimes modem"),
        (1280, "gif tunnel"), (1300, "PIX, SMC, sometimes wireless"), (1362, "sometimes DSL (1)"),
        (1372, "cable modem"), (1400, "(Google/AOL)"), (1408, "virtualization"), (1415, "sometimes wireless"),
        (1420, "GPRS, T1, FreeS/WAN"), (1423, "sometimes cable"), (1440, "sometimes DSL (2)"),
        (1442, "IPIP tunnel"), (1450, "vtun"), (1452, "sometimes DSL (3)"), (1454, "sometimes DSL (4)"),
        (1456, "ISDN ppp"), (1458, "BT DSL (?)"), (1460, "3G WAN"), (1462, "sometimes DSL (5)"),
        (1470, "(Google 2)"), (1476, "IPSec/GRE"), (1480, "IPv6/IPIP"), (1492, "pppoe (DSL)"), (1496, "vLAN"),
        (1500, "ethernet/modem"), (1656, "Ericsson HIS"), (2024, "wireless/IrDA"), (2048, "Cyclom X.25 WAN"),
        (2250, "AiroNet wireless"), (3924, "loopback"), (4056, "token ring (1)"), (4096, "Sangoma X.25 WAN"),
        (4352, "FDDI"), (4500, "token ring (2)"), (9180, "FORE ATM"), (16384, "sometimes loopback (1)"),
        (16436, "sometimes loopback (2)"), (18000, "token ring x4"),
    ]

    /// Sorted by MTU.
    var table: [(mtu: Int, name: String)]

    /// PRADS 0.3.3's compiled-in table.
    public static let prads = LinkTypes(table: builtin)

    public var count: Int { table.count }

    /// Reads `mtu.sig` lines (`1500,"ethernet/modem"`) into the compiled-in table; a malformed
    /// line is reported with file and line.
    public static func parse(_ text: String, file: String) -> (links: LinkTypes, errors: [SignatureFileError]) {
        var known = Dictionary(uniqueKeysWithValues: builtin.map { ($0.mtu, $0.name) })
        var errors: [SignatureFileError] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(separator: ",", maxSplits: 1)
            guard fields.count == 2, let mtu = Int(fields[0].trimmingCharacters(in: .whitespaces)), mtu > 0,
                mtu <= 65535
            else {
                errors.append(SignatureFileError(file: file, line: index + 1, reason: "expected 'mtu,\"name\"'"))
                continue
            }
            let name = fields[1].trimmingCharacters(in: .whitespaces).trimmingCharacters(
                in: CharacterSet(charactersIn: "\""))
            if known[mtu] == nil { known[mtu] = name }
        }
        return (LinkTypes(table: known.sorted { $0.key < $1.key }.map { (mtu: $0.key, name: $0.value) }), errors)
    }

    public static func load(_ path: String) throws -> (links: LinkTypes, errors: [SignatureFileError]) {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return parse(String(decoding: data, as: UTF8.self), file: path)
    }

    /// The link name for an MSS, or "unknown-MTU" (p0f's lookup: exact MTU, in a sorted table).
    public func name(mss: UInt16) -> String {
        let out = RecordText(capacity: 32)
        write(mss: mss, to: out)
        return out.string
    }

    /// Writes ``name(mss:)`` at the end of `out`.
    func write(mss: UInt16, to out: RecordText) {
        let mtu = Int(mss &+ 40)
        for entry in table {
            if entry.mtu == mtu { return out.put(entry.name) }
            if mtu < entry.mtu { break }
        }
        out.put("unknown-")
        out.put(mtu)
    }
}
