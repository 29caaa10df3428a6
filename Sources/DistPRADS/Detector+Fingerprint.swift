import DistPacket

extension Detector {
    func match(_ e: inout TCPFingerprint, kind: FingerprintKind) -> Int? {
        var key = e
        key.timestamp = e.timestamp == 0 ? 0 : 1  // only "zero or not" takes part in matching
        let slot = Int(truncatingIfNeeded: key.cacheHash &+ UInt64(kind.index)) & (Detector.matchCacheSize - 1)
        if let hit = matchCache[slot], hit.kind == kind, hit.fingerprint == key {
            e.dontFragment = hit.dontFragment
            return hit.matched
        }
        let matched = databases[kind.index]?.match(&e)
        matchCache[slot] = CachedMatch(kind: kind, fingerprint: key, matched: matched, dontFragment: e.dontFragment)
        return matched
    }

    /// PRADS's OS fingerprinting of a SYN, SYN+ACK, RST, FIN or stray ACK: a host's first
    /// sighting of each (kind, matched signature) is an entry and a record.
    func fingerprint(_ p: inout DetectionPacket, kind: FingerprintKind) {
        guard var e = TCPFingerprint.measure(&p, kind: kind) else { return }
        let matched = match(&e, kind: kind)
        let limit = maxEntriesPerHost
        let (port, ttl) = (p.sourcePort, p.ttl)
        // The entry is added in the same lookup that finds it new (nil: not admitted).
        let learnt: OSLearnt? = withAdmittedAsset(p) { asset in
            guard !asset.os.contains(where: { $0.kind == kind && $0.signature == matched }) else { return .known }
            guard asset.os.count < limit else { return .refused }
            let text = osText(e, kind: kind, matched: matched)
            asset.os.insert(OSEntry(kind: kind, signature: matched, text: text, port: port, ttl: ttl), at: 0)
            return .new(text)
        }
        switch learnt {
        case nil, .known?:
            return
        case .refused?:
            counters.entriesRefused += 1
        case .new(let text)?:
            counters.osRecords += 1
            onRecord?(
                AssetRecord(
                    asset: p.source.text, vlan: p.vlan, port: p.sourcePort, proto: 6,
                    kind: kind.rawValue, info: text,
                    distance: Int(Detector.normalizedTTL(p.ttl)) - Int(p.ttl), discovered: p.timestamp))
        }
    }

    enum OSLearnt {
        case known, refused
        case new(String)
    }

    /// An OS record's text as PRADS writes it: the fingerprint, then `os:description` of the
    /// matched signature (or `unknown:unknown`), then the link type and uptime when known.
    func osText(_ e: TCPFingerprint, kind: FingerprintKind, matched: Int?) -> String {
        recordText.reset()
        e.write(to: recordText, uptime: e.timestamp)
        recordText.put(":")
        if let matched, let signature = databases[kind.index]?.signatures[matched] {
            recordText.put(signature.os)
            recordText.put(":")
            recordText.put(signature.description)
        } else {
            recordText.put("unknown:unknown")
        }
        if e.mss != 0 {
            recordText.put(":link:")
            signatures.linkTypes.write(mss: e.mss, to: recordText)
        }
        if e.timestamp != 0 {
            recordText.put(":uptime:")
            recordText.put(Int(e.timestamp / 360_000))
            recordText.put("hrs")
        }
        return recordText.string
    }
}
