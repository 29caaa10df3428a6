import DistPacket

/// Decodes a frame the way PRADS 0.3.3 does, into the ``DetectionPacket`` its detection sees:
/// only the first 802.1Q tag is read (PRADS's QinQ check never matches), IPv6 extension headers
/// are not followed, IPv4 inside IPv4 (protocol 94) and IPv6 inside IPv4 or IPv6 (41) are
/// decoded in place of the outer packet, and fragments are taken as they come.
public enum PRADSDecoder {
    /// PRADS stops reading a frame after this many bytes (its snap length).
    @usableFromInline static let snapLength = 1604

    /// Decodes `frame` into `p` (fully overwritten) as the packet PRADS would inspect; false when
    /// it inspects none (not IP, truncated, or a protocol without detection).
    @inlinable
    public static func decode(
        _ frame: UnsafeRawBufferPointer, wireLength: Int, timestamp: UInt64,
        into p: inout DetectionPacket
    ) -> Bool {
        guard frame.count >= 14 else { return false }
        let end = min(wireLength <= snapLength ? wireLength : snapLength, frame.count)
        var etherType = BigEndian.uint16(frame, at: 12)
        var l3 = 14
        var vlan: UInt16 = 0
        if etherType == 0x8100 {
            guard frame.count >= 18 else { return false }
            vlan = BigEndian.uint16(frame, at: 14)
            etherType = BigEndian.uint16(frame, at: 16)
            l3 = 18
        }
        p = DetectionPacket(frame: frame, end: end, timestamp: timestamp, vlan: vlan, l3: l3)
        switch etherType {
        case 0x0800: return ip(&p, v6: false, depth: 0)
        case 0x86DD: return ip(&p, v6: true, depth: 0)
        default: return false
        }
    }

    /// What ``decode(_:wireLength:timestamp:into:)`` gives for a frame whose parse `info` is of a
    /// plain packet (``PacketInfo/isPlain``: PRADS decodes such a frame as the fast path's
    /// parser does), from that parse instead of a second walk of the frame.
    @inlinable
    public static func decode(
        _ frame: UnsafeRawBufferPointer, plain info: UnsafePointer<PacketInfo>, wireLength: Int, timestamp: UInt64,
        into p: inout DetectionPacket
    ) {
        let end = min(wireLength <= snapLength ? wireLength : snapLength, frame.count)
        p = DetectionPacket(frame: frame, end: end, timestamp: timestamp, vlan: 0, l3: 14)
        p.source = info.pointee.src
        p.destination = info.pointee.dst
        p.ttl = info.pointee.ttl
        p.ipPayloadBytes = Int(info.pointee.ipLength) - 20
        p.l4 = 34
        p.proto = info.pointee.ipProto
        p.sourcePort = info.pointee.srcPort
        p.destinationPort = info.pointee.dstPort
        p.payload = Int(info.pointee.payloadOffset)
        p.payloadLength = frame.count - p.payload
    }

    @usableFromInline static func address(_ f: UnsafeRawBufferPointer, _ o: Int, v6: Bool) -> IPAddress {
        if !v6 { return IPAddress(ipv4: BigEndian.uint32(f, at: o)) }
        let hi = UInt64(BigEndian.uint32(f, at: o)) << 32 | UInt64(BigEndian.uint32(f, at: o + 4))
        let lo = UInt64(BigEndian.uint32(f, at: o + 8)) << 32 | UInt64(BigEndian.uint32(f, at: o + 12))
        return IPAddress(hi: hi, lo: lo)
    }

    @usableFromInline static func ip(_ p: inout DetectionPacket, v6: Bool, depth: Int) -> Bool {
        let f = p.frame
        let proto: UInt8
        if v6 {
            guard p.l3 + 40 <= f.count else { return false }
            p.source = address(f, p.l3 + 8, v6: true)
            p.destination = address(f, p.l3 + 24, v6: true)
            p.ttl = f[p.l3 + 7]
            p.ipPayloadBytes = Int(BigEndian.uint16(f, at: p.l3 + 4))
            p.l4 = p.l3 + 40
            proto = f[p.l3 + 6]
        } else {
            guard p.l3 + 20 <= f.count else { return false }
            p.source = address(f, p.l3 + 12, v6: false)
            p.destination = address(f, p.l3 + 16, v6: false)
            p.ttl = f[p.l3 + 8]
            let headerLength = Int(f[p.l3] & 0x0F) * 4
            p.ipPayloadBytes = Int(BigEndian.uint16(f, at: p.l3 + 2)) - headerLength
            p.l4 = p.l3 + headerLength
            proto = f[p.l3 + 9]
        }
        p.v6 = v6
        // PRADS counts an inner packet's payload from the whole frame's length less the inner
        // IP and transport headers alone (its inner packet has no Ethernet header, and the
        // outer headers are not subtracted): the payload it inspects looks that much longer.
        let uncounted = depth > 0 ? p.l3 : 0
        switch proto {
        case 6:
            guard p.l4 + 20 <= f.count else { return false }
            p.proto = 6
            p.sourcePort = BigEndian.uint16(f, at: p.l4)
            p.destinationPort = BigEndian.uint16(f, at: p.l4 + 2)
            p.payload = p.l4 + Int(f[p.l4 + 12] >> 4) * 4
            p.payloadLength = f.count - p.payload + uncounted
            return true
        case 17:
            guard p.l4 + 8 <= f.count else { return false }
            p.proto = 17
            p.sourcePort = BigEndian.uint16(f, at: p.l4)
            p.destinationPort = BigEndian.uint16(f, at: p.l4 + 2)
            p.payload = p.l4 + 8
            p.payloadLength = f.count - p.payload + uncounted
            return true
        case 94, 41:
            // IP in IP: PRADS decodes the inner packet in place of the outer one, untagged.
            guard depth < 4 else { return false }
            p.l3 = p.l4
            p.vlan = 0
            return ip(&p, v6: proto == 41, depth: depth + 1)
        default:
            return false
        }
    }
}

/// PRADS run on frames as `prads -r` runs on a capture: its own connection tracking (keyed on
/// addresses and ports only, never expiring within a run) feeding a ``Detector``. The data
/// plane uses a Detector with its own flow table instead; this engine is the reference the
/// tests and the detection benchmark hold it to.
public final class PRADSEngine {
    public let detector: Detector
    var connections: [ConnectionKey: Connection] = [:]

    public var onRecord: ((AssetRecord) -> Void)? {
        get { detector.onRecord }
        set { detector.onRecord = newValue }
    }

    public init(signatures: PRADSSignatures, inspection: InspectionLimit = .standard) {
        detector = Detector(signatures: signatures, inspection: inspection)
    }

    struct ConnectionKey: Hashable {
        var a: IPAddress, b: IPAddress
        var aPort: UInt16, bPort: UInt16
    }

    struct Connection {
        var client: IPAddress
        var clientPort: UInt16
        var detection = FlowDetection()
        var clientPackets = 0, serverPackets = 0
        var clientBytes = 0, serverBytes = 0
    }

    public var connectionCount: Int { connections.count }

    public func process(frame: UnsafeRawBufferPointer, wireLength: Int, timestamp: UInt64) {
        if detector.arp, frame.count >= 14 {
            let tagged = BigEndian.uint16(frame, at: 12) == 0x8100 && frame.count >= 18
            let l3 = tagged ? 18 : 14
            if BigEndian.uint16(frame, at: l3 - 2) == 0x0806 {
                detector.arp(frame, at: l3, vlan: tagged ? BigEndian.uint16(frame, at: 14) : 0, timestamp: timestamp)
                return
            }
        }
        var p = DetectionPacket(frame: frame, end: 0, timestamp: timestamp, vlan: 0, l3: 0)
        guard PRADSDecoder.decode(frame, wireLength: wireLength, timestamp: timestamp, into: &p) else { return }
        let srcFirst = p.source < p.destination || (p.source == p.destination && p.sourcePort <= p.destinationPort)
        let key =
            srcFirst
            ? ConnectionKey(a: p.source, b: p.destination, aPort: p.sourcePort, bPort: p.destinationPort)
            : ConnectionKey(a: p.destination, b: p.source, aPort: p.destinationPort, bPort: p.sourcePort)
        var c: Connection
        if let existing = connections[key] {
            c = existing
            let fromClient = c.client == p.source && c.clientPort == p.sourcePort
            p.role = fromClient ? .client : .server
            if fromClient {
                c.clientPackets += 1
                c.clientBytes += p.ipPayloadBytes
                p.inspect = detector.inspection.allows(
                    packets: UInt64(clamping: c.clientPackets), bytes: UInt64(clamping: c.clientBytes))
            } else {
                c.serverPackets += 1
                c.serverBytes += p.ipPayloadBytes
                p.inspect = detector.inspection.allows(
                    packets: UInt64(clamping: c.serverPackets), bytes: UInt64(clamping: c.serverBytes))
            }
        } else {
            // PRADS gives the first packet of a connection no role.
            c = Connection(client: p.source, clientPort: p.sourcePort)
            c.clientPackets = 1
            c.clientBytes = p.ipPayloadBytes
        }
        if detector.inspect(&p, flow: &c.detection) {
            // PRADS swaps the connection's sides (and their counters).
            if c.client == key.a && c.clientPort == key.aPort {
                c.client = key.b
                c.clientPort = key.bPort
            } else {
                c.client = key.a
                c.clientPort = key.aPort
            }
            swap(&c.clientPackets, &c.serverPackets)
            swap(&c.clientBytes, &c.serverBytes)
        }
        connections[key] = c
    }

    public func process(frame bytes: [UInt8], wireLength: Int? = nil, timestamp: UInt64) {
        bytes.withUnsafeBytes { process(frame: $0, wireLength: wireLength ?? bytes.count, timestamp: timestamp) }
    }
}
