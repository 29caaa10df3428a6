import DistPRADS
import DistPacket
import Foundation
import Testing

/// Detection parity with Debian's prads 0.3.3 on the project's trace: the asset logs compared as
/// sets of (asset, vlan, port, proto, service, service-info), as shared/tools/assetcmp.py does.
@Suite struct ParityTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let trace = root.appendingPathComponent("traces/mix-a.pcap").path

    /// The comparable part of a log line (what assetcmp.py keeps).
    static func key(_ line: String) -> String? {
        guard !line.isEmpty, !line.hasPrefix("asset,"), !line.hasPrefix("#") else { return nil }
        guard let open = line.range(of: ",["), let close = line.range(of: "],", options: .backwards) else { return nil }
        let head = line[..<open.lowerBound].split(separator: ",", omittingEmptySubsequences: false)
        guard head.count >= 5 else { return nil }
        return head.prefix(5).joined(separator: ",") + "|" + line[open.upperBound..<close.lowerBound]
    }

    static func prads(_ trace: String) throws -> Set<String> {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/prads") else {
            throw Failure("Debian's prads is not installed (apt-get install -y prads)")
        }
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("prads-ref-\(getpid()).log").path
        try? FileManager.default.removeItem(atPath: log)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/prads")
        process.arguments = ["-r", trace, "-l", log]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        let text = try String(contentsOfFile: log, encoding: .utf8)
        return Set(text.split(separator: "\n").compactMap { key(String($0)) })
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ d: String) { description = d }
    }

    static func ours(_ trace: String) throws -> (Set<String>, PRADSEngine) {
        let signatures = try PRADSSignatures.load(directory: "/etc/prads")
        let engine = PRADSEngine(signatures: signatures)
        var lines: [String] = []
        engine.onRecord = { lines.append($0.description) }
        let file = try PcapFile(bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: trace))))
        for frame in file.frames {
            engine.process(frame: frame.bytes, wireLength: Int(frame.originalLength), timestamp: UInt64(frame.seconds))
        }
        return (Set(lines.compactMap { key($0) }), engine)
    }

    @Test func mixAMatchesPrads() throws {
        let reference = try Self.prads(Self.trace)
        let (candidate, _) = try Self.ours(Self.trace)
        let common = reference.intersection(candidate)
        let precision = Double(common.count) / Double(max(candidate.count, 1))
        let recall = Double(common.count) / Double(max(reference.count, 1))
        let missing = reference.subtracting(candidate).sorted().prefix(15)
        let extra = candidate.subtracting(reference).sorted().prefix(15)
        print(
            "parity: reference \(reference.count) candidate \(candidate.count) common \(common.count) precision \(precision) recall \(recall)"
        )
        print("missing:\n" + missing.joined(separator: "\n"))
        print("extra:\n" + extra.joined(separator: "\n"))
        #expect(precision >= 0.99)
        #expect(recall >= 0.99)
    }
}
