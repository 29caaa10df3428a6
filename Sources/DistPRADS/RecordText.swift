/// The text of an asset record, written as UTF-8 bytes into a buffer the detector reuses.
/// String's own appends and interpolations are generic calls of hundreds of instructions
/// each, and so is an `Array`'s append of a buffer: a record (an OS fingerprint's, about
/// thirty pieces) cost about 7,000 instructions built as a `String` and 4,500 in an array of
/// bytes, and on traffic with new hosts every SYN and SYN+ACK writes one.
package final class RecordText {
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    /// Bytes written so far.
    package private(set) var count = 0

    package init(capacity: Int = 256) {
        self.capacity = max(16, capacity)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    package func reset() { count = 0 }

    @inline(__always)
    package func put(_ byte: UInt8) {
        if count == capacity { grow(to: count + 1) }
        base[count] = byte
        count += 1
    }

    package func put(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        if count + bytes.count > capacity { grow(to: count + bytes.count) }
        (base + count).update(from: source, count: bytes.count)
        count += bytes.count
    }

    package func put(_ s: StaticString) { s.withUTF8Buffer { put($0) } }

    package func put(_ s: String) {
        var s = s
        s.withUTF8 { put($0) }
    }

    /// A decimal number, as `String(n)` writes it.
    package func put(_ n: Int) {
        if n < 0 { put(UInt8(ascii: "-")) }
        let m = n.magnitude
        var divisor: UInt = 1
        while m / divisor >= 10 { divisor &*= 10 }
        repeat {
            put(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: (m / divisor) % 10))
            divisor /= 10
        } while divisor > 0
    }

    package var string: String { String(decoding: UnsafeBufferPointer(start: base, count: count), as: UTF8.self) }

    private func grow(to needed: Int) {
        let bigger = max(needed, 2 * capacity)
        let grown = UnsafeMutablePointer<UInt8>.allocate(capacity: bigger)
        grown.moveInitialize(from: base, count: count)
        base.deallocate()
        base = grown
        capacity = bigger
    }
}
