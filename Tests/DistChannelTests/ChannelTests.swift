import Crypto
import DistChannel
import Foundation
import Testing

var key: SymmetricKey { SymmetricKey(data: [UInt8](repeating: 7, count: 32)) }

@Suite struct ChannelFrameTests {
    @Test func aFrameRoundTripsAndItsTagCoversEveryByte() throws {
        let f = ChannelFrame(kind: .state, moveID: 0x0102_0304_0506_0708, sequence: 9, ack: 4, sack: 0b101, payload: Array(0..<200))
        let bytes = f.encoded(key: key)
        #expect(bytes.count == ChannelFrame.overhead + 200)
        #expect(try ChannelFrame.decode(bytes, key: key) == f)
        for i in stride(from: 0, to: bytes.count, by: 7) {
            var bad = bytes
            bad[i] ^= 0x10
            #expect(throws: ChannelFrame.DecodeError.self) { try ChannelFrame.decode(bad, key: key) }
        }
        #expect(throws: ChannelFrame.DecodeError.badTag) {
            try ChannelFrame.decode(bytes, key: SymmetricKey(data: [UInt8](repeating: 8, count: 32)))
        }
        #expect(throws: ChannelFrame.DecodeError.truncated(10)) { try ChannelFrame.decode(Array(bytes.prefix(10)), key: key) }
        #expect(throws: ChannelFrame.DecodeError.self) { try ChannelFrame.decode(Array(bytes.dropLast()), key: key) }
    }

    @Test func theKeyFileMustBePrivateAndLongEnough() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dist-key-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("key").path
        FileManager.default.createFile(atPath: path, contents: Data(repeating: 1, count: 32), attributes: [.posixPermissions: 0o644])
        #expect(throws: ChannelKey.Problem.self) { try ChannelKey.load(path: path) }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        _ = try ChannelKey.load(path: path)
        FileManager.default.createFile(atPath: path, contents: Data(repeating: 1, count: 16), attributes: [.posixPermissions: 0o600])
        #expect(throws: ChannelKey.Problem.self) { try ChannelKey.load(path: path) }
        #expect(throws: ChannelKey.Problem.self) { try ChannelKey.load(path: dir.appendingPathComponent("none").path) }
    }
}

/// A link with loss, duplication, reordering and corruption, driven by a seeded generator.
struct Link {
    var drop = 0.0, duplicate = 0.0, reorder = 0.0, corrupt = 0.0
    var delay: UInt64 = 500_000
    var alive = true
    var state: UInt64
    var inTransit: [(at: UInt64, bytes: [UInt8])] = []

    init(seed: UInt64) { state = seed | 1 }

    mutating func random() -> Double {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return Double(state % 1_000_000) / 1_000_000
    }

    mutating func carry(_ frames: [[UInt8]], now: UInt64) {
        for var f in frames where alive {
            if random() < drop { continue }
            if random() < corrupt { f[Int(random() * Double(f.count))] ^= 0x5A }
            let extra = random() < reorder ? UInt64(random() * 3_000_000) : 0
            inTransit.append((now + delay + extra, f))
            if random() < duplicate { inTransit.append((now + delay + UInt64(random() * 2_000_000), f)) }
        }
    }

    mutating func due(_ now: UInt64) -> [[UInt8]] {
        let out = inTransit.filter { $0.at <= now }.sorted { $0.at < $1.at }.map { $0.bytes }
        inTransit.removeAll { $0.at <= now }
        return out
    }
}

@Suite struct ChannelEndpointTests {
    /// Runs a move's messages from a to b over the links until both ends are idle, one gives
    /// up, or `limit` ns pass. Returns what b delivered, in order.
    static func run(_ messages: [[UInt8]], ab: inout Link, ba: inout Link, limit: UInt64 = 30_000_000_000,
                    a: ChannelEndpoint, b: ChannelEndpoint) -> [[UInt8]] {
        for m in messages { a.send(.state, m) }
        var delivered: [[UInt8]] = []
        var now: UInt64 = 0
        while now < limit {
            ab.carry(a.poll(now: now), now: now)
            ba.carry(b.poll(now: now), now: now)
            for f in ab.due(now) { delivered += b.receive(f, now: now).map { $0.payload } }
            for f in ba.due(now) { _ = a.receive(f, now: now) }
            if a.idle && ab.inTransit.isEmpty { break }
            if a.state != .open || b.state != .open { break }
            now += 100_000
        }
        return delivered
    }

    static func messages(_ n: Int, seed: UInt64) -> [[UInt8]] {
        var link = Link(seed: seed)
        return (0..<n).map { i in
            let size = 1 + Int(link.random() * 1400)
            return [UInt8(i & 0xFF), UInt8(i >> 8 & 0xFF)] + [UInt8](repeating: UInt8(i % 251), count: size)
        }
    }

    @Test(arguments: [
        (0.0, 0.0, 0.0, 0.0), (0.1, 0.0, 0.0, 0.0), (0.0, 0.2, 0.0, 0.0), (0.0, 0.0, 0.3, 0.0), (0.0, 0.0, 0.0, 0.1),
        (0.1, 0.1, 0.2, 0.05), (0.3, 0.05, 0.1, 0.05),
    ])
    func everythingArrivesOnceInOrder(drop: Double, duplicate: Double, reorder: Double, corrupt: Double) {
        for seed in [UInt64(1), 99, 12345] {
            var ab = Link(seed: seed), ba = Link(seed: seed &* 7)
            (ab.drop, ab.duplicate, ab.reorder, ab.corrupt) = (drop, duplicate, reorder, corrupt)
            (ba.drop, ba.duplicate, ba.reorder, ba.corrupt) = (drop, duplicate, reorder, corrupt)
            let a = ChannelEndpoint(moveID: 5, key: key), b = ChannelEndpoint(moveID: 5, key: key)
            let sent = Self.messages(2000, seed: seed)
            let got = Self.run(sent, ab: &ab, ba: &ba, a: a, b: b)
            #expect(a.state == .open && b.state == .open)
            #expect(got == sent, "drop \(drop) dup \(duplicate) reorder \(reorder) corrupt \(corrupt) seed \(seed)")
            #expect(a.idle)
            if drop > 0 { #expect(a.counters.retransmissions > 0) }
            if corrupt > 0 { #expect(b.counters.rejected + a.counters.rejected > 0) }
            if duplicate > 0 { #expect(b.counters.duplicates > 0) }
        }
    }

    @Test func aDeadLinkAbortsWithAReason() {
        var ab = Link(seed: 3), ba = Link(seed: 4)
        ab.alive = false
        let a = ChannelEndpoint(moveID: 1, key: key), b = ChannelEndpoint(moveID: 1, key: key)
        let got = Self.run(Self.messages(50, seed: 3), ab: &ab, ba: &ba, a: a, b: b)
        #expect(got.isEmpty)
        guard case .aborted(let why) = a.state else { Issue.record("not aborted"); return }
        #expect(why.contains("retransmissions"))
    }

    @Test func replayedAndForeignFramesAreCountedNotDelivered() {
        let a = ChannelEndpoint(moveID: 1, key: key), b = ChannelEndpoint(moveID: 1, key: key)
        a.send(.packet, [1, 2, 3])
        let frames = a.poll(now: 0)
        #expect(b.receive(frames[0], now: 1).map { $0.payload } == [[1, 2, 3]])
        #expect(b.receive(frames[0], now: 2).isEmpty)
        #expect(b.counters.duplicates == 1)
        let other = ChannelEndpoint(moveID: 2, key: key)
        other.send(.packet, [9])
        #expect(b.receive(other.poll(now: 0)[0], now: 3).isEmpty)
        #expect(b.counters.foreign == 1)
        let stranger = ChannelEndpoint(moveID: 1, key: SymmetricKey(data: [UInt8](repeating: 1, count: 32)))
        stranger.send(.packet, [9])
        #expect(b.receive(stranger.poll(now: 0)[0], now: 4).isEmpty)
        #expect(b.counters.rejected == 1 && b.counters.delivered == 1)
    }

    @Test func theWindowBoundsWhatIsInFlight() {
        var config = ChannelEndpoint.Config()
        config.window = 8
        let a = ChannelEndpoint(moveID: 1, key: key, config: config)
        for i in 0..<20 { a.send(.state, [UInt8(i)]) }
        #expect(a.poll(now: 0).count == 8)
        #expect(a.poll(now: 1).isEmpty && a.unacknowledged == 8)
    }

    @Test func anAbortReachesThePeer() {
        let a = ChannelEndpoint(moveID: 1, key: key), b = ChannelEndpoint(moveID: 1, key: key)
        let frame = a.abort("state table full", now: 0)
        _ = b.receive(frame, now: 1)
        #expect(b.state == .aborted("the peer gave up: state table full"))
        // Even when what came before it never arrived.
        let c = ChannelEndpoint(moveID: 2, key: key), d = ChannelEndpoint(moveID: 2, key: key)
        for i in 0..<5 { c.send(.state, [UInt8(i)]) }
        _ = c.poll(now: 0)  // lost on the way
        _ = d.receive(c.abort("the destination stopped answering", now: 1), now: 2)
        #expect(d.state == .aborted("the peer gave up: the destination stopped answering"))
    }
}
