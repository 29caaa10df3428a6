import DistMove
import DistPacket

/// Where one end of the DiST channel lives on the data network: its port's Ethernet address,
/// an IPv4 address and a UDP port. The VNF builds and parses these datagrams itself on its
/// data port (no kernel socket).
public struct ChannelAddress: Sendable, Equatable, CustomStringConvertible {
    public var mac: [UInt8]
    /// IPv4, host order.
    public var ip: UInt32
    public var port: UInt16
    /// The VLAN the channel's frames to this end carry (nil: untagged). A VLAN of its own lets a
    /// switch send them on by the tag alone, without looking into anyone else's frames.
    public var vlan: UInt16?

    public init(mac: [UInt8], ip: UInt32, port: UInt16, vlan: UInt16? = nil) {
        self.mac = mac.count == 6 ? mac : [UInt8](repeating: 0, count: 6)
        self.ip = ip
        self.port = port
        self.vlan = vlan
    }

    /// `A.B.C.D:PORT`, optionally `@aa:bb:cc:dd:ee:ff`, then optionally `#VLAN` (1-4094).
    public init?(_ text: String) {
        var text = Substring(text)
        var vlan: UInt16?
        if let hash = text.firstIndex(of: "#") {
            guard let v = UInt16(text[text.index(after: hash)...]), (1...4094).contains(v) else { return nil }
            vlan = v
            text = text[..<hash]
        }
        let parts = text.split(separator: "@", maxSplits: 1).map(String.init)
        let hostPort = parts[0].split(separator: ":").map(String.init)
        guard hostPort.count == 2, let ip = ChannelAddress.ipv4(hostPort[0]), let port = UInt16(hostPort[1]), port > 0
        else { return nil }
        var mac = [UInt8](repeating: 0, count: 6)
        if parts.count == 2 {
            let bytes = parts[1].split(separator: ":").compactMap { UInt8($0, radix: 16) }
            guard bytes.count == 6 else { return nil }
            mac = bytes
        }
        self.init(mac: mac, ip: ip, port: port, vlan: vlan)
    }

    public static func ipv4(_ text: String) -> UInt32? {
        let octets = text.split(separator: ".", omittingEmptySubsequences: false).map { UInt8($0) }
        guard octets.count == 4, octets.allSatisfy({ $0 != nil }) else { return nil }
        return octets.reduce(0) { $0 << 8 | UInt32($1!) }
    }

    /// The id the channel's tags bind (see ``ChannelFrame/Binding``): the IPv4 address and the port.
    public var id: UInt64 { UInt64(ip) << 16 | UInt64(port) }

    public var ipText: String { (0..<4).map { String(ip >> UInt32(24 - 8 * $0) & 0xFF) }.joined(separator: ".") }
    public var macText: String { mac.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":") }
    public var description: String { "\(ipText):\(port)@\(macText)" + (vlan.map { "#\($0)" } ?? "") }
}

/// The channel peers an instance may send a Move to (`--channel-peer`): a Move's destination
/// must be one of them, so that whoever reaches the southbound API cannot have state and
/// packets shipped to an address of their choosing. A peer given with its Ethernet address or
/// VLAN admits only that one; without, any (the controller reports them as it learns them).
public struct ChannelPeers: Sendable {
    public var peers: [ChannelAddress] = []
    public init(_ peers: [ChannelAddress] = []) { self.peers = peers }

    public func admit(_ destination: ChannelAddress) -> Bool {
        peers.contains { peer in
            peer.ip == destination.ip && peer.port == destination.port
                && (peer.mac.allSatisfy { $0 == 0 } || peer.mac == destination.mac)
                && (peer.vlan == nil || peer.vlan == destination.vlan)
        }
    }
}

/// Ethernet + IPv4 + UDP around a channel frame, built and parsed on bytes.
public enum ChannelDatagram {
    /// Ethernet (14) + IPv4 (20) + UDP (8), without a VLAN tag.
    public static let headerSize = 42

    /// The whole Ethernet frame carrying `payload` from `source` to `destination`.
    public static func build(from source: ChannelAddress, to destination: ChannelAddress, payload: [UInt8]) -> [UInt8] {
        var f: [UInt8] = []
        f.reserveCapacity(headerSize + payload.count)
        f += destination.mac
        f += source.mac
        if let vlan = destination.vlan { f += [0x81, 0x00, UInt8(vlan >> 8 & 0x0F), UInt8(vlan & 0xFF)] }
        f += [0x08, 0x00]
        let total = 20 + 8 + payload.count
        var ip: [UInt8] = [0x45, 0x00, UInt8(total >> 8 & 0xFF), UInt8(total & 0xFF), 0, 0, 0x40, 0x00, 64, 17, 0, 0]
        ip += BigEndian.bytes(source.ip) + BigEndian.bytes(destination.ip)
        let sum = InternetChecksum.of(ip)
        ip[10] = UInt8(sum >> 8)
        ip[11] = UInt8(sum & 0xFF)
        f += ip
        let udpLength = 8 + payload.count
        // UDP checksum 0 (none, allowed over IPv4): the channel's tag covers the payload.
        f += [
            UInt8(source.port >> 8), UInt8(source.port & 0xFF), UInt8(destination.port >> 8),
            UInt8(destination.port & 0xFF),
            UInt8(udpLength >> 8 & 0xFF), UInt8(udpLength & 0xFF), 0, 0,
        ]
        f += payload
        return f
    }

    /// The UDP payload of an IPv4 datagram to `local` (its IP and port), and the sender; nil
    /// for anything else (another address or port, a fragment, a bad length or header sum).
    public static func parse(_ frame: UnsafeRawBufferPointer, to local: ChannelAddress) -> (
        from: ChannelAddress, payload: [UInt8]
    )? {
        guard frame.count >= headerSize else { return nil }
        var l3 = 14
        var type = UInt16(frame[12]) << 8 | UInt16(frame[13])
        if type == 0x8100, frame.count >= headerSize + 4 {
            type = UInt16(frame[16]) << 8 | UInt16(frame[17])
            l3 = 18
        }
        guard type == 0x0800, frame[l3] >> 4 == 4, frame[l3 + 9] == 17 else { return nil }
        let ihl = Int(frame[l3] & 0x0F) * 4
        let total = Int(frame[l3 + 2]) << 8 | Int(frame[l3 + 3])
        guard ihl >= 20, total >= ihl + 8, l3 + total <= frame.count else { return nil }
        // Not a fragment (more-fragments flag or an offset).
        guard frame[l3 + 6] & 0x3F == 0, frame[l3 + 7] == 0 else { return nil }
        let dst = BigEndian.uint32(frame, at: l3 + 16)
        let l4 = l3 + ihl
        let dport = UInt16(frame[l4 + 2]) << 8 | UInt16(frame[l4 + 3])
        guard dst == local.ip, dport == local.port else { return nil }
        guard InternetChecksum.of(Array(frame[l3..<(l3 + ihl)])) == 0 else { return nil }
        let udpLength = Int(frame[l4 + 4]) << 8 | Int(frame[l4 + 5])
        guard udpLength >= 8, l4 + udpLength <= l3 + total else { return nil }
        let from = ChannelAddress(
            mac: Array(frame[6..<12]), ip: BigEndian.uint32(frame, at: l3 + 12),
            port: UInt16(frame[l4]) << 8 | UInt16(frame[l4 + 1]))
        return (from, Array(frame[(l4 + 8)..<(l4 + udpLength)]))
    }

    public static func parse(_ frame: [UInt8], to local: ChannelAddress) -> (from: ChannelAddress, payload: [UInt8])? {
        frame.withUnsafeBytes { parse($0, to: local) }
    }

}
