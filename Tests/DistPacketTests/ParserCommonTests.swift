import DistPacket
import Testing

/// The parser's straight pass for the most common frame (untagged Ethernet, IPv4 without
/// options, TCP or UDP) must give exactly what the general walk gives, and leave every other
/// frame to it.
@Suite struct ParserCommonTests {
    /// Both parses of `bytes`; `common` is nil when the straight pass declined the frame.
    static func both(_ bytes: [UInt8]) -> (common: PacketInfo?, any: PacketInfo) {
        bytes.withUnsafeBytes { raw in
            var any = PacketInfo()
            PacketParser.parseAny(raw.baseAddress!, length: raw.count, into: &any)
            var common = PacketInfo()
            return (PacketParser.parseCommon(raw.baseAddress!, length: raw.count, into: &common) ? common : nil, any)
        }
    }

    @Test func agreesWithTheGeneralWalkOnEveryFrameOfTheTrace() {
        var taken = 0
        for frame in Fixtures.mixAFrames {
            let (common, any) = Self.both(frame.bytes)
            if let common {
                #expect(common == any && common.isPlain)
                taken += 1
            } else {
                // What it declines is anything but a whole TCP or UDP packet in plain IPv4.
                #expect(!any.isPlain, "a plain TCP or UDP frame left to the general walk")
            }
        }
        // Most of mix-a's frames take the straight pass.
        #expect(taken > Fixtures.mixAFrames.count * 8 / 10)
    }

    @Test func agreesOnDamagedCopiesOfCommonFrames() {
        // Every length and a byte changed at every header position, of a TCP and a UDP frame.
        var generator = SystemRandomNumberGenerator()
        let tcp = Fixtures.mixAFrames.first { Self.both($0.bytes).any.l4 == .tcp && $0.bytes.count > 80 }!.bytes
        let udp = Fixtures.mixAFrames.first { Self.both($0.bytes).any.l4 == .udp && $0.bytes.count > 60 }!.bytes
        var checked = 0
        for original in [tcp, udp] {
            for length in 0...original.count {
                let (common, any) = Self.both(Array(original.prefix(length)))
                if let common { #expect(common == any, "cut to \(length)") }
            }
            for position in 0..<min(64, original.count) {
                for _ in 0..<32 {
                    var bytes = original
                    bytes[position] = UInt8.random(in: 0...255, using: &generator)
                    let (common, any) = Self.both(bytes)
                    if let common {
                        #expect(common == any, "byte \(position) = \(bytes[position])")
                        checked += 1
                    }
                }
            }
        }
        #expect(checked > 1000)
    }
}
