import Crypto
import DistChannel
import Foundation
import Testing

@Suite struct ChannelFrameTests {
    @Test func aFrameRoundTripsAndItsTagCoversEveryByte() throws {
        let f = ChannelFrame(
            kind: .state, moveID: 0x0102_0304_0506_0708, sequence: 9, ack: 4, sack: 0b101, payload: Array(0..<200))
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
        #expect(throws: ChannelFrame.DecodeError.truncated(10)) {
            try ChannelFrame.decode(Array(bytes.prefix(10)), key: key)
        }
        #expect(throws: ChannelFrame.DecodeError.self) { try ChannelFrame.decode(Array(bytes.dropLast()), key: key) }
    }

    @Test func theKeyFileMustBePrivateAndLongEnough() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dist-key-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("key").path
        #expect(
            FileManager.default.createFile(
                atPath: path, contents: Data(repeating: 1, count: 32), attributes: [.posixPermissions: 0o644]))
        #expect(throws: ChannelKey.Problem.self) { try ChannelKey.load(path: path) }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        _ = try ChannelKey.load(path: path)
        #expect(
            FileManager.default.createFile(
                atPath: path, contents: Data(repeating: 1, count: 16), attributes: [.posixPermissions: 0o600]))
        #expect(throws: ChannelKey.Problem.self) { try ChannelKey.load(path: path) }
        #expect(throws: ChannelKey.Problem.self) { try ChannelKey.load(path: dir.appendingPathComponent("none").path) }
    }
}
