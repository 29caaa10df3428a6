import DistPipeline
import Testing

/// A port whose TX queue takes `room` packets per call (what it took, in order, per port).
final class FakeTXQueue {
    var room: Int
    var sent: [(port: UInt16, id: Int)] = []
    init(room: Int) { self.room = room }

    func send(_ port: UInt16, _ packets: UnsafeMutablePointer<OpaquePointer?>, _ count: Int) -> Int {
        let n = min(room, count)
        for i in 0..<n { sent.append((port, Int(bitPattern: UnsafeRawPointer(packets[i]!)))) }
        return n
    }
}

@Suite struct TransmitBacklogTests {
    /// Packets 1...n as opaque handles (never dereferenced).
    static func burst(_ ids: ClosedRange<Int>) -> UnsafeMutablePointer<OpaquePointer?> {
        let p = UnsafeMutablePointer<OpaquePointer?>.allocate(capacity: ids.count)
        for (i, id) in ids.enumerated() { p[i] = OpaquePointer(bitPattern: id) }
        return p
    }

    /// What a full queue does not take waits, and goes first, in order, once it has room,
    /// before packets sent later.
    @Test func whatAFullQueueLeavesGoesFirstInOrder() {
        let queue = FakeTXQueue(room: 10)
        let backlog = TransmitBacklog(capacity: 100)
        let first = Self.burst(1...32)
        let second = Self.burst(33...64)
        defer {
            first.deallocate()
            second.deallocate()
        }
        var r = backlog.send(first, count: 32, port: 0, queue.send)
        #expect(r.sent == 10 && r.dropped == 0 && backlog.count == 22)
        queue.room = 0
        r = backlog.send(second, count: 32, port: 0, queue.send)
        #expect(r.sent == 0 && r.dropped == 0 && backlog.count == 54)
        queue.room = 1000
        #expect(backlog.flush(queue.send) == 54)
        #expect(backlog.isEmpty && backlog.highWater == 54)
        #expect(queue.sent.map(\.id) == Array(1...64))
    }

    /// Each packet leaves by the port it was sent to, runs of one port in one call, across
    /// the ring's end.
    @Test func portsAndTheRingsEndKeepTheirOrder() {
        let queue = FakeTXQueue(room: 0)
        let backlog = TransmitBacklog(capacity: 16)
        let a = Self.burst(1...12)
        let b = Self.burst(13...20)
        defer {
            a.deallocate()
            b.deallocate()
        }
        _ = backlog.send(a, count: 12, port: 1, queue.send)
        queue.room = 10
        _ = backlog.flush(queue.send)
        queue.room = 0
        _ = backlog.send(b, count: 8, port: 2, queue.send)
        #expect(backlog.count == 10)
        queue.room = 3
        while !backlog.isEmpty { backlog.flush(queue.send) }
        #expect(queue.sent.map(\.id) == Array(1...20))
        #expect(queue.sent.map(\.port) == Array(repeating: 1, count: 12) + Array(repeating: 2, count: 8))
    }

    /// Past its capacity the backlog keeps nothing more: the overflow is the burst's tail, for
    /// the caller to free and count.
    @Test func theOverflowIsTheBurstsTail() {
        let queue = FakeTXQueue(room: 0)
        let backlog = TransmitBacklog(capacity: 20)
        let p = Self.burst(1...32)
        defer { p.deallocate() }
        let r = backlog.send(p, count: 32, port: 0, queue.send)
        #expect(r.sent == 0 && r.dropped == 12 && backlog.count == 20)
        #expect((20..<32).map { Int(bitPattern: UnsafeRawPointer(p[$0]!)) } == Array(21...32))
        queue.room = 100
        backlog.flush(queue.send)
        #expect(queue.sent.map(\.id) == Array(1...20))
    }
}
