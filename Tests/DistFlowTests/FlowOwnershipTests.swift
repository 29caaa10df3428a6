import DistFlow
import DistPacket
import Testing

/// The owner function: Toeplitz against Microsoft's published vectors, symmetry, IPv6, VLANs,
/// and the redirection table a NIC gets.
@Suite struct FlowOwnershipTests {
    /// The key of Microsoft's "Verifying the RSS Hash Calculation".
    static let microsoftKey: [UInt8] = [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
        0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
        0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ]

    static func key(_ a: IPAddress, _ b: IPAddress, _ pa: UInt16, _ pb: UInt16, proto: UInt8 = 6, vlan: UInt32 = 0)
        -> FlowKey
    {
        var info = PacketInfo()
        info.l3 = a.isIPv4Mapped ? .ipv4 : .ipv6
        info.ipProto = proto
        info.src = a
        info.dst = b
        info.srcPort = pa
        info.dstPort = pb
        info.vlanKey = vlan
        return FlowKey.canonical(info).key
    }

    static func v4(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) -> IPAddress {
        IPAddress(ipv4: UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d))
    }

    @Test func toeplitzMatchesMicrosoftsIPv4Vector() {
        // 66.9.149.187:2794 -> 161.142.100.80:1766
        let addresses: [UInt8] = [66, 9, 149, 187, 161, 142, 100, 80]
        #expect(FlowOwnership.toeplitz(addresses, key: Self.microsoftKey) == 0x323E_8FC2)
        #expect(FlowOwnership.toeplitz(addresses + [0x0A, 0xEA, 0x06, 0xE6], key: Self.microsoftKey) == 0x51CC_C178)
    }

    @Test func toeplitzMatchesMicrosoftsIPv6Vector() {
        // [3ffe:2501:200:1fff::7]:2794 -> [3ffe:2501:200:3::1]:1766
        let src: [UInt8] = [0x3f, 0xfe, 0x25, 0x01, 0x02, 0x00, 0x1f, 0xff, 0, 0, 0, 0, 0, 0, 0, 7]
        let dst: [UInt8] = [0x3f, 0xfe, 0x25, 0x01, 0x02, 0x00, 0x00, 0x03, 0, 0, 0, 0, 0, 0, 0, 1]
        #expect(FlowOwnership.toeplitz(src + dst, key: Self.microsoftKey) == 0x2CC1_8CD5)
        #expect(FlowOwnership.toeplitz(src + dst + [0x0A, 0xEA, 0x06, 0xE6], key: Self.microsoftKey) == 0x4020_7D3D)
    }

    @Test func theFastHashIsTheToeplitzHashANICComputes() {
        var rng = SystemRandomNumberGenerator()
        for i in 0..<2000 {
            let v6 = i % 3 == 0
            let a = v6 ? IPAddress(hi: rng.next(), lo: rng.next()) : IPAddress(ipv4: rng.next())
            let b = v6 ? IPAddress(hi: rng.next(), lo: rng.next()) : IPAddress(ipv4: rng.next())
            let proto: UInt8 = [6, 17, 1, 58][i % 4]
            let k = Self.key(a, b, UInt16.random(in: 0...65535), UInt16.random(in: 0...65535), proto: proto)
            #expect(
                FlowOwnership.hash(k)
                    == FlowOwnership.toeplitz(FlowOwnership.rssInput(k), key: FlowOwnership.symmetricKey))
        }
    }

    @Test func bothDirectionsHaveOneOwnerUnderTheSymmetricKey() {
        let ownership = FlowOwnership(workers: 3)
        for i in 0..<500 {
            let a = Self.v4(10, 0, UInt8(i % 256), 1)
            let b = Self.v4(192, 168, 1, UInt8(i % 200))
            let sport = UInt16(1024 + i)
            let dport: UInt16 = 443
            // The NIC hashes each direction as it comes, source first.
            let forward =
                [UInt8]([10, 0, UInt8(i % 256), 1, 192, 168, 1, UInt8(i % 200)]) + [
                    UInt8(sport >> 8), UInt8(sport & 0xFF), 1, 0xBB,
                ]
            let backward =
                [UInt8]([192, 168, 1, UInt8(i % 200), 10, 0, UInt8(i % 256), 1]) + [
                    1, 0xBB, UInt8(sport >> 8), UInt8(sport & 0xFF),
                ]
            let h = FlowOwnership.toeplitz(forward, key: FlowOwnership.symmetricKey)
            #expect(h == FlowOwnership.toeplitz(backward, key: FlowOwnership.symmetricKey))
            let k = Self.key(a, b, sport, dport)
            #expect(FlowOwnership.hash(k) == h)
            #expect(ownership.owner(of: k) == ownership.owner(of: Self.key(b, a, dport, sport)))
        }
    }

    @Test func ipv6FlowsSpreadOverEveryWorker() {
        let ownership = FlowOwnership(workers: 4)
        var seen = [Int](repeating: 0, count: 4)
        for i in 0..<4000 {
            let a = IPAddress(hi: 0x2001_0DB8_0000_0000, lo: UInt64(i))
            let b = IPAddress(hi: 0x2001_0DB8_0000_0001, lo: 1)
            seen[ownership.owner(of: Self.key(a, b, UInt16(40000 + i % 1000), 80))] += 1
        }
        // Every worker gets a fair share (within a third of the mean).
        #expect(seen.allSatisfy { $0 > 666 && $0 < 1333 }, "\(seen)")
    }

    @Test func aVLANTagDoesNotMoveTheOwnerBecauseNICsDoNotHashIt() {
        let ownership = FlowOwnership(workers: 2)
        for i in 0..<200 {
            let a = Self.v4(198, 18, 0, UInt8(i))
            let b = Self.v4(198, 19, 0, 1)
            let plain = Self.key(a, b, UInt16(5000 + i), 53, proto: 17)
            let tagged = Self.key(a, b, UInt16(5000 + i), 53, proto: 17, vlan: 100 << 12 | 7)
            #expect(plain != tagged)
            #expect(ownership.owner(of: plain) == ownership.owner(of: tagged))
            #expect(
                ownership.owner(of: tagged)
                    == ownership.owner(of: Self.key(b, a, 53, UInt16(5000 + i), proto: 17, vlan: 100 << 12 | 7)))
        }
    }

    @Test func portsCountOnlyForTCPAndUDP() {
        let a = Self.v4(10, 1, 1, 1)
        let b = Self.v4(10, 2, 2, 2)
        #expect(
            FlowOwnership.hash(Self.key(a, b, 8, 0, proto: 1)) == FlowOwnership.hash(Self.key(a, b, 0, 0, proto: 1)))
        #expect(
            FlowOwnership.hash(Self.key(a, b, 1, 2, proto: 6)) != FlowOwnership.hash(Self.key(a, b, 1, 3, proto: 6)))
    }

    @Test func theRedirectionTableAgreesWithTheOwnerAtEveryNICSize() {
        for workers in 1...5 {
            let ownership = FlowOwnership(workers: workers)
            for size in [64, 128, 512] {
                let table = ownership.redirectionTable(size: size)!
                for i in 0..<300 {
                    let k = Self.key(
                        Self.v4(172, 16, UInt8(i / 256), UInt8(i % 256)), Self.v4(8, 8, 8, 8), UInt16(i), 53, proto: 17)
                    #expect(Int(table[Int(FlowOwnership.hash(k)) % size]) == ownership.owner(of: k))
                }
            }
            #expect(ownership.redirectionTable(size: 32) == nil)
            #expect(ownership.redirectionTable(size: 96) == nil)
        }
    }

    @Test func oneWorkerOwnsEverything() {
        let k = Self.key(Self.v4(1, 2, 3, 4), Self.v4(5, 6, 7, 8), 1, 2)
        #expect(FlowOwnership(workers: 1).owner(of: k) == 0)
        #expect(FlowOwnership(workers: 0).workers == 1)
    }
}
