import DistPacket

/// The merged view of every worker's assets, built by the log writer from the records the
/// workers send (each worker keeps its own asset table; this is where they meet). Serves the
/// admin socket's `assets` request.
public final class AssetView {
    struct Slot: Hashable {
        var kind: String
        var port: UInt16
        var proto: UInt8
        var info: String
    }
    var byAsset: [String: [Slot: AssetRecord]] = [:]
    var addresses: [String: IPAddress] = [:]
    public private(set) var recordCount = 0
    /// At most this many assets (dist-vnf: every worker's bound together). A new one beyond it
    /// takes the place of the asset that has gone longest without a new record.
    public var maxAssets: Int
    /// Assets forgotten to make room.
    public private(set) var evicted = 0
    /// Assets in the order their last record came (entries of older records are skipped).
    var order = FIFOQueue<(asset: String, record: Int)>()
    var lastRecord: [String: Int] = [:]

    public init(maxAssets: Int = .max) {
        self.maxAssets = maxAssets
    }

    public var assetCount: Int { byAsset.count }

    /// Takes a record. Returns false when it tells nothing new: another worker learnt it first
    /// (each worker keeps its own asset table), or it is a port-name guess ("@https") for a
    /// service already identified, which PRADS never lets replace the identification.
    /// A service's newer identification replaces the older one; OS fingerprints accumulate.
    @discardableResult
    public func add(_ record: AssetRecord) -> Bool {
        let service = record.kind == "SERVER" || record.kind == "CLIENT"
        let slot = Slot(
            kind: record.kind, port: service ? record.port : 0, proto: record.proto,
            info: service ? "" : record.info)
        if let known = byAsset[record.asset]?[slot] {
            if known.info == record.info { return false }
            if service && Self.isPortGuess(record.info) && !Self.isPortGuess(known.info) { return false }
        }
        if byAsset[record.asset] == nil && byAsset.count >= maxAssets { evictOne() }
        recordCount += 1
        byAsset[record.asset, default: [:]][slot] = record
        if addresses[record.asset] == nil, let a = IPAddress(text: record.asset) { addresses[record.asset] = a }
        lastRecord[record.asset] = recordCount
        if order.count >= 2 * byAsset.count + 1024 {
            // (Entries of records superseded since are as many as the assets: made anew.)
            order = FIFOQueue(lastRecord.sorted { $0.value < $1.value }.map { ($0.key, $0.value) })
        } else {
            order.append((record.asset, recordCount))
        }
        return true
    }

    /// Forgets the asset whose last record is the oldest.
    func evictOne() {
        while let (asset, record) = order.popFirst() {
            // (A later record of it has an entry further on.)
            guard lastRecord[asset] == record else { continue }
            byAsset[asset] = nil
            addresses[asset] = nil
            lastRecord[asset] = nil
            evicted += 1
            return
        }
    }

    /// "service:@name": named after the port only.
    static func isPortGuess(_ info: String) -> Bool {
        guard let colon = info.firstIndex(of: ":") else { return false }
        return info[info.index(after: colon)...].hasPrefix("@")
    }

    /// Assets (sorted by address text) with their current records, those within `prefix` if given.
    public func assets(within prefix: IPPrefix? = nil, limit: Int = .max) -> [(asset: String, records: [AssetRecord])] {
        var out: [(asset: String, records: [AssetRecord])] = []
        for asset in byAsset.keys.sorted() {
            if let prefix, let a = addresses[asset], !prefix.contains(a) { continue }
            let records = byAsset[asset]!.values.sorted { ($0.kind, $0.port) < ($1.kind, $1.port) }
            out.append((asset, records))
            if out.count >= limit { break }
        }
        return out
    }
}
