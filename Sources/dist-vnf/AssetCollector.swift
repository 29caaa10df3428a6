import DistDataPlane
import DistPRADS
import Foundation

/// The main lcore's side of detection: the asset log file and the merged view of all workers'
/// assets, fed with the records the workers queue. Used from the main thread only.
final class AssetCollector: @unchecked Sendable {
    let view = AssetView()
    var log: FileHandle?

    init(logPath: String?) throws {
        guard let path = logPath else { return }
        guard FileManager.default.createFile(atPath: path, contents: Data((AssetRecord.header + "\n").utf8)),
              let handle = FileHandle(forWritingAtPath: path) else {
            throw Options.Failure(description: "--asset-log: cannot write \(path)")
        }
        handle.seekToEndOfFile()
        log = handle
    }

    func collect(from plane: DataPlane) {
        var lines = ""
        plane.drainRecords { record in
            if view.add(record) && log != nil { lines += record.description + "\n" }
        }
        if !lines.isEmpty { log?.write(Data(lines.utf8)) }
    }

    func close() {
        try? log?.close()
        log = nil
    }
}
