import DistFlow
import DistMove
import DistPacket
import DistTransfer
import Testing

/// Moves that end without their controller: the source's patience, and `abortMove` at either end.
@Suite struct MoveEndTests {
    static let patience: UInt64 = 50_000_000

    /// An LF Move whose state is at B; the test's switch still sends everything to A.
    static func stateSent(_ workers: (Int, Int), guarantee: String = "lf") -> MoveBed {
        var bed = MoveBed(workersA: workers.0, workersB: workers.1)
        for _ in 0..<5 { bed.traffic(to: [bed.a]) }
        var order = bed.order(guarantee)
        order.patience = patience
        bed.a.engine.start(order, now: bed.a.clock)
        #expect(bed.run(sending: [bed.a]) { $0.a.notice("moveStateSent") != nil }, "state never reached B")
        return bed
    }

    /// What holds after a Move given up: the flows are at A, unmarked, no rule left at either
    /// end, nothing imported left at B, and every packet forwarded once, in order at each of
    /// them (B forwarded those A redirected before the end; A the others).
    static func expectBackAtTheSource(_ bed: inout MoveBed, _ comment: Comment? = nil) {
        #expect(bed.run(limit: 1000, sending: [bed.a]) { $0.b.notice("incomingEnded") != nil }, comment)
        for _ in 0..<3 { bed.traffic(to: [bed.a]) }
        bed.round()
        #expect(bed.a.notice("moveComplete")?.outcome == "aborted", comment)
        #expect(bed.b.notice("incomingEnded")?.outcome == "given up", comment)
        let flows = bed.a.flows(matching: bed.filter)
        #expect(flows.count == MoveBed.flowCount, comment)
        #expect(
            flows.allSatisfy { e in
                bed.a.paths.allSatisfy { p in p.table.find(e.key).map { p.table.mark(at: $0) == .normal } ?? true }
            },
            comment)
        #expect(bed.b.flows(matching: bed.filter).isEmpty, comment)
        #expect((bed.a.paths + bed.b.paths).allSatisfy { $0.eventRule == nil }, comment)
        #expect(bed.b.held.allSatisfy { $0.isEmpty }, comment)
        for flow in 0..<MoveBed.flowCount {
            let (atA, atB) = (MoveEndTests.sequences(bed.a.out, flow), MoveEndTests.sequences(bed.b.out, flow))
            #expect((atA + atB).sorted() == Array(0..<bed.sent[flow]), "flow \(flow): \(comment?.description ?? "")")
            #expect(atA == atA.sorted() && atB == atB.sorted(), "flow \(flow): \(comment?.description ?? "")")
        }
    }

    /// A packet of a flow A has never seen (198.18.1.200 to 198.18.2.1, UDP): mid-Move it is
    /// redirected, and the flow starts at B.
    static func newFlowPacket() -> [UInt8] {
        let udp: [UInt8] = [0x0F, 0xA0, 0x13, 0x88, 0, 12, 0, 0, 1, 2, 3, 4]
        var ip: [UInt8] = [
            0x45, 0, 0, UInt8(20 + udp.count), 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 18, 1, 200, 198, 18, 2, 1,
        ]
        let sum = InternetChecksum.of(ip)
        ip[10] = UInt8(sum >> 8)
        ip[11] = UInt8(sum & 0xFF)
        return [2, 0, 0, 0, 0, 0xBB, 2, 0, 0, 0, 0, 0xAA, 0x08, 0x00] + ip + udp
    }

    static func sequences(_ frames: [[UInt8]], _ flow: Int) -> [UInt32] {
        frames.filter { $0.count >= 49 && $0[42] == 0xD1 && $0[43] == 0x57 && Int($0[44]) == flow }
            .map { $0[45..<49].reduce(UInt32(0)) { $0 << 8 | UInt32($1) } }
    }

    /// The controller died before it updated the switch: the source gives the Move up once its
    /// patience has run out, and the flows are its own again.
    @Test(arguments: [(1, 1), (2, 1), (1, 2)])
    func aMoveTheSwitchNeverFollowsIsGivenUp(workers: (Int, Int)) {
        var bed = Self.stateSent(workers)
        // A flow that starts mid-Move starts at B: given up, B forgets it too.
        bed.a.receive(Self.newFlowPacket())
        #expect(bed.run(limit: 20, sending: [bed.a]) { $0.b.flows(matching: $0.filter).count > MoveBed.flowCount })
        #expect(bed.run(limit: 1000, sending: [bed.a]) { $0.a.notice("moveComplete") != nil })
        #expect(bed.a.notice("moveComplete")?.reason?.contains("did not update the switch") == true)
        Self.expectBackAtTheSource(&bed, "\(workers)")
    }

    /// Before its patience runs out nothing happens: a slow controller still finishes its Move.
    @Test func aSlowControllerStillFinishes() {
        var bed = Self.stateSent((1, 1))
        #expect(!bed.run(limit: 40, sending: [bed.a]) { $0.a.notice("moveComplete") != nil })
        for _ in 0..<4 { bed.traffic(to: [bed.b]) }
        bed.ibc(to: bed.a)
        #expect(bed.run(sending: [bed.b]) { $0.a.notice("moveComplete") != nil && $0.b.notice("incomingEnded") != nil })
        bed.expectMovedWhole()
        #expect(bed.a.notice("moveComplete")?.counters["ibcMissing"] == 0)
    }

    /// LF: the switch sends the traffic to B, which holds it, but the in-band control packet
    /// never comes (the controller died between the two): the source ends the Move as if it
    /// had, and B lets go of what it held.
    @Test(arguments: [(1, 1), (2, 2)])
    func aLossFreeMoveEndsWithoutItsControlPacket(workers: (Int, Int)) {
        var bed = Self.stateSent(workers)
        for _ in 0..<3 { bed.traffic(to: [bed.a]) }
        #expect(bed.run(sending: [bed.b]) { $0.a.notice("moveComplete") != nil && $0.b.notice("incomingEnded") != nil })
        #expect(bed.a.notice("moveComplete")?.outcome == "completed")
        #expect(bed.a.notice("moveComplete")?.counters["ibcMissing"] == 1)
        #expect(bed.a.notice("moveComplete")?.reason?.contains("ended without it") == true)
        for _ in 0..<3 { bed.traffic(to: [bed.b]) }
        bed.expectMovedWhole("\(workers)")
    }

    /// A redirect-first Move whose destination holds (the switch may now go first); the test's
    /// switch still sends everything to A.
    static func destinationHolding() -> MoveBed {
        var bed = MoveBed(workersA: 1, workersB: 1)
        for _ in 0..<5 { bed.traffic(to: [bed.a]) }
        var order = bed.order("lf")
        order.redirectFirst = true
        order.patience = patience
        bed.a.engine.start(order, now: bed.a.clock)
        #expect(bed.run(sending: [bed.a]) { $0.a.notice("moveReady") != nil }, "B never held")
        return bed
    }

    /// Redirect-first, the controller died before it updated the switch: once its patience has
    /// run out the source gives the Move up, and the flows are its own again.
    @Test func aRedirectFirstMoveTheSwitchNeverFollowsIsGivenUp() {
        var bed = Self.destinationHolding()
        #expect(bed.run(limit: 1000, sending: [bed.a]) { $0.a.notice("moveComplete") != nil })
        #expect(bed.a.notice("moveComplete")?.reason?.contains("within 0.05 s of the destination's holding") == true)
        Self.expectBackAtTheSource(&bed)
    }

    /// Redirect-first, the switch sends the traffic to B but the in-band control packet never
    /// comes: the source ends the Move as if it had (its state goes then), and B lets go.
    @Test func aRedirectFirstMoveEndsWithoutItsControlPacket() {
        var bed = Self.destinationHolding()
        for _ in 0..<3 { bed.traffic(to: [bed.a]) }
        #expect(bed.run(sending: [bed.b]) { $0.a.notice("moveComplete") != nil && $0.b.notice("incomingEnded") != nil })
        #expect(bed.a.notice("moveComplete")?.outcome == "completed")
        #expect(bed.a.notice("moveComplete")?.counters["ibcMissing"] == 1)
        for _ in 0..<3 { bed.traffic(to: [bed.b]) }
        bed.expectMovedWhole()
    }

    /// OP while the switch copies the traffic to both waits for the controller: an end either
    /// way would have both VNFs process the copies, or neither.
    @Test func anOrderPreservingMoveWaitsForItsControlPacket() {
        var bed = MoveBed.duplicating((1, 1))
        #expect(!bed.run(limit: 500, sending: [bed.a, bed.b]) { $0.a.notice("moveComplete") != nil })
        bed.ibc(to: bed.a)
        bed.ibc(to: bed.b)
        for _ in 0..<3 { bed.traffic(to: [bed.b]) }
        #expect(bed.run(sending: [bed.b]) { $0.a.notice("moveComplete") != nil && $0.b.notice("incomingEnded") != nil })
        bed.expectMovedWhole()
    }

    /// `abortMove` at the source: the Move is given up at once.
    @Test(arguments: [(1, 1), (2, 2)])
    func theControllerAbortsAtTheSource(workers: (Int, Int)) {
        var bed = Self.stateSent(workers)
        bed.traffic(to: [bed.a])
        #expect(bed.a.engine.abort(moveID: 1, reason: "operator", now: bed.a.clock))
        // (A asks B to give up first: B's answer says which redirected packets it processed.)
        #expect(bed.run(limit: 100, sending: [bed.a]) { $0.a.notice("moveComplete") != nil })
        #expect(bed.a.notice("moveComplete")?.outcome == "aborted")
        #expect(bed.a.notice("moveComplete")?.reason == "the controller aborted it: operator")
        Self.expectBackAtTheSource(&bed, "\(workers)")
        #expect(!bed.a.engine.abort(moveID: 1, reason: "", now: bed.a.clock), "the Move is over")
    }

    /// `abortMove` at the source with the destination gone (the controller saw its connection
    /// close): the Move ends at once, without asking a dead destination to give it up, and
    /// the source processes every packet it redirected that the destination had not
    /// acknowledged as processed: each packet is forwarded once, in order, by one of them.
    @Test func theControllerAbortsAtTheSourceWhenTheDestinationIsGone() {
        var bed = Self.stateSent((1, 1))
        // (Every acknowledgement of what B processed reaches A, then B dies: what A redirects
        // from then on is A's to process. A packet B processed but did not acknowledge before
        // it died would be processed twice: the one duplicate a dead peer can cause.)
        for _ in 0..<3 { bed.round() }
        bed.cutAToB = true
        bed.cutBToA = true
        for _ in 0..<3 {
            bed.traffic(to: [bed.a])
            bed.round()
        }
        #expect(bed.a.engine.abort(moveID: 1, reason: "vnf2 went away", now: bed.a.clock, peerGone: true))
        let end = bed.a.notice("moveComplete")
        #expect(end?.outcome == "aborted", "at once")
        #expect((end?.counters["packetsReprocessed"] ?? 0) >= 3 * MoveBed.flowCount)
        for _ in 0..<3 { bed.traffic(to: [bed.a]) }
        bed.round()
        #expect(bed.a.flows(matching: bed.filter).count == MoveBed.flowCount)
        for flow in 0..<MoveBed.flowCount {
            let (atA, atB) = (MoveEndTests.sequences(bed.a.out, flow), MoveEndTests.sequences(bed.b.out, flow))
            #expect((atA + atB).sorted() == Array(0..<bed.sent[flow]), "flow \(flow)")
            #expect(atA == atA.sorted(), "flow \(flow)")
        }
    }

    /// `abortMove` at the destination (its source gone quiet, say): it forgets what it
    /// imported, and the source hears so and takes its flows back.
    @Test func theControllerAbortsAtTheDestination() {
        var bed = Self.stateSent((2, 1))
        bed.traffic(to: [bed.a])
        #expect(bed.b.engine.abort(moveID: 1, reason: "", now: bed.b.clock))
        #expect(!bed.b.engine.abort(moveID: 2, reason: "", now: bed.b.clock), "no such Move")
        #expect(bed.run(limit: 100, sending: [bed.a]) { $0.a.notice("moveComplete") != nil })
        #expect(bed.a.notice("moveComplete")?.reason?.contains("the controller aborted it") == true)
        Self.expectBackAtTheSource(&bed)
    }
}
