import DistPacket

/// Traffic for a soak, made packet by packet (nothing stored): `flows` UDP flows visited in
/// turn, so that each comes back once every `flows` of them (a flow table smaller than that
/// fills, expires flows and reuses their entries), and every `spoofEvery`-th packet an IPv6 TCP
/// SYN from one of `spoofed` source addresses in turn (hosts that detection learns until its
/// bound; 10 million do not fit in an IPv4 test range). UDP flow `f`: 198.18.0.0/15 port
/// 1024 + f / 131072 to 198.19.255.1 port 53 (so up to 8 million flows); spoofed source `s`:
/// 2001:db8::`s` to 2001:db8:ffff::1 port 80.
public struct ChurnTraffic: Sendable {
    public let flows: Int
    public let spoofed: Int
    public let spoofEvery: Int
    /// Bytes of a UDP packet (Ethernet included), 60 to 1,514.
    public let size: Int
    let udp: [UInt8]
    let syn: [UInt8]

    public static let maxFlows = 131_072 * 64

    public init(flows: Int, spoofed: Int, spoofEvery: Int, size: Int = 128) {
        precondition(flows > 0 && flows <= Self.maxFlows && spoofEvery > 0 && spoofed >= 0)
        precondition(size >= 60 && size <= 1514)
        self.flows = flows
        self.spoofed = spoofed
        self.spoofEvery = spoofEvery
        self.size = size
        let ethernet: [UInt8] = [2, 0, 0, 0, 0, 0xBB, 2, 0, 0, 0, 0, 0xAA]
        let payload = [UInt8](repeating: 0x5A, count: size - 42)
        let udpHeader = [0, 0, 0, 53] + BigEndian.bytes(UInt16(8 + payload.count)) + [0, 0]
        let ipv4: [UInt8] =
            [0x45, 0] + BigEndian.bytes(UInt16(28 + payload.count)) + [0, 0, 0x40, 0, 64, 17, 0, 0]
            + [198, 18, 0, 0, 198, 19, 255, 1]
        udp = ethernet + [0x08, 0x00] + ipv4 + udpHeader + payload
        // A SYN with options as an OS sends them (MSS, SACK permitted, timestamps, NOP, window
        // scale), so that detection fingerprints it.
        let options: [UInt8] = [2, 4, 0x05, 0xB4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]
        let tcp: [UInt8] =
            [0xC0, 0x00, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, UInt8((20 + options.count) / 4) << 4, 0x02, 0xFA, 0xF0]
            + [0, 0, 0, 0] + options
        let ipv6: [UInt8] =
            [0x60, 0, 0, 0] + BigEndian.bytes(UInt16(tcp.count)) + [6, 64]
            + [0x20, 0x01, 0x0D, 0xB8] + [UInt8](repeating: 0, count: 12)
            + [0x20, 0x01, 0x0D, 0xB8, 0xFF, 0xFF] + [UInt8](repeating: 0, count: 9) + [1]
        syn = ethernet + [0x86, 0xDD] + ipv6 + tcp
    }

    /// How long packet `n` is.
    public func length(_ n: UInt64) -> Int { isSpoofed(n) ? syn.count : udp.count }

    func isSpoofed(_ n: UInt64) -> Bool { spoofed > 0 && n % UInt64(spoofEvery) == UInt64(spoofEvery - 1) }

    /// Writes packet number `n` at `to` (room for ``length(_:)`` bytes); returns its length.
    public func write(_ n: UInt64, to: UnsafeMutableRawPointer) -> Int {
        if isSpoofed(n) {
            let s = UInt32(truncatingIfNeeded: (n / UInt64(spoofEvery)) % UInt64(spoofed))
            syn.withUnsafeBytes { to.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            // The source's last four bytes (IPv6 has no header checksum; TCP's is not checked).
            storeBigEndian(s, at: to + 14 + 8 + 12)
            storeBigEndian(UInt16(truncatingIfNeeded: 1024 &+ s % 60_000), at: to + 54)
            return syn.count
        }
        let f = UInt32(truncatingIfNeeded: n % UInt64(flows))
        udp.withUnsafeBytes { to.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        storeBigEndian(0xC612_0000 | (f & 0x1_FFFF), at: to + 14 + 12)
        storeBigEndian(UInt16(1024 + (f >> 17)), at: to + 34)
        // The IPv4 header's checksum, over the 20 bytes.
        var sum: UInt32 = 0
        for i in stride(from: 0, to: 20, by: 2) where i != 10 {
            sum +=
                UInt32(to.load(fromByteOffset: 14 + i, as: UInt8.self)) << 8
                | UInt32(to.load(fromByteOffset: 15 + i, as: UInt8.self))
        }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        storeBigEndian(~UInt16(sum), at: to + 24)
        return udp.count
    }

    func storeBigEndian(_ v: UInt32, at p: UnsafeMutableRawPointer) {
        p.storeBytes(of: v.bigEndian, as: UInt32.self)
    }

    func storeBigEndian(_ v: UInt16, at p: UnsafeMutableRawPointer) {
        p.storeBytes(of: v.bigEndian, as: UInt16.self)
    }
}
