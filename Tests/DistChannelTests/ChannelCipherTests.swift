import Crypto
import Testing

import DistChannel

/// The channel's AES-256-GCM (OpenSSL, one key schedule per direction) against swift-crypto's,
/// an implementation of its own: each opens what the other seals, frame after frame.
@Suite struct ChannelCipherTests {
    static let binding = ChannelFrame.Binding(nonce: 0x5EED, sender: 1 << 16 | 7400, receiver: 2 << 16 | 7400)
    static let sizes = [0, 1, 15, 16, 17, 300, 1_500, 8_950]

    static func payload(_ size: Int, _ seed: Int) -> [UInt8] {
        (0..<size).map { UInt8(truncatingIfNeeded: $0 * 31 + seed) }
    }

    @Test func framesSealedHereOpenWithSwiftCrypto() throws {
        let cipher = ChannelCipher(key: key, binding: Self.binding)
        let sendingKey = ChannelCipher.derive(key, Self.binding)
        for (i, size) in Self.sizes.enumerated() {
            let counter = UInt64(i + 1)
            let payload = Self.payload(size, i)
            let frame = ChannelFrame(kind: .packets, moveID: 3, sequence: UInt32(i), ack: 0, sack: 0, payload: payload)
                .sealed(with: cipher, counter: counter)
            let h = ChannelFrame.headerSize
            let box = try AES.GCM.SealedBox(
                nonce: AES.GCM.Nonce(data: ChannelFrame.gcmNonce(counter)), ciphertext: frame[h..<(h + size)],
                tag: frame[(h + size)...])
            #expect(Array(try AES.GCM.open(box, using: sendingKey, authenticating: frame[0..<h])) == payload)
        }
    }

    @Test func framesSealedBySwiftCryptoOpenHere() throws {
        let receiver = ChannelCipher(key: key, binding: Self.binding.reversed)
        let sendingKey = ChannelCipher.derive(key, Self.binding)
        for (i, size) in Self.sizes.enumerated() {
            let counter = UInt64(100 + i)
            let payload = Self.payload(size, i)
            // The header as the wire has it; swift-crypto seals the payload under it.
            var frame = ChannelFrame(kind: .state, moveID: 3, sequence: 1, ack: 0, sack: 0, payload: payload)
                .sealed(with: ChannelCipher(key: key, binding: Self.binding), counter: counter)
            let h = ChannelFrame.headerSize
            let box = try AES.GCM.seal(
                payload, using: sendingKey, nonce: AES.GCM.Nonce(data: ChannelFrame.gcmNonce(counter)),
                authenticating: frame[0..<h])
            frame.replaceSubrange(h..., with: Array(box.ciphertext) + Array(box.tag))
            #expect(try ChannelFrame.opened(frame, with: receiver).payload == payload)
        }
    }

    /// One context, many frames: any bit changed in header, ciphertext or tag fails, and the
    /// next good frame still opens (a failed open leaves nothing behind in the context).
    @Test func aChangedBitFailsAndTheContextGoesOn() throws {
        let sender = ChannelCipher(key: key, binding: Self.binding)
        let receiver = ChannelCipher(key: key, binding: Self.binding.reversed)
        let frame = ChannelFrame(kind: .packets, moveID: 3, sequence: 1, ack: 0, sack: 0, payload: Self.payload(300, 7))
        for (counter, position) in [(1, 4), (2, 30), (3, 46), (4, 200), (5, 346), (6, 361)] {
            var wire = frame.sealed(with: sender, counter: UInt64(counter))
            let good = wire
            wire[position] ^= 0x10
            #expect(throws: ChannelFrame.DecodeError.self) { try ChannelFrame.opened(wire, with: receiver) }
            #expect(try ChannelFrame.opened(good, with: receiver).payload == frame.payload)
        }
    }
}
