import DistChannel
import DistFlow
import DistMove
import DistPacket
import DistPipeline
import DistState

/// The source's side of a Move, its hosts (multi-flow state): asked of every worker and merged
/// across them, in address order.
extension MoveEngine {
    /// Hosts (`request`: the filter's, those at the other end of its flows), merged across
    /// workers, to the destination.
    func sendHosts(_ move: Outgoing, request: StateRequest) -> Bool {
        var merged: [IPAddress: AssetState] = [:]
        for w in 0..<host.workerCount {
            guard case .assets(let assets)? = askTimed(move, request, worker: w) else { return false }
            merge(assets, into: &merged)
        }
        add(merged, to: move)
        return true
    }

    /// One slice (``hostSlice`` hosts) of the filter's own hosts, final, from the worker whose
    /// turn it is: true once every worker's have gone, nil if a worker did not answer. A slice
    /// a step, so that between two the channel takes its acknowledgements and sends, and the
    /// rings from the workers are emptied: all at once, the slices of 67,000 hosts held the
    /// transfer lcore for 700 ms on the DPDK test bed, and the channel stood still meanwhile.
    /// (In one answer, 66,000 hosts held a worker, and its queues, for 235 ms.) A worker's
    /// slices come in address order: with one worker they go as they come, with several they
    /// are merged first.
    func sendFinalHostSlice(_ move: Outgoing) -> Bool? {
        let request = StateRequest.exportAssetsSlice(move.order.filter, after: move.hostsAfter, limit: hostSlice)
        guard case .assets(let slice)? = askTimed(move, request, worker: move.hostWorker) else { return nil }
        if host.workerCount == 1 {
            for a in slice { move.session.add(.multiFlow(a)) }
        } else {
            merge(slice, into: &move.hostsMerged)
        }
        if slice.count == hostSlice, let last = slice.last {
            move.hostsAfter = last.address
            return false
        }
        move.hostWorker += 1
        move.hostsAfter = nil
        guard move.hostWorker == host.workerCount else { return false }
        add(move.hostsMerged, to: move)
        move.hostsMerged = [:]
        return true
    }

    /// The hosts merged across workers go, in address order.
    func add(_ merged: [IPAddress: AssetState], to move: Outgoing) {
        for address in merged.keys.sorted() { move.session.add(.multiFlow(merged[address]!)) }
    }

    func merge(_ assets: [AssetState], into merged: inout [IPAddress: AssetState]) {
        for a in assets {
            merged[a.address] =
                merged[a.address].map { AssetState(address: a.address, asset: $0.asset.merged(with: a.asset)) } ?? a
        }
    }

    /// Asks a worker, and says in the channel's trace how long it took.
    func askTimed(_ move: Outgoing, _ request: StateRequest, worker w: Int) -> StateResponse? {
        let asked = host.now()
        let reply = host.ask(request, worker: w)
        move.session.endpoint.trace?(
            host.now(), "worker \(w) answered in \((host.now() &- asked) / 1000)us\(reply == nil ? " (no answer)" : "")"
        )
        return reply
    }
}
