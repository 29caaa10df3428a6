import DistPacket

/// Which worker owns a flow: the one function the fast path, the southbound importer, the
/// channel's destination and the transfer lcore all use, so a flow's state lives in exactly one
/// worker's table whichever queue its packets arrive on.
///
/// The owner is what a NIC programmed by dist-vnf picks in hardware: the Toeplitz hash (RSS)
/// under ``symmetricKey`` over the addresses, and the ports for TCP and UDP, then entry
/// `hash % 64` of a redirection table whose entry `i` is worker `i % workers`. Ports whose RSS
/// dist-vnf can program therefore deliver every flow to its owner's queue and nothing is handed
/// off; elsewhere (net_af_packet fanout, virtio) the receiving worker hands the packet over.
///
/// VLAN ids are part of a flow's key but not of its owner: NICs do not hash VLAN tags, and an
/// owner they cannot compute would send every tagged flow through a handoff. Two flows that
/// differ only in their VLAN have the same owner, each its own state there.
public struct FlowOwnership: @unchecked Sendable, Equatable {
    /// Workers of the instance (at least 1).
    public let workers: Int
    /// ``sharedTable``, held here so the fast path reads it without a lazy global's check.
    @usableFromInline let table: UnsafePointer<UInt32>

    /// Entries of the logical redirection table. Every NIC's table size in use is a multiple of
    /// it (64, 128, 512), so one table programmed with `entry i = (i % 64) % workers` agrees
    /// with ``owner(of:)`` whatever the port's size.
    public static let tableEntries = 64

    /// The redirection table's 64 entries for this many workers (``redirectionRows``' row):
    /// the owner without a division per packet.
    @usableFromInline let redirection: UnsafePointer<UInt8>

    public init(workers: Int) {
        self.workers = max(1, workers)
        table = Self.sharedTable
        redirection = Self.redirectionRows + (min(self.workers, Self.tableEntries) - 1) * Self.tableEntries
    }

    /// Row `w - 1` is the redirection table of `w` workers (entry `i` is `i % w`); from 64
    /// workers on, entry `i` is `i`.
    nonisolated(unsafe) static let redirectionRows: UnsafePointer<UInt8> = {
        let rows = UnsafeMutablePointer<UInt8>.allocate(capacity: tableEntries * tableEntries)
        for w in 1...tableEntries {
            for i in 0..<tableEntries { rows[(w - 1) * tableEntries + i] = UInt8(i % w) }
        }
        return UnsafePointer(rows)
    }()

    public static func == (a: FlowOwnership, b: FlowOwnership) -> Bool { a.workers == b.workers }

    /// The 40-byte RSS key `6d 5a` repeated: with a key whose bits repeat every 16, the Toeplitz
    /// hash is the same for (a, b, p, q) and (b, a, q, p), so both directions of a flow reach
    /// the same queue (Woo and Park, "Scalable TCP Session Monitoring with Symmetric RSS").
    public static let symmetricKey: [UInt8] = (0..<20).flatMap { _ in [UInt8(0x6D), UInt8(0x5A)] }

    /// The worker that owns `key`'s flow.
    @inlinable @inline(__always)
    public func owner(of key: FlowKey) -> Int {
        workers == 1 ? 0 : Int(redirection[Int(Self.hash(key, table: table) & UInt32(Self.tableEntries - 1))])
    }

    /// The Toeplitz hash a NIC computes under ``symmetricKey`` for a packet of `key`'s flow (in
    /// either direction): addresses, and the ports when the protocol is TCP or UDP.
    ///
    /// Toeplitz is linear over GF(2), and under a key of period 16 bits every 16-bit word of the
    /// input meets the same 32-bit windows of the key, so the hash is that of the XOR of all the
    /// input's 16-bit words: two table lookups.
    public static func hash(_ key: FlowKey) -> UInt32 {
        hash(key, table: sharedTable)
    }

    @inlinable @inline(__always)
    static func hash(_ key: FlowKey, table: UnsafePointer<UInt32>) -> UInt32 {
        var fold = key.loAddr.hi ^ key.loAddr.lo ^ key.hiAddr.hi ^ key.hiAddr.lo
        if key.loAddr.isIPv4Mapped && key.hiAddr.isIPv4Mapped {
            // Only the 32-bit addresses are hashed, not the ::ffff: of their mapping (which
            // appears twice and cancels in the fold anyway).
            fold = (key.loAddr.lo ^ key.hiAddr.lo) & 0xFFFF_FFFF
        }
        if key.proto == 6 || key.proto == 17 { fold ^= UInt64(key.loPort ^ key.hiPort) }
        fold ^= fold >> 32
        fold ^= fold >> 16
        let word = Int(truncatingIfNeeded: fold & 0xFFFF)
        return table[word >> 8] ^ table[256 + (word & 0xFF)]
    }

    /// The hash of one 16-bit input word under the symmetric key, split by byte: its high byte's
    /// at 0-255, its low byte's at 256-511. Written once as it is made, only read after (so
    /// shared without isolation), never freed.
    nonisolated(unsafe) static let sharedTable: UnsafePointer<UInt32> = {
        let t = UnsafeMutablePointer<UInt32>.allocate(capacity: 512)
        for (i, v) in (wordTable(high: true) + wordTable(high: false)).enumerated() { t[i] = v }
        return UnsafePointer(t)
    }()

    static func wordTable(high: Bool) -> [UInt32] {
        (0..<256).map { byte in
            toeplitz(high ? [UInt8(byte), 0] : [0, UInt8(byte)], key: symmetricKey)
        }
    }

    /// The Toeplitz hash of `input` under `key` (at least `input.count + 4` bytes), bit by bit,
    /// as Microsoft's RSS specification defines it: for every set bit of the input, the 32 bits
    /// of the key that start at the same position are XORed into the result.
    public static func toeplitz(_ input: [UInt8], key: [UInt8]) -> UInt32 {
        precondition(key.count >= input.count + 4, "the key must be 4 bytes longer than the input")
        var window = UInt32(key[0]) << 24 | UInt32(key[1]) << 16 | UInt32(key[2]) << 8 | UInt32(key[3])
        var result: UInt32 = 0
        for (i, byte) in input.enumerated() {
            let next = key[i + 4]
            for bit in 0..<8 {
                if byte & (0x80 >> UInt8(bit)) != 0 { result ^= window }
                window = window << 1 | UInt32((next >> UInt8(7 - bit)) & 1)
            }
        }
        return result
    }

    /// The bytes a NIC hashes for `key`'s flow in its low-to-high direction: source and
    /// destination address, then (TCP, UDP) source and destination port, big-endian.
    public static func rssInput(_ key: FlowKey) -> [UInt8] {
        var out: [UInt8]
        if key.loAddr.isIPv4Mapped && key.hiAddr.isIPv4Mapped {
            out = BigEndian.bytes(key.loAddr.lo, count: 4) + BigEndian.bytes(key.hiAddr.lo, count: 4)
        } else {
            out =
                BigEndian.bytes(key.loAddr.hi, count: 8) + BigEndian.bytes(key.loAddr.lo, count: 8)
                + BigEndian.bytes(key.hiAddr.hi, count: 8) + BigEndian.bytes(key.hiAddr.lo, count: 8)
        }
        if key.proto == 6 || key.proto == 17 {
            out += BigEndian.bytes(UInt64(key.loPort), count: 2) + BigEndian.bytes(UInt64(key.hiPort), count: 2)
        }
        return out
    }

    /// The redirection table a port of `size` entries gets (nil when `size` is not a multiple of
    /// ``tableEntries``: the port cannot agree, and handoff covers it).
    public func redirectionTable(size: Int) -> [UInt16]? {
        guard size >= Self.tableEntries, size % Self.tableEntries == 0 else { return nil }
        return (0..<size).map { UInt16(redirection[$0 % Self.tableEntries]) }
    }
}
