// dist-delayline: the test bed's data-link element. Bridges two interfaces frame by frame
// (AF_PACKET), holding each frame for a one-way delay and pacing at a rate, in order, per
// direction; optionally drops a share of the frames of one UDP port (the DiST channel's), to
// test the channel's recovery: that share exactly, evenly spread, from a start --seed picks.
// This kernel has no netem; this does what the test bed needs of it.
//
//   dist-delayline --a IFACE --b IFACE [--delay-ms 1] [--rate-mbit 100]
//                  [--drop-percent P --drop-udp-port PORT [--drop-from a|b|both]] [--seed N]
//
// --drop-from: drop only frames that came in on that side (default: both). On the test bed a
// frame from VNF to VNF crosses two lines, its sender's and its receiver's: each drops only what
// its own VNF sends, so every channel frame runs the chance once.
import DistLog
import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// Its lines, through swift-log (text: the message as it reads).
let log = Logger(label: "dist-delayline") { _ in LineLogHandler(format: .text, level: .info) }

func say(_ text: String) { log.info("\(text)") }

struct Failure: Error, CustomStringConvertible { var description: String }

struct Options {
    var a = "", b = ""
    var delay = 0.001
    var rate = 100e6 / 8  // bytes per second; 0: unlimited
    var dropPercent = 0.0
    var dropPort: UInt16?
    /// Which side's incoming frames may be dropped: "a", "b" or "both".
    var dropFrom = "both"
    var seed: UInt64 = 1

    static func parse(_ args: [String]) throws -> Options {
        var o = Options()
        var i = 0
        func value() throws -> String {
            i += 1
            guard i < args.count else { throw Failure(description: "\(args[i - 1]) needs a value") }
            return args[i]
        }
        func number(_ name: String) throws -> Double {
            let text = try value()
            guard let n = Double(text), n >= 0, n.isFinite else {
                throw Failure(description: "\(name): '\(text)' is not a number")
            }
            return n
        }
        while i < args.count {
            switch args[i] {
            case "--a": o.a = try value()
            case "--b": o.b = try value()
            case "--delay-ms": o.delay = try number("--delay-ms") / 1000
            case "--rate-mbit": o.rate = try number("--rate-mbit") * 1e6 / 8
            case "--drop-percent":
                o.dropPercent = try number("--drop-percent")
                guard o.dropPercent <= 100 else { throw Failure(description: "--drop-percent: at most 100") }
            case "--drop-udp-port":
                let text = try value()
                guard let p = UInt16(text) else {
                    throw Failure(description: "--drop-udp-port: '\(text)' is not a port")
                }
                o.dropPort = p
            case "--drop-from":
                let text = try value()
                guard ["a", "b", "both"].contains(text) else {
                    throw Failure(description: "--drop-from: expected a, b or both, got '\(text)'")
                }
                o.dropFrom = text
            case "--seed":
                let text = try value()
                guard let s = UInt64(text) else { throw Failure(description: "--seed: '\(text)' is not a number") }
                o.seed = max(1, s)
            case "-h", "--help":
                print(
                    "usage: dist-delayline --a IFACE --b IFACE [--delay-ms 1] [--rate-mbit 100] [--drop-percent P "
                        + "--drop-udp-port PORT [--drop-from a|b|both]] [--seed N]"
                )
                exit(0)
            default: throw Failure(description: "unknown option '\(args[i])'")
            }
            i += 1
        }
        guard !o.a.isEmpty, !o.b.isEmpty else { throw Failure(description: "--a and --b name the two interfaces") }
        if o.dropPercent > 0 && o.dropPort == nil { throw Failure(description: "--drop-percent needs --drop-udp-port") }
        return o
    }
}

/// Linux's `struct sockaddr_ll` (not imported by Glibc's module).
struct LinkAddress {
    var family: UInt16 = UInt16(AF_PACKET)
    var protocolNumber: UInt16 = 0
    var interfaceIndex: Int32 = 0
    var hardwareType: UInt16 = 0
    var packetType: UInt8 = 0
    var addressLength: UInt8 = 0
    var address: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0)
}

/// A raw socket on one interface, seeing every frame arriving there and none of its own.
func rawSocket(_ name: String) throws -> Int32 {
    let protocolAll = UInt16(0x0003).bigEndian  // ETH_P_ALL
    let fd = socket(AF_PACKET, Int32(SOCK_RAW.rawValue), Int32(protocolAll))
    guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno))) (root needed)") }
    let index = if_nametoindex(name)
    guard index != 0 else { throw Failure(description: "no interface '\(name)'") }
    var address = LinkAddress()
    address.protocolNumber = protocolAll
    address.interfaceIndex = Int32(index)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<LinkAddress>.size)) }
    }
    guard bound == 0 else { throw Failure(description: "bind \(name): \(String(cString: strerror(errno)))") }
    var one: Int32 = 1
    // PACKET_IGNORE_OUTGOING (23): frames we send are not read back.
    setsockopt(fd, SOL_PACKET, 23, &one, socklen_t(MemoryLayout<Int32>.size))
    // PACKET_AUXDATA (8): the kernel takes VLAN tags off before packet sockets see a frame and
    // reports them beside it; the reader puts them back, so tagged frames cross unchanged.
    setsockopt(fd, SOL_PACKET, 8, &one, socklen_t(MemoryLayout<Int32>.size))
    var size: Int32 = 8 << 20
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
    return fd
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// One direction: a reader thread queues frames with their arrival time; a writer thread sends
/// each when it is due and the link is free.
final class Direction: @unchecked Sendable {
    let from: Int32, to: Int32
    let options: Options
    let lock = NSCondition()
    var queue: [(due: Double, frame: [UInt8])] = []
    var head = 0
    /// The share of a frame owed to the drops (``shouldDrop(_:)``), in percent.
    var dropSum = 0.0
    var forwarded = 0, dropped = 0
    /// Frames the kernel refused to send even after retries (the far side's queue stayed full).
    var sendFailed = 0, sendRetries = 0

    /// Whether this direction drops (its share of the chosen port's frames) at all.
    let drops: Bool

    init(from: Int32, to: Int32, options: Options, seed: UInt64, drops: Bool) {
        self.from = from
        self.to = to
        self.options = options
        self.drops = drops
        // Where in the first 100 % the drops start: the seed, mixed (splitmix64's finalizer).
        var z = seed &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        dropSum = Double((z ^ (z >> 31)) % 1_000_000) / 10_000
    }

    /// Whether to drop this frame: a UDP datagram to or from the chosen port, its share. Each
    /// such frame adds the share to a sum that drops one every time it passes 100 %: the share
    /// exactly, spread evenly from a seeded start. So a short exchange (a Move's dozen channel
    /// frames) loses its share too, which chance would spare one time in three (0.9^12 at 10 %).
    func shouldDrop(_ f: [UInt8]) -> Bool {
        guard drops, let port = options.dropPort, options.dropPercent > 0, f.count >= 14 else { return false }
        var l3 = 14
        var type = UInt16(f[12]) << 8 | UInt16(f[13])
        if type == 0x8100, f.count >= 18 {
            type = UInt16(f[16]) << 8 | UInt16(f[17])
            l3 = 18
        }
        var l4 = 0
        if type == 0x0800, f.count >= l3 + 20, f[l3 + 9] == 17 {
            l4 = l3 + Int(f[l3] & 0x0F) * 4
        } else if type == 0x86DD, f.count >= l3 + 40, f[l3 + 6] == 17 {
            l4 = l3 + 40
        }
        guard l4 > 0, f.count >= l4 + 4 else { return false }
        let sport = UInt16(f[l4]) << 8 | UInt16(f[l4 + 1])
        let dport = UInt16(f[l4 + 2]) << 8 | UInt16(f[l4 + 3])
        guard sport == port || dport == port else { return false }
        dropSum += options.dropPercent
        guard dropSum >= 100 else { return false }
        dropSum -= 100
        return true
    }

    /// Receives one frame with its VLAN tag back in place (from PACKET_AUXDATA); nil on error.
    func receive(_ buffer: inout [UInt8], _ control: inout [UInt8]) -> [UInt8]? {
        while true {
            var n = 0
            var controlLength = 0
            buffer.withUnsafeMutableBytes { data in
                control.withUnsafeMutableBytes { ctl in
                    var iov = iovec(iov_base: data.baseAddress, iov_len: data.count)
                    withUnsafeMutablePointer(to: &iov) { iovp in
                        var msg = msghdr()
                        msg.msg_iov = iovp
                        msg.msg_iovlen = 1
                        msg.msg_control = ctl.baseAddress
                        msg.msg_controllen = ctl.count
                        n = recvmsg(from, &msg, 0)
                        controlLength = Int(msg.msg_controllen)
                    }
                }
            }
            if n < 0 { if errno == EINTR { continue } else { return nil } }
            var frame = Array(buffer[0..<n])
            // cmsghdr: len (8 bytes), level (4), type (4), then tpacket_auxdata: status, len,
            // snaplen (4 each), mac, net, vlan_tci, vlan_tpid (2 each).
            var at = 0
            while at + 16 <= controlLength {
                let length = control[at..<(at + 8)].withUnsafeBytes { $0.loadUnaligned(as: Int.self) }
                let level = control[(at + 8)..<(at + 12)].withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }
                let type = control[(at + 12)..<(at + 16)].withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }
                guard length >= 16, at + length <= controlLength else { break }
                if level == SOL_PACKET && type == 8 && length >= 16 + 20 && frame.count >= 12 {
                    let aux = Array(control[(at + 16)..<(at + 36)])
                    let status = aux[0..<4].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
                    let tci = aux[16..<18].withUnsafeBytes { $0.loadUnaligned(as: UInt16.self) }
                    let tpid = aux[18..<20].withUnsafeBytes { $0.loadUnaligned(as: UInt16.self) }
                    if status & 0x10 != 0 {  // TP_STATUS_VLAN_VALID
                        // TP_STATUS_VLAN_TPID_VALID, else 802.1Q's
                        let proto: UInt16 = status & 0x40 != 0 && tpid != 0 ? tpid : 0x8100
                        frame.insert(
                            contentsOf: [UInt8(proto >> 8), UInt8(proto & 0xFF), UInt8(tci >> 8), UInt8(tci & 0xFF)],
                            at: 12)
                    }
                }
                at += (length + 7) & ~7
            }
            return frame
        }
    }

    func read() {
        var buffer = [UInt8](repeating: 0, count: 65536)
        var control = [UInt8](repeating: 0, count: 256)
        while true {
            guard let frame = receive(&buffer, &control) else { return }
            if shouldDrop(frame) {
                dropped += 1
                continue
            }
            lock.lock()
            queue.append((now() + options.delay, frame))
            lock.signal()
            lock.unlock()
        }
    }

    func write() {
        var linkFree = 0.0
        while true {
            lock.lock()
            while head == queue.count { lock.wait() }
            let (due, frame) = queue[head]
            head += 1
            if head > 4096 && head * 2 > queue.count {
                queue.removeFirst(head)
                head = 0
            }
            lock.unlock()
            var t = max(due, linkFree)
            if options.rate > 0 {
                linkFree = t + Double(frame.count) / options.rate
                t = linkFree
            }
            let wait = t - now()
            if wait > 0 { usleep(useconds_t(wait * 1e6)) }
            // A full queue on the far side (ENOBUFS/EAGAIN) is waited out briefly, not ignored:
            // a frame the link accepted is never lost silently.
            var tries = 0
            var sent = true
            while frame.withUnsafeBytes({ send(to, $0.baseAddress, $0.count, 0) }) < 0 {
                let e = errno
                guard (e == ENOBUFS || e == EAGAIN || e == EINTR) && tries < 200 else {
                    sendFailed += 1
                    sent = false
                    break
                }
                tries += 1
                sendRetries += 1
                usleep(50)
            }
            if sent { forwarded += 1 }
        }
    }
}

nonisolated(unsafe) var stopping: sig_atomic_t = 0

do {
    let options = try Options.parse(Array(CommandLine.arguments.dropFirst()))
    let a = try rawSocket(options.a)
    let b = try rawSocket(options.b)
    let ab = Direction(from: a, to: b, options: options, seed: options.seed, drops: options.dropFrom != "b")
    let ba = Direction(from: b, to: a, options: options, seed: options.seed &* 31 &+ 7, drops: options.dropFrom != "a")
    for direction in [ab, ba] {
        Thread { direction.read() }.start()
        Thread { direction.write() }.start()
    }
    say(
        "dist-delayline: \(options.a) <-> \(options.b), \(options.delay * 1000) ms one way, "
            + (options.rate > 0 ? "\(options.rate * 8 / 1e6) Mbit/s" : "unlimited")
            + (options.dropPort.map {
                ", dropping \(options.dropPercent)% of UDP port \($0)"
                    + (options.dropFrom == "both" ? "" : " from \(options.dropFrom == "a" ? options.a : options.b)")
            } ?? ""))
    // On SIGINT/SIGTERM: say what went through each way, then exit.
    signal(SIGINT) { _ in stopping = 1 }
    signal(SIGTERM) { _ in stopping = 1 }
    while stopping == 0 { pause() }
    for (name, d) in [("\(options.a)->\(options.b)", ab), ("\(options.b)->\(options.a)", ba)] {
        say(
            "dist-delayline: \(name): forwarded \(d.forwarded) dropped-by-flag \(d.dropped) send-retries "
                + "\(d.sendRetries) send-failed \(d.sendFailed)"
        )
    }
    fflush(nil)
    exit(0)
} catch {
    log.error("dist-delayline: \(error)")
    exit(2)
}
