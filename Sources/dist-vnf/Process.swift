import DistDataPlane
import DistLog
import DistPRADS
import DistPipeline
import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The process's logger (swift-log onto ``LineLogHandler``: `--log-format`, `--log-level`), set
/// up once the options are read; before that, lines are written as they are. Only the main
/// lcore's thread logs: the workers and the transfer lcore count, and the main lcore reports.
nonisolated(unsafe) var logger: Logger?

/// One event: information, or (`to: 2`) a warning; `metadata` goes with it where the format
/// writes metadata (logfmt, JSON).
func emit(_ text: String, to fd: Int32 = 1, _ metadata: Logger.Metadata? = nil) {
    guard let logger else { return LineLogHandler.write(text, fd == 2) }
    logger.log(level: fd == 2 ? .warning : .info, "\(text)", metadata: metadata)
}

func fail(_ message: String, code: Int32) -> Never {
    if let logger {
        logger.error("dist-vnf: \(message)")
    } else {
        LineLogHandler.write("dist-vnf: \(message)", true)
    }
    exit(code)
}

/// Logs from now on in `format`, at `level` and above, every line with this instance's id.
func startLogging(format: LogFormat, level: Logger.Level, id: String) {
    LoggingSystem.bootstrap { _ in LineLogHandler(format: format, level: level) }
    var log = Logger(label: "dist-vnf")
    log[metadataKey: "vnf"] = "\(id)"
    logger = log
}

/// Runs `body` with standard output and error going to a file (EAL's output while it starts:
/// a failure becomes one line); returns what they got.
func withCapturedOutput<T>(_ body: () throws -> T) rethrows -> (T, String) {
    var template = Array("/tmp/dist-vnf-eal.XXXXXX".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
    guard fd >= 0 else { return (try body(), "") }
    let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    unlink(path)
    fflush(nil)
    let savedOut = dup(1)
    let savedErr = dup(2)
    dup2(fd, 1)
    dup2(fd, 2)
    defer {
        fflush(nil)
        dup2(savedOut, 1)
        dup2(savedErr, 2)
        close(savedOut)
        close(savedErr)
    }
    let result = try body()
    fflush(nil)
    lseek(fd, 0, SEEK_SET)
    var captured = Data()
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fd, &buffer, buffer.count)
        if n <= 0 { break }
        captured.append(contentsOf: buffer[0..<n])
    }
    close(fd)
    return (result, String(decoding: captured, as: UTF8.self))
}

/// The line of EAL's output that says what was wrong, without its usage text.
func ealReason(_ output: String) -> String? {
    let lines = output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
    let telling = ["invalid", "unrecognized", "requires an argument", "cannot", "error", "failed", "not "]
    return lines.first { line in
        let lower = line.lowercased()
        return telling.contains { lower.contains($0) } && !lower.hasPrefix("usage")
    }
}

/// The statistics line: totals, the rate since the last line, and per worker the handoff.
func summary(_ s: WorkerStats, elapsed: Double, previous: WorkerStats?, workers: [WorkerStats]) -> String {
    let rate = previous.map { Double(s.rxPackets &- $0.rxPackets) / max(elapsed, 1e-9) } ?? 0
    var line = String(
        format:
            "rx %llu tx %llu tx_dropped %llu rx-pps %.0f flows %llu created %llu expired %llu table_full %llu "
            + "parse_issues %llu assets %llu records %llu",
        s.rxPackets, s.txPackets, s.txDropped, rate, s.activeFlows, s.flows.created, s.flows.expired,
        s.flows.tableFull, s.framesWithIssues, s.assets, s.assetRecords)
    if s.redirected > 0 || s.delivered > 0 || s.transferDropped > 0 {
        // A Move's packets: sent to the transfer lcore here, handed back by it to process, and
        // dropped because the transfer lcore's ring was full.
        line += " redirected \(s.redirected) delivered \(s.delivered) ring_full \(s.transferDropped)"
    }
    if let previous, s.transferBusyNanoseconds != previous.transferBusyNanoseconds {
        // The transfer lcore's load: the share of the time since the last line in rounds that did work.
        let busy = Double(s.transferBusyNanoseconds &- previous.transferBusyNanoseconds) / 1e9
        line += String(format: " transfer_busy %.0f%%", 100 * busy / max(elapsed, 1e-9))
    }
    if workers.count > 1 {
        // Per worker: handed off to other workers / received from them / dropped at a full ring.
        line +=
            " handoff "
            + workers.enumerated().map {
                "w\($0.offset) \($0.element.handedOff)/\($0.element.handoffReceived)/\($0.element.handoffRingFull)"
            }
            .joined(separator: " ")
    }
    return line
}
