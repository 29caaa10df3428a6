import CDPDKShim
import DistDataPlane
import DistLog
import DistPacket
import DistPipeline
import Foundation
import Logging

// dist-wire: the DPDK test bed's traffic ends. `replay` sends a capture's frames out of a DPDK
// port at a set rate, paced by the TSC (sleeping between due frames, so it shares a CPU);
// `record` writes what each DPDK port receives to a pcap of its own, with nanosecond times
// from one clock, until SIGINT (SIGUSR2 flushes the files). On the test bed both ends are
// net_virtio_user ports on Open vSwitch's vhost-user ports: no kernel in the data path.
#if canImport(Glibc)
    import Glibc
#endif

let usage = """
    usage: dist-wire <EAL options> -- replay --pcap FILE --pps N [--loop K]
           dist-wire <EAL options> -- record --out FILE[,FILE...]
           dist-wire <EAL options> -- generate --pps N --seconds S [--flows F] [--spoofed M]
                                               [--spoof-every K] [--size BYTES]
      replay  sends FILE's frames out of port 0 at N frames a second (K times over), then
              says how many went and how long it took
      record  writes what port i receives to the i-th FILE (pcap, nanosecond times) until
              SIGINT or SIGTERM; SIGUSR2 flushes the files
      generate  sends a soak's traffic out of port 0 at N frames a second for S seconds: F UDP
              flows in turn (default 1,000,000) and, every K-th frame (default 4), an IPv6 SYN
              from one of M source addresses in turn (default 0)
    """

/// Its lines, through swift-log (text: the message as it reads).
let log = Logger(label: "dist-wire") { _ in LineLogHandler(format: .text, level: .info) }

func say(_ text: String) { log.info("\(text)") }

func fail(_ message: String, code: Int32 = 1) -> Never {
    log.error("dist-wire: \(message)")
    exit(code)
}

var arguments = CommandLine.arguments
guard let split = arguments.firstIndex(of: "--") else {
    fail("no '--' between EAL options and the command\n" + usage, code: 2)
}
let ealArguments = Array(arguments[..<split])
var rest = Array(arguments[(split + 1)...])
guard let command = rest.first, ["replay", "record", "generate"].contains(command) else { fail(usage, code: 2) }
rest.removeFirst()
var options: [String: String] = [:]
while let name = rest.first {
    let known = ["--pcap", "--pps", "--loop", "--out", "--seconds", "--flows", "--spoofed", "--spoof-every", "--size"]
    guard name.hasPrefix("--"), rest.count >= 2, known.contains(name) else {
        fail("bad argument '\(name)'\n" + usage, code: 2)
    }
    options[name] = rest[1]
    rest.removeFirst(2)
}

do {
    _ = try EAL.initialize(arguments: ealArguments)
} catch {
    fail("\(error)")
}
let clock = Clock()
let ports = (0..<Port.count).map { try? Port(id: $0) }.compactMap { $0 }
guard !ports.isEmpty else { fail("no DPDK port (give --vdev)") }
let pool: PacketPool
do {
    // The recorder's rings hold 4,096 frames each: it sleeps whenever they are empty (below),
    // and a destination that releases what it held sends thousands within a millisecond.
    let rxd: UInt16 = command == "record" ? 4096 : 1024
    pool = try PacketPool(
        name: "wire", count: max(4095, UInt32(ports.count) * UInt32(rxd) + 1023), dataRoom: 10240 + 128,
        socket: ports[0].socket)
    for var port in ports { try port.start(queues: 1, rxDescriptors: rxd, txDescriptors: 1024, pool: pool) }
} catch {
    fail("\(error)")
}

/// Waits up to 10 s for every port's link (a vhost-user peer connects).
func waitForLinks() {
    let deadline = clock.now() + 10_000_000_000
    while ports.contains(where: { dist_port_link_up($0.id) != 1 }) {
        if clock.now() > deadline {
            fail("link down after 10 s on \(ports.filter { dist_port_link_up($0.id) != 1 }.map(\.name))")
        }
        usleep(10_000)
    }
}

// MARK: - replay

/// Sends the `count` frames of `burst` out of port 0, waiting while its ring is full: frames are
/// never dropped here. Returns how many times it waited.
func transmitAll(_ burst: UnsafeMutablePointer<OpaquePointer?>, _ count: Int) -> Int {
    var out = 0
    var waits = 0
    while out < count {
        let k = Int(dist_tx_burst(ports[0].id, 0, burst + out, UInt16(count - out)))
        out += k
        if k == 0 {
            waits += 1
            usleep(10)
        }
    }
    return waits
}

func replay() {
    guard let path = options["--pcap"], let pps = options["--pps"].flatMap(Double.init), pps > 0 else {
        fail("replay needs --pcap FILE and --pps N\n" + usage, code: 2)
    }
    let loops = Int(options["--loop"] ?? "1") ?? 0
    guard loops >= 1 else { fail("--loop must be 1 or more", code: 2) }
    let frames: [PcapFile.Frame]
    do {
        frames = try PcapFile(bytes: [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))).frames
    } catch {
        fail("\(path): \(error)")
    }
    waitForLinks()
    let total = frames.count * loops
    // (Callers time what they do during the replay from this line.)
    say("dist-wire: sending \(total) frames at \(Int(pps)) pps")
    fflush(stdout)
    let interval = 1e9 / pps
    let burst = UnsafeMutablePointer<OpaquePointer?>.allocate(capacity: 32)
    var sent = 0
    var retries = 0
    var noMbuf = 0
    let start = clock.now()
    var lastSent = start
    while sent < total {
        // Frames due by now (the i-th at start + i / pps), at most a burst at a time.
        let due = min(total, Int(Double(clock.now() - start) / interval) + 1)
        if due <= sent {
            // Sleeps, however short the wait, and sends what fell due meanwhile as one burst: a
            // replayer that spun would keep the CPU from the processes it shares it with (a
            // VNF's worker kept off its CPU for a scheduler's slice delays what it forwards by
            // milliseconds). The rate holds; frames come in bursts of a sleep's length.
            let wait = Double(sent) * interval - Double(clock.now() - start)
            usleep(UInt32(max(1, min(wait, 1_000_000_000) / 1000)))
            continue
        }
        let n = min(32, due - sent)
        var made = 0
        for i in 0..<n {
            let bytes = frames[(sent + i) % frames.count].bytes
            guard
                let m = bytes.withUnsafeBufferPointer({
                    dist_mbuf_from_bytes(pool.pointer, $0.baseAddress, UInt32($0.count))
                })
            else {
                noMbuf += 1
                break
            }
            burst[made] = m
            made += 1
        }
        retries += transmitAll(burst, made)
        sent += made
        if made > 0 {
            lastSent = clock.now()
        } else if clock.now() - lastSent > 2_000_000_000 {
            fail("no mbuf for 2 s after \(sent) frames: the pool is too small for the port's rings")
        }
    }
    let seconds = Double(clock.now() - start) / 1e9
    usleep(100_000)  // (the switch takes the last frames off the ring)
    say(
        "dist-wire: sent \(sent) frames in \(String(format: "%.3f", seconds)) s "
            + "(\(Int(Double(sent) / max(seconds, 1e-9))) pps; "
            + "ring full \(retries) times, no mbuf \(noMbuf) times)")
}

// MARK: - record

/// Set by SIGUSR2 (flush) and SIGINT/SIGTERM (stop).
var flushRequested: sig_atomic_t = 0
var stopRequested: sig_atomic_t = 0

func record() {
    guard let outs = options["--out"]?.split(separator: ",").map(String.init), outs.count == ports.count else {
        fail("record needs --out with one file per port (\(ports.count))\n" + usage, code: 2)
    }
    let files: [UnsafeMutablePointer<FILE>] = outs.map { path in
        guard let f = fopen(path, "w") else { fail("\(path): \(String(cString: strerror(errno)))") }
        // pcap, nanosecond times, Ethernet.
        var header: [UInt32] = [0xA1B2_3C4D, 2 | 4 << 16, 0, 0, 65535, 1]
        fwrite(&header, 4, 6, f)
        return f
    }
    signal(SIGUSR2) { _ in flushRequested = 1 }
    signal(SIGINT) { _ in stopRequested = 1 }
    signal(SIGTERM) { _ in stopRequested = 1 }
    say("dist-wire: recording \(ports.count) port(s)")
    fflush(stdout)
    let burst = UnsafeMutablePointer<OpaquePointer?>.allocate(capacity: 32)
    let scratch = UnsafeMutablePointer<UInt8>.allocate(capacity: 65536)
    // Empty rings: a 300 us sleep at once. The recorder is real-time on the VNFs' CPU: each
    // wake-up takes that CPU from them, and waking every 50 us after 32 empty polls took 36%
    // of it at 50,000 pps (a 100,000-flow Move's window). 300 us is 15 frames a port at
    // 50,000 pps, 60 at 200,000; a release's burst of a few thousand fits the rings' 4,096.
    var idle = IdleBackoff(yield: false, sleepNanoseconds: 300_000, rounds: 1)
    var counts = [Int](repeating: 0, count: ports.count)
    while stopRequested == 0 {
        var busy = false
        for (i, port) in ports.enumerated() {
            let n = Int(dist_rx_burst(port.id, 0, burst, 32))
            guard n > 0 else { continue }
            busy = true
            let now = clock.now()
            var record: [UInt32] = [UInt32(now / 1_000_000_000), UInt32(now % 1_000_000_000), 0, 0]
            for j in 0..<n {
                let length = dist_mbuf_copy(burst[j], scratch, 65536)
                record[2] = length
                record[3] = length
                fwrite(&record, 4, 4, files[i])
                fwrite(scratch, 1, Int(length), files[i])
                dist_mbuf_free(burst[j])
            }
            counts[i] += n
        }
        if flushRequested != 0 {
            flushRequested = 0
            for f in files { fflush(f) }
        }
        idle.pause(busy: busy)
    }
    for f in files { fclose(f) }
    say("dist-wire: recorded \(counts.map(String.init).joined(separator: ", ")) frames")
}

switch command {
case "replay": replay()
case "generate": generate(options)
default: record()
}
for port in ports {
    port.stop()
    port.close()
}
EAL.cleanup()
