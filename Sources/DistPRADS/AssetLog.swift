import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The asset log file (PRADS's format: a header, then one record per line). A write that fails
/// (a full disk, a file system gone read-only) does not stop the VNF: the log stops, says why
/// once (``failure``), and counts the records it could not write; the records stay in the
/// merged view the admin socket serves.
public final class AssetLog {
    let fd: Int32
    public let path: String
    /// Why the log stopped, once it has.
    public private(set) var failure: String?
    /// Records not written since it stopped.
    public private(set) var lost = 0

    /// Opens `path` for writing, created or emptied, and writes the header. (Opened in place,
    /// not replaced by a new file: a device, a pipe or a link stays what it is.)
    public init(path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw CocoaError(
                .fileWriteNoPermission,
                userInfo: [
                    NSFilePathErrorKey: path,
                    NSLocalizedDescriptionKey: String(cString: strerror(errno)),
                ])
        }
        self.fd = fd
        self.path = path
        _ = write([AssetRecord.header], records: 0)
    }

    /// Appends `lines` (each `records` counts how many records they hold). False once the log
    /// has stopped.
    @discardableResult
    public func write(_ lines: [String], records: Int) -> Bool {
        guard failure == nil else {
            lost += records
            return false
        }
        let bytes = Array((lines.joined(separator: "\n") + "\n").utf8)
        var at = 0
        while at < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + at, $0.count - at) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                failure = n < 0 ? String(cString: strerror(errno)) : "nothing written"
                lost += records
                return false
            }
            at += n
        }
        return true
    }

    public func close() {
        Glibc.close(fd)
    }
}
