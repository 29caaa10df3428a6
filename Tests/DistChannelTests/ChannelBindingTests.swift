import Crypto
import DistChannel
import Testing

/// A channel's frames authenticate only for their own Move, direction and pair of instances:
/// recorded, reflected and replayed frames deliver nothing and are counted.
@Suite struct ChannelBindingTests {
    static let a: UInt64 = 0xC612_0001 << 16 | 7400, b: UInt64 = 0xC612_0002 << 16 | 7400,
        c: UInt64 = 0xC612_0003 << 16 | 7400

    /// A source (A to B) and its destination for Move 9 under `nonce`.
    static func pair(nonce: UInt64) -> (ChannelEndpoint, ChannelEndpoint) {
        let binding = ChannelFrame.Binding(nonce: nonce, sender: a, receiver: b)
        return (
            ChannelEndpoint(moveID: 9, key: key, binding: binding),
            ChannelEndpoint(moveID: 9, key: key, binding: binding.reversed)
        )
    }

    /// What A sends of three messages (nothing acknowledged).
    static func recorded(from source: ChannelEndpoint) -> [[UInt8]] {
        for i in 0..<3 { source.send(.state, [UInt8(i)]) }
        return source.poll(now: 1_000)
    }

    @Test func framesOfAnotherMoveWithTheSameIDDeliverNothing() {
        let (old, _) = Self.pair(nonce: 1)
        let recording = Self.recorded(from: old)
        #expect(recording.count == 3)
        let (_, fresh) = Self.pair(nonce: 2)
        for f in recording { #expect(fresh.receive(f, now: 2_000).isEmpty) }
        #expect(fresh.counters.foreign == 3)
        #expect(fresh.counters.delivered == 0 && fresh.poll(now: 3_000).isEmpty)
    }

    @Test func framesReflectedToTheirSenderOrReplayedToAThirdInstanceDeliverNothing() {
        let (source, destination) = Self.pair(nonce: 5)
        let frames = Self.recorded(from: source)
        for f in frames { #expect(source.receive(f, now: 2_000).isEmpty) }
        #expect(source.counters.rejected == 3 && source.counters.framesReceived == 0)
        let third = ChannelEndpoint(
            moveID: 9, key: key, binding: ChannelFrame.Binding(nonce: 5, sender: Self.c, receiver: Self.a))
        for f in frames { #expect(third.receive(f, now: 2_000).isEmpty) }
        #expect(third.counters.rejected == 3)
        // The right receiver takes them.
        #expect(frames.flatMap { destination.receive($0, now: 2_000) }.count == 3)
    }

    @Test func aRecordedAbortEndsNoOtherMove() {
        let (old, _) = Self.pair(nonce: 1)
        let abort = old.abort("gone", now: 1_000)
        let (_, fresh) = Self.pair(nonce: 2)
        _ = fresh.receive(abort, now: 2_000)
        #expect(fresh.state == .open)
        #expect(fresh.counters.foreign == 1)
    }

    /// An abort is numbered after what its sender sent: one from before what was received, or
    /// beyond the window, ends nothing.
    @Test func anAbortIsSequenceChecked() {
        let (source, destination) = Self.pair(nonce: 3)
        for f in Self.recorded(from: source) { _ = destination.receive(f, now: 2_000) }
        for sequence: UInt32 in [2, 3, 3 + 257 + 1] {
            let stale = ChannelFrame(kind: .abort, moveID: 9, sequence: sequence, payload: Array("x".utf8))
            _ = destination.receive(stale.encoded(key: key, binding: source.binding), now: 3_000)
        }
        #expect(destination.state == .open)
        #expect(destination.counters.outOfWindow == 3)
        _ = destination.receive(source.abortFrame("now"), now: 4_000)
        #expect(destination.state == .aborted("the peer gave up: now"))
    }

    /// What a Move carries is not in the clear on the wire, and no two transmissions share an
    /// AES-GCM nonce (a resent frame gets a counter of its own).
    @Test func stateAndPacketsAreSealedAndEveryTransmissionHasItsOwnCounter() {
        let (source, destination) = Self.pair(nonce: 11)
        let secret = Array("a flow's state, or a user's packet".utf8)
        source.send(.packets, secret)
        let first = source.poll(now: 1_000)
        #expect(first.count == 1)
        #expect(!first[0].indices.contains { first[0][$0...].starts(with: secret) })
        // Nothing acknowledged: the timer resends it.
        let again = source.poll(now: 1_000 + 200_000_000)
        #expect(again.count == 1 && again[0] != first[0])
        #expect(first[0][20..<28] != again[0][20..<28])
        #expect(destination.receive(first[0], now: 2_000).map(\.payload) == [secret])
        #expect(destination.receive(again[0], now: 3_000).isEmpty && destination.counters.duplicates == 1)
    }
}
