#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The signature sets PRADS loads from its directory (`/etc/prads` by default).
public struct PRADSSignatures: Sendable {
    public var tcpServices: [ServiceSignature] = []
    public var tcpClients: [ServiceSignature] = []
    public var udpServices: [ServiceSignature] = []
    public var webApplications: [ServiceSignature] = []
    public var fingerprints: [FingerprintKind: TCPFingerprintDatabase] = [:]
    public var macVendors = MACVendors()
    /// Every line that could not be used, with file and line.
    public var errors: [SignatureFileError] = []

    public init() {}

    /// Loads the files PRADS's default configuration uses from `directory`. A missing file is
    /// an error; a malformed line is reported in `errors` and the rest of its file is used.
    public static func load(directory: String) throws -> PRADSSignatures {
        var s = PRADSSignatures()
        func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
        func services(_ name: String) throws -> [ServiceSignature] {
            let (signatures, errors) = try ServiceSignatureFile.load(path(name))
            s.errors += errors
            return signatures
        }
        s.tcpServices = try services("tcp-service.sig")
        s.tcpClients = try services("tcp-clients.sig")
        s.udpServices = try services("udp-service.sig")
        if FileManager.default.fileExists(atPath: path("web-application.sig")) {
            s.webApplications = try services("web-application.sig")
        }
        for kind in FingerprintKind.allCases where FileManager.default.fileExists(atPath: path(kind.file)) {
            let (db, errors) = try TCPFingerprintDatabase.load(path(kind.file))
            s.fingerprints[kind] = db
            s.errors += errors
        }
        if FileManager.default.fileExists(atPath: path("mac.sig")) {
            let (vendors, errors) = try MACVendors.load(path("mac.sig"))
            s.macVendors = vendors
            s.errors += errors
        }
        return s
    }
}

/// One line of PRADS's asset log.
public struct AssetRecord: Sendable, Equatable, CustomStringConvertible {
    public var asset: String
    public var vlan: UInt16
    public var port: UInt16
    public var proto: UInt8
    /// SYN, SYNACK, RST, FIN, ACK, SERVER, CLIENT or ARP.
    public var kind: String
    public var info: String
    public var distance: Int
    public var discovered: UInt64

    /// The line as PRADS writes it: `asset,vlan,port,proto,service,[service-info],distance,discovered`.
    public var description: String {
        "\(asset),\(vlan),\(port),\(proto),\(kind),[\(info)],\(distance),\(discovered)"
    }

    public static let header = "asset,vlan,port,proto,service,[service-info],distance,discovered"
}

/// Passive asset detection with PRADS 0.3.3's semantics and its default configuration (OS
/// fingerprints from SYN, SYN+ACK, RST and FIN; TCP server and client and UDP service
/// signatures; port-based fall-backs), fed one Ethernet frame at a time.
///
/// State, in DESIGN.md's scopes: per-flow (``Connection``: roles and how far inspection got),
/// multi-flow (``Asset``: per host, its OS fingerprints and services) and all-flows (counters).
/// It follows PRADS's own decisions, quirks included, so that its log equals prads's on the
/// same traffic: only the first 802.1Q tag is read, IPv6 extension headers are not followed,
/// IP-in-IP is decoded, and a flow is keyed on addresses and ports only.
public final class PRADSEngine {
    public let signatures: PRADSSignatures
    let tcpServiceMatcher: ServiceMatcher
    let tcpClientMatcher: ServiceMatcher
    let udpServiceMatcher: ServiceMatcher

    public private(set) var connections: [ConnectionKey: Connection] = [:]
    public private(set) var assets: [AssetKey: Asset] = [:]
    public private(set) var counters = Counters()
    /// Receives each asset record as it is discovered (PRADS logs at discovery).
    public var onRecord: ((AssetRecord) -> Void)?

    /// How many bytes of a TCP payload the service signatures look at (PRADS: 600).
    static let tcpInspectLimit = 600
    /// PRADS stops reading a frame after this many bytes (its snap length).
    static let snapLength = 1604
    static let maxServiceAttempts = 200

    public init(signatures: PRADSSignatures) {
        self.signatures = signatures
        tcpServiceMatcher = ServiceMatcher(signatures.tcpServices)
        tcpClientMatcher = ServiceMatcher(signatures.tcpClients)
        udpServiceMatcher = ServiceMatcher(signatures.udpServices)
    }

    public struct Counters: Sendable, Equatable {
        public var frames = 0, ipv4 = 0, ipv6 = 0, tcp = 0, udp = 0, icmp = 0, other = 0
        public var osRecords = 0, serviceRecords = 0, clientRecords = 0
    }

    public struct ConnectionKey: Hashable, Sendable {
        var a: [UInt8]
        var b: [UInt8]
        var aPort: UInt16
        var bPort: UInt16
    }

    /// Per-flow state PRADS keeps: who is the client, and which checks are done.
    public struct Connection: Sendable {
        /// The client's (address, port): the sender of the first packet, unless reversed.
        var clientAddress: [UInt8]
        var clientPort: UInt16
        var check: UInt8 = 0
        var reversed = false
    }

    static let serviceDone: UInt8 = 0x04, clientDone: UInt8 = 0x08
    static let serviceUnknownSet: UInt8 = 0x10, clientUnknownSet: UInt8 = 0x20

    public struct AssetKey: Hashable, Sendable {
        var address: [UInt8]
    }

    /// Multi-flow state: what is known about one host.
    public struct Asset: Sendable {
        public var vlan: UInt16
        public var firstSeen: UInt64
        public var lastSeen: UInt64
        public var os: [OSEntry] = []
        public var services: [ServiceEntry] = []
    }

    public struct OSEntry: Sendable {
        public var kind: FingerprintKind
        /// Index of the matching signature in its file's database, nil when none matched.
        public var signature: Int?
        public var text: String
        public var port: UInt16
        public var ttl: UInt8
        public var uptime: UInt32
    }

    public struct ServiceEntry: Sendable {
        public var port: UInt16
        public var proto: UInt8
        public var service: String
        public var application: String
        public var server: Bool
        public var attempts: Int
        public var ttl: UInt8
    }

    enum Role { case none, client, server }

    /// One decoded packet, as PRADS sees it.
    struct Packet {
        var frame: UnsafeRawBufferPointer
        var end: Int              // PRADS's end of frame (its snap length applies)
        var caplen: Int
        var timestamp: UInt64
        var vlan: UInt16
        var l3: Int
        var v6: Bool
        var source: [UInt8] = []
        var destination: [UInt8] = []
        var ttl: UInt8 = 0
        var proto: UInt8 = 0
        var l4: Int = 0
        var sourcePort: UInt16 = 0
        var destinationPort: UInt16 = 0
        var payload: Int = 0
        var payloadLength: Int = 0
        var role: Role = .none
        var key: ConnectionKey? = nil
    }

    // MARK: - Frames

    /// Processes one frame captured whole or in part (`wireLength` is its length on the wire).
    public func process(frame: UnsafeRawBufferPointer, wireLength: Int, timestamp: UInt64) {
        counters.frames += 1
        guard frame.count >= 14 else { return }
        let end = min(wireLength <= Self.snapLength ? wireLength : Self.snapLength, frame.count)
        var etherType = be16(frame, 12)
        var l3 = 14
        var vlan: UInt16 = 0
        if etherType == 0x8100 {
            guard frame.count >= 18 else { return }
            vlan = be16(frame, 14)
            etherType = be16(frame, 16)
            l3 = 18
        }
        var packet = Packet(frame: frame, end: end, caplen: frame.count, timestamp: timestamp, vlan: vlan, l3: l3, v6: false)
        switch etherType {
        case 0x0800: ip4(&packet, depth: 0)
        case 0x86DD: ip6(&packet, depth: 0)
        default: break
        }
    }

    public func process(frame bytes: [UInt8], wireLength: Int? = nil, timestamp: UInt64) {
        bytes.withUnsafeBytes { process(frame: $0, wireLength: wireLength ?? bytes.count, timestamp: timestamp) }
    }

    func be16(_ f: UnsafeRawBufferPointer, _ o: Int) -> UInt16 { UInt16(f[o]) << 8 | UInt16(f[o + 1]) }
    func be32(_ f: UnsafeRawBufferPointer, _ o: Int) -> UInt32 {
        UInt32(f[o]) << 24 | UInt32(f[o + 1]) << 16 | UInt32(f[o + 2]) << 8 | UInt32(f[o + 3])
    }

    func ip4(_ p: inout Packet, depth: Int) {
        let f = p.frame
        guard p.l3 + 20 <= f.count else { return }
        counters.ipv4 += 1
        p.v6 = false
        p.source = Array(f[(p.l3 + 12)..<(p.l3 + 16)])
        p.destination = Array(f[(p.l3 + 16)..<(p.l3 + 20)])
        p.ttl = f[p.l3 + 8]
        let headerLength = Int(f[p.l3] & 0x0F) * 4
        p.l4 = p.l3 + headerLength
        let proto = f[p.l3 + 9]
        transport(&p, proto: proto, depth: depth)
    }

    func ip6(_ p: inout Packet, depth: Int) {
        let f = p.frame
        guard p.l3 + 40 <= f.count else { return }
        counters.ipv6 += 1
        p.v6 = true
        p.source = Array(f[(p.l3 + 8)..<(p.l3 + 24)])
        p.destination = Array(f[(p.l3 + 24)..<(p.l3 + 40)])
        p.ttl = f[p.l3 + 7]
        p.l4 = p.l3 + 40
        let next = f[p.l3 + 6]
        transport(&p, proto: next == 58 ? 1 : next, depth: depth, icmp6: next == 58)
    }

    func transport(_ p: inout Packet, proto: UInt8, depth: Int, icmp6: Bool = false) {
        switch proto {
        case 6:
            counters.tcp += 1
            guard p.l4 + 20 <= p.caplen else { return }
            p.proto = 6
            p.sourcePort = be16(p.frame, p.l4)
            p.destinationPort = be16(p.frame, p.l4 + 2)
            let offset = Int(p.frame[p.l4 + 12] >> 4) * 4
            p.payload = p.l4 + offset
            p.payloadLength = p.caplen - p.payload
            track(&p)
            tcp(&p)
        case 17:
            counters.udp += 1
            guard p.l4 + 8 <= p.caplen else { return }
            p.proto = 17
            p.sourcePort = be16(p.frame, p.l4)
            p.destinationPort = be16(p.frame, p.l4 + 2)
            p.payload = p.l4 + 8
            p.payloadLength = p.caplen - p.payload
            track(&p)
            udp(&p)
        case 1 where !icmp6 || p.v6:
            counters.icmp += 1
            p.proto = icmp6 ? 58 : 1
            track(&p)
            touchAsset(p)
        case 94, 41:
            // IP in IPv4 (PRADS takes protocol 94 for IPv4 inside, anything else for IPv6) is
            // decoded in place of the outer packet.
            guard depth < 4 else { return }
            var inner = Packet(frame: p.frame, end: p.end, caplen: p.caplen, timestamp: p.timestamp, vlan: 0,
                               l3: p.l4, v6: false)
            if proto == 94 { ip4(&inner, depth: depth + 1) } else { ip6(&inner, depth: depth + 1) }
        case 47:
            // GRE: PRADS compares the GRE protocol field with 4/41, which never holds; the
            // sender becomes an asset and nothing else is learnt.
            counters.other += 1
            touchAsset(p)
        default:
            counters.other += 1
            p.proto = proto
            track(&p)
            touchAsset(p)
        }
    }

    // MARK: - Connections (PRADS's cxt)

    func track(_ p: inout Packet) {
        let srcFirst = p.source.lexicographicallyPrecedes(p.destination)
            || (p.source == p.destination && p.sourcePort <= p.destinationPort)
        let key = srcFirst
            ? ConnectionKey(a: p.source, b: p.destination, aPort: p.sourcePort, bPort: p.destinationPort)
            : ConnectionKey(a: p.destination, b: p.source, aPort: p.destinationPort, bPort: p.sourcePort)
        p.key = key
        if let c = connections[key] {
            let fromClient = c.clientAddress == p.source && c.clientPort == p.sourcePort
            p.role = fromClient ? .client : .server
        } else {
            // PRADS gives the first packet of a connection no role.
            connections[key] = Connection(clientAddress: p.source, clientPort: p.sourcePort)
            p.role = .none
        }
    }

    func reverse(_ p: inout Packet) {
        guard let key = p.key, var c = connections[key] else { return }
        if c.clientAddress == key.a && c.clientPort == key.aPort {
            c.clientAddress = key.b
            c.clientPort = key.bPort
        } else {
            c.clientAddress = key.a
            c.clientPort = key.aPort
        }
        c.check = 0
        c.reversed.toggle()
        connections[key] = c
        p.role = p.role == .client ? .server : .client
    }

    func check(_ p: Packet) -> UInt8 { p.key.flatMap { connections[$0]?.check } ?? 0 }

    func setCheck(_ p: Packet, _ bits: UInt8) {
        guard let key = p.key else { return }
        connections[key]?.check |= bits
    }

    // MARK: - TCP

    func tcp(_ p: inout Packet) {
        touchAsset(p)
        let flags = p.frame[p.l4 + 13]
        if flags & 0x02 != 0 {
            if flags & 0x10 == 0 {
                fingerprint(p, kind: .syn)
            } else {
                fingerprint(p, kind: .synAck)
                if p.role != .server { reverse(&p) }
            }
            return
        }
        switch p.role {
        case .client:
            if check(p) & Self.clientDone == 0 { tcpClient(p) }
        case .server:
            if check(p) & Self.serviceDone == 0 { tcpServer(p) }
        case .none:
            return
        }
        if flags & 0x01 != 0 {
            fingerprint(p, kind: .fin)
        } else if flags & 0x04 != 0 {
            fingerprint(p, kind: .rst)
        }
    }

    func payload(_ p: Packet, limit: Int?) -> UnsafeRawBufferPointer {
        guard p.payloadLength > 0, p.payload < p.caplen else { return UnsafeRawBufferPointer(rebasing: p.frame[0..<0]) }
        let length = limit.map { min($0, p.payloadLength) } ?? p.payloadLength
        return UnsafeRawBufferPointer(rebasing: p.frame[p.payload..<(p.payload + length)])
    }

    func tcpServer(_ p: Packet) {
        guard p.payloadLength >= 10 else { return }
        if let (service, info) = tcpServiceMatcher.match(payload(p, limit: Self.tcpInspectLimit)) {
            updateService(p, service: service, application: info)
            setCheck(p, Self.serviceDone)
            return
        }
        if check(p) & Self.serviceUnknownSet == 0, let name = KnownPorts.name(proto: 6, port: p.sourcePort) {
            updateService(p, service: "unknown", application: name)
            setCheck(p, Self.serviceUnknownSet)
        }
    }

    func tcpClient(_ p: Packet) {
        guard p.payloadLength >= 10 else { return }
        // PRADS reads 600 bytes of IPv4 client payloads and all of IPv6 ones.
        if let (service, info) = tcpClientMatcher.match(payload(p, limit: p.v6 ? nil : Self.tcpInspectLimit)) {
            updateService(p, service: service, application: info)
            setCheck(p, Self.clientDone)
            return
        }
        if check(p) & Self.clientUnknownSet == 0, let name = KnownPorts.name(proto: 6, port: p.destinationPort) {
            updateService(p, service: "unknown", application: name)
            setCheck(p, Self.clientUnknownSet)
        }
    }

    // MARK: - UDP

    func udp(_ p: inout Packet) {
        touchAsset(p)
        // PRADS's guess for DNS: towards port 53 is a client, from it a server.
        if p.destinationPort == 53 {
            p.role = .client
        } else if p.sourcePort == 53 {
            p.role = .server
        }
        guard p.payloadLength >= 5 else { return }
        // IPv6 UDP payloads are matched against PRADS's (empty) UDP client signature list.
        if !p.v6, let (service, info) = udpServiceMatcher.match(payload(p, limit: nil)) {
            updateService(p, service: service, application: info)
            setCheck(p, Self.serviceDone)
            return
        }
        switch p.role {
        case .client where check(p) & Self.clientUnknownSet == 0:
            if let name = KnownPorts.name(proto: 17, port: p.destinationPort) {
                updateService(p, service: "unknown", application: name)
                setCheck(p, Self.clientUnknownSet)
            } else if let name = KnownPorts.name(proto: 17, port: p.sourcePort) {
                reverse(&p)
                updateService(p, service: "unknown", application: name)
                setCheck(p, Self.clientUnknownSet)
            }
        case .server where check(p) & Self.serviceUnknownSet == 0:
            if let name = KnownPorts.name(proto: 17, port: p.sourcePort) {
                updateService(p, service: "unknown", application: name)
                setCheck(p, Self.serviceUnknownSet)
            } else if let name = KnownPorts.name(proto: 17, port: p.destinationPort) {
                reverse(&p)
                updateService(p, service: "unknown", application: name)
                setCheck(p, Self.serviceUnknownSet)
            }
        default:
            break
        }
    }

    // MARK: - Assets

    func touchAsset(_ p: Packet) {
        let key = AssetKey(address: p.source)
        if assets[key] != nil {
            assets[key]!.vlan = p.vlan
            assets[key]!.lastSeen = p.timestamp
        } else {
            assets[key] = Asset(vlan: p.vlan, firstSeen: p.timestamp, lastSeen: p.timestamp)
        }
    }

    func updateService(_ p: Packet, service: String, application: String) {
        let key = AssetKey(address: p.source)
        if assets[key] == nil { touchAsset(p) }
        let port = p.role == .client ? p.destinationPort : p.sourcePort
        assets[key]!.lastSeen = p.timestamp
        if let i = assets[key]!.services.firstIndex(where: { $0.port == port && $0.proto == p.proto }) {
            var entry = assets[key]!.services[i]
            if application.first != "@" && entry.application.first == "@" {
                entry.attempts = 0
                entry.service = service
                entry.application = application
                assets[key]!.services[i] = entry
                logService(p, entry)
            } else if application != entry.application {
                if entry.attempts > Self.maxServiceAttempts {
                    entry.attempts = 0
                    entry.service = service
                    entry.application = application
                    assets[key]!.services[i] = entry
                    logService(p, entry)
                } else {
                    assets[key]!.services[i].attempts += 1
                }
            } else {
                assets[key]!.services[i].attempts = 0
            }
            return
        }
        let entry = ServiceEntry(port: port, proto: p.proto, service: service, application: application,
                                 server: p.role == .server, attempts: 0, ttl: p.ttl)
        assets[key]!.services.insert(entry, at: 0)
        logService(p, entry)
    }

    func logService(_ p: Packet, _ entry: ServiceEntry) {
        if entry.server { counters.serviceRecords += 1 } else { counters.clientRecords += 1 }
        emit(AssetRecord(asset: Self.format(p.source), vlan: assets[AssetKey(address: p.source)]?.vlan ?? 0,
                         port: entry.port, proto: entry.proto, kind: entry.server ? "SERVER" : "CLIENT",
                         info: "\(entry.service):\(entry.application)",
                         distance: Int(Self.normalizedTTL(entry.ttl)) - Int(entry.ttl), discovered: p.timestamp))
    }

    func emit(_ record: AssetRecord) {
        onRecord?(record)
    }

    static func normalizedTTL(_ ttl: UInt8) -> UInt8 {
        ttl > 128 ? 255 : ttl > 64 ? 128 : ttl > 32 ? 64 : 32
    }

    /// Text of an address: dotted quad, or IPv6 as `inet_ntop` writes it.
    static func format(_ address: [UInt8]) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        let family = address.count == 4 ? AF_INET : AF_INET6
        let ok = address.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &buffer, socklen_t(buffer.count)) } != nil
        guard ok else { return "?" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: - OS fingerprints

    func fingerprint(_ p: Packet, kind: FingerprintKind) {
        guard var e = measure(p, kind: kind) else { return }
        let matched = signatures.fingerprints[kind]?.match(&e)
        let key = AssetKey(address: p.source)
        if assets[key] == nil { touchAsset(p) }
        assets[key]!.lastSeen = p.timestamp
        if assets[key]!.os.contains(where: { $0.kind == kind && $0.signature == matched }) { return }
        var text = e.text(uptime: e.timestamp) + ":"
        if let matched, let signature = signatures.fingerprints[kind]?.signatures[matched] {
            text += "\(signature.os):\(signature.description)"
        } else {
            text += "unknown:unknown"
        }
        if e.mss != 0 { text += ":link:\(LinkTypes.name(mss: e.mss))" }
        if e.timestamp != 0 { text += ":uptime:\(e.timestamp / 360_000)hrs" }
        let entry = OSEntry(kind: kind, signature: matched, text: text, port: p.sourcePort, ttl: p.ttl, uptime: e.timestamp)
        assets[key]!.os.insert(entry, at: 0)
        counters.osRecords += 1
        emit(AssetRecord(asset: Self.format(p.source), vlan: assets[key]!.vlan, port: p.sourcePort, proto: 6,
                         kind: kind.rawValue, info: text,
                         distance: Int(Self.normalizedTTL(p.ttl)) - Int(p.ttl), discovered: p.timestamp))
    }

    /// The packet's fingerprint (p0f's measurements), or nil where PRADS gives up on the packet.
    func measure(_ p: Packet, kind: FingerprintKind) -> TCPFingerprint? {
        let f = p.frame
        var e = TCPFingerprint()
        var end = p.end
        if p.v6 {
            let ipEnd = p.l3 + 40 + Int(be16(f, p.l3 + 4))
            if end > ipEnd { end = ipEnd }
            guard p.l3 + 40 <= end else { return nil }
            let flowLabel = be32(f, p.l3) & 0x000F_FFFF
            e.quirks.insert(flowLabel != 0 ? .flowLabel : .zeroID)
            e.ttl = f[p.l3 + 7]
            e.size = kind == .ack ? 0 : be16(f, p.l3 + 4)
            e.dontFragment = true
        } else {
            let ipEnd = p.l3 + Int(be16(f, p.l3 + 2))
            if end > ipEnd { end = ipEnd }
            guard p.l3 + 20 <= end else { return nil }
            let ihl = Int(f[p.l3] & 0x0F)
            guard ihl >= 5 else { return nil }
            if ihl > 5 { e.quirks.insert(.ipOptions) }
            e.ttl = f[p.l3 + 8]
            e.size = kind == .ack ? 0 : be16(f, p.l3 + 2)
            e.dontFragment = be16(f, p.l3 + 6) & 0x4000 != 0
            if be16(f, p.l3 + 4) == 0 { e.quirks.insert(.zeroID) }
        }
        let t = p.l4
        let flags = f[t + 13]
        let seq = be32(f, t + 4), ack = be32(f, t + 8)
        if kind == .rst && flags & 0x10 != 0 { e.quirks.insert(.rstAck) }
        if kind == .fin && flags & 0x10 != 0 { e.quirks.insert(.finAck) }
        if seq == ack { e.quirks.insert(.seqEqualsAck) }
        if seq == 0 { e.quirks.insert(.seqZero) }
        let allowed: UInt8 = 0x02 | 0x10 | 0x04 | 0x40 | 0x80 | (kind == .ack ? 0x08 : 0)
        if flags & ~allowed != 0 { e.quirks.insert(.flags) }
        if ack != 0 { e.quirks.insert(.ack) }
        if be16(f, t + 18) != 0 { e.quirks.insert(.urgent) }
        if f[t + 12] & 0x0F != 0 { e.quirks.insert(.x2) }
        let optionLength = Int(f[t + 12] >> 4) * 4 - 20
        let optionStart = t + 20
        if optionStart + optionLength < end && kind != .ack { e.quirks.insert(.data) }
        e.timestamp = parseOptions(f, start: optionStart, length: optionLength, end: p.end, into: &e)
        e.windowSize = be16(f, t + 14)
        return e
    }

    /// p0f's option walk; returns the sender's timestamp.
    func parseOptions(_ f: UnsafeRawBufferPointer, start: Int, length: Int, end: Int, into e: inout TCPFingerprint) -> UInt32 {
        var remaining = length
        var at = start
        var timestamp: UInt32 = 0
        let limit = min(end, f.count)
        func byte(_ i: Int) -> UInt8 { i < f.count ? f[i] : 0 }
        parsing: while remaining > 0 {
            remaining -= 1
            guard at < f.count else { e.quirks.insert(.broken); break }
            let kind = f[at]
            at += 1
            switch kind {
            case TCPOption.eol:
                e.options.append(TCPOption.eol)
                if remaining != 0 { e.quirks.insert(.past) }
            case TCPOption.nop:
                e.options.append(TCPOption.nop)
            case TCPOption.sackOK:
                e.options.append(TCPOption.sackOK)
                remaining -= 1
                at += 1
            case TCPOption.mss:
                guard at + 3 <= limit else { e.quirks.insert(.broken); break parsing }
                e.options.append(TCPOption.mss)
                e.mss = UInt16(byte(at + 1)) << 8 | UInt16(byte(at + 2))
                remaining -= 3
                at += 3
            case TCPOption.windowScale:
                guard at + 2 <= limit else { e.quirks.insert(.broken); break parsing }
                e.options.append(TCPOption.windowScale)
                e.windowScale = byte(at + 1)
                remaining -= 2
                at += 2
            case TCPOption.timestamp:
                guard at + 9 <= limit else { e.quirks.insert(.broken); break parsing }
                e.options.append(TCPOption.timestamp)
                if byte(at + 5) | byte(at + 6) | byte(at + 7) | byte(at + 8) != 0 { e.quirks.insert(.t2) }
                timestamp = UInt32(byte(at + 1)) << 24 | UInt32(byte(at + 2)) << 16 | UInt32(byte(at + 3)) << 8
                    | UInt32(byte(at + 4))
                remaining -= 9
                at += 9
            default:
                guard at + 1 <= limit else { e.quirks.insert(.broken); break parsing }
                e.options.append(kind)
                let optionLength = Int(byte(at)) - 1
                guard optionLength <= 32, optionLength >= 0 else { e.quirks.insert(.broken); break parsing }
                remaining -= optionLength
                at += optionLength
            }
            if e.options.count >= 15 { e.quirks.insert(.broken); break }
            if remaining > 0 && at >= limit { e.quirks.insert(.broken); break }
        }
        return timestamp
    }
}
