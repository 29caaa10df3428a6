/// How far into each direction of a flow payloads are matched against service signatures.
///
/// prads 0.3.3 defines `MAX_PKT_CHECK` (10 packets) and `MAX_BYTE_CHECK` (500 kB) and counts
/// them, but ignores the verdict: it matches every packet of a flow whose service it does not
/// know yet, however long the flow. The standard limit applies them, so that a flow that never
/// matches (or is made never to match) costs a signature run on its first packets only; the
/// price is a banner that comes after the 10th packet of its direction (an FTP server's TLS
/// handshake after `AUTH TLS`). ``unlimited`` does as prads does.
public struct InspectionLimit: Sendable, Equatable {
    /// Packets of one direction inspected, that direction's first packets counted.
    public var packets: UInt64
    /// IP payload bytes of one direction, up to which its packets are inspected.
    public var bytes: UInt64

    public init(packets: UInt64, bytes: UInt64) {
        self.packets = packets
        self.bytes = bytes
    }

    /// PRADS's `MAX_PKT_CHECK` and `MAX_BYTE_CHECK`, applied.
    public static let standard = InspectionLimit(packets: 10, bytes: 500_000)
    /// Every packet, as prads 0.3.3 inspects them.
    public static let unlimited = InspectionLimit(packets: .max, bytes: .max)

    /// Whether a direction that has carried `packets` packets and `bytes` bytes (the packet at
    /// hand included) is still inspected.
    @inlinable @inline(__always)
    public func allows(packets: UInt64, bytes: UInt64) -> Bool {
        packets <= self.packets && bytes <= self.bytes
    }
}
