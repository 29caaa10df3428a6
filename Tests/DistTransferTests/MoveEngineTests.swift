import Crypto
import DistChannel
import DistFlow
import DistLoopback
import DistMove
import DistPacket
import DistPipeline
import DistTransfer
import Testing

/// Two instances, each a ``MoveEngine`` over real fast-path workers, a switch the test plays
/// (where each packet goes, and when the in-band control packet comes) and a channel between
/// them that can lose, reorder or cut frames.
struct MoveBed {
    let a: MoveInstance
    let b: MoveInstance
    let filter = try! FlowFilter(parsing: SampleTraffic.filter)
    static let flowCount = 8
    /// The next sequence number of each flow (it travels in the packet's payload).
    var sent = [UInt32](repeating: 0, count: MoveBed.flowCount)
    /// The channel: each frame is lost with this chance; each round's frames arrive reversed.
    var loss = 0.0
    var reorder = false
    var cutAToB = false, cutBToA = false
    /// The switch's reflector of an order-preserving Move (A the source): what A sends back
    /// of the requests to reflect its in-band control packet goes on to A and B at once.
    var reflector = false
    var seed: UInt64 = 0x9E37_79B9_7F4A_7C15

    init(workersA: Int = 1, workersB: Int = 1) {
        a = MoveInstance(workers: workersA, address: "198.18.0.1:7700@02:00:00:00:00:01")
        b = MoveInstance(workers: workersB, address: "198.18.0.2:7700@02:00:00:00:00:02")
    }

    /// Packet `sent[flow]` of a UDP flow from 198.18.1.(flow+1) to 198.18.2.1.
    mutating func packet(_ flow: Int) -> [UInt8] {
        defer { sent[flow] += 1 }
        return SampleTraffic.packet(flow: flow, sequence: sent[flow])
    }

    /// One packet of every flow, to `to` (or, duplicated, to both).
    mutating func traffic(to targets: [MoveInstance]) {
        for flow in 0..<MoveBed.flowCount {
            let p = packet(flow)
            for t in targets { t.receive(p) }
        }
    }

    mutating func chance() -> Double {
        seed ^= seed << 13
        seed ^= seed >> 7
        seed ^= seed << 17
        return Double(seed % 1_000_000) / 1_000_000
    }

    /// A round at both ends, then the channel carries what they sent (to worker 0: a channel
    /// frame may reach any worker, which diverts it).
    mutating func round() {
        a.round()
        b.round()
        if reflector { reflect() }
        carry(from: a, to: b, cut: cutAToB)
        carry(from: b, to: a, cut: cutBToA)
    }

    mutating func carry(from: MoveInstance, to: MoveInstance, cut: Bool) {
        var frames = from.wire
        from.wire = []
        if cut { return }
        frames = frames.filter { _ in chance() >= loss }
        if reorder { frames.reverse() }
        for f in frames { to.receive(f, worker: 0) }
    }

    /// Rounds until `done` (false after `limit` rounds, 1 ms each).
    @discardableResult
    mutating func run(limit: Int = 60_000, sending: [MoveInstance] = [], until done: (MoveBed) -> Bool) -> Bool {
        for _ in 0..<limit {
            if done(self) { return true }
            if !sending.isEmpty { traffic(to: sending) }
            round()
        }
        return done(self)
    }

    func order(_ guarantee: String, lateLocking: Bool = true, earlyRelease: Bool = true) -> MoveOrder {
        var order = MoveOrder(moveID: 1, filter: filter, guarantee: guarantee, destination: b.address)
        order.nonce = MoveBed.nonce
        order.multiFlow = false
        order.lateLocking = lateLocking
        order.earlyRelease = earlyRelease
        return order
    }

    /// The in-band control packet, one copy per worker queue of `to`.
    /// The nonce of the bed's Moves, and the token their in-band control packets carry.
    static let nonce: UInt64 = 0x5EED_0000_D157
    static let token = MoveEngine.ibcToken(
        key: SymmetricKey(data: [UInt8](repeating: 7, count: 32)), moveID: 1, nonce: nonce)

    func ibc(to target: MoveInstance) {
        let copies = InBandControl.frames(
            for: filter, moveID: 1, token: MoveBed.token, workers: [a.workerCount, b.workerCount])
        for w in 0..<target.workerCount {
            let copy = copies.first { target.key(of: $0).map(target.owner) == w } ?? copies[0]
            target.receive(copy, worker: w)
        }
    }

    /// An OP Move from A to B whose state is at B and whose traffic the switch sends to both.
    static func duplicating(_ workers: (Int, Int)) -> MoveBed {
        var bed = MoveBed(workersA: workers.0, workersB: workers.1)
        for _ in 0..<5 { bed.traffic(to: [bed.a]) }
        bed.a.engine.start(bed.order("op"), now: bed.a.clock)
        #expect(bed.run(sending: [bed.a]) { $0.a.notice("moveStateSent") != nil })
        for _ in 0..<3 { bed.traffic(to: [bed.a, bed.b]) }
        bed.round()
        #expect(bed.run(limit: 100) { $0.a.notice("moveDuplicating") != nil }, "B never said the copies arrive")
        return bed
    }

    /// OP's cut as the controller sends it: one request to reflect the in-band control packet,
    /// to A (to the queue of its flow's owner), tagged with A's channel VLAN.
    func requestCut() {
        let request = InBandControl.orderedCut(
            for: filter, moveID: 1, token: MoveBed.token, workers: [a.workerCount, b.workerCount],
            vlan: 3901
        ).request
        a.receive(request, worker: a.key(of: MoveBed.reflected(request)).map(a.owner) ?? 0)
    }

    /// The switch's reflector: what A sent back of a request goes on to both, untagged, with an
    /// IBC's Ethernet source, once per copy (ReflectorTests runs the rule itself), together.
    func reflect() {
        let requests = a.out.filter { $0.withUnsafeBytes { InBandMarker.isReflectRequest($0) } }
        a.out.removeAll { $0.withUnsafeBytes { InBandMarker.isReflectRequest($0) } }
        for request in requests {
            let copies = InBandControl.marker(in: MoveBed.reflected(request))?.phase ?? 1
            for copy in InBandControl.frames(
                for: filter, moveID: 1, phase: copies, token: MoveBed.token,
                workers: [a.workerCount, b.workerCount])
            {
                a.receive(copy)
                b.receive(copy)
            }
        }
    }

    static func reflected(_ request: [UInt8]) -> [UInt8] {
        let tagged = request[12] == 0x81 && request[13] == 0x00
        return Array(request[0..<6]) + InBandMarker.sourceMAC + request[(tagged ? 16 : 12)...]
    }

    /// Sequence numbers of each flow as the two network functions forwarded them: A's, then B's.
    func forwarded() -> [[UInt32]] {
        var seqs = [[UInt32]](repeating: [], count: MoveBed.flowCount)
        for frame in a.out + b.out {
            if let (flow, seq) = SampleTraffic.numbered(frame) { seqs[flow].append(seq) }
        }
        return seqs
    }

    /// What holds after a completed Move: the flows are at B only, each one state whose counts
    /// go on from A's, and every packet was forwarded once, in order within its flow.
    func expectMovedWhole(_ comment: Comment? = nil) {
        #expect(a.notice("moveComplete")?.outcome == "completed", comment)
        #expect(b.notice("incomingEnded")?.outcome == "completed", comment)
        #expect(a.flows(matching: filter).isEmpty, comment)
        let moved = b.flows(matching: filter)
        #expect(moved.count == MoveBed.flowCount, comment)
        for e in moved {
            let flow = Int(e.key.loAddr.lo & 0xFF) - 1
            #expect(e.packetsToServer + e.packetsToClient == UInt64(sent[flow]), comment)
            #expect(b.owner(of: e.key) == b.paths.firstIndex { $0.table.find(e.key) != nil }, comment)
        }
        for (flow, seqs) in forwarded().enumerated() {
            #expect(seqs == Array(0..<sent[flow]), "flow \(flow): \(comment?.description ?? "")")
        }
        #expect(b.held.allSatisfy { $0.isEmpty }, comment)
    }
}

/// The VNF side of a Move, on bytes: source and destination engines over real fast-path
/// workers, the switch played by the test.
@Suite struct MoveEngineTests {
    /// LF: state first, the flows' packets redirected meanwhile; the switch moves the traffic,
    /// the in-band control packet closes the source's side.
    static func lossFree(_ bed: inout MoveBed) {
        for _ in 0..<5 { bed.traffic(to: [bed.a]) }
        bed.a.engine.start(bed.order("lf"), now: bed.a.clock)
        let sent = bed.run(sending: [bed.a]) { $0.a.notice("moveStateSent") != nil }
        #expect(sent, "state never reached the destination")
        for _ in 0..<3 { bed.traffic(to: [bed.a]) }
        // The switch's update: from now on to B (which holds them), then the IBC at A.
        for _ in 0..<4 { bed.traffic(to: [bed.b]) }
        bed.ibc(to: bed.a)
        let done = bed.run(sending: [bed.b]) {
            $0.a.notice("moveComplete") != nil && $0.b.notice("incomingEnded") != nil
        }
        #expect(done, "the Move did not end")
        for _ in 0..<3 { bed.traffic(to: [bed.b]) }
    }

    @Test(arguments: [(1, 1), (2, 2), (2, 1), (1, 3)])
    func aLossFreeMoveLeavesOneStatePerFlowAndEveryPacketOnce(workers: (Int, Int)) {
        var bed = MoveBed(workersA: workers.0, workersB: workers.1)
        Self.lossFree(&bed)
        bed.expectMovedWhole("\(workers)")
        #expect((bed.a.notice("moveComplete")?.counters["packetsRedirected"] ?? 0) > 0)
    }

    /// A flow of the filter besides the bed's numbered ones: 198.18.1.200, UDP port 10000 + i.
    static func filler(_ i: Int) -> [UInt8] {
        var p = SampleTraffic.packet(flow: 199, sequence: 0)
        p[34] = UInt8((10_000 + i) >> 8)
        p[35] = UInt8((10_000 + i) & 0xFF)
        p[42] = 0  // (not numbered)
        return p
    }

    /// Late locking marks a large table a batch of 256 at a time while its flows' packets go on:
    /// every flow moves whole, every packet once, in order.
    @Test func aLargeTableMovesWholeUnderLateLocking() {
        var bed = MoveBed()
        let fillers = 3_000
        for i in 0..<fillers { bed.a.receive(Self.filler(i)) }
        for _ in 0..<5 { bed.traffic(to: [bed.a]) }
        bed.a.engine.start(bed.order("lf"), now: bed.a.clock)
        var rounds = 0
        let sent = bed.run(sending: [bed.a]) {
            rounds += 1
            return $0.a.notice("moveStateSent") != nil
        }
        #expect(sent)
        #expect(bed.a.notice("moveStateSent")?.counters["markBatches"] == 12, "\(rounds) rounds")
        for _ in 0..<4 { bed.traffic(to: [bed.b]) }
        bed.ibc(to: bed.a)
        #expect(bed.run(sending: [bed.b]) { $0.a.notice("moveComplete") != nil && $0.b.notice("incomingEnded") != nil })
        #expect(bed.a.flows(matching: bed.filter).isEmpty)
        #expect(bed.b.flows(matching: bed.filter).count == fillers + MoveBed.flowCount)
        for (flow, seqs) in bed.forwarded().enumerated() { #expect(seqs == Array(0..<bed.sent[flow]), "flow \(flow)") }
        #expect((bed.a.notice("moveComplete")?.counters["packetsRedirected"] ?? 0) > 0)
    }

    /// A Move whose channel carries less than the workers redirect is given up before the
    /// packets it keeps pass its limit (they would fill the memory): the source takes its
    /// flows back, and says why.
    @Test func aMoveWhoseChannelFallsBehindIsGivenUp() {
        var bed = MoveBed()
        bed.a.engine.keptLimit = 20_000
        for _ in 0..<5 { bed.traffic(to: [bed.a]) }
        bed.a.engine.start(bed.order("lf"), now: bed.a.clock)
        #expect(bed.run(sending: [bed.a]) { $0.a.notice("moveStateSent") != nil })
        bed.loss = 0.97
        #expect(bed.run(limit: 5_000, sending: [bed.a]) { $0.a.notice("moveComplete") != nil })
        let end = bed.a.notice("moveComplete")
        #expect(end?.outcome == "aborted")
        #expect(end?.reason?.contains("the channel falls behind") == true, "\(end?.reason ?? "no reason")")
        #expect(bed.a.flows(matching: bed.filter).count == MoveBed.flowCount)
    }

    @Test func aLossFreeMoveSurvivesALossyReorderingChannel() {
        var bed = MoveBed(workersA: 2, workersB: 2)
        bed.loss = 0.15
        bed.reorder = true
        Self.lossFree(&bed)
        bed.expectMovedWhole()
        #expect((bed.a.notice("moveComplete")?.counters["retransmissions"] ?? 0) > 0)
    }

    /// OP: the switch first sends to both (B drops its copies before its queue's IBC, A drops
    /// those after), then to B only; B's packets after the IBC wait for A's last redirected one.
    @Test(arguments: [(1, 1), (2, 2)])
    func anOrderPreservingMoveForwardsEachPacketOnceInOrder(workers: (Int, Int)) {
        // Phase one: copies to both; the IBC to both; phase two: to B only.
        var bed = MoveBed.duplicating(workers)
        bed.ibc(to: bed.a)
        bed.ibc(to: bed.b)
        for _ in 0..<3 { bed.traffic(to: [bed.b]) }
        #expect(bed.run(sending: [bed.b]) { $0.a.notice("moveComplete") != nil && $0.b.notice("incomingEnded") != nil })
        bed.expectMovedWhole("\(workers)")
    }

    /// OP as the controller runs it: A reflects the requests to reflect its IBC (out, as they
    /// came, not taken for the cut), the switch sends each on to both at once while it copies
    /// the traffic to both, and A's Move ends only when every copy has come back; then the
    /// switch sends to B only. Every packet is forwarded once, in order, by one of them.
    @Test(arguments: [(1, 1), (2, 2), (1, 2)])
    func anOrderPreservingMoveCutsAtTheReflectedControlPacket(workers: (Int, Int)) {
        var bed = MoveBed.duplicating(workers)
        bed.reflector = true
        bed.requestCut()
        #expect(bed.run(sending: [bed.a, bed.b]) { $0.a.notice("moveComplete") != nil })
        #expect(bed.a.notice("moveComplete")?.counters["ibcCopiesMissing"] == 0)
        for _ in 0..<3 { bed.traffic(to: [bed.b]) }
        #expect(bed.run(sending: [bed.b]) { $0.b.notice("incomingEnded") != nil })
        bed.expectMovedWhole("\(workers)")
    }

    /// The destination falls silent mid-Move: the source gives up and has its flows back,
    /// unmarked and counted on (what it redirected but never sent is processed here).
    @Test func aSourceWhoseDestinationFallsSilentTakesItsFlowsBack() {
        var bed = MoveBed(workersA: 2, workersB: 1)
        for _ in 0..<5 { bed.traffic(to: [bed.a]) }
        bed.a.engine.start(bed.order("lf"), now: bed.a.clock)
        bed.cutAToB = true
        bed.cutBToA = true
        let ended = bed.run(sending: [bed.a]) { $0.a.notice("moveComplete") != nil }
        #expect(ended)
        #expect(bed.a.notice("moveComplete")?.outcome == "aborted")
        let flows = bed.a.flows(matching: bed.filter)
        #expect(flows.count == MoveBed.flowCount)
        #expect(
            flows.allSatisfy { e in
                bed.a.paths.allSatisfy { p in p.table.find(e.key).map { p.table.mark(at: $0) == .normal } ?? true }
            })
        #expect(bed.a.paths.allSatisfy { $0.eventRule == nil })
        // Afterwards the flows are A's again: processed and counted there (what the workers
        // redirected before the rule went too, as it reaches the engine).
        bed.round()
        bed.traffic(to: [bed.a])
        let total = bed.a.flows(matching: bed.filter).reduce(UInt64(0)) { $0 + $1.packetsToServer + $1.packetsToClient }
        let inDoubt = UInt64(bed.a.notice("moveComplete")?.counters["packetsInDoubt"] ?? 0)
        #expect(total + inDoubt == UInt64(bed.sent.reduce(0, +)))
    }

    /// The source falls silent after the state went: the destination gives the Move up, forgets
    /// what it imported (the source may have its flows back) and lets the switch's packets go
    /// on, which start their flows afresh here.
    @Test func aDestinationWhoseSourceFallsSilentForgetsWhatItImported() {
        var bed = MoveBed(workersA: 1, workersB: 2)
        for _ in 0..<5 { bed.traffic(to: [bed.a]) }
        bed.a.engine.start(bed.order("lf", lateLocking: false), now: bed.a.clock)
        #expect(bed.run { $0.b.flows(matching: $0.filter).count == MoveBed.flowCount })
        bed.cutAToB = true
        bed.cutBToA = true
        for _ in 0..<2 { bed.traffic(to: [bed.b]) }
        #expect(bed.b.held.joined().count == 2 * MoveBed.flowCount)
        #expect(bed.run(limit: 10_000) { $0.b.notice("incomingEnded") != nil })
        #expect(bed.b.notice("incomingEnded")?.outcome == "given up")
        let restarted = bed.b.flows(matching: bed.filter)
        #expect(restarted.count == MoveBed.flowCount)
        #expect(restarted.allSatisfy { $0.packetsToServer + $0.packetsToClient == 2 })
        #expect(bed.b.held.allSatisfy { $0.isEmpty })
        #expect(bed.b.paths.allSatisfy { $0.eventRule == nil })
    }

    /// A recording of a whole Move, replayed to its destination once the Move is over, opens
    /// nothing there (a Move id seen before) and nothing at a third instance (bound to another
    /// pair): counted, no state imported again.
    @Test func aRecordedMoveReplayedOpensNothing() {
        var bed = MoveBed()
        for _ in 0..<5 { bed.traffic(to: [bed.a]) }
        bed.a.engine.start(bed.order("ng"), now: bed.a.clock)
        var recording: [[UInt8]] = []
        for _ in 0..<3000 {
            bed.a.round()
            bed.b.round()
            recording += bed.a.wire
            bed.carry(from: bed.a, to: bed.b, cut: false)
            bed.carry(from: bed.b, to: bed.a, cut: false)
            if bed.a.notice("moveComplete") != nil && !bed.b.engine.busy { break }
        }
        #expect(bed.a.notice("moveComplete")?.outcome == "completed")
        #expect(!bed.b.engine.busy)
        let started = bed.b.notices.filter { $0.type == "incomingStarted" }.count
        let third = MoveInstance(workers: 1, address: "198.18.0.3:7700@02:00:00:00:00:03")
        for f in recording {
            bed.b.receive(f, worker: 0)
            // (Readdressed to the third instance, as from A.)
            let payload = ChannelDatagram.parse(f, to: bed.b.address)!.payload
            third.receive(ChannelDatagram.build(from: bed.a.address, to: third.address, payload: payload), worker: 0)
        }
        bed.b.round()
        third.round()
        #expect(bed.b.engine.replaysRefused >= 1)
        #expect(bed.b.notices.filter { $0.type == "incomingStarted" }.count == started)
        #expect(!bed.b.engine.busy && !third.engine.busy)
        #expect(third.engine.rejectedFrames == recording.count)
        #expect(third.flows(matching: bed.filter).isEmpty)
    }

    /// Frames that do not authenticate for a Move under way change nothing there, not even when
    /// the source was last heard: a destination whose source fell silent gives up on time
    /// while forgeries keep coming.
    @Test func forgeriesDoNotKeepAMoveAlive() {
        var bed = MoveBed()
        for _ in 0..<5 { bed.traffic(to: [bed.a]) }
        bed.a.engine.start(bed.order("lf", lateLocking: false), now: bed.a.clock)
        #expect(bed.run { $0.b.flows(matching: $0.filter).count == MoveBed.flowCount })
        bed.cutAToB = true
        bed.cutBToA = true
        var forged = ChannelFrame(kind: .state, moveID: 1, sequence: 50, payload: [1]).encoded(
            key: SymmetricKey(data: [UInt8](repeating: 9, count: 32)))
        forged[4..<12] = [0, 0, 0, 0, 0, 0, 0, 1]
        let datagram = ChannelDatagram.build(from: bed.a.address, to: bed.b.address, payload: forged)
        let ended = bed.run(limit: 7_000) { bed in
            bed.b.receive(datagram, worker: 0)
            return bed.b.notice("incomingEnded") != nil
        }
        #expect(ended, "the forgeries kept the Move alive")
        #expect(bed.b.notice("incomingEnded")?.outcome == "given up")
        #expect(bed.b.engine.rejectedFrames > 1000)
    }

    /// An in-band control packet without the Move's token ends nothing at the source: counted;
    /// the controller's (with the token its movePerFlow reply gave) ends it.
    @Test func aForgedInBandControlPacketEndsNoMove() {
        var bed = MoveBed()
        for _ in 0..<5 { bed.traffic(to: [bed.a]) }
        bed.a.engine.start(bed.order("lf"), now: bed.a.clock)
        #expect(bed.run(sending: [bed.a]) { $0.a.notice("moveStateSent") != nil })
        for _ in 0..<2 { bed.traffic(to: [bed.b]) }
        for token: UInt64 in [0, MoveBed.token ^ 1] {
            bed.a.receive(InBandControl.frame(for: bed.filter, moveID: 1, token: token))
        }
        for _ in 0..<50 { bed.round() }
        #expect(bed.a.notice("moveComplete") == nil)
        #expect(bed.a.engine.markersForged == 2)
        bed.ibc(to: bed.a)
        #expect(bed.run(sending: [bed.b]) { $0.a.notice("moveComplete") != nil })
        #expect(bed.a.notice("moveComplete")?.outcome == "completed")
        #expect(
            MoveEngine.ibcToken(
                key: SymmetricKey(data: [UInt8](repeating: 7, count: 32)), moveID: 1, nonce: MoveBed.nonce + 1)
                != MoveBed.token)
    }

    /// A second Move out while one is under way is refused, said so; the first goes on.
    @Test func aSecondMoveOutIsRefused() {
        var bed = MoveBed()
        for _ in 0..<2 { bed.traffic(to: [bed.a]) }
        bed.a.engine.start(bed.order("lf"), now: bed.a.clock)
        var second = bed.order("lf")
        second.moveID = 2
        bed.a.engine.start(second, now: bed.a.clock)
        #expect(bed.a.notices.first?.moveID == 2)
        #expect(bed.a.notices.first?.outcome == "refused")
        #expect(bed.run { $0.a.notice("moveStateSent") != nil })
    }

    /// Frames that are not of a Move this instance knows, or do not authenticate, are counted
    /// and change nothing.
    @Test func forgedChannelFramesAreRejected() {
        let bed = MoveBed()
        var bytes = ChannelDatagram.build(
            from: bed.a.address, to: bed.b.address, payload: [UInt8](repeating: 0x42, count: 64))
        bed.b.receive(bytes, worker: 0)
        bytes[bytes.count - 1] ^= 0xFF
        bed.b.receive(bytes, worker: 0)
        bed.b.round()
        #expect(bed.b.engine.rejectedFrames == 2)
        #expect(!bed.b.engine.busy)
        #expect(bed.b.wire.isEmpty)
    }
}
