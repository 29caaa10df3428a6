import DistPRADS
// dist-detection-bench: PRADS detection (DistPRADS.PRADSEngine) alone on a pcap in memory.
//   dist-detection-bench TRACE.pcap [PASSES] [SIGNATURE_DIR]
import DistPacket
import Foundation

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data("usage: dist-detection-bench TRACE.pcap [PASSES] [SIGNATURE_DIR]\n".utf8))
    exit(2)
}
let passes = arguments.count > 2 ? max(1, Int(arguments[2]) ?? 3) : 3
let directory = arguments.count > 3 ? arguments[3] : "/etc/prads"

func run() throws {
    let file = try PcapFile(bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: arguments[1]))))
    let signatures = try PRADSSignatures.load(directory: directory)
    let engine = PRADSEngine(signatures: signatures)
    var records = 0
    engine.onRecord = { _ in records += 1 }
    let start = DispatchTime.now().uptimeNanoseconds
    for pass in 0..<passes {
        for frame in file.frames {
            engine.process(
                frame: frame.bytes, wireLength: Int(frame.originalLength),
                timestamp: UInt64(frame.seconds) + UInt64(pass))
        }
    }
    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start)
    let frames = Double(file.frames.count * passes)
    print(
        "frames \(file.frames.count * passes) records \(records) regex_runs \(engine.detector.counters.regexRuns) "
            + "connections \(engine.connectionCount)"
    )
    print(String(format: "ns_per_frame %.1f mpps %.3f", elapsed / frames, frames / elapsed * 1e3))
}
do { try run() } catch {
    FileHandle.standardError.write(Data("dist-detection-bench: \(error)\n".utf8))
    exit(1)
}
