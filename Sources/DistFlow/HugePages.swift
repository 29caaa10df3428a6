#if canImport(Glibc)
    import Glibc
#endif

/// Memory for a large table that the fast path reads at random (a flow table's entries and
/// slots), on transparent huge pages where the kernel has them.
///
/// A worker looks up a different flow at almost every packet: on 4 kB pages each lookup is
/// likely to miss the TLB as well as the cache (a table of 65,536 flows spans about 2,600
/// pages; a core's second-level TLB holds 1,500 to 3,000). DPDK's hugepages hold the mbufs,
/// not memory Swift allocates, so the table asks the kernel itself: an anonymous mapping
/// aligned to 2 MB and `madvise(MADV_HUGEPAGE)`, which Debian's default THP setting
/// (`madvise`) honours. Where the kernel has none to give, the pages are ordinary ones and
/// nothing else changes.
public struct HugePages {
    /// The size of a transparent huge page on x86-64 and arm64 with 4 kB base pages.
    public static let size = 2 << 20
    /// Below this a table fits a few huge pages' worth of TLB reach anyway: ordinary memory.
    public static let threshold = 1 << 20

    public let base: UnsafeMutableRawPointer
    public let byteCount: Int
    /// Whether `base` is a mapping of its own (false: from the allocator).
    let mapped: Bool

    /// Uninitialised room for `byteCount` bytes, aligned to a cache-line pair at least (see
    /// ``CacheLines``); free it with ``deallocate()``.
    public init(byteCount: Int) {
        let bytes = max(1, byteCount)
        if bytes >= HugePages.threshold, let base = HugePages.map(bytes) {
            self.base = base
            self.byteCount = (bytes + HugePages.size - 1) & ~(HugePages.size - 1)
            mapped = true
        } else {
            base = UnsafeMutableRawPointer.allocate(
                byteCount: (bytes + CacheLines.size - 1) & ~(CacheLines.size - 1), alignment: CacheLines.size)
            self.byteCount = bytes
            mapped = false
        }
    }

    /// The room as `count` values of `type` (uninitialised).
    public func bind<T>(to type: T.Type, capacity count: Int) -> UnsafeMutablePointer<T> {
        precondition(count * MemoryLayout<T>.stride <= byteCount)
        return base.bindMemory(to: T.self, capacity: count)
    }

    public func deallocate() {
        if mapped {
            munmap(base, byteCount)
        } else {
            base.deallocate()
        }
    }

    /// Bytes of the room the kernel backs with huge pages now (`AnonHugePages` in
    /// `/proc/self/smaps`): for start-up lines and tests.
    public var hugeBytes: Int { mapped ? (smapsField("AnonHugePages") ?? 0) * 1024 : 0 }

    /// Whether the kernel may back the room with huge pages (`THPeligible` in smaps): false
    /// with THP off (`never`) or for ordinary memory.
    public var eligible: Bool { mapped && smapsField("THPeligible") == 1 }

    /// A field of the mapping's entry in `/proc/self/smaps` (kB for sizes), nil when absent.
    func smapsField(_ name: String) -> Int? {
        guard let file = fopen("/proc/self/smaps", "r") else { return nil }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&chunk, 1, chunk.count, file)
            if n <= 0 { break }
            bytes += chunk[..<n]
        }
        let start = UInt(bitPattern: base)
        var inside = false
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let first = fields.first else { continue }
            let range = first.split(separator: "-")
            if range.count == 2, let from = UInt(range[0], radix: 16), let to = UInt(range[1], radix: 16) {
                inside = from <= start && start < to
            } else if inside, first == "\(name):", fields.count > 1 {
                return Int(fields[1])
            }
        }
        return nil
    }

    /// An anonymous mapping of `bytes` (rounded up to huge pages) that starts on a huge page,
    /// advised to be backed by huge pages. Nil when the kernel refuses the mapping.
    static func map(_ bytes: Int) -> UnsafeMutableRawPointer? {
        let length = (bytes + size - 1) & ~(size - 1)
        // One huge page more, so that an aligned start lies inside; the rest is given back.
        guard let raw = mmap(nil, length + size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
            raw != MAP_FAILED
        else { return nil }
        let start = UInt(bitPattern: raw)
        let aligned = (start + UInt(size) - 1) & ~UInt(size - 1)
        let head = Int(aligned - start)
        if head > 0 { munmap(raw, head) }
        let tail = size - head
        let base = UnsafeMutableRawPointer(bitPattern: aligned)!
        if tail > 0 { munmap(base + length, tail) }
        _ = madvise(base, length, MADV_HUGEPAGE)
        return base
    }
}
