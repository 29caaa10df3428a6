import DistFlow
import DistPRADS
import DistPacket

/// The three scopes of NF state (DESIGN.md, "State model").
public enum StateScope: UInt8, Sendable, CaseIterable, Codable {
    /// One flow: its key, counters, TCP state, roles and inspection progress.
    case perFlow = 1
    /// One host: its asset (OS fingerprints and services).
    case multiFlow = 2
    /// The instance's counters.
    case allFlows = 3
}

/// A host's asset with its address: the multi-flow state of one host.
public struct AssetState: Sendable, Equatable, Codable {
    public var address: IPAddress
    public var asset: Detector.Asset
    public init(address: IPAddress, asset: Detector.Asset) {
        self.address = address
        self.asset = asset
    }
}

/// The all-flows state: counters of the whole instance.
public struct InstanceCounters: Sendable, Equatable, Codable {
    public var packets: UInt64 = 0
    public var bytes: UInt64 = 0
    public var flowsCreated: UInt64 = 0
    public var flowsExpired: UInt64 = 0
    public var assets: UInt64 = 0
    public var records: UInt64 = 0
    /// Packets by transport (index: DistPacket.L4Kind raw value).
    public var byTransport: [UInt64] = Array(repeating: 0, count: 8)
    public init() {}
}

/// One unit of state on the wire.
public enum StateChunk: Sendable, Equatable {
    case perFlow(FlowEntry)
    case multiFlow(AssetState)
    case allFlows(InstanceCounters)

    public var scope: StateScope {
        switch self {
        case .perFlow: .perFlow
        case .multiFlow: .multiFlow
        case .allFlows: .allFlows
        }
    }
}

extension FlowEntry: Equatable {
    /// Equal as state: the fields a Move carries (not the table's slot bookkeeping).
    public static func == (a: FlowEntry, b: FlowEntry) -> Bool {
        a.key == b.key && a.firstSeen == b.firstSeen && a.lastSeen == b.lastSeen
            && a.packetsToServer == b.packetsToServer && a.packetsToClient == b.packetsToClient
            && a.bytesToServer == b.bytesToServer && a.bytesToClient == b.bytesToClient
            && a.flagsToServer == b.flagsToServer && a.flagsToClient == b.flagsToClient
            && a.tcpState == b.tcpState && a.clientIsLo == b.clientIsLo && a.inspection == b.inspection
    }
}

/// Why a chunk was refused. Nothing of a refused batch is applied.
public enum StateCodecError: Error, Equatable, CustomStringConvertible {
    case truncated(needed: Int, available: Int)
    case badMagic
    case wrongVersion(UInt8)
    case unknownScope(UInt8)
    case oversized(Int)
    case checksumMismatch
    case malformed(String)

    public var description: String {
        switch self {
        case .truncated(let n, let a): "chunk truncated: \(n) bytes needed, \(a) available"
        case .badMagic: "not a state chunk (bad magic)"
        case .wrongVersion(let v): "state chunk version \(v), this build reads version \(StateCodec.version)"
        case .unknownScope(let s): "unknown state scope \(s)"
        case .oversized(let n): "state chunk of \(n) bytes exceeds the \(StateCodec.maxPayload)-byte limit"
        case .checksumMismatch: "state chunk checksum mismatch (corrupted)"
        case .malformed(let why): "malformed state chunk: \(why)"
        }
    }
}

/// The binary, versioned codec for state chunks, shared by the southbound API (base64 in
/// JSON) and the DiST data-plane channel (many chunks packed per frame).
///
/// A chunk: magic "DS" (2 bytes), version (1), scope (1), payload length (4, little endian),
/// CRC-32C of the payload (4), then the payload: little-endian integers, and strings and lists
/// as a 16-bit count followed by their contents. A chunk that is cut short, too long, of an
/// unknown version, or whose bytes do not match their checksum is refused.
///
/// Version 2 (written) packs a per-flow state in about half of version 1's 106 bytes: IPv4
/// addresses in 4 bytes, the VLAN key, times and counters as LEB128 varints, the last-seen
/// time as a delta. Version 1 (fixed-width) is still read, from an instance not yet upgraded.
public enum StateCodec {
    public static let version: UInt8 = 2
    /// Versions this build reads.
    public static let versions: ClosedRange<UInt8> = 1...2
    public static let headerSize = 12
    /// Largest payload accepted: a bound on what a forged length can make a reader wait for,
    /// far above any real state (a host's service takes about 40 bytes: 1 MiB is over 25,000).
    public static let maxPayload = 1 << 20

    // MARK: Encoding

    /// Appends one chunk to `out` (in `format`, one of ``versions``: 1 for a peer that reads
    /// no other).
    public static func encode(_ chunk: StateChunk, into out: inout [UInt8], format: UInt8 = version) {
        var format = format
        // Version 1 has no room for a tunnelled flow's inner endpoints: such a flow goes in
        // version 2, which a reader of version 1 alone refuses whole (never read without them).
        if format == 1, case .perFlow(let e) = chunk, e.key.isTunnelled { format = 2 }
        let start = out.count
        out.append(contentsOf: [0x44, 0x53, format, chunk.scope.rawValue, 0, 0, 0, 0, 0, 0, 0, 0])
        // Move the buffer into the writer and back (swap, never copy: appends stay in place).
        var w = ByteWriter(out: [])
        swap(&w.out, &out)
        switch chunk {
        case .perFlow(let e): if format == 1 { writeFlow(e, &w) } else { writeCompactFlow(e, &w) }
        case .multiFlow(let a): writeAsset(a, &w)
        case .allFlows(let c): writeCounters(c, &w)
        }
        swap(&w.out, &out)
        let length = out.count - start - headerSize
        let crc = out.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[(start + headerSize)...])) }
        store32(UInt32(length), at: start + 4, in: &out)
        store32(crc, at: start + 8, in: &out)
    }

    /// One chunk's bytes.
    public static func encode(_ chunk: StateChunk, format: UInt8 = version) -> [UInt8] {
        var out: [UInt8] = []
        encode(chunk, into: &out, format: format)
        return out
    }

    static func store32(_ v: UInt32, at i: Int, in out: inout [UInt8]) {
        out[i] = UInt8(truncatingIfNeeded: v)
        out[i + 1] = UInt8(truncatingIfNeeded: v >> 8)
        out[i + 2] = UInt8(truncatingIfNeeded: v >> 16)
        out[i + 3] = UInt8(truncatingIfNeeded: v >> 24)
    }

    static func writeAddress(_ a: IPAddress, _ w: inout ByteWriter) {
        w.u64(a.hi)
        w.u64(a.lo)
    }

    static func writeFlow(_ e: FlowEntry, _ w: inout ByteWriter) {
        writeAddress(e.key.loAddr, &w)
        writeAddress(e.key.hiAddr, &w)
        w.u16(e.key.loPort)
        w.u16(e.key.hiPort)
        w.u8(e.key.proto)
        w.u32(e.key.vlanKey)
        w.u64(e.firstSeen)
        w.u64(e.lastSeen)
        w.u64(e.packetsToServer)
        w.u64(e.packetsToClient)
        w.u64(e.bytesToServer)
        w.u64(e.bytesToClient)
        w.u8(e.flagsToServer)
        w.u8(e.flagsToClient)
        w.u8(e.tcpState.rawValue)
        w.u8(e.clientIsLo ? 1 : 0)
        w.u8(e.inspection)
    }

    /// Version 2's per-flow layout: flags (bit 0: both addresses IPv4, bit 1: the client is the
    /// lower end, bit 2: last seen before first seen, sent whole, bit 3: tunnelled, bit 4: both
    /// inner addresses IPv4), the addresses (4 or 16 bytes each), ports, protocol, a tunnelled
    /// flow's tunnel kind, inner protocol and inner addresses, then varints: VLAN key, first
    /// seen, last seen (the delta from first seen), packets and bytes each way; then the TCP
    /// flags each way, the TCP state and the inspection state.
    static func writeCompactFlow(_ e: FlowEntry, _ w: inout ByteWriter) {
        let v4 = e.key.loAddr.isIPv4Mapped && e.key.hiAddr.isIPv4Mapped
        let tunnelled = e.key.isTunnelled
        let innerV4 = e.key.innerLo.isIPv4Mapped && e.key.innerHi.isIPv4Mapped
        let backwards = e.lastSeen < e.firstSeen
        w.u8(
            (v4 ? 1 : 0) | (e.clientIsLo ? 2 : 0) | (backwards ? 4 : 0) | (tunnelled ? 8 : 0)
                | (tunnelled && innerV4 ? 16 : 0))
        writePair(e.key.loAddr, e.key.hiAddr, v4: v4, &w)
        w.u16(e.key.loPort)
        w.u16(e.key.hiPort)
        w.u8(e.key.proto)
        if tunnelled {
            w.u8(e.key.tunnel.rawValue)
            w.u8(e.key.innerProto)
            writePair(e.key.innerLo, e.key.innerHi, v4: innerV4, &w)
        }
        w.varint(UInt64(e.key.vlanKey))
        w.varint(e.firstSeen)
        w.varint(backwards ? e.lastSeen : e.lastSeen - e.firstSeen)
        w.varint(e.packetsToServer)
        w.varint(e.packetsToClient)
        w.varint(e.bytesToServer)
        w.varint(e.bytesToClient)
        w.u8(e.flagsToServer)
        w.u8(e.flagsToClient)
        w.u8(e.tcpState.rawValue)
        w.u8(e.inspection)
    }

    /// Two addresses, 4 bytes each when both are IPv4, else 16.
    static func writePair(_ lo: IPAddress, _ hi: IPAddress, v4: Bool, _ w: inout ByteWriter) {
        if v4 {
            w.u32(UInt32(truncatingIfNeeded: lo.lo))
            w.u32(UInt32(truncatingIfNeeded: hi.lo))
        } else {
            writeAddress(lo, &w)
            writeAddress(hi, &w)
        }
    }

    static func writeAsset(_ a: AssetState, _ w: inout ByteWriter) {
        writeAddress(a.address, &w)
        w.u16(a.asset.vlan)
        w.u64(a.asset.firstSeen)
        w.u64(a.asset.lastSeen)
        w.u16(UInt16(clamping: a.asset.os.count))
        for os in a.asset.os.prefix(Int(UInt16.max)) {
            w.u8(UInt8(FingerprintKind.allCases.firstIndex(of: os.kind)!))
            w.u32(os.signature.map { UInt32(clamping: $0) } ?? UInt32.max)
            w.string(os.text)
            w.u16(os.port)
            w.u8(os.ttl)
        }
        w.u16(UInt16(clamping: a.asset.services.count))
        for s in a.asset.services.prefix(Int(UInt16.max)) {
            w.u16(s.port)
            w.u8(s.proto)
            w.string(s.service)
            w.string(s.application)
            w.u8(s.server ? 1 : 0)
            w.u32(UInt32(clamping: s.attempts))
            w.u8(s.ttl)
        }
        if let mac = a.asset.mac, mac.count == 6 {
            w.u8(1)
            for b in mac { w.u8(b) }
        } else {
            w.u8(0)
        }
        w.string(a.asset.vendor ?? "")
    }

    static func writeCounters(_ c: InstanceCounters, _ w: inout ByteWriter) {
        for v in [c.packets, c.bytes, c.flowsCreated, c.flowsExpired, c.assets, c.records] { w.u64(v) }
        w.u16(UInt16(clamping: c.byTransport.count))
        for v in c.byTransport.prefix(Int(UInt16.max)) { w.u64(v) }
    }

    // MARK: Decoding

    /// Decodes the chunk at the start of `bytes`; returns it and how many bytes it took.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(StateCodecError) -> (chunk: StateChunk, size: Int)
    {
        guard bytes.count >= headerSize else { throw .truncated(needed: headerSize, available: bytes.count) }
        guard bytes[0] == 0x44, bytes[1] == 0x53 else { throw .badMagic }
        guard versions.contains(bytes[2]) else { throw .wrongVersion(bytes[2]) }
        guard let scope = StateScope(rawValue: bytes[3]) else { throw .unknownScope(bytes[3]) }
        let length = Int(bytes.loadUnaligned(fromByteOffset: 4, as: UInt32.self).littleEndian)
        guard length <= maxPayload else { throw .oversized(length) }
        guard bytes.count >= headerSize + length else {
            throw .truncated(needed: headerSize + length, available: bytes.count)
        }
        let payload = UnsafeRawBufferPointer(rebasing: bytes[headerSize..<(headerSize + length)])
        guard CRC32C.checksum(payload) == bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self).littleEndian else {
            throw .checksumMismatch
        }
        var r = ByteReader(bytes: payload)
        let chunk: StateChunk
        switch scope {
        case .perFlow: chunk = .perFlow(bytes[2] == 1 ? try readFlow(&r) : try readCompactFlow(&r))
        case .multiFlow: chunk = .multiFlow(try readAsset(&r))
        case .allFlows: chunk = .allFlows(try readCounters(&r))
        }
        guard r.remaining == 0 else { throw .malformed("\(r.remaining) bytes after the \(scope) state") }
        return (chunk, headerSize + length)
    }

    public static func decode(_ bytes: [UInt8]) throws(StateCodecError) -> StateChunk {
        let result: Result<(chunk: StateChunk, size: Int), StateCodecError> = bytes.withUnsafeBytes { raw in
            Result { () throws(StateCodecError) in try decode(raw) }
        }
        let (chunk, size) = try result.get()
        guard size == bytes.count else { throw .malformed("\(bytes.count - size) bytes after the chunk") }
        return chunk
    }

    /// Decodes a batch of chunks laid end to end. All or nothing: one bad chunk refuses the batch.
    public static func decodeAll(_ bytes: [UInt8]) throws(StateCodecError) -> [StateChunk] {
        let result: Result<[StateChunk], StateCodecError> = bytes.withUnsafeBytes { raw in
            Result { () throws(StateCodecError) in
                var chunks: [StateChunk] = []
                var offset = 0
                while offset < raw.count {
                    let (chunk, size) = try decode(UnsafeRawBufferPointer(rebasing: raw[offset...]))
                    chunks.append(chunk)
                    offset += size
                }
                return chunks
            }
        }
        return try result.get()
    }

    static func readAddress(_ r: inout ByteReader) throws(StateCodecError) -> IPAddress {
        IPAddress(hi: try r.u64(), lo: try r.u64())
    }

    static func readFlow(_ r: inout ByteReader) throws(StateCodecError) -> FlowEntry {
        let lo = try readAddress(&r)
        let hi = try readAddress(&r)
        let key = FlowKey(
            loAddr: lo, hiAddr: hi, loPort: try r.u16(), hiPort: try r.u16(), proto: try r.u8(),
            vlanKey: try r.u32())
        guard key.vlanKey <= 0xFF_FFFF else { throw .malformed("VLAN key \(key.vlanKey) out of range") }
        guard lo < hi || (lo == hi && key.loPort <= key.hiPort) else { throw .malformed("flow key not canonical") }
        var e = FlowEntry(key: key, hash: 0, clientIsLo: true, now: 0)
        e.firstSeen = try r.u64()
        e.lastSeen = try r.u64()
        try readActivity(&e, &r, varints: false)
        let clientIsLo = try r.u8()
        guard clientIsLo <= 1 else { throw .malformed("client side \(clientIsLo)") }
        e.clientIsLo = clientIsLo == 1
        e.inspection = try r.u8()
        return e
    }

    static func readTunnel(
        _ r: inout ByteReader, v4: Bool
    ) throws(StateCodecError) -> (lo: IPAddress, hi: IPAddress, proto: UInt8, tunnel: TunnelKind) {
        let kind = try r.u8()
        guard let tunnel = TunnelKind(rawValue: kind), tunnel != .none else { throw .malformed("tunnel kind \(kind)") }
        let proto = try r.u8()
        if v4 { return (IPAddress(ipv4: try r.u32()), IPAddress(ipv4: try r.u32()), proto, tunnel) }
        return (try readAddress(&r), try readAddress(&r), proto, tunnel)
    }

    static func readCompactFlow(_ r: inout ByteReader) throws(StateCodecError) -> FlowEntry {
        let flags = try r.u8()
        guard flags & ~0x1F == 0, flags & 0x18 != 0x10 else { throw .malformed("per-flow flags \(flags)") }
        let lo: IPAddress
        let hi: IPAddress
        if flags & 1 != 0 {
            lo = IPAddress(ipv4: try r.u32())
            hi = IPAddress(ipv4: try r.u32())
        } else {
            lo = try readAddress(&r)
            hi = try readAddress(&r)
        }
        let loPort = try r.u16()
        let hiPort = try r.u16()
        let proto = try r.u8()
        let inner = flags & 8 == 0 ? nil : try readTunnel(&r, v4: flags & 16 != 0)
        let vlanKey = try r.varint()
        guard vlanKey <= 0xFF_FFFF else { throw .malformed("VLAN key \(vlanKey) out of range") }
        let key = FlowKey(
            loAddr: lo, hiAddr: hi, loPort: loPort, hiPort: hiPort, proto: proto, vlanKey: UInt32(vlanKey),
            inner: inner)
        guard key.isCanonical else { throw .malformed("flow key not canonical") }
        var e = FlowEntry(key: key, hash: 0, clientIsLo: flags & 2 != 0, now: 0)
        e.firstSeen = try r.varint()
        let last = try r.varint()
        if flags & 4 != 0 {
            e.lastSeen = last
        } else {
            let (sum, overflow) = e.firstSeen.addingReportingOverflow(last)
            guard !overflow else { throw .malformed("last seen past the end of time") }
            e.lastSeen = sum
        }
        try readActivity(&e, &r, varints: true)
        e.inspection = try r.u8()
        return e
    }

    /// What both per-flow layouts carry alike, in this order: packets and bytes each way
    /// (fixed-width in version 1, varints in version 2), the TCP flags each way, the TCP state.
    static func readActivity(_ e: inout FlowEntry, _ r: inout ByteReader, varints: Bool) throws(StateCodecError) {
        func count() throws(StateCodecError) -> UInt64 { varints ? try r.varint() : try r.u64() }
        e.packetsToServer = try count()
        e.packetsToClient = try count()
        e.bytesToServer = try count()
        e.bytesToClient = try count()
        e.flagsToServer = try r.u8()
        e.flagsToClient = try r.u8()
        guard let state = TCPState(rawValue: try r.u8()) else { throw .malformed("unknown TCP state") }
        e.tcpState = state
    }

    static func readAsset(_ r: inout ByteReader) throws(StateCodecError) -> AssetState {
        let address = try readAddress(&r)
        var asset = Detector.Asset(vlan: try r.u16(), firstSeen: try r.u64(), lastSeen: try r.u64())
        let osCount = Int(try r.u16())
        for _ in 0..<osCount {
            let kindIndex = Int(try r.u8())
            guard kindIndex < FingerprintKind.allCases.count else { throw .malformed("fingerprint kind \(kindIndex)") }
            let signature = try r.u32()
            asset.os.append(
                Detector.OSEntry(
                    kind: FingerprintKind.allCases[kindIndex],
                    signature: signature == UInt32.max ? nil : Int(signature),
                    text: try r.string(), port: try r.u16(), ttl: try r.u8()))
        }
        let serviceCount = Int(try r.u16())
        for _ in 0..<serviceCount {
            let port = try r.u16()
            let proto = try r.u8()
            let service = try r.string()
            let application = try r.string()
            let server = try r.u8()
            guard server <= 1 else { throw .malformed("service role \(server)") }
            asset.services.append(
                Detector.ServiceEntry(
                    port: port, proto: proto, service: service, application: application,
                    server: server == 1, attempts: Int(try r.u32()), ttl: try r.u8()))
        }
        switch try r.u8() {
        case 0: break
        case 1: asset.mac = [try r.u8(), try r.u8(), try r.u8(), try r.u8(), try r.u8(), try r.u8()]
        case let flag: throw .malformed("MAC flag \(flag)")
        }
        let vendor = try r.string()
        asset.vendor = vendor.isEmpty ? nil : vendor
        return AssetState(address: address, asset: asset)
    }

    static func readCounters(_ r: inout ByteReader) throws(StateCodecError) -> InstanceCounters {
        var c = InstanceCounters()
        c.packets = try r.u64()
        c.bytes = try r.u64()
        c.flowsCreated = try r.u64()
        c.flowsExpired = try r.u64()
        c.assets = try r.u64()
        c.records = try r.u64()
        let n = Int(try r.u16())
        c.byTransport = []
        for _ in 0..<n { c.byTransport.append(try r.u64()) }
        return c
    }
}
