// dist-redirect-bench: how many packets a second a DiST Move redirects, source to destination,
// on the real clock and one thread: two instances (MoveEngine over real FastPath workers, no
// DPDK), a loss-free Move of every flow under way (its state at the destination, the switch
// not yet updated), and the moved flows' packets arriving at the source as fast as the Move
// carries them. Each packet is processed by the source's worker (verdict: redirect), packed,
// sealed (AES-256-GCM), carried, opened, acknowledged, handed to the destination's worker,
// processed there and forwarded. The figure is packets forwarded at the destination per
// second, for both ends' work on one core: a transfer lcore at each end has about twice it.
//
//   dist-redirect-bench [--seconds S] [--runs N] [--size BYTES] [--flows F] [--packets N]
//
// --packets N redirects exactly N packets and prints the count (for callgrind: instructions
// per redirected packet are the difference between two counts over their difference in N).
import DistChannel
import DistFlow
import DistLoopback
import DistMove
import DistPacket
import DistTransfer
import Foundation

struct Options {
    var seconds = 2.0
    var runs = 5
    var size = 300
    var flows = 64
    var packets: Int?
}

func options() -> Options {
    var o = Options()
    var args = CommandLine.arguments.dropFirst()
    func value(_ name: String) -> String {
        guard let v = args.popFirst() else { fail("\(name) needs a value") }
        return v
    }
    while let arg = args.popFirst() {
        switch arg {
        case "--seconds": o.seconds = Double(value(arg)) ?? 0
        case "--runs": o.runs = Int(value(arg)) ?? 0
        case "--size": o.size = Int(value(arg)) ?? 0
        case "--flows": o.flows = Int(value(arg)) ?? 0
        case "--packets": o.packets = Int(value(arg)) ?? 0
        default: fail("unknown argument \(arg)")
        }
    }
    guard o.seconds > 0, o.runs > 0, (64...9000).contains(o.size), (1...65536).contains(o.flows), (o.packets ?? 1) > 0
    else {
        fail("--seconds and --runs must be positive, --size 64 to 9000, --flows 1 to 65536, --packets positive")
    }
    return o
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("dist-redirect-bench: \(message)\n".utf8))
    exit(2)
}

func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// A UDP packet of `size` bytes of flow `flow` (198.18.1.0/24 and up to 198.18.2.1).
func packet(flow: Int, size: Int) -> [UInt8] {
    let udpLength = size - 14 - 20
    var ip: [UInt8] = [0x45, 0] + BigEndian.bytes(UInt16(20 + udpLength)) + [0, 0, 0x40, 0, 64, 17, 0, 0]
    ip += [198, 18, UInt8(1 + flow >> 8), UInt8(flow & 0xFF), 198, 18, 2, 1]
    let sum = InternetChecksum.of(ip)
    ip[10] = UInt8(sum >> 8)
    ip[11] = UInt8(sum & 0xFF)
    let udp =
        BigEndian.bytes(UInt16(4000 + flow % 20000)) + BigEndian.bytes(UInt16(5000))
        + BigEndian.bytes(UInt16(udpLength)) + [0, 0]
        + [UInt8](repeating: 0x5A, count: udpLength - 8)
    return [2, 0, 0, 0, 0, 0xBB, 2, 0, 0, 0, 0, 0xAA, 0x08, 0x00] + ip + udp
}

/// Carries what one instance put on the wire to the other (a channel frame reaches worker 0,
/// which diverts it to the engine).
/// Channel frames carried, both ways, in the current run.
nonisolated(unsafe) var carried = 0
func carry(from: MoveInstance, to: MoveInstance) {
    let frames = from.wire
    carried += frames.count
    from.wire.removeAll(keepingCapacity: true)
    for f in frames { to.receive(f, worker: 0) }
}

/// One Move: returns the packets forwarded at the destination and the seconds it took, from the
/// end of the state's transfer on.
func run(_ o: Options) -> (packets: Int, seconds: Double) {
    carried = 0
    let a = MoveInstance(workers: 1, address: "198.18.0.1:7700@02:00:00:00:00:01")
    let b = MoveInstance(workers: 1, address: "198.18.0.2:7700@02:00:00:00:00:02")
    let frames = (0..<o.flows).map { packet(flow: $0, size: o.size) }
    for f in frames { a.receive(f) }
    a.out.removeAll()
    a.clock = now()
    b.clock = a.clock
    a.startLossFreeMove(filter: "nw_src=198.18.0.0/15", to: b, multiFlow: false)
    func round() {
        a.round(at: now())
        b.round(at: now())
        carry(from: a, to: b)
        carry(from: b, to: a)
    }
    let began = now()
    while a.notice("moveStateSent") == nil {
        round()
        if now() - began > 10_000_000_000 { fail("the Move's state did not reach the destination in 10 s") }
    }
    // The moved flows' packets arrive at the source 32 a round, at most 8,192 ahead of what
    // the destination has forwarded (what the channel has not carried yet waits in the source).
    var sent = 0
    var forwarded = 0
    var next = 0
    let start = now()
    let deadline = start + UInt64(o.seconds * 1e9)
    while o.packets.map({ forwarded < $0 }) ?? (now() < deadline) {
        let room = min(32, 8192 - (sent - forwarded), (o.packets ?? .max) - sent)
        for _ in 0..<max(0, room) {
            a.receive(frames[next])
            next = next + 1 == frames.count ? 0 : next + 1
        }
        sent += max(0, room)
        round()
        forwarded += b.out.count
        b.out.removeAll(keepingCapacity: true)
        if !a.out.isEmpty { fail("the source forwarded \(a.out.count) packets of moved flows itself") }
        if a.notice("moveComplete") != nil { fail("the Move ended: \(a.notices)") }
    }
    return (forwarded, Double(now() - start) / 1e9)
}

let o = options()
if o.packets != nil {
    let r = run(o)
    print(
        "redirected \(r.packets) packets of \(o.size) bytes (\(o.flows) flows) in "
            + "\(String(format: "%.3f", r.seconds)) s; "
            + "\(carried) channel frames carried, both ways")
    exit(0)
}
print(
    "== a loss-free Move redirecting \(o.size)-byte packets of \(o.flows) flows, source and destination on one thread, "
        + "\(o.runs) runs of \(o.seconds) s")
var rates: [Double] = []
for i in 0..<o.runs {
    let r = run(o)
    rates.append(Double(r.packets) / r.seconds)
    print(String(format: "run %d: %.3f Mpps (%d packets in %.2f s)", i + 1, rates.last! / 1e6, r.packets, r.seconds))
}
rates.sort()
print(String(format: "median: %.3f Mpps redirected (both ends on one core)", rates[rates.count / 2] / 1e6))
