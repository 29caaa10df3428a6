import DistDataPlane
import DistPRADS
import Foundation

/// The main lcore's side of detection: the asset log file and the merged view of all workers'
/// assets, fed with the records the workers queue. Used from the main thread only.
final class AssetCollector: @unchecked Sendable {
    let view = AssetView()
    var log: AssetLog?
    let name: String

    init(logPath: String?, name: String) throws {
        self.name = name
        guard let path = logPath else { return }
        do {
            log = try AssetLog(path: path)
        } catch {
            throw Options.Failure(description: "--asset-log: cannot write \(path)")
        }
        if let failure = log?.failure { throw Options.Failure(description: "--asset-log: \(path): \(failure)") }
    }

    func collect(from plane: DataPlane) {
        var lines: [String] = []
        plane.drainRecords { record in
            if view.add(record) && log != nil { lines.append(record.description) }
        }
        guard let log, !lines.isEmpty else { return }
        let stopped = log.failure != nil
        if !log.write(lines, records: lines.count) && !stopped {
            emit(
                "[\(name)] asset log \(log.path) stopped: \(log.failure ?? "write failed"); records stay in the admin "
                    + "socket's view",
                to: 2)
        }
    }

    /// After logrotate moved the log away (SIGHUP): records go to a new file at its path.
    func reopen() {
        guard let log else { return }
        do {
            try log.reopen()
            emit("[\(name)] asset log \(log.path) reopened")
        } catch {
            emit("[\(name)] asset log \(log.path) not reopened (\(error)); writing where it did", to: 2)
        }
    }

    func close() {
        if let log, log.lost > 0 {
            emit("[\(name)] asset log: \(log.lost) records not written (\(log.failure ?? ""))", to: 2)
        }
        log?.close()
        log = nil
    }
}
