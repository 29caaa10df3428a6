// dist-state-bench: serialization and deserialization of every state of a capture (per-flow,
// multi-flow, all-flows), with DistState's binary codec and with JSON (Foundation's
// JSONEncoder/JSONDecoder) on the same values, in the same run.
//   dist-state-bench [TRACE.pcap] [SIGNATURE_DIR] [REPEATS]
import DistFlow
import DistPRADS
import DistPacket
import DistPipeline
import DistState
import Foundation

let arguments = CommandLine.arguments
let trace = arguments.count > 1 ? arguments[1] : "traces/mix-a.pcap"
let directory = arguments.count > 2 ? arguments[2] : "/etc/prads"
let repeats = arguments.count > 3 ? max(1, Int(arguments[3]) ?? 5) : 5

func build() throws -> (flows: [FlowEntry], assets: [AssetState], counters: InstanceCounters) {
    let file = try PcapFile(bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: trace))))
    let detector = Detector(signatures: try PRADSSignatures.load(directory: directory))
    let stats = UnsafeMutablePointer<WorkerStats>.allocate(capacity: 1)
    stats.initialize(to: WorkerStats())
    let path = FastPath(table: FlowTable(capacity: 1 << 16), stats: stats, detector: detector)
    path.process(frames: file.frames)
    var flows: [FlowEntry] = []
    path.table.forEach { _, e in
        flows.append(e)
        return true
    }
    let assets = detector.assets.keys.sorted().map { AssetState(address: $0, asset: detector.asset(at: $0)!) }
    var counters = InstanceCounters()
    counters.packets = stats.pointee.rxPackets
    counters.bytes = stats.pointee.rxBytes
    counters.flowsCreated = stats.pointee.flows.created
    return (flows, assets, counters)
}

func time(_ body: () throws -> Void) rethrows -> Double {
    var best = Double.infinity
    for _ in 0..<repeats {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    return best
}

do {
    let (flows, assets, counters) = try build()
    let chunks: [StateChunk] = flows.map { .perFlow($0) } + assets.map { .multiFlow($0) } + [.allFlows(counters)]
    let states = Double(chunks.count)

    var binary: [UInt8] = []
    let encodeBinary = time {
        binary = []
        binary.reserveCapacity(1 << 20)
        for chunk in chunks { StateCodec.encode(chunk, into: &binary) }
    }
    var decoded: [StateChunk] = []
    let decodeBinary = try time { decoded = try StateCodec.decodeAll(binary) }
    guard decoded == chunks else { fatalError("binary round trip differs") }

    let encoder = JSONEncoder()
    let decoder = JSONDecoder()
    var json: [Data] = []
    let encodeJSON = try time {
        json = []
        for f in flows { json.append(try encoder.encode(f)) }
        for a in assets { json.append(try encoder.encode(a)) }
        json.append(try encoder.encode(counters))
    }
    let jsonBytes = Double(json.reduce(0) { $0 + $1.count })
    let decodeJSON = try time {
        for i in 0..<flows.count { _ = try decoder.decode(FlowEntry.self, from: json[i]) }
        for i in 0..<assets.count { _ = try decoder.decode(AssetState.self, from: json[flows.count + i]) }
        _ = try decoder.decode(InstanceCounters.self, from: json[json.count - 1])
    }

    func line(_ name: String, _ seconds: Double, _ bytes: Double) -> String {
        String(
            format: "%-18@ %10.0f states/s %8.1f MB/s  (%.2f ms)", name as NSString, states / seconds,
            bytes / seconds / 1e6, seconds * 1e3)
    }
    print(
        "states: \(flows.count) per-flow, \(assets.count) multi-flow, 1 all-flows; binary \(binary.count) bytes, JSON "
            + "\(Int(jsonBytes)) bytes (best of \(repeats))"
    )
    print(line("binary encode", encodeBinary, Double(binary.count)))
    print(line("binary decode", decodeBinary, Double(binary.count)))
    print(line("JSON encode", encodeJSON, jsonBytes))
    print(line("JSON decode", decodeJSON, jsonBytes))
    print(
        String(
            format: "binary vs JSON: encode %.1fx faster, decode %.1fx faster, %.1fx smaller",
            encodeJSON / encodeBinary, decodeJSON / decodeBinary, jsonBytes / Double(binary.count)))
} catch {
    FileHandle.standardError.write(Data("dist-state-bench: \(error)\n".utf8))
    exit(1)
}
