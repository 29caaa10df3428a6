import DistPacket

#if canImport(Glibc)
    import Glibc
#endif

/// A packet as PRADS's detection sees it: where its headers are, its endpoints and its role in
/// its flow. Filled by ``PRADSDecoder`` (prads's own decoding) and the caller's flow tracking.
public struct DetectionPacket {
    public enum Role: Sendable { case none, client, server }

    public var frame: UnsafeRawBufferPointer
    /// PRADS's end of the frame: its wire length, cut at PRADS's 1604-byte snap length.
    public var end: Int
    public var timestamp: UInt64
    /// The 802.1Q tag control field as PRADS prints it (priority bits included), or 0.
    public var vlan: UInt16
    public var l3: Int
    public var v6 = false
    public var source = IPAddress.zero
    public var destination = IPAddress.zero
    public var ttl: UInt8 = 0
    /// 6, 17, 1 (ICMP, also for ICMPv6), or another IP protocol.
    public var proto: UInt8 = 0
    public var l4 = 0
    public var sourcePort: UInt16 = 0
    public var destinationPort: UInt16 = 0
    public var payload = 0
    /// Bytes from the payload to the end of the captured frame (Ethernet padding included, as PRADS
    /// counts; for a tunnel's inner packet, as PRADS miscounts: see ``PRADSDecoder``).
    public var payloadLength = 0
    /// IP payload length as the header states it.
    public var ipPayloadBytes = 0
    /// Set by the caller from its flow: none for a flow's first packet.
    public var role: Role = .none
    /// Set by the caller: false once this direction of the flow is past the inspection limits.
    public var inspect = true

    @inlinable public var caplen: Int { frame.count }

    @inlinable
    public init(frame: UnsafeRawBufferPointer, end: Int, timestamp: UInt64, vlan: UInt16, l3: Int) {
        self.frame = frame
        self.end = end
        self.timestamp = timestamp
        self.vlan = vlan
        self.l3 = l3
    }
}

/// Per-flow detection state (the part of PRADS's connection the detection needs): which checks
/// are done. One byte, kept with the flow.
public struct FlowDetection: Sendable, Equatable {
    public var check: UInt8 = 0
    public init(check: UInt8 = 0) { self.check = check }

    @usableFromInline static let serviceDone: UInt8 = 0x04, clientDone: UInt8 = 0x08
    static let serviceUnknownSet: UInt8 = 0x10, clientUnknownSet: UInt8 = 0x20

    /// Whether ``Detector/inspect(_:flow:)`` would do nothing with a packet of a known flow,
    /// from what the fast path's own parse says of it: a TCP segment without SYN, FIN or RST
    /// (no fingerprint) whose side is past PRADS's limits (`inspect` false) or already
    /// identified; a UDP datagram past the limits; ICMP. Such a packet, most of a long flow's,
    /// need not be decoded again the way PRADS decodes it. (Anything else, a fragment included,
    /// is decoded: PRADS reads a fragment's payload as a header.)
    @inlinable
    public func idle(l4: L4Kind, tcpFlags: UInt8, inspect: Bool, fromClient: Bool) -> Bool {
        switch l4 {
        case .tcp:
            return tcpFlags & 0x07 == 0
                && (!inspect || check & (fromClient ? Self.clientDone : Self.serviceDone) != 0)
        case .udp: return !inspect
        // (PRADS's decoder inspects neither, in a tunnel or not.)
        case .icmp, .icmpv6: return true
        default: return false
        }
    }
}

/// The detection of one worker: PRADS 0.3.3's decisions for each packet (OS fingerprints from
/// SYN, SYN+ACK, RST and FIN; TCP server and client, and UDP service signatures; well-known
/// port fall-backs) and the multi-flow state they build, the asset of each host.
///
/// The fast path calls ``inspect(_:flow:)`` with the packet and its flow's ``FlowDetection``;
/// nothing is allocated unless a packet teaches something new (a record), and a flow's
/// payloads are matched only within PRADS's limits (10 packets, 500 kB per direction, 600
/// bytes of each TCP payload: see ``InspectionLimit``), so the cost per packet stays bounded.
///
/// Lock-free by design: each worker owns its own Detector, so each keeps its own asset table;
/// records flow to one log writer, which merges the views (see `AssetView`).
public final class Detector {
    public let signatures: PRADSSignatures
    let tcpServiceMatcher: ServiceMatcher
    let tcpClientMatcher: ServiceMatcher
    let udpServiceMatcher: ServiceMatcher
    /// The fingerprint databases by kind (FingerprintKind's order), nil where no file was loaded.
    let databases: [TCPFingerprintDatabase?]
    public private(set) var assets: [IPAddress: Asset] = [:]
    /// Hosts in the order they were learnt, with when each was queued: the eviction order
    /// (``evictOne()``). Entries of hosts gone since are skipped when their turn comes.
    var hostQueue = FIFOQueue<(address: IPAddress, queuedAt: UInt64)>()
    public internal(set) var counters = Counters()
    /// Receives each record the moment it is learnt (PRADS logs at discovery).
    public var onRecord: ((AssetRecord) -> Void)?

    /// Whether ARP replies are learnt (PRADS's `arp=1`; off by default, as in prads).
    public var arp = false

    static let tcpInspectLimit = 600
    static let maxServiceAttempts = 200
    /// How far into each direction of a flow its payloads are matched (the caller applies it:
    /// ``DetectionPacket/inspect``).
    public let inspection: InspectionLimit

    public init(signatures: PRADSSignatures, inspection: InspectionLimit = .standard) {
        self.signatures = signatures
        self.inspection = inspection
        tcpServiceMatcher = ServiceMatcher(signatures.tcpServices)
        tcpClientMatcher = ServiceMatcher(signatures.tcpClients)
        udpServiceMatcher = ServiceMatcher(signatures.udpServices)
        databases = FingerprintKind.allCases.map { signatures.fingerprints[$0] }
    }

    public struct Counters: Sendable, Equatable {
        /// Packets inspected (decoded as PRADS does; not those ``FlowDetection/idle(l4:tcpFlags:inspect:fromClient:)``
        /// spares), and records of each kind.
        public var packets = 0, osRecords = 0, serverRecords = 0, clientRecords = 0, arpRecords = 0
        /// Payloads run through a signature list.
        public var regexRuns = 0
        /// Hosts not learnt because the table held ``Detector/maxAssets`` already and none could
        /// go, and OS or service entries not added to a host that held its limit (spoofed
        /// sources, a scan).
        public var assetsRefused = 0, entriesRefused = 0
        /// Hosts forgotten to make room for new ones (see ``Detector/maxAssets``).
        public var assetsEvicted = 0
    }

    /// At most this many hosts are learnt from traffic (each worker's detector; dist-vnf's
    /// `--max-hosts`). A new host beyond it takes the place of the host learnt longest ago that
    /// has not been seen since (a second chance, as the CLOCK page replacement gives): a flood
    /// of spoofed sources, each seen once, churns through itself and leaves the hosts that keep
    /// talking. A Move's import is not refused (its source kept the same limit). Without a
    /// bound, spoofed sources grew the table without end.
    public var maxAssets = 1 << 20
    /// At most this many OS fingerprints and services per host.
    public var maxEntriesPerHost = 256

    /// Whether the sender may have an asset: known, or room for one more, if need be made by
    /// forgetting another (``evictOne()``); counted when not.
    @inline(__always)
    func admits(_ address: IPAddress, at now: UInt64) -> Bool {
        // (index(forKey:): `assets[address] != nil` copied the host's whole record out.)
        if assets.index(forKey: address) != nil { return true }
        return admitsNew(address, at: now)
    }

    /// ``admits(_:at:)`` for a host not known.
    func admitsNew(_ address: IPAddress, at now: UInt64) -> Bool {
        guard assets.count < maxAssets || evictOne() else {
            counters.assetsRefused += 1
            return false
        }
        queue(address, at: now)
        return true
    }

    /// Matches abandoned at the PCRE2 match limit (counted as no match).
    public var matchLimitHits: Int {
        tcpServiceMatcher.limitHits + tcpClientMatcher.limitHits + udpServiceMatcher.limitHits
    }

    /// Records learnt so far.
    public var recordCount: Int {
        counters.osRecords + counters.serverRecords + counters.clientRecords + counters.arpRecords
    }

    // MARK: - ARP (PRADS's update_asset_arp)

    /// Learns the sender of an ARP reply: its Ethernet address and vendor, logged when new or
    /// changed. `arp` is the ARP header within the frame.
    public func arp(_ frame: UnsafeRawBufferPointer, at arp: Int, vlan: UInt16, timestamp: UInt64) {
        guard self.arp, frame.count >= arp + 28 else { return }
        // Ethernet/IPv4 ARP replies only.
        guard frame[arp] == 0, frame[arp + 1] == 1, frame[arp + 2] == 0x08, frame[arp + 3] == 0, frame[arp + 4] == 6,
            frame[arp + 5] == 4, frame[arp + 6] == 0, frame[arp + 7] == 2
        else { return }
        let mac = Array(frame[(arp + 8)..<(arp + 14)])
        let ip = IPAddress(
            ipv4: UInt32(frame[arp + 14]) << 24 | UInt32(frame[arp + 15]) << 16
                | UInt32(frame[arp + 16]) << 8 | UInt32(frame[arp + 17]))
        guard admits(ip, at: timestamp) else { return }
        var asset = assets[ip] ?? Asset(vlan: vlan, firstSeen: timestamp, lastSeen: timestamp)
        asset.lastSeen = timestamp
        defer { assets[ip] = asset }
        guard asset.mac != mac else { return }
        if asset.vendor == nil { asset.vendor = signatures.macVendors.vendor(of: mac) }
        asset.mac = mac
        counters.arpRecords += 1
        let text = mac.map { String($0, radix: 16, uppercase: true).leftPadded(2) }.joined(separator: ":")
        onRecord?(
            AssetRecord(
                asset: ip.text, vlan: asset.vlan, port: 0, proto: 0, kind: "ARP",
                info: asset.vendor.map { "\(text),(\($0))" } ?? text, distance: 0, discovered: timestamp))
    }

    // MARK: - Multi-flow state in and out (Move)

    /// The asset of a host, if this detector has one.
    public func asset(at address: IPAddress) -> Asset? { assets[address] }

    /// Puts a host's asset in place of what this detector had for it.
    /// Imports what another instance knows of a host, merged with what this one knows.
    public func put(_ asset: Asset, at address: IPAddress) {
        if let known = assets[address] {
            assets[address] = known.merged(with: asset)
        } else {
            assets[address] = asset
            queue(address, at: asset.lastSeen)
        }
    }

    /// Forgets a host.
    @discardableResult
    public func removeAsset(at address: IPAddress) -> Asset? { assets.removeValue(forKey: address) }

    // MARK: - Per packet

    /// Runs the detection on one packet. Returns true when the flow's roles must be swapped
    /// (PRADS reverses a flow first seen by its SYN+ACK, or whose UDP port says the other side
    /// serves); `p.role` and `flow` are already updated.
    @discardableResult
    public func inspect(_ p: inout DetectionPacket, flow: inout FlowDetection) -> Bool {
        counters.packets &+= 1
        switch p.proto {
        case 6: return tcp(&p, flow: &flow)
        case 17: return udp(&p, flow: &flow)
        default: return false
        }
    }

    /// (The packet goes on by address, `inout`, to the calls that read it: passed as a borrow of
    /// this `inout` it was copied, 138 bytes by `memcpy`, for every call.)
    func tcp(_ p: inout DetectionPacket, flow: inout FlowDetection) -> Bool {
        let flags = p.frame[p.l4 + 13]
        if flags & 0x02 != 0 {
            if flags & 0x10 == 0 {
                fingerprint(&p, kind: .syn)
                return false
            }
            fingerprint(&p, kind: .synAck)
            if p.role != .server {
                reverse(&p, flow: &flow)
                return true
            }
            return false
        }
        switch p.role {
        case .client:
            if p.inspect && flow.check & FlowDetection.clientDone == 0 { tcpClient(&p, flow: &flow) }
        case .server:
            if p.inspect && flow.check & FlowDetection.serviceDone == 0 { tcpServer(&p, flow: &flow) }
        case .none:
            return false
        }
        if flags & 0x01 != 0 {
            fingerprint(&p, kind: .fin)
        } else if flags & 0x04 != 0 {
            fingerprint(&p, kind: .rst)
        }
        return false
    }

    func reverse(_ p: inout DetectionPacket, flow: inout FlowDetection) {
        flow.check = 0
        p.role = p.role == .client ? .server : .client
    }

    @inline(__always)
    func payload(_ p: borrowing DetectionPacket, limit: Int?) -> UnsafeRawBufferPointer {
        guard p.payloadLength > 0, p.payload < p.caplen else { return UnsafeRawBufferPointer(rebasing: p.frame[0..<0]) }
        // (PRADS reads an inner packet's payload past the frame's end, where its capture buffer
        // holds whatever it holds: only the frame's own bytes are read here.)
        let payloadLength = p.payloadLength
        let length = min(limit.map { min($0, payloadLength) } ?? payloadLength, p.caplen - p.payload)
        return UnsafeRawBufferPointer(rebasing: p.frame[p.payload..<(p.payload + length)])
    }

    func tcpServer(_ p: inout DetectionPacket, flow: inout FlowDetection) {
        guard p.payloadLength >= 10 else { return }
        counters.regexRuns &+= 1
        if let (service, info) = tcpServiceMatcher.match(payload(p, limit: Self.tcpInspectLimit)) {
            updateService(&p, service: service, application: info)
            flow.check |= FlowDetection.serviceDone
            return
        }
        if flow.check & FlowDetection.serviceUnknownSet == 0, let name = KnownPorts.name(proto: 6, port: p.sourcePort) {
            updateService(&p, service: "unknown", application: name)
            flow.check |= FlowDetection.serviceUnknownSet
        }
    }

    func tcpClient(_ p: inout DetectionPacket, flow: inout FlowDetection) {
        guard p.payloadLength >= 10 else { return }
        counters.regexRuns &+= 1
        // PRADS reads 600 bytes of IPv4 client payloads and all of IPv6 ones.
        if let (service, info) = tcpClientMatcher.match(payload(p, limit: p.v6 ? nil : Self.tcpInspectLimit)) {
            updateService(&p, service: service, application: info)
            flow.check |= FlowDetection.clientDone
            return
        }
        if flow.check & FlowDetection.clientUnknownSet == 0,
            let name = KnownPorts.name(proto: 6, port: p.destinationPort)
        {
            updateService(&p, service: "unknown", application: name)
            flow.check |= FlowDetection.clientUnknownSet
        }
    }

    func udp(_ p: inout DetectionPacket, flow: inout FlowDetection) -> Bool {
        // PRADS's guess for DNS: towards port 53 is a client, from it a server.
        if p.destinationPort == 53 {
            p.role = .client
        } else if p.sourcePort == 53 {
            p.role = .server
        }
        guard p.payloadLength >= 5, p.inspect else { return false }
        // PRADS matches IPv6 UDP payloads against its (empty) UDP client list.
        if !p.v6 {
            counters.regexRuns &+= 1
            if let (service, info) = udpServiceMatcher.match(payload(p, limit: nil)) {
                updateService(&p, service: service, application: info)
                flow.check |= FlowDetection.serviceDone
                return false
            }
        }
        // No signature matched: name the service by port. A client's own port first names
        // the service it uses, a server's its own; when only the other side's port is known,
        // PRADS takes the roles to be the other way round.
        switch p.role {
        case .client where flow.check & FlowDetection.clientUnknownSet == 0:
            return udpPortFallback(
                &p, flow: &flow, own: p.destinationPort, other: p.sourcePort,
                bit: FlowDetection.clientUnknownSet)
        case .server where flow.check & FlowDetection.serviceUnknownSet == 0:
            return udpPortFallback(
                &p, flow: &flow, own: p.sourcePort, other: p.destinationPort,
                bit: FlowDetection.serviceUnknownSet)
        default:
            break
        }
        return false
    }

    /// Records "unknown:@port" from `own` port, else from `other` after reversing the flow;
    /// returns whether it reversed.
    func udpPortFallback(
        _ p: inout DetectionPacket, flow: inout FlowDetection, own: UInt16, other: UInt16,
        bit: UInt8
    ) -> Bool {
        var reversed = false
        guard
            let name = KnownPorts.name(proto: 17, port: own)
                ?? KnownPorts.name(proto: 17, port: other).map({ name in
                    reversed = true
                    return name
                })
        else { return false }
        if reversed { reverse(&p, flow: &flow) }
        updateService(&p, service: "unknown", application: name)
        flow.check |= bit
        return reversed
    }

    // MARK: - Assets

    /// The sender's asset (created if new, VLAN and last-seen time from the packet), changed
    /// in place with one hash lookup.
    @inline(__always)
    func withAsset<R>(_ p: borrowing DetectionPacket, _ body: (inout Asset) -> R) -> R {
        // (The default is built only for a new host: built first, it was copied and destroyed
        // at every call.)
        let (vlan, seen) = (p.vlan, p.timestamp)
        return Detector.follow(&assets[p.source, default: Asset(vlan: vlan, firstSeen: seen, lastSeen: seen)], p, body)
    }

    /// ``withAsset(_:_:)`` for a sender that ``admits(_:at:)`` (nil when it does not): a known
    /// host is found once, not once to admit it and again to change it.
    @inline(__always)
    func withAdmittedAsset<R>(_ p: borrowing DetectionPacket, _ body: (inout Asset) -> R) -> R? {
        if let i = assets.index(forKey: p.source) { return Detector.follow(&assets.values[i], p, body) }
        guard admitsNew(p.source, at: p.timestamp) else { return nil }
        return withAsset(p, body)
    }

    @inline(__always)
    static func follow<R>(_ asset: inout Asset, _ p: borrowing DetectionPacket, _ body: (inout Asset) -> R) -> R {
        asset.vlan = p.vlan
        asset.lastSeen = p.timestamp
        return body(&asset)
    }

    func updateService(_ p: inout DetectionPacket, service: String, application: String) {
        let port = p.role == .client ? p.destinationPort : p.sourcePort
        let (proto, server, ttl) = (p.proto, p.role == .server, p.ttl)
        let limit = maxEntriesPerHost
        // One lookup: the port's entry changed where it lies, or a new one (nil, true: no room).
        let outcome: (ServiceEntry?, Bool)? = withAdmittedAsset(p) { asset in
            if let i = asset.services.firstIndex(where: { $0.port == port && $0.proto == proto }) {
                return (Self.revise(&asset.services[i], service: service, application: application), false)
            }
            guard asset.services.count < limit else { return (nil, true) }
            let entry = ServiceEntry(
                port: port, proto: proto, service: service, application: application,
                server: server, attempts: 0, ttl: ttl)
            asset.services.insert(entry, at: 0)
            return (entry, false)
        }
        guard let (learnt, refused) = outcome else { return }
        if refused { counters.entriesRefused += 1 }
        if let learnt { record(p, learnt) }
    }

    /// PRADS's rule for a port's service seen again: a name from a signature replaces a port's
    /// guess ("@..."), another name replaces it only after `maxServiceAttempts` sightings of a
    /// different one. Returns the entry when it was replaced (a record to log).
    static func revise(_ entry: inout ServiceEntry, service: String, application: String) -> ServiceEntry? {
        var replaced = false
        if application.first != "@" && entry.application.first == "@" {
            replaced = true
        } else if application != entry.application {
            if entry.attempts > maxServiceAttempts {
                replaced = true
            } else {
                entry.attempts += 1
            }
        } else {
            entry.attempts = 0
        }
        guard replaced else { return nil }
        entry.attempts = 0
        entry.service = service
        entry.application = application
        return entry
    }

    func record(_ p: borrowing DetectionPacket, _ entry: ServiceEntry) {
        if entry.server { counters.serverRecords += 1 } else { counters.clientRecords += 1 }
        onRecord?(
            AssetRecord(
                asset: p.source.text, vlan: p.vlan, port: entry.port, proto: entry.proto,
                kind: entry.server ? "SERVER" : "CLIENT", info: "\(entry.service):\(entry.application)",
                distance: Int(Detector.normalizedTTL(entry.ttl)) - Int(entry.ttl), discovered: p.timestamp))
    }

    static func normalizedTTL(_ ttl: UInt8) -> UInt8 {
        ttl > 128 ? 255 : ttl > 64 ? 128 : ttl > 32 ? 64 : 32
    }

    // MARK: - OS fingerprints

    /// Recent fingerprint lookups: the same fingerprint (a host's SYNs, a replayed capture)
    /// gives the same match, so the signature scan runs once per distinct fingerprint.
    struct CachedMatch {
        var kind: FingerprintKind
        var fingerprint: TCPFingerprint
        var matched: Int?
        var dontFragment: Bool
    }
    static let matchCacheSize = 1024
    var matchCache = [CachedMatch?](repeating: nil, count: Detector.matchCacheSize)
    /// The buffer OS records' text is written in (reused: see ``RecordText``).
    let recordText = RecordText()
}
