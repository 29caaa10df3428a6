import CDPDKShim
import DistDataPlane
import DistLoopback
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `generate`: ``ChurnTraffic`` made packet by packet at a set rate, paced by the TSC as
/// `replay` is, for `--seconds` (or until SIGINT), out of port 0. Says every 10 s how many went.
func generate(_ options: [String: String]) {
    func number(_ name: String, _ fallback: Int?) -> Int {
        guard let text = options[name] else {
            guard let fallback else { fail("generate needs \(name)\n" + usage, code: 2) }
            return fallback
        }
        guard let n = Int(text), n >= 0 else { fail("\(name): expected a whole number, got '\(text)'", code: 2) }
        return n
    }
    let pps = number("--pps", nil)
    let seconds = number("--seconds", nil)
    let flows = number("--flows", 1_000_000)
    let spoofed = number("--spoofed", 0)
    let spoofEvery = number("--spoof-every", 4)
    let size = number("--size", 128)
    guard pps > 0, flows > 0, flows <= ChurnTraffic.maxFlows, spoofEvery > 0, (60...1514).contains(size) else {
        fail(
            "generate: --pps and --flows (at most \(ChurnTraffic.maxFlows)) positive, --spoof-every positive, "
                + "--size 60 to 1514", code: 2)
    }
    let traffic = ChurnTraffic(flows: flows, spoofed: spoofed, spoofEvery: spoofEvery, size: size)
    waitForLinks()
    signal(SIGINT) { _ in stopRequested = 1 }
    signal(SIGTERM) { _ in stopRequested = 1 }
    say("dist-wire: generating \(pps) pps for \(seconds) s: \(flows) flows, \(spoofed) spoofed sources")
    fflush(stdout)
    let interval = 1e9 / Double(pps)
    let burst = UnsafeMutablePointer<OpaquePointer?>.allocate(capacity: 32)
    let scratch = UnsafeMutableRawPointer.allocate(byteCount: 2048, alignment: 64)
    var sent: UInt64 = 0
    var waits = 0
    let start = clock.now()
    let end = start + UInt64(seconds) * 1_000_000_000
    var nextReport = start + 10_000_000_000
    while stopRequested == 0 {
        let now = clock.now()
        if now >= end { break }
        if now >= nextReport {
            say("dist-wire: \(sent) sent after \((now - start) / 1_000_000_000) s")
            fflush(stdout)
            nextReport += 10_000_000_000
        }
        let due = UInt64(Double(now - start) / interval) + 1
        if due <= sent {
            usleep(UInt32(max(1, (Double(sent) * interval - Double(now - start)) / 1000)))
            continue
        }
        let n = Int(min(32, due - sent))
        var made = 0
        for i in 0..<n {
            let length = traffic.write(sent + UInt64(i), to: scratch)
            guard
                let m = dist_mbuf_from_bytes(
                    pool.pointer, scratch.assumingMemoryBound(to: UInt8.self), UInt32(length))
            else { break }
            burst[made] = m
            made += 1
        }
        waits += transmitAll(burst, made)
        sent += UInt64(made)
    }
    let elapsed = Double(clock.now() - start) / 1e9
    say(
        "dist-wire: generated \(sent) frames in \(String(format: "%.1f", elapsed)) s "
            + "(\(Int(Double(sent) / max(elapsed, 1e-9))) pps; ring full \(waits) times)")
}
