// dist-core-latency: how long a cache line written on one CPU takes to be seen on another (half
// a ping-pong's round trip), the price of every line a handed-off frame makes cross cores.
//
//   dist-core-latency [CPU_A] [CPU_B] [MILLISECONDS]
//
// Prints `core-latency N ns` (the median of 20 ms windows) and the windows' range. On a virtual
// machine the figure is the host's placement of the two vCPUs at that moment, which can change
// within seconds (seen on one machine: 26 to 34 ns, 65 to 86 ns, and 270 to 310 ns): the
// worker handoff benchmark (deploy/bench/forwarding.py) takes it before and after each run.
import Atomics
import CDistIntrinsics
import Foundation

let arguments = CommandLine.arguments.dropFirst().map { Int($0) }
guard arguments.allSatisfy({ $0 != nil }), arguments.count <= 3 else {
    FileHandle.standardError.write("usage: dist-core-latency [CPU_A] [CPU_B] [MILLISECONDS]\n".data(using: .utf8)!)
    exit(2)
}
let cpuA = arguments.count > 0 ? arguments[0]! : 0
let cpuB = arguments.count > 1 ? arguments[1]! : 1
let milliseconds = arguments.count > 2 ? arguments[2]! : 500

func nanoseconds() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

// Each counter on a line pair of its own (the adjacent-line prefetcher pairs lines).
let storage = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 128)
let ping = UnsafeAtomic<UInt64>(at: storage.bindMemory(to: UnsafeAtomic<UInt64>.Storage.self, capacity: 1))
let pong = UnsafeAtomic<UInt64>(
    at: (storage + 128).bindMemory(to: UnsafeAtomic<UInt64>.Storage.self, capacity: 1))
ping.store(0, ordering: .relaxed)
pong.store(0, ordering: .relaxed)
let done = ManagedAtomic(false)

guard cpuA != cpuB else {
    FileHandle.standardError.write("dist-core-latency: two different CPUs, please\n".data(using: .utf8)!)
    exit(2)
}
let echo = Thread {
    guard dist_pin_thread(Int32(cpuB)) == 0 else {
        FileHandle.standardError.write("dist-core-latency: cannot run on CPU \(cpuB)\n".data(using: .utf8)!)
        exit(1)
    }
    var seen: UInt64 = 0
    while !done.load(ordering: .relaxed) {
        let v = ping.load(ordering: .acquiring)
        if v != seen {
            seen = v
            pong.store(v, ordering: .releasing)
        }
    }
}
echo.start()
guard dist_pin_thread(Int32(cpuA)) == 0 else {
    FileHandle.standardError.write("dist-core-latency: cannot run on CPU \(cpuA)\n".data(using: .utf8)!)
    exit(1)
}
var windows: [Double] = []
var value: UInt64 = 0
let end = nanoseconds() + UInt64(max(milliseconds, 20)) * 1_000_000
while nanoseconds() < end {
    let start = nanoseconds()
    var trips = 0
    while nanoseconds() - start < 20_000_000 {
        for _ in 0..<200 {
            value &+= 1
            ping.store(value, ordering: .releasing)
            // Bounded: an echo thread that never runs ends the window (and shows as a long one).
            var spins = 0
            while pong.load(ordering: .acquiring) != value && spins < 100_000_000 { spins += 1 }
        }
        trips += 200
    }
    windows.append(Double(nanoseconds() - start) / Double(trips) / 2)
}
done.store(true, ordering: .relaxed)
windows.sort()
print(
    String(
        format: "core-latency %.0f ns (CPUs %d and %d; %d windows of 20 ms: %.0f to %.0f)",
        windows[windows.count / 2], cpuA, cpuB, windows.count, windows.first!, windows.last!))
