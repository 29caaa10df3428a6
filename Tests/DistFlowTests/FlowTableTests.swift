import DistFlow
import DistPacket
import Testing

/// The flow table: both directions, roles, counters, expiry, a full table, and the Move marks.
@Suite struct FlowTableTests {
    static func packet(
        src: UInt32, dst: UInt32, sport: UInt16, dport: UInt16, proto: UInt8 = 6,
        flags: UInt8 = 0x10, vlan: UInt32 = 0
    ) -> PacketInfo {
        var info = PacketInfo()
        info.l3 = .ipv4
        info.l4 = proto == 6 ? .tcp : proto == 17 ? .udp : .other
        info.ipProto = proto
        info.src = IPAddress(ipv4: src)
        info.dst = IPAddress(ipv4: dst)
        info.srcPort = sport
        info.dstPort = dport
        info.tcpFlags = proto == 6 ? flags : 0
        info.vlanKey = vlan
        return info
    }

    let second = FlowTimeouts.second

    @Test func bothDirectionsFindOneFlowWithRolesAndCounters() {
        let table = FlowTable(capacity: 64)
        var index = -1
        let syn = Self.packet(src: 0x0A00_0001, dst: 0x0A00_0002, sport: 40000, dport: 80, flags: 0x02)
        #expect(table.track(syn, wireLength: 60, now: 1000, index: &index) == .created)
        let first = index
        let synAck = Self.packet(src: 0x0A00_0002, dst: 0x0A00_0001, sport: 80, dport: 40000, flags: 0x12)
        #expect(table.track(synAck, wireLength: 60, now: 2000, index: &index) == .updated)
        #expect(index == first && table.count == 1)
        let ack = Self.packet(src: 0x0A00_0001, dst: 0x0A00_0002, sport: 40000, dport: 80, flags: 0x10)
        _ = table.track(ack, wireLength: 1500, now: 3000, index: &index)
        let e = table.entry(at: index)
        #expect(e.client.addr == IPAddress(ipv4: 0x0A00_0001) && e.client.port == 40000)
        #expect(e.server.addr == IPAddress(ipv4: 0x0A00_0002) && e.server.port == 80)
        #expect(e.packetsToServer == 2 && e.packetsToClient == 1)
        #expect(e.bytesToServer == 1560 && e.bytesToClient == 60)
        #expect(e.flagsToServer == 0x12 && e.flagsToClient == 0x12)
        #expect(e.firstSeen == 1000 && e.lastSeen == 3000 && e.tcpState == .established)
        #expect(table.find(FlowKey.canonical(synAck).key) == index)
    }

    @Test func aSynAckSeenFirstMakesItsReceiverTheClient() {
        let table = FlowTable(capacity: 16)
        var index = -1
        _ = table.track(
            Self.packet(src: 0x0A00_0009, dst: 0x0A00_0001, sport: 443, dport: 50000, flags: 0x12),
            wireLength: 60, now: 1, index: &index)
        #expect(table.entry(at: index).client.addr == IPAddress(ipv4: 0x0A00_0001))
        #expect(table.entry(at: index).packetsToClient == 1)
    }

    @Test func protocolPortsAndVLANSeparateFlows() {
        let table = FlowTable(capacity: 16)
        var index = -1
        _ = table.track(Self.packet(src: 1, dst: 2, sport: 1, dport: 2), wireLength: 1, now: 1, index: &index)
        _ = table.track(
            Self.packet(src: 1, dst: 2, sport: 1, dport: 2, proto: 17), wireLength: 1, now: 1, index: &index)
        _ = table.track(Self.packet(src: 1, dst: 2, sport: 1, dport: 3), wireLength: 1, now: 1, index: &index)
        _ = table.track(
            Self.packet(src: 1, dst: 2, sport: 1, dport: 2, vlan: 10 << 12), wireLength: 1, now: 1, index: &index)
        _ = table.track(Self.packet(src: 2, dst: 1, sport: 2, dport: 1), wireLength: 1, now: 1, index: &index)
        #expect(table.count == 4 && table.counters.created == 4)
    }

    @Test func aFullTableCountsTheMissAndKeepsItsFlows() {
        let table = FlowTable(capacity: 16)
        var index = -1
        for i in 0..<16 {
            #expect(
                table.track(
                    Self.packet(src: 1, dst: 2, sport: UInt16(i), dport: 9), wireLength: 1, now: 1, index: &index)
                    == .created)
        }
        #expect(
            table.track(Self.packet(src: 1, dst: 2, sport: 100, dport: 9), wireLength: 1, now: 1, index: &index)
                == .tableFull)
        #expect(index == -1 && table.counters.tableFull == 1 && table.count == 16)
        #expect(
            table.track(Self.packet(src: 2, dst: 1, sport: 9, dport: 3), wireLength: 1, now: 2, index: &index)
                == .updated)
    }

    @Test func idleFlowsExpireByProtocolAndClosedTCPSooner() {
        let table = FlowTable(capacity: 32)
        var index = -1
        let t0: UInt64 = 1_000 * second
        _ = table.track(
            Self.packet(src: 1, dst: 2, sport: 1, dport: 2, proto: 17), wireLength: 1, now: t0, index: &index)
        let udp = index
        _ = table.track(
            Self.packet(src: 1, dst: 2, sport: 3, dport: 4, flags: 0x10), wireLength: 1, now: t0, index: &index)
        let tcp = index
        _ = table.track(
            Self.packet(src: 1, dst: 2, sport: 5, dport: 6, flags: 0x04), wireLength: 1, now: t0, index: &index)
        let reset = index
        #expect(table.entry(at: reset).tcpState == .reset)

        #expect(table.expire(now: t0 + 4 * second, budget: 32) == 0)
        #expect(table.expire(now: t0 + 6 * second, budget: 32) == 1)  // the reset flow, after 5 s
        #expect(!table.entry(at: reset).inUse && table.entry(at: udp).inUse)
        #expect(table.expire(now: t0 + 61 * second, budget: 32) == 1)  // UDP after 60 s
        #expect(table.entry(at: tcp).inUse)
        #expect(table.expire(now: t0 + 301 * second, budget: 32) == 1)  // TCP after 300 s
        #expect(table.count == 0 && table.counters.expired == 3)
    }

    @Test func aFlowLastSeenInTheFutureExpiresOnItsTimeoutFromNow() {
        // An imported flow whose last sighting lies ahead (a peer's clock, or forged state).
        let table = FlowTable(capacity: 32, timeouts: FlowTimeouts(udp: second))
        var index = -1
        _ = table.track(
            Self.packet(src: 1, dst: 2, sport: 1, dport: 2, proto: 17), wireLength: 1, now: 1, index: &index)
        var entry = table.entry(at: index)
        table.remove(at: index)
        entry.lastSeen = .max - 5
        table.insert(entry)
        let t0: UInt64 = 1_000 * second
        #expect(table.expire(now: t0, budget: 32) == 0)
        #expect(table.expire(now: t0 + second / 2, budget: 32) == 0)
        #expect(table.expire(now: t0 + 2 * second, budget: 32) == 1)
        #expect(table.count == 0)
    }

    @Test func expiryWorksInBoundedSteps() {
        let table = FlowTable(capacity: 100, timeouts: FlowTimeouts(udp: second))
        var index = -1
        for i in 0..<100 {
            _ = table.track(
                Self.packet(src: 1, dst: 2, sport: UInt16(i), dport: 7, proto: 17), wireLength: 1, now: 1, index: &index
            )
        }
        var removed = 0
        for _ in 0..<10 { removed += table.expire(now: 10 * second, budget: 10) }
        #expect(removed == 100 && table.count == 0)
    }

    @Test func removalKeepsEveryOtherFlowReachable() {
        // Many flows in a small table force long probe runs; removing half must not lose the rest.
        let table = FlowTable(capacity: 2000)
        var index = -1
        var keys: [FlowKey] = []
        for i in 0..<2000 {
            let p = Self.packet(src: UInt32(i * 7919), dst: 99, sport: UInt16(i & 0xFFFF), dport: 80)
            _ = table.track(p, wireLength: 1, now: 1, index: &index)
            keys.append(FlowKey.canonical(p).key)
        }
        for i in stride(from: 0, to: 2000, by: 2) { table.remove(at: table.find(keys[i])!) }
        for (i, key) in keys.enumerated() {
            #expect((table.find(key) != nil) == (i % 2 == 1))
        }
        #expect(table.count == 1000)
        // The freed entries are reused.
        for i in 0..<1000 {
            _ = table.track(
                Self.packet(src: 5, dst: 6, sport: UInt16(i), dport: 1), wireLength: 1, now: 1, index: &index)
        }
        #expect(table.count == 2000 && table.counters.tableFull == 0)
    }

    @Test func marksFollowTheMoveTransitionsOnly() {
        let table = FlowTable(capacity: 8)
        var index = -1
        _ = table.track(Self.packet(src: 1, dst: 2, sport: 1, dport: 2), wireLength: 1, now: 1, index: &index)
        #expect(table.mark(at: index) == .normal)
        #expect(!table.transitionMark(at: index, from: .normal, to: .gone))  // must pass through moving
        #expect(!table.transitionMark(at: index, from: .moving, to: .gone))  // it is not moving
        #expect(table.transitionMark(at: index, from: .normal, to: .moving))
        #expect(table.mark(at: index) == .moving)
        #expect(table.transitionMark(at: index, from: .moving, to: .normal))  // abort
        #expect(table.transitionMark(at: index, from: .normal, to: .moving))
        #expect(table.transitionMark(at: index, from: .moving, to: .gone))
        #expect(!table.transitionMark(at: index, from: .gone, to: .normal))  // gone is final
        #expect(table.mark(at: index) == .gone)
    }

    /// A packet judged before its flow was marked moving still updates it (the marker reads the
    /// state only after the burst); a gone flow is not updated, and is reclaimed.
    @Test func movingFlowsAreUpdatedGoneFlowsAreNotAndAreReclaimed() {
        let table = FlowTable(capacity: 8)
        var index = -1
        let p = Self.packet(src: 1, dst: 2, sport: 1, dport: 2)
        _ = table.track(p, wireLength: 10, now: 1, index: &index)
        let flow = index
        table.transitionMark(at: flow, from: .normal, to: .moving)
        #expect(table.track(p, wireLength: 10, now: 2, index: &index) == .updated)
        #expect(table.entry(at: flow).packetsToServer == 2 && table.counters.markedPackets == 0)
        // A moving flow is never expired, however idle.
        #expect(table.expire(now: 10_000 * second, budget: 8) == 0)
        table.transitionMark(at: flow, from: .moving, to: .gone)
        #expect(table.track(p, wireLength: 10, now: 3, index: &index) == .marked)
        #expect(table.entry(at: flow).packetsToServer == 2 && table.counters.markedPackets == 1)
        #expect(table.expire(now: 3, budget: 8) == 1)
        #expect(table.count == 0)
        // The slot comes back normal for the next flow that takes it.
        _ = table.track(p, wireLength: 10, now: 4, index: &index)
        #expect(table.mark(at: index) == .normal && table.entry(at: index).packetsToServer == 1)
    }

    @Test func insertReplacesByKeyAndReportsAFullTable() {
        let table = FlowTable(capacity: 16)
        let key = FlowKey.canonical(Self.packet(src: 1, dst: 2, sport: 1, dport: 2)).key
        var entry = FlowEntry(key: key, hash: 0, clientIsLo: true, now: 5)
        entry.packetsToServer = 42
        let at = table.insert(entry)
        #expect(at != nil && table.find(key) == at && table.entry(at: at!).packetsToServer == 42)
        entry.packetsToServer = 43
        #expect(table.insert(entry) == at && table.count == 1)
        for i in 0..<15 {
            let k = FlowKey.canonical(Self.packet(src: 9, dst: 8, sport: UInt16(i), dport: 2)).key
            #expect(table.insert(FlowEntry(key: k, hash: 0, clientIsLo: true, now: 5)) != nil)
        }
        let extra = FlowKey.canonical(Self.packet(src: 7, dst: 8, sport: 1, dport: 2)).key
        #expect(table.insert(FlowEntry(key: extra, hash: 0, clientIsLo: true, now: 5)) == nil)
    }

    @Test func tcpStateMachine() {
        var s = TCPState.none
        s = s.next(flags: 0x02)
        #expect(s == .synSent)
        s = s.next(flags: 0x12)
        #expect(s == .synReceived)
        s = s.next(flags: 0x10)
        #expect(s == .established)
        s = s.next(flags: 0x11)
        #expect(s == .closing)
        s = s.next(flags: 0x10)
        #expect(s == .closing)
        s = s.next(flags: 0x11)
        #expect(s == .closed)
        #expect(TCPState.established.next(flags: 0x14) == .reset)
        #expect(TCPState.none.next(flags: 0x18) == .established)
    }

    @Test func oneMillionFlowsFitIn256MB() {
        #expect(FlowTable.memoryBytes(capacity: 1 << 20) <= 256 * 1_048_576)
    }

    @Test func addressesFormatAsText() {
        #expect(IPAddress(ipv4: 0xC612_0001).text == "198.18.0.1")
        #expect(IPAddress(hi: 0x2001_0db8_0000_0000, lo: 1).text == "2001:db8::1")
        #expect(IPAddress(hi: 0xfe80_0000_0000_0000, lo: 0x0211_22ff_fe33_4455).text == "fe80::211:22ff:fe33:4455")
    }
}
