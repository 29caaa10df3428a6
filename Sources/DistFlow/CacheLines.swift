/// Memory a worker writes on its fast path, allocated apart from everything else.
///
/// Workers' structures are allocated one after the other on the main lcore, so `malloc` puts
/// them side by side: two workers' buffers could share a cache line, and every write by one
/// would take the line from the other's core. A large allocation also comes back 16 bytes past a
/// page's start, so 64- and 128-byte elements would each straddle one line more than their
/// size. These allocations start on a 128-byte boundary (two lines: some cores fetch lines in
/// pairs) and fill their last pair of lines, so that nothing else lies on them.
public enum CacheLines {
    /// The alignment and granularity of ``allocate(_:capacity:)``.
    public static let size = 128

    /// Uninitialised room for `capacity` values of `type`, on lines of its own; free it with
    /// `deallocate()`.
    @inlinable
    public static func allocate<T>(_ type: T.Type, capacity: Int) -> UnsafeMutablePointer<T> {
        let bytes = max(1, capacity) * MemoryLayout<T>.stride
        let rounded = (bytes + size - 1) & ~(size - 1)
        return UnsafeMutableRawPointer.allocate(
            byteCount: rounded, alignment: max(size, MemoryLayout<T>.alignment)
        ).bindMemory(to: T.self, capacity: capacity)
    }
}
