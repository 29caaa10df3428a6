import DistPacket
import Foundation

/// Paths and frames shared by the packet tests.
enum Fixtures {
    /// The repository's root (this file is Tests/DistPacketTests/Fixtures.swift).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let mixA = root.appendingPathComponent("traces/mix-a.pcap").path

    static func load(_ path: String) throws -> PcapFile {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try PcapFile(bytes: [UInt8](data))
    }

    static let mixAFrames: [PcapFile.Frame] = (try? load(mixA).frames) ?? []

    // MARK: Frame builders

    static func ethernet(_ etherType: UInt16, vlans: [UInt16] = [], outerTPID: UInt16 = 0x8100) -> [UInt8] {
        var f: [UInt8] = [0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2]
        for (i, v) in vlans.enumerated() {
            let tpid = i == 0 && vlans.count > 1 ? outerTPID : 0x8100
            f += be16(tpid) + be16(v)
        }
        return f + be16(etherType)
    }

    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
    static func be32(_ v: UInt32) -> [UInt8] {
        [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
    }

    static func ipv4(
        proto: UInt8, src: UInt32, dst: UInt32, payload: [UInt8], options: [UInt8] = [],
        fragmentField: UInt16 = 0, ttl: UInt8 = 64
    ) -> [UInt8] {
        let headerLength = 20 + options.count
        var h: [UInt8] = [UInt8(0x40 | (headerLength / 4)), 0]
        h += be16(UInt16(headerLength + payload.count)) + be16(0x1234) + be16(fragmentField)
        h += [ttl, proto, 0, 0] + be32(src) + be32(dst) + options
        return h + payload
    }

    static func ipv6(next: UInt8, src: [UInt8], dst: [UInt8], payload: [UInt8], hopLimit: UInt8 = 64) -> [UInt8] {
        [0x60, 0, 0, 0] + be16(UInt16(payload.count)) + [next, hopLimit] + src + dst + payload
    }

    static func tcp(sport: UInt16, dport: UInt16, flags: UInt8, payload: [UInt8] = [], optionWords: Int = 0) -> [UInt8]
    {
        var t = be16(sport) + be16(dport) + be32(1000) + be32(0)
        t += [UInt8((5 + optionWords) << 4), flags] + be16(65535) + [0, 0, 0, 0]
        t += [UInt8](repeating: 1, count: optionWords * 4)
        return t + payload
    }

    static func udp(sport: UInt16, dport: UInt16, payload: [UInt8]) -> [UInt8] {
        be16(sport) + be16(dport) + be16(UInt16(8 + payload.count)) + [0, 0] + payload
    }

    static let v6a: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1]
    static let v6b: [UInt8] = [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [2]
}
