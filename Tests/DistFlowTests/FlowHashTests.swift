import DistFlow
import DistPacket
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The flow table's hash is keyed: keys chosen to collide under one seed spread under another,
/// and every table works whatever its seed.
@Suite struct FlowHashTests {
    static func key(_ n: UInt32) -> FlowKey {
        FlowKey(
            loAddr: IPAddress(ipv4: 0xC612_0000 | (n >> 16)), hiAddr: IPAddress(ipv4: 0xC613_0001),
            loPort: UInt16(truncatingIfNeeded: n), hiPort: 80, proto: 6, vlanKey: 0)
    }

    @Test func keysMadeToCollideUnderOneSeedSpreadUnderAnother() {
        // What an attacker who knew the hash's key could send: 64 flows for one slot of 2^16.
        let known: UInt64 = 0x1234_5678_9ABC_DEF0
        var colliding: [FlowKey] = []
        var n: UInt32 = 0
        while colliding.count < 64 {
            let k = Self.key(n)
            if k.hashValue64(seed: known) & 0xFFFF == 0x2A2A { colliding.append(k) }
            n += 1
        }
        // Under the key this process drew, they land all over the table.
        var slots: [UInt64: Int] = [:]
        for k in colliding { slots[k.hashValue64(seed: FlowTable.processHashSeed) & 0xFFFF, default: 0] += 1 }
        #expect(slots.values.max()! <= 3)
        #expect(FlowTable.processHashSeed != known)
    }

    @Test func eachProcessDrawsItsOwnKey() {
        // (SWIFT_DETERMINISTIC_HASHING, set only for instruction counts, makes it 0.)
        #expect((FlowTable.processHashSeed == 0) == (getenv("SWIFT_DETERMINISTIC_HASHING") != nil))
        #expect(Self.key(1).hashValue64(seed: 1) != Self.key(1).hashValue64(seed: 2))
    }

    @Test func tablesFindTheirFlowsWhateverTheirSeed() {
        for seed: UInt64 in [0, 1, 0xFFFF_FFFF_FFFF_FFFF, FlowTable.processHashSeed] {
            let table = FlowTable(capacity: 1024, hashSeed: seed)
            for n in 0..<1000 {
                let k = Self.key(UInt32(n) * 7919)
                #expect(table.insert(FlowEntry(key: k, hash: 0, clientIsLo: true, now: 1)) != nil)
            }
            #expect((0..<1000).allSatisfy { table.find(Self.key(UInt32($0) * 7919)) != nil })
            #expect(table.find(Self.key(3)) == nil)
            #expect(table.count == 1000)
        }
    }
}
