import DistPacket

/// Numbered UDP packets of a few flows, for Moves run in one process: flow `f` goes from
/// 198.18.1.(f+1) port 4000+f to 198.18.2.1 port 5000, and each packet carries its flow and
/// sequence number, so that what an instance forwards can be checked for loss, duplicates and
/// order.
public enum SampleTraffic {
    /// The flows' filter.
    public static let filter = "nw_src=198.18.1.0/24"

    public static func packet(flow: Int, sequence seq: UInt32) -> [UInt8] {
        let payload =
            [0xD1, 0x57, UInt8(flow)] + (0..<4).map { UInt8(truncatingIfNeeded: seq >> (24 - 8 * UInt32($0))) }
        let udp =
            BigEndian.bytes(UInt16(4000 + flow)) + BigEndian.bytes(UInt16(5000))
            + BigEndian.bytes(UInt16(8 + payload.count)) + [0, 0] + payload
        var ip: [UInt8] = [0x45, 0] + BigEndian.bytes(UInt16(20 + udp.count)) + [0, 0, 0x40, 0, 64, 17, 0, 0]
        ip += [198, 18, 1, UInt8(flow + 1), 198, 18, 2, 1]
        let sum = InternetChecksum.of(ip)
        ip[10] = UInt8(sum >> 8)
        ip[11] = UInt8(sum & 0xFF)
        return [2, 0, 0, 0, 0, 0xBB, 2, 0, 0, 0, 0, 0xAA, 0x08, 0x00] + ip + udp
    }

    /// The flow and sequence number a packet of ``packet(flow:sequence:)`` carries.
    public static func numbered(_ frame: [UInt8]) -> (flow: Int, sequence: UInt32)? {
        guard frame.count >= 49, frame[42] == 0xD1, frame[43] == 0x57 else { return nil }
        return (Int(frame[44]), frame[45..<49].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
    }

    /// A SYN from `source` (IPv4, TCP options as an OS sends them), for the detector to
    /// fingerprint.
    public static func syn(from source: UInt32, port: UInt16) -> [UInt8] {
        let options: [UInt8] = [2, 4, 0x05, 0xB4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]
        let tcp: [UInt8] =
            BigEndian.bytes(port) + [0, 80, 0, 0, 0, 1, 0, 0, 0, 0, UInt8((20 + options.count) / 4) << 4, 0x02]
            + [0xFA, 0xF0, 0, 0, 0, 0] + options
        var ip: [UInt8] = [0x45, 0] + BigEndian.bytes(UInt16(20 + tcp.count)) + [0, 1, 0x40, 0, 64, 6, 0, 0]
        ip += BigEndian.bytes(source) + [198, 19, 0, 1]
        let sum = InternetChecksum.of(ip)
        ip[10] = UInt8(sum >> 8)
        ip[11] = UInt8(sum & 0xFF)
        return [2, 0, 0, 0, 0, 0xBB, 2, 0, 0, 0, 0, 0xAA, 0x08, 0x00] + ip + tcp
    }
}
