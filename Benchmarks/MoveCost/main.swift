// dist-move-bench: what moving state costs the VNFs' CPUs, without a network or another
// process in the way: two instances (MoveEngine over real FastPath workers with PRADS
// detection, no DPDK) on one thread, every flow of a trace at the source, and a loss-free Move
// (PZ|LL|ER, per-flow and multi-flow state) of all of them, on the real clock, until the source
// hears the destination has every state. The time each side's rounds took is its CPU time for
// the Move: serializing, sealing and sending at the source, opening, decoding and importing at
// the destination. Median of the runs.
//
//   dist-move-bench TRACE.pcap [--runs N] [--signatures DIR]
//
// TRACE: e.g. `deploy/tools/flowtrace.py --flows 100000 --out /tmp/flows-100000.pcap` (every
// flow a TCP handshake, request and answer: detection learns a host and a service per flow).
import DistFlow
import DistLoopback
import DistPRADS
import DistPacket
import DistTransfer
import Foundation

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("dist-move-bench: \(message)\n".utf8))
    exit(2)
}

var arguments = CommandLine.arguments.dropFirst()
var tracePath: String?
var runs = 3
var signatureDirectory = "/etc/prads"
while let arg = arguments.popFirst() {
    switch arg {
    case "--runs": runs = Int(arguments.popFirst() ?? "") ?? 0
    case "--signatures": signatureDirectory = arguments.popFirst() ?? ""
    default:
        if tracePath == nil && !arg.hasPrefix("-") { tracePath = arg } else { fail("unknown argument \(arg)") }
    }
}
guard let tracePath, runs > 0 else { fail("usage: dist-move-bench TRACE.pcap [--runs N] [--signatures DIR]") }
let frames: [[UInt8]]
let signatures: PRADSSignatures
do {
    frames = try PcapFile(bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: tracePath)))).frames.map { $0.bytes }
    signatures = try PRADSSignatures.load(directory: signatureDirectory)
} catch {
    fail("\(error)")
}

func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

struct Run {
    var perFlow = 0
    var multiFlow = 0
    var source = 0.0
    var destination = 0.0
    var wall = 0.0
    var channelBytes = 0
}

func carry(from: MoveInstance, to: MoveInstance) -> Int {
    let sent = from.wire
    from.wire.removeAll(keepingCapacity: true)
    for f in sent { to.receive(f, worker: 0) }
    return sent.reduce(0) { $0 + $1.count }
}

func run() -> Run {
    let capacity = max(1 << 12, 2 * frames.count)
    let a = MoveInstance(
        workers: 1, address: "198.18.100.1:7700@02:00:00:00:00:01", capacity: capacity,
        detector: { _ in Detector(signatures: signatures) })
    let b = MoveInstance(
        workers: 1, address: "198.18.100.2:7700@02:00:00:00:00:02", capacity: capacity,
        detector: { _ in Detector(signatures: signatures) })
    for f in frames { a.receive(f) }
    a.out.removeAll()
    return move(a, to: b)
}

/// The Move alone (callgrind: `--toggle-collect='*move*'`, after the set-up).
@inline(never)
func move(_ a: MoveInstance, to b: MoveInstance) -> Run {
    var r = Run()
    let began = now()
    a.clock = began
    b.clock = began
    a.startLossFreeMove(filter: "nw_src=198.18.0.0/16", to: b, multiFlow: true)
    r.source += Double(now() - began) / 1e9
    while a.notice("moveStateSent") == nil {
        let t0 = now()
        a.round(at: t0)
        let t1 = now()
        b.round(at: t1)
        let t2 = now()
        r.channelBytes += carry(from: a, to: b)
        let t3 = now()
        _ = carry(from: b, to: a)
        let t4 = now()
        // (Carrying a frame to an instance is its worker's receiving it: that instance's work.)
        r.source += Double(t1 - t0 + t4 - t3) / 1e9
        r.destination += Double(t2 - t1 + t3 - t2) / 1e9
        if t4 - began > 120_000_000_000 { fail("the Move's state did not reach the destination in 120 s") }
    }
    r.wall = Double(now() - began) / 1e9
    let summary = a.notice("moveStateSent")?.counters ?? [:]
    r.perFlow = summary["perFlowStates"] ?? 0
    r.multiFlow = summary["multiFlowStates"] ?? 0
    return r
}

print(
    "== a loss-free Move of every flow of \(tracePath) (\(frames.count) frames), both ends on one thread, \(runs) runs")
var results: [Run] = []
for i in 1...runs {
    let r = run()
    results.append(r)
    print(
        String(
            format: "run %d: %d per-flow + %d multi-flow states, %.1f MB on the channel; source %.3f s, destination "
                + "%.3f s (wall %.3f s)", i, r.perFlow, r.multiFlow, Double(r.channelBytes) / 1e6, r.source,
            r.destination, r.wall))
}
func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
let states = Double(results[0].perFlow + results[0].multiFlow)
let source = median(results.map(\.source))
let destination = median(results.map(\.destination))
print(
    String(
        format: "median: source %.3f s (%.0f ns a state), destination %.3f s (%.0f ns a state), %.0f states",
        source, source * 1e9 / states, destination, destination * 1e9 / states, states))
