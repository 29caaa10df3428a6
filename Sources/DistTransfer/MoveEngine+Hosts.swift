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

    /// The filter's own hosts, final, a slice of ``hostSlice`` at a time from each worker: in
    /// one answer, 66,000 hosts held a worker (and its queues) for 235 ms.
    /// A worker's slices come in address order: with one worker they go as they come, with
    /// several they are merged first.
    func sendFinalHosts(_ move: Outgoing) -> Bool {
        var merged: [IPAddress: AssetState] = [:]
        let one = host.workerCount == 1
        for w in 0..<host.workerCount {
            var after: IPAddress?
            while true {
                let request = StateRequest.exportAssetsSlice(move.order.filter, after: after, limit: Self.hostSlice)
                guard case .assets(let slice)? = askTimed(move, request, worker: w) else { return false }
                if one {
                    for a in slice { move.session.add(.multiFlow(a)) }
                } else {
                    merge(slice, into: &merged)
                }
                guard slice.count == Self.hostSlice, let last = slice.last else { break }
                after = last.address
            }
        }
        add(merged, to: move)
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
