/// The packets a worker's TX queue had no room for, in the order they were to go, sent before
/// anything the worker sends later. A port's TX queue holds about a thousand packets; a
/// Move's destination lets go of everything it held (thousands of packets) within
/// milliseconds, and a switch that drains the queue a little slower than the worker fills it
/// would otherwise make the worker drop what it has already processed. Bounded: past
/// `capacity` packets the overflow is dropped (counted by the caller), as a port would.
///
/// DPDK-free: the worker gives it the burst call and the free call of its port.
public final class TransmitBacklog {
    /// Sends up to `count` packets from the pointer on `port`; returns how many it took.
    public typealias Send = (_ port: UInt16, _ packets: UnsafeMutablePointer<OpaquePointer?>, _ count: Int) -> Int

    public let capacity: Int
    let packets: UnsafeMutablePointer<OpaquePointer?>
    let ports: UnsafeMutablePointer<UInt16>
    var head = 0
    public private(set) var count = 0
    /// The most packets that waited at once.
    public private(set) var highWater = 0

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
        packets = .allocate(capacity: self.capacity)
        ports = .allocate(capacity: self.capacity)
    }

    deinit {
        packets.deallocate()
        ports.deallocate()
    }

    public var isEmpty: Bool { count == 0 }

    /// Sends what waits, oldest first, as far as the queue takes it; returns how many went.
    /// What is left waits for the next call.
    @discardableResult
    public func flush(_ send: Send) -> Int {
        var sent = 0
        while count > 0 {
            // One call per run of one port that lies contiguous in the ring.
            let port = ports[head]
            var run = 1
            while run < count && head + run < capacity && ports[head + run] == port { run += 1 }
            let went = max(0, min(run, send(port, packets + head, run)))
            sent += went
            head = (head + went) % capacity
            count -= went
            if went < run { break }
        }
        if count == 0 { head = 0 }
        return sent
    }

    /// Sends `n` packets on `port` after what waits: tries the queue (when nothing waits) and
    /// keeps what it did not take. Returns how many went now and, of the rest, how many did
    /// not fit; those are left at the end of `burst` (from `n - dropped`) for the caller to free.
    public func send(
        _ burst: UnsafeMutablePointer<OpaquePointer?>, count n: Int, port: UInt16,
        _ send: Send
    ) -> (sent: Int, dropped: Int) {
        var sent = 0
        if count > 0 { sent += flush(send) }
        var first = 0
        if count == 0 && n > 0 {
            first = max(0, min(n, send(port, burst, n)))
            sent += first
        }
        var kept = first
        while kept < n && count < capacity {
            let slot = (head + count) % capacity
            packets[slot] = burst[kept]
            ports[slot] = port
            count += 1
            kept += 1
        }
        highWater = max(highWater, count)
        // Past the backlog's room: `burst[kept..<n]`, for the caller to drop.
        return (sent, n - kept)
    }
}
