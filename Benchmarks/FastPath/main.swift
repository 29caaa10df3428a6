// dist-fastpath-bench: the worker's per-packet work (DistPipeline.FastPath: parse, count,
// track) on a pcap held in memory, in bursts of 32, with no DPDK and no I/O.
//
//   dist-fastpath-bench TRACE.pcap [PASSES] [--handoff] [--detection]
//
// --detection: PRADS's detection on (signatures from /etc/prads), as dist-vnf runs by default.
//
// --handoff: two workers' fast paths, every frame received by worker 0, which hands the frames
// of worker 1's flows to it through the handoff ring (staged per burst, as dist-vnf does), and
// worker 1 processes them. On one thread: it counts the handoff's instructions, not the cache
// lines that cross cores.
//
// --owned: the same two workers, each receiving only the frames of the flows it owns (worker 0
// first, then worker 1, every pass): what --handoff is set against, two workers without a
// handoff.
//
// Prints frames processed, nanoseconds and instructions-worthy figures per frame. Under
// `valgrind --tool=callgrind` the instruction count per frame is stable whatever the load on
// the machine: deploy/bench/fastpath-instructions.sh runs it that way.
import DistFlow
import DistPRADS
import DistPacket
import DistPipeline
import Foundation

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    FileHandle.standardError.write(
        Data("usage: dist-fastpath-bench TRACE.pcap [PASSES] [--handoff | --owned] [--detection]\n".utf8))
    exit(2)
}
let passes = arguments.count > 2 ? max(1, Int(arguments[2]) ?? 10) : 10
let handoff = arguments.contains("--handoff")
let owned = arguments.contains("--owned")
let detection = arguments.contains("--detection")
let file: PcapFile
do {
    file = try PcapFile(bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: arguments[1]))))
} catch {
    FileHandle.standardError.write(Data("dist-fastpath-bench: \(arguments[1]): \(error)\n".utf8))
    exit(1)
}

// Frames laid out back to back in one buffer, as mbufs would hold them; with --owned, worker 0's
// first (and every frame without a flow), then worker 1's from `split` on.
let ownership = FlowOwnership(workers: 2)
func ownedByWorker1(_ frame: PcapFile.Frame) -> Bool {
    frame.bytes.withUnsafeBufferPointer { b in
        var info = PacketInfo()
        guard let base = b.baseAddress else { return false }
        PacketParser.parse(UnsafeRawPointer(base), length: b.count, into: &info)
        return info.hasFlow && ownership.owner(of: FlowProbe(info, frame: base, seed: 0).key) == 1
    }
}
let worker1 = owned ? file.frames.map(ownedByWorker1) : []
let worker0Frames = owned ? zip(file.frames, worker1).filter { !$0.1 }.map(\.0) : file.frames
let laidOut = owned ? worker0Frames + zip(file.frames, worker1).filter(\.1).map(\.0) : file.frames
let split = worker0Frames.count
let count = laidOut.count
let total = laidOut.reduce(0) { $0 + $1.bytes.count }
let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(total, 1), alignment: 64)
let data = UnsafeMutablePointer<UnsafePointer<UInt8>?>.allocate(capacity: max(count, 1))
let segmentLengths = UnsafeMutablePointer<UInt16>.allocate(capacity: max(count, 1))
let packetLengths = UnsafeMutablePointer<UInt32>.allocate(capacity: max(count, 1))
var offset = 0
for (i, frame) in laidOut.enumerated() {
    frame.bytes.withUnsafeBytes { (buffer + offset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    data[i] = UnsafePointer((buffer + offset).assumingMemoryBound(to: UInt8.self))
    segmentLengths[i] = UInt16(truncatingIfNeeded: min(frame.bytes.count, 65535))
    packetLengths[i] = frame.originalLength
    offset += frame.bytes.count
}

let table = FlowTable(capacity: 1 << 20)
let stats = UnsafeMutablePointer<WorkerStats>.allocate(capacity: 1)
stats.initialize(to: WorkerStats())
var detector: Detector?
if detection {
    do {
        detector = Detector(signatures: try PRADSSignatures.load(directory: "/etc/prads"))
    } catch {
        FileHandle.standardError.write(Data("dist-fastpath-bench: /etc/prads: \(error)\n".utf8))
        exit(1)
    }
}
let fastPath = FastPath(table: table, stats: stats, detector: detector)
let ownerStats = UnsafeMutablePointer<WorkerStats>.allocate(capacity: 1)
ownerStats.initialize(to: WorkerStats())
let owner = FastPath(table: FlowTable(capacity: 1 << 20), stats: ownerStats)
let links = HandoffLinks<HandoffPacket>.mesh(workers: 2, capacity: 4096)
if handoff || owned {
    fastPath.ownership = ownership
    fastPath.handoff = links[0]
    owner.ownership = ownership
    owner.index = 1
    owner.handoff = links[1]
}

let start = DispatchTime.now().uptimeNanoseconds
var now: UInt64 = 1_000_000_000
for _ in 0..<passes {
    var i = 0
    while i < count {
        if i >= split {
            let n = min(32, count - i)
            owner.process(
                count: n, data: data + i, segmentLengths: segmentLengths + i, packetLengths: packetLengths + i,
                now: now)
            i += n
            now &+= 1000
            continue
        }
        let n = min(32, split - i)
        let events = fastPath.process(
            count: n, data: data + i, segmentLengths: segmentLengths + i,
            packetLengths: packetLengths + i, now: now)
        if handoff && events {
            links[0].flush(stats: stats)
            let (items, m) = links[1].incoming[0].peek(limit: 64)
            owner.processHandedOff(items, count: m, now: now)
            links[1].incoming[0].consume(m)
        }
        i += n
        now &+= 1000
    }
}
let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start)
let frames = Double(count * passes)
print(
    "frames \(count * passes) passes \(passes) flows \(table.count + owner.table.count) rx \(stats.pointee.rxPackets + ownerStats.pointee.rxPackets) "
        + "handed_off \(stats.pointee.handedOff)"
)
print(String(format: "ns_per_frame %.1f mpps %.2f", elapsed / frames, frames / elapsed * 1e3))
