import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The asset log file (PRADS's format: a header, then one record per line). A write that fails
/// (a full disk, a file system gone read-only) does not stop the VNF: the log stops, says why
/// once (``failure``), and counts the records it could not write; the records stay in the
/// merged view the admin socket serves. The file is appended to, so a restart keeps what an
/// earlier run logged, and ``reopen()`` (dist-vnf: on SIGHUP) starts on a new file after
/// logrotate moved the old one away.
public final class AssetLog {
    var fd: Int32
    public let path: String
    /// Why the log stopped, once it has.
    public private(set) var failure: String?
    /// Records not written since it stopped.
    public private(set) var lost = 0

    /// Opens `path` for appending, created if need be; a new or empty file gets the header.
    /// (Opened in place, not replaced by a new file: a device, a pipe or a link stays what it is.)
    public init(path: String) throws {
        self.path = path
        fd = try Self.open(path)
        writeHeaderIfEmpty()
    }

    static func open(_ path: String) throws -> Int32 {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw CocoaError(
                .fileWriteNoPermission,
                userInfo: [
                    NSFilePathErrorKey: path,
                    NSLocalizedDescriptionKey: String(cString: strerror(errno)),
                ])
        }
        return fd
    }

    /// The header, at the top of a file that has nothing yet (a pipe or a device always gets it).
    func writeHeaderIfEmpty() {
        var st = stat()
        if fstat(fd, &st) != 0 || (st.st_mode & S_IFMT) != S_IFREG || st.st_size == 0 {
            _ = write([AssetRecord.header], records: 0)
        }
    }

    /// Closes the file and opens `path` again: after logrotate renamed it, records go to a new
    /// file. A log that had stopped starts again (its `lost` count stays). Throws, and keeps
    /// writing where it did, when `path` cannot be opened.
    public func reopen() throws {
        let new = try Self.open(path)
        Glibc.close(fd)
        fd = new
        failure = nil
        writeHeaderIfEmpty()
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
