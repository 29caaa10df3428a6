import DistFlow
import DistPacket

/// The in-band control packet (IBC) of a Move: a frame that matches the Move's filter, so it
/// takes the same path as the moved flows' packets (the same switch rule, link and worker
/// queue), and that carries a marker no user packet has, so whoever receives it can tell it
/// from traffic and never count or forward it. Its arrival says every packet sent before it on
/// that path has arrived too.
public enum InBandControl {
    /// The marker: "DiST-IBC" then the Move id, a phase number and the Move's token (big-endian;
    /// see ``InBandMarker/find(in:)``).
    static let magic = InBandMarker.magic
    static let sourceMAC = InBandMarker.sourceMAC
    static let destinationMAC = InBandMarker.destinationMAC

    /// A frame matching `filter` (in its first direction) that carries `moveID` and `phase`.
    public static func frame(for filter: FlowFilter, moveID: UInt64, phase: UInt32 = 0, token: UInt64 = 0) -> [UInt8] {
        let v4 = isIPv4(filter)
        let proto = filter.proto ?? 17
        var payload = magic
        for i in (0..<8).reversed() { payload.append(UInt8(truncatingIfNeeded: moveID >> UInt64(8 * i))) }
        for i in (0..<4).reversed() { payload.append(UInt8(truncatingIfNeeded: phase >> UInt32(8 * i))) }
        payload += BigEndian.bytes(token)
        let sport = filter.sourcePort ?? 9
        let dport = filter.destinationPort ?? 9
        var l4: [UInt8]
        switch proto {
        case 6:
            l4 =
                BigEndian.bytes(sport) + BigEndian.bytes(dport) + [0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10]
                + BigEndian.bytes(UInt16(1024)) + [0, 0, 0, 0] + payload
        case 17:
            l4 =
                BigEndian.bytes(sport) + BigEndian.bytes(dport) + BigEndian.bytes(UInt16(8 + payload.count)) + [0, 0]
                + payload
        default:
            l4 = payload
        }
        var frame = destinationMAC + sourceMAC
        if let vlan = filter.vlan { frame += [0x81, 0x00] + BigEndian.bytes(UInt16(vlan & 0xFFF)) }
        if v4 {
            let src = address(filter.source, fallback: IPAddress(ipv4: 0xC613_FF01))  // 198.19.255.1
            let dst = address(filter.destination, fallback: IPAddress(ipv4: 0xC613_FF02))
            var ip: [UInt8] = [0x45, 0] + BigEndian.bytes(UInt16(20 + l4.count)) + [0, 0, 0x40, 0, 64, proto, 0, 0]
            ip +=
                BigEndian.bytes(UInt32(truncatingIfNeeded: src.lo))
                + BigEndian.bytes(UInt32(truncatingIfNeeded: dst.lo))
            let sum = InternetChecksum.of(ip)
            ip[10] = UInt8(sum >> 8)
            ip[11] = UInt8(sum & 0xFF)
            if proto == 6 || proto == 17 {
                let pseudo = Array(ip[12..<20]) + [0, proto] + BigEndian.bytes(UInt16(l4.count))
                let c = InternetChecksum.of(pseudo + l4)
                let at = proto == 6 ? 16 : 6
                l4[at] = UInt8(c >> 8)
                l4[at + 1] = UInt8(c & 0xFF)
            }
            frame += [0x08, 0x00] + ip + l4
        } else {
            let src = address(filter.source, fallback: IPAddress(hi: 0xFD00_0000_0000_0000, lo: 0xD157_0001))
            let dst = address(filter.destination, fallback: IPAddress(hi: 0xFD00_0000_0000_0000, lo: 0xD157_0002))
            let addrs =
                BigEndian.bytes(src.hi) + BigEndian.bytes(src.lo) + BigEndian.bytes(dst.hi) + BigEndian.bytes(dst.lo)
            if proto == 6 || proto == 17 {
                let pseudo = addrs + BigEndian.bytes(UInt32(l4.count)) + [0, 0, 0, proto]
                let c = InternetChecksum.of(pseudo + l4)
                let at = proto == 6 ? 16 : 6
                l4[at] = UInt8(c >> 8)
                l4[at + 1] = UInt8(c & 0xFF)
            }
            frame += [0x86, 0xDD, 0x60, 0, 0, 0] + BigEndian.bytes(UInt16(l4.count)) + [proto, 64] + addrs + l4
        }
        return frame
    }

    /// How one copy of the IBC differs from the filter's own IBC: the field a switch writes to
    /// make it (see ``orderedCut(for:moveID:workers:vlan:)``).
    public enum CopyField: Equatable, Sendable {
        case sourcePort(UInt16)
        case destinationPort(UInt16)
        case source(IPAddress)
    }

    /// Copies of the IBC for VNFs with several workers, each of another flow of the filter (its
    /// source port varied, or its destination port, or its source address within the prefix),
    /// so that every receiving queue of each VNF gets one: the IBC is a cut in each queue's own
    /// order. Enough copies that every owner under each of `workers` (what ``FlowOwnership``
    /// and a NIC programmed like it pick) has one, and 16 per queue of the largest instance
    /// besides, for ports that spread flows by a hash of their own (net_af_packet's fanout: a
    /// queue misses all of them with odds of 4 in 10^9 at 2 queues, 4 in 10^8 at 4).
    /// One frame when every VNF has one worker, or when the filter names a single flow.
    public static func frames(
        for filter: FlowFilter, moveID: UInt64, phase: UInt32 = 0, token: UInt64 = 0, workers: [Int]
    ) -> [[UInt8]] {
        copies(for: filter, workers: workers).map { frame(for: $0.filter, moveID: moveID, phase: phase, token: token) }
    }

    /// The copies ``frames(for:moveID:phase:workers:)`` sends: each one's filter (a single
    /// flow of `filter`, or `filter` itself for the only copy) and the field that makes it.
    public static func copies(for filter: FlowFilter, workers: [Int]) -> [(filter: FlowFilter, field: CopyField?)] {
        let most = workers.max() ?? 1
        guard most > 1 else { return [(filter, nil)] }
        let proto = filter.proto ?? 17
        let portsVary = proto == 6 || proto == 17
        var vary: ((Int) -> (FlowFilter, CopyField))?
        if portsVary && filter.sourcePort == nil {
            vary = { i in
                var f = filter
                let port = UInt16(truncatingIfNeeded: 49152 + i)
                f.sourcePort = port
                return (f, .sourcePort(port))
            }
        } else if portsVary && filter.destinationPort == nil {
            vary = { i in
                var f = filter
                let port = UInt16(truncatingIfNeeded: 49152 + i)
                f.destinationPort = port
                return (f, .destinationPort(port))
            }
        } else if let source = filter.source, source.length < 128 {
            let room = 128 - source.length
            let first = address(source, fallback: .zero)
            vary = { i in
                var f = filter
                var a = first
                a.lo = a.lo &+ (UInt64(i + 1) & (room >= 64 ? ~0 : (1 << UInt64(room)) - 1))
                f.source = IPPrefix(a.text + (a.isIPv4Mapped ? "/32" : "/128"))
                return (f, .source(a))
            }
        }
        guard let vary else { return [(filter, nil)] }
        let ownerships = workers.map { FlowOwnership(workers: $0) }
        var covered = ownerships.map { Set<Int>(minimumCapacity: $0.workers) }
        var out: [(filter: FlowFilter, field: CopyField?)] = []
        var i = 0
        while i < 4096 && (out.count < 16 * most || zip(covered, ownerships).contains { $0.count < $1.workers }) {
            let (f, field) = vary(i)
            i += 1
            guard let key = flowKey(of: frame(for: f, moveID: 0)), filter.matches(key) else { continue }
            let owners = ownerships.map { $0.owner(of: key) }
            let new = zip(covered, owners).contains { !$0.contains($1) }
            guard new || out.count < 16 * most else { continue }
            for (k, o) in owners.enumerated() { covered[k].insert(o) }
            out.append((f, field))
        }
        return out.isEmpty ? [(filter, nil)] : out
    }

    /// An order-preserving Move's cut: one request for the source to reflect (see
    /// ``reflectRequest(_:vlan:)``), the IBC of the first copy, and the fields of every copy
    /// (see ``copies(for:workers:)``), which the switch's reflector writes one after the
    /// other, sending each copy on to both VNFs as it goes. The request carries the number
    /// of copies in its phase field, so that the source knows when the switch has sent on
    /// every one.
    ///
    /// Why reflected: a copy must reach both VNFs at the same place in the stream of packets
    /// the switch duplicates. Open vSwitch's userspace datapath runs a PACKET_OUT on its main
    /// thread, one output after the other, while its forwarding thread sends the duplicated
    /// packets: those it sends between the two outputs come after the IBC at one VNF and
    /// before it at the other, and both drop them. A frame the switch receives on a port goes
    /// through the forwarding thread like the traffic, so its outputs keep their place.
    ///
    /// Why one request: the copies must be together in that stream too. Every queue of each
    /// VNF cuts at its own first copy, so a packet the switch sent between two copies would
    /// be before the cut in one queue and after it in another: both VNFs would forward it, or
    /// neither. The source's workers would reflect requests each at its own time; one packet
    /// in, with every copy made by the one rule it meets, keeps them in one piece.
    public static func orderedCut(
        for filter: FlowFilter, moveID: UInt64, token: UInt64 = 0, workers: [Int], vlan: UInt16?
    ) -> OrderedCut {
        let all = copies(for: filter, workers: workers)
        let first = frame(for: all[0].filter, moveID: moveID, phase: UInt32(all.count), token: token)
        return OrderedCut(
            request: reflectRequest(first, vlan: vlan), copies: all.compactMap(\.field),
            ipv4: isIPv4(filter), proto: filter.proto ?? 17)
    }

    /// What ``orderedCut(for:moveID:workers:vlan:)`` gives the controller.
    public struct OrderedCut: Sendable {
        /// The frame the controller sends the source.
        public var request: [UInt8]
        /// What the reflector writes for each copy (none: it sends the IBC on as it came).
        public var copies: [CopyField]
        /// The IBC's network and transport protocols (a rule that writes a field matches them).
        public var ipv4: Bool
        public var proto: UInt8
    }

    /// Whether the IBC of `filter` is IPv4 (unless the filter names IPv6 addresses).
    static func isIPv4(_ filter: FlowFilter) -> Bool {
        filter.source.map { $0.address.isIPv4Mapped } ?? filter.destination.map { $0.address.isIPv4Mapped } ?? true
    }

    /// `frame` (an IBC) as a request to reflect it: its Ethernet source says so, and, with
    /// `vlan`, an outer tag lets the switch tell it by a field its rules already match on (a
    /// channel VLAN; a rule on a field no rule used before splits the switch's cached flows).
    public static func reflectRequest(_ frame: [UInt8], vlan: UInt16?) -> [UInt8] {
        var out = Array(frame[0..<6]) + InBandMarker.reflectMAC
        if let vlan { out += [0x81, 0x00] + BigEndian.bytes(UInt16(vlan & 0xFFF)) }
        return out + frame[12...]
    }

    static func flowKey(of frame: [UInt8]) -> FlowKey? { FlowKey.of(frame) }

    /// The Move id, phase and token an IBC frame carries, or nil for any other frame.
    public static func marker(in frame: [UInt8]) -> (moveID: UInt64, phase: UInt32, token: UInt64)? {
        frame.withUnsafeBytes { InBandMarker.find(in: $0) }
    }

    /// The prefix's first address, or `fallback` without a prefix.
    static func address(_ p: IPPrefix?, fallback: IPAddress) -> IPAddress {
        guard let p else { return fallback }
        let hiBits = max(0, min(64, p.length))
        let loBits = max(0, min(64, p.length - 64))
        let hiMask: UInt64 = hiBits == 0 ? 0 : hiBits == 64 ? ~0 : ~0 << UInt64(64 - hiBits)
        let loMask: UInt64 = loBits == 0 ? 0 : loBits == 64 ? ~0 : ~0 << UInt64(64 - loBits)
        var a = IPAddress(hi: p.address.hi & hiMask, lo: p.address.lo & loMask)
        if p.address.isIPv4Mapped { a.lo |= 0x0000_FFFF_0000_0000 }
        return a
    }
}
