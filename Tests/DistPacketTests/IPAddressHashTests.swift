import CDistIntrinsics
import DistPacket
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The hash dictionaries and sets of addresses take (`IPAddress._rawHashValue(seed:)`): a
/// detector's hosts are looked up with it at every inspected packet, and spoofed sources must not
/// be able to pile into a few buckets.
struct IPAddressHashTests {
    @Test func equalAddressesHashAlikeAndTheSeedChangesEveryHash() {
        let a = IPAddress(ipv4: 0xC612_0001)
        #expect(a._rawHashValue(seed: 7) == IPAddress(ipv4: 0xC612_0001)._rawHashValue(seed: 7))
        // Under another seed the same addresses land elsewhere: a table's layout is its own.
        let addresses = (0..<1000).map { IPAddress(ipv4: 0xC612_0000 | UInt32($0)) }
        let moved = addresses.filter { $0._rawHashValue(seed: 7) != $0._rawHashValue(seed: 8) }
        #expect(moved.count == addresses.count)
    }

    /// The collection's seed is only its storage's address: the hash takes a secret of the
    /// process besides (but where Swift's hashing is made deterministic, for repeatable runs).
    @Test func theHashTakesASecretOfTheProcess() {
        if getenv("SWIFT_DETERMINISTIC_HASHING") == nil {
            #expect(dist_address_hash_key() != 0)
        } else {
            #expect(dist_address_hash_key() == 0)
        }
    }

    /// Consecutive IPv4 addresses, and IPv6 addresses that differ only in their upper half,
    /// spread over a table's buckets as random values would: about 1/e of the buckets empty.
    @Test(arguments: [0, 0x5DEE_CE66, -1])
    func neighbouringAddressesSpreadOverTheBuckets(seed: Int) {
        let buckets = 1 << 16
        let families: [[IPAddress]] = [
            (0..<buckets).map { IPAddress(ipv4: 0xC612_0000 | UInt32($0)) },
            (0..<buckets).map { IPAddress(hi: 0x2001_0DB8_0000_0000 | UInt64($0) << 16, lo: 1) },
        ]
        for addresses in families {
            var used = [Bool](repeating: false, count: buckets)
            for address in addresses { used[address._rawHashValue(seed: seed) & (buckets - 1)] = true }
            let empty = Double(used.filter { !$0 }.count) / Double(buckets)
            #expect(empty > 0.34 && empty < 0.40, "\(empty) of the buckets empty")
        }
    }

    @Test func aDictionaryOfAddressesFindsEveryOne() {
        var hosts: [IPAddress: Int] = [:]
        for i in 0..<100_000 { hosts[IPAddress(hi: UInt64(i % 7), lo: 0xFFFF_0000_0000 | UInt64(i))] = i }
        #expect(hosts.count == 100_000)
        #expect(
            (0..<100_000).allSatisfy { hosts[IPAddress(hi: UInt64($0 % 7), lo: 0xFFFF_0000_0000 | UInt64($0))] == $0 })
        #expect(hosts[IPAddress(ipv4: 0xC612_0001)] == nil)
    }
}
