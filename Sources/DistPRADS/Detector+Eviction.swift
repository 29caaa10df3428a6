import DistPacket

extension Detector {
    /// A host learnt (or imported): last in the eviction order. Hosts that leave by a Move and
    /// come back leave entries behind; once those are as many as the hosts, the queue is made
    /// anew from the hosts, oldest seen first.
    func queue(_ address: IPAddress, at now: UInt64) {
        if hostQueue.count >= 2 * assets.count + 1024 {
            hostQueue = FIFOQueue(
                assets.sorted { $0.value.lastSeen < $1.value.lastSeen }.map { ($0.key, $0.value.lastSeen) })
        }
        hostQueue.append((address, now))
    }

    /// Forgets one host to make room: the one learnt longest ago, unless it was seen since it
    /// was queued (it goes to the back, its time renewed). Returns false when the queue has
    /// nothing to give (every host was imported by a Move or seen within one pass).
    func evictOne() -> Bool {
        // (A pass through the whole queue at most: each host seen since its turn gets one more.)
        var budget = hostQueue.count
        while budget > 0, let (address, queuedAt) = hostQueue.popFirst() {
            budget -= 1
            guard let asset = assets[address] else { continue }
            if asset.lastSeen > queuedAt {
                hostQueue.append((address, asset.lastSeen))
                continue
            }
            removeAsset(at: address)
            counters.assetsEvicted += 1
            return true
        }
        return false
    }
}
