// dist-fastpath-bench: the worker's per-packet work (DistPipeline.FastPath: parse, count,
// track) on a pcap held in memory, in bursts of 32, with no DPDK and no I/O.
//
//   dist-fastpath-bench TRACE.pcap [PASSES]
//
// Prints frames processed, nanoseconds and instructions-worthy figures per frame. Under
// `valgrind --tool=callgrind` the instruction count per frame is stable whatever the load on
// the machine: deploy/bench/fastpath-instructions.sh runs it that way.
import DistFlow
import DistPacket
import DistPipeline
import Foundation

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    FileHandle.standardError.write(Data("usage: dist-fastpath-bench TRACE.pcap [PASSES]\n".utf8))
    exit(2)
}
let passes = arguments.count > 2 ? max(1, Int(arguments[2]) ?? 10) : 10
let file: PcapFile
do {
    file = try PcapFile(bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: arguments[1]))))
} catch {
    FileHandle.standardError.write(Data("dist-fastpath-bench: \(arguments[1]): \(error)\n".utf8))
    exit(1)
}

// Frames laid out back to back in one buffer, as mbufs would hold them.
let count = file.frames.count
let total = file.frames.reduce(0) { $0 + $1.bytes.count }
let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(total, 1), alignment: 64)
let data = UnsafeMutablePointer<UnsafePointer<UInt8>?>.allocate(capacity: max(count, 1))
let segmentLengths = UnsafeMutablePointer<UInt16>.allocate(capacity: max(count, 1))
let packetLengths = UnsafeMutablePointer<UInt32>.allocate(capacity: max(count, 1))
var offset = 0
for (i, frame) in file.frames.enumerated() {
    frame.bytes.withUnsafeBytes { (buffer + offset).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    data[i] = UnsafePointer((buffer + offset).assumingMemoryBound(to: UInt8.self))
    segmentLengths[i] = UInt16(truncatingIfNeeded: min(frame.bytes.count, 65535))
    packetLengths[i] = frame.originalLength
    offset += frame.bytes.count
}

let table = FlowTable(capacity: 1 << 20)
let stats = UnsafeMutablePointer<WorkerStats>.allocate(capacity: 1)
stats.initialize(to: WorkerStats())
let fastPath = FastPath(table: table, stats: stats)

let start = DispatchTime.now().uptimeNanoseconds
var now: UInt64 = 1_000_000_000
for _ in 0..<passes {
    var i = 0
    while i < count {
        let n = min(32, count - i)
        fastPath.process(count: n, data: data + i, segmentLengths: segmentLengths + i,
                         packetLengths: packetLengths + i, now: now)
        i += n
        now &+= 1000
    }
}
let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start)
let frames = Double(count * passes)
print("frames \(count * passes) passes \(passes) flows \(table.count) rx \(stats.pointee.rxPackets)")
print(String(format: "ns_per_frame %.1f mpps %.2f", elapsed / frames, frames / elapsed * 1e3))
