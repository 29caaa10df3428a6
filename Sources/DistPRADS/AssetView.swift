import DistPacket

/// The merged view of every worker's assets, built by the log writer from the records the
/// workers send (each worker keeps its own asset table; this is where they meet). Serves the
/// admin socket's `assets` request.
public final class AssetView {
    struct Slot: Hashable { var kind: String; var port: UInt16; var proto: UInt8 }
    var byAsset: [String: [Slot: AssetRecord]] = [:]
    var addresses: [String: IPAddress] = [:]
    public private(set) var recordCount = 0

    public init() {}

    public var assetCount: Int { byAsset.count }

    /// Takes a record; a later one for the same asset, kind, port and protocol replaces it.
    public func add(_ record: AssetRecord) {
        recordCount += 1
        byAsset[record.asset, default: [:]][Slot(kind: record.kind, port: record.port, proto: record.proto)] = record
        if addresses[record.asset] == nil, let a = IPAddress(text: record.asset) { addresses[record.asset] = a }
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
