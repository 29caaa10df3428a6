import DistOpenFlow
import Foundation
import Testing

/// What a real Open vSwitch 3.1 sent our controller (saved by ``OVSLiveTests``) decodes, and
/// encodes back to the same bytes.
@Suite struct OVSFixtureTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/ovs-3.1-to-controller.bin")

    @Test func bytesCapturedFromOpenVSwitchDecode() throws {
        let data = try Data(contentsOf: Self.fixture)
        var stream = OFStream()
        stream.append([UInt8](data))
        var messages: [OFMessage] = []
        while let m = try stream.next() { messages.append(m) }
        #expect(messages.count >= 7)
        // Re-encoding what we decoded gives OVS's bytes back.
        #expect(messages.flatMap { $0.encoded() } == [UInt8](data))
        #expect(messages.contains { if case .featuresReply = $0 { true } else { false } })
        #expect(messages.contains { if case .portDescriptionReply = $0 { true } else { false } })
        #expect(messages.contains { if case .packetIn = $0 { true } else { false } })
        #expect(messages.contains { if case .error = $0 { true } else { false } })
    }
}
