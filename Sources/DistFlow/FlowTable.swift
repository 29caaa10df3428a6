import Atomics
import CDistIntrinsics
import DistPacket

#if canImport(Glibc)
    import Glibc
#endif

/// Idle timeouts, in nanoseconds, after which a flow is expired. The defaults are PRADS's:
/// TCP 300 s idle, or 5 s after FIN from both sides or a RST; UDP and ICMP 60 s; other 300 s.
public struct FlowTimeouts: Sendable, Equatable {
    public var tcp: UInt64
    public var tcpClosed: UInt64
    public var udp: UInt64
    public var icmp: UInt64
    public var other: UInt64

    public init(
        tcp: UInt64 = 300 * second, tcpClosed: UInt64 = 5 * second, udp: UInt64 = 60 * second,
        icmp: UInt64 = 60 * second, other: UInt64 = 300 * second
    ) {
        self.tcp = tcp
        self.tcpClosed = tcpClosed
        self.udp = udp
        self.icmp = icmp
        self.other = other
    }

    public static let second: UInt64 = 1_000_000_000

    @inlinable
    func limit(for entry: FlowEntry) -> UInt64 {
        switch entry.key.proto {
        case 6: entry.tcpState == .closed || entry.tcpState == .reset ? tcpClosed : tcp
        case 17: udp
        case 1, 58: icmp
        default: other
        }
    }
}

/// Counters a table keeps about itself. Plain values, owned by the table's worker.
public struct FlowTableCounters: Sendable, Equatable {
    public var created: UInt64 = 0
    public var expired: UInt64 = 0
    public var removed: UInt64 = 0
    /// Packets of a new flow that found the table full (the packet is still forwarded).
    public var tableFull: UInt64 = 0
    /// Packets of flows marked gone (moved away: state not updated locally).
    public var markedPackets: UInt64 = 0
    public init() {}
}

/// What ``FlowTable/track(_:wireLength:now:index:)`` did with a packet.
public enum TrackOutcome: UInt8, Sendable {
    /// An existing flow's state was updated.
    case updated
    /// A new flow was created and updated.
    case created
    /// The flow is marked gone (its state moved away): its local state was not touched.
    case marked
    /// The flow is new and the table is full: counted, not tracked.
    case tableFull
}

/// A worker's flow table: fixed capacity, open addressing, no allocation after `init`.
///
/// Layout: a dense pool of ``FlowEntry`` values (`capacity` of them) with a free list, and an
/// index of 64-bit slots (a power of two, at least twice the capacity) probed linearly. A slot
/// holds the upper 32 bits of the key's hash as a tag and the entry's position + 1, so a probe
/// touches the entry only when the tag matches. Removal shifts later slots back (no tombstones).
///
/// Single writer: only the owning worker calls the mutating methods. Other threads may change
/// a flow's mark through ``transitionMark(at:from:to:)``, which is atomic.
public final class FlowTable {
    public let capacity: Int
    @usableFromInline let entries: UnsafeMutablePointer<FlowEntry>
    @usableFromInline let slots: UnsafeMutablePointer<UInt64>
    /// Where ``entries`` and ``slots`` lie: on huge pages where the kernel has them, since the
    /// fast path reads them at random.
    let entryPages: HugePages
    let slotPages: HugePages
    @usableFromInline let slotMask: Int
    @usableFromInline let freeList: UnsafeMutablePointer<UInt32>
    @usableFromInline let markOffset: Int
    public let timeouts: FlowTimeouts
    /// The table's mutable scalars live behind a pointer, not in class `var`s, so the fast
    /// path pays no dynamic exclusivity check for them (the table has a single writer).
    @usableFromInline let state: UnsafeMutablePointer<State>

    @usableFromInline struct State {
        @usableFromInline var freeCount: Int
        @usableFromInline var sweepCursor = 0
        @usableFromInline var counters = FlowTableCounters()
        @usableFromInline init(freeCount: Int) { self.freeCount = freeCount }
    }

    /// What the table has done so far.
    @inlinable public var counters: FlowTableCounters { state.pointee.counters }

    /// Bytes the table holds for `capacity` flows (entries, index, free list).
    public static func memoryBytes(capacity: Int) -> Int {
        capacity * MemoryLayout<FlowEntry>.stride + slotCount(for: capacity) * 8 + capacity * 4
    }

    static func slotCount(for capacity: Int) -> Int {
        var n = 16
        while n < capacity * 2 { n <<= 1 }
        return n
    }

    /// The key of this process's flow hash: random, so that nobody outside can choose addresses
    /// whose flows collide in the table; 0 with `SWIFT_DETERMINISTIC_HASHING` set, as Swift's own
    /// `Hasher` is then (for benchmarks that count instructions).
    public static let processHashSeed: UInt64 =
        getenv("SWIFT_DETERMINISTIC_HASHING") != nil ? 0 : UInt64.random(in: 1...UInt64.max)

    /// The key of this table's hash (see ``FlowKey/hashValue64(seed:)``).
    public let hashSeed: UInt64

    public init(capacity: Int, timeouts: FlowTimeouts = FlowTimeouts(), hashSeed: UInt64 = FlowTable.processHashSeed) {
        precondition(capacity > 0 && capacity < Int(UInt32.max), "flow table capacity out of range")
        self.hashSeed = hashSeed
        self.capacity = capacity
        self.timeouts = timeouts
        let slotCount = FlowTable.slotCount(for: capacity)
        slotMask = slotCount - 1
        entryPages = HugePages(byteCount: capacity * MemoryLayout<FlowEntry>.stride)
        entries = entryPages.bind(to: FlowEntry.self, capacity: capacity)
        entries.initialize(repeating: .empty, count: capacity)
        slotPages = HugePages(byteCount: slotCount * MemoryLayout<UInt64>.stride)
        slots = slotPages.bind(to: UInt64.self, capacity: slotCount)
        slots.initialize(repeating: 0, count: slotCount)
        freeList = CacheLines.allocate(UInt32.self, capacity: capacity)
        // Hand out low positions first: entry i is free-list element capacity-1-i.
        for i in 0..<capacity { freeList[i] = UInt32(capacity - 1 - i) }
        state = CacheLines.allocate(State.self, capacity: 1)
        state.initialize(to: State(freeCount: capacity))
        markOffset = MemoryLayout<FlowEntry>.offset(of: \FlowEntry.markStorage)!
    }

    deinit {
        entries.deinitialize(count: capacity)
        entryPages.deallocate()
        slotPages.deallocate()
        freeList.deallocate()
        state.deallocate()
    }

    /// Flows in the table.
    @inlinable public var count: Int { capacity - state.pointee.freeCount }

    public var memoryBytes: Int { FlowTable.memoryBytes(capacity: capacity) }

    /// Bytes of the entries and slots the kernel backs with huge pages (see ``HugePages``).
    public var hugePageBytes: Int { entryPages.hugeBytes + slotPages.hugeBytes }

    /// Whether the kernel may back both the entries and the slots with huge pages.
    public var hugePagesEligible: Bool { entryPages.eligible && slotPages.eligible }

    // MARK: - The fast path

    /// Finds or creates the flow of a parsed packet (which must have `hasFlow`, outside any
    /// tunnel: a tunnelled one's key needs its frame, ``FlowProbe/init(_:frame:seed:)``) and
    /// updates its state, unless the flow is marked. `index` receives the entry's position (-1
    /// when full).
    @inlinable
    public func track(_ info: PacketInfo, wireLength: UInt32, now: UInt64, index: inout Int) -> TrackOutcome {
        track(
            probe: FlowProbe(info, seed: hashSeed), tcpFlags: info.l4 == .tcp ? info.tcpFlags : nil,
            wireLength: wireLength, now: now, index: &index)
    }

    /// ``track(_:wireLength:now:index:)`` with the key and hash already computed (by a burst's
    /// first pass, which also prefetched the slot and entry), given only what it reads of the
    /// parse: the TCP flags (nil for other transports).
    @inlinable
    public func track(
        probe: FlowProbe, tcpFlags: UInt8?, wireLength: UInt32, now: UInt64,
        index: inout Int
    ) -> TrackOutcome {
        withUnsafePointer(to: probe) {
            track(probeAt: $0, tcpFlags: tcpFlags, wireLength: wireLength, now: now, index: &index)
        }
    }

    /// ``track(probe:tcpFlags:wireLength:now:index:)`` of the probe at `probe`, read where it lies
    /// (a burst's probes: passed by value, each was copied for the call).
    @inlinable
    public func track(
        probeAt probe: UnsafePointer<FlowProbe>, tcpFlags: UInt8?, wireLength: UInt32, now: UInt64,
        index: inout Int
    ) -> TrackOutcome {
        let h = probe.pointee.hash
        let tag = h >> 32
        var slot = Int(truncatingIfNeeded: h) & slotMask
        while true {
            let value = slots[slot]
            if value == 0 { break }
            if value >> 32 == tag {
                let e = Int(truncatingIfNeeded: value & 0xFFFF_FFFF) - 1
                if entries[e].key == probe.pointee.key {
                    index = e
                    // A moving flow is still updated: the caller decided by its mark (a packet
                    // redirected is never tracked), so a packet here was judged before the mark
                    // was set, and the marker waits for the burst to end before it reads the
                    // state. Skipping it would lose the update: the packet is neither in the
                    // state read nor redirected. A gone flow's state is elsewhere now.
                    if markAtomic(e).load(ordering: .acquiring) == FlowMark.gone.rawValue {
                        state.pointee.counters.markedPackets &+= 1
                        return .marked
                    }
                    update(e, tcpFlags: tcpFlags, fromLo: probe.pointee.fromLo, wireLength: wireLength, now: now)
                    return .updated
                }
            }
            slot = (slot &+ 1) & slotMask
        }
        guard state.pointee.freeCount > 0 else {
            index = -1
            state.pointee.counters.tableFull &+= 1
            return .tableFull
        }
        state.pointee.freeCount -= 1
        let e = Int(freeList[state.pointee.freeCount])
        // The client is the sender of the first packet seen, unless that packet is a SYN-ACK.
        let synAck = tcpFlags.map { $0 & 0x12 == 0x12 } ?? false
        let clientIsLo = synAck ? !probe.pointee.fromLo : probe.pointee.fromLo
        entries[e] = FlowEntry(
            key: probe.pointee.key, hash: UInt32(truncatingIfNeeded: h), clientIsLo: clientIsLo, now: now)
        slots[slot] = tag << 32 | UInt64(e + 1)
        state.pointee.counters.created &+= 1
        index = e
        update(e, tcpFlags: tcpFlags, fromLo: probe.pointee.fromLo, wireLength: wireLength, now: now)
        return .created
    }

    /// Starts loading the hash slot where a probe begins (first stage of a burst).
    @inlinable @inline(__always)
    public func prefetchSlot(_ probe: FlowProbe) {
        dist_prefetch_read(slots + (Int(truncatingIfNeeded: probe.hash) & slotMask))
    }

    /// Starts loading the entry the probe's home slot points at, if any (second stage).
    @inlinable @inline(__always)
    public func prefetchEntry(_ probe: FlowProbe) {
        let value = slots[Int(truncatingIfNeeded: probe.hash) & slotMask]
        if value != 0 {
            dist_prefetch_write(entries + (Int(truncatingIfNeeded: value & 0xFFFF_FFFF) - 1))
        }
    }

    @inlinable @inline(__always)
    func update(_ e: Int, tcpFlags: UInt8?, fromLo: Bool, wireLength: UInt32, now: UInt64) {
        let entry = entries + e
        let flags = tcpFlags ?? 0
        if fromLo == entry.pointee.clientIsLo {
            entry.pointee.packetsToServer &+= 1
            entry.pointee.bytesToServer &+= UInt64(wireLength)
            entry.pointee.flagsToServer |= flags
        } else {
            entry.pointee.packetsToClient &+= 1
            entry.pointee.bytesToClient &+= UInt64(wireLength)
            entry.pointee.flagsToClient |= flags
        }
        entry.pointee.lastSeen = now
        if let tcpFlags {
            entry.pointee.tcpState = entry.pointee.tcpState.next(flags: tcpFlags)
        }
    }

    // MARK: - Lookup, insert, remove (owner only)

    /// Position of the flow with this key, if it is in the table.
    public func find(_ key: FlowKey) -> Int? {
        let h = key.hashValue64(seed: hashSeed)
        var slot = Int(truncatingIfNeeded: h) & slotMask
        while true {
            let value = slots[slot]
            if value == 0 { return nil }
            if value >> 32 == h >> 32 {
                let e = Int(truncatingIfNeeded: value & 0xFFFF_FFFF) - 1
                if entries[e].key == key { return e }
            }
            slot = (slot + 1) & slotMask
        }
    }

    /// The entry at `index`, for its owner to change in place (never the key or the mark).
    @inlinable
    public func pointer(at index: Int) -> UnsafeMutablePointer<FlowEntry> {
        entries + index
    }

    /// A copy of the entry at `index`.
    public func entry(at index: Int) -> FlowEntry {
        precondition(index >= 0 && index < capacity, "flow index out of range")
        var e = entries[index]
        e.markStorage = markAtomic(index).load(ordering: .acquiring)
        return e
    }

    /// Puts a whole entry in the table (as Move's import will), replacing a flow with the same
    /// key. Returns its position, or nil when the table is full.
    @discardableResult
    public func insert(_ entry: FlowEntry) -> Int? {
        var entry = entry
        entry.inUse = true
        // A flow comes in unmarked: marks belong to the table that sets them.
        entry.markStorage = FlowMark.normal.rawValue
        entry.hash = UInt32(truncatingIfNeeded: entry.key.hashValue64(seed: hashSeed))
        if let e = find(entry.key) {
            entries[e] = entry
            return e
        }
        guard state.pointee.freeCount > 0 else { return nil }
        let h = entry.key.hashValue64(seed: hashSeed)
        var slot = Int(truncatingIfNeeded: h) & slotMask
        while slots[slot] != 0 { slot = (slot + 1) & slotMask }
        state.pointee.freeCount -= 1
        let e = Int(freeList[state.pointee.freeCount])
        entries[e] = entry
        slots[slot] = (h >> 32) << 32 | UInt64(e + 1)
        state.pointee.counters.created &+= 1
        return e
    }

    /// Removes the flow at `index` from the table.
    public func remove(at index: Int) {
        precondition(index >= 0 && index < capacity && entries[index].inUse, "no flow at this index")
        let wanted = UInt64(index + 1)
        var hole = Int(entries[index].hash) & slotMask
        while slots[hole] & 0xFFFF_FFFF != wanted { hole = (hole + 1) & slotMask }
        // Backward-shift deletion: move later members of the probe run into the hole.
        var probe = (hole + 1) & slotMask
        while slots[probe] != 0 {
            let member = Int(slots[probe] & 0xFFFF_FFFF) - 1
            let home = Int(entries[member].hash) & slotMask
            if (probe - home) & slotMask >= (probe - hole) & slotMask {
                slots[hole] = slots[probe]
                hole = probe
            }
            probe = (probe + 1) & slotMask
        }
        slots[hole] = 0
        entries[index].inUse = false
        markAtomic(index).store(FlowMark.normal.rawValue, ordering: .releasing)
        freeList[state.pointee.freeCount] = UInt32(index)
        state.pointee.freeCount += 1
        state.pointee.counters.removed &+= 1
    }

    /// Removes every flow.
    public func removeAll() {
        for i in 0..<capacity where entries[i].inUse { remove(at: i) }
    }

    // MARK: - Expiry

    /// Looks at up to `budget` entries from where the last call stopped and removes those idle
    /// past their timeout at `now`, and those marked gone (their state lives elsewhere).
    /// Flows marked moving are left alone. Returns the number removed.
    @discardableResult
    public func expire(now: UInt64, budget: Int) -> Int {
        var removed = 0
        var cursor = state.pointee.sweepCursor
        for _ in 0..<min(budget, capacity) {
            let e = entries + cursor
            if e.pointee.inUse {
                let mark = markAtomic(cursor).load(ordering: .acquiring)
                // A last sighting in the future (an imported flow from a peer whose clock runs
                // ahead, or forged state) counts from now: otherwise it would never expire.
                if mark == FlowMark.normal.rawValue && e.pointee.lastSeen > now { e.pointee.lastSeen = now }
                if mark == FlowMark.gone.rawValue
                    || (mark == FlowMark.normal.rawValue && now &- e.pointee.lastSeen > timeouts.limit(for: e.pointee))
                {
                    remove(at: cursor)
                    state.pointee.counters.expired &+= 1
                    removed += 1
                }
            }
            cursor += 1
            if cursor == capacity { cursor = 0 }
        }
        state.pointee.sweepCursor = cursor
        return removed
    }

    // MARK: - Marks (any thread)

    @inlinable @inline(__always)
    func markAtomic(_ index: Int) -> UnsafeAtomic<UInt8> {
        let raw = UnsafeMutableRawPointer(entries + index) + markOffset
        return UnsafeAtomic(at: raw.assumingMemoryBound(to: UInt8.AtomicRepresentation.self))
    }

    /// The current mark of the flow at `index`.
    public func mark(at index: Int) -> FlowMark {
        FlowMark(rawValue: markAtomic(index).load(ordering: .acquiring)) ?? .normal
    }

    /// Atomically changes the mark from `expected` to `next` if that transition is allowed
    /// (see ``FlowMark/canTransition(to:)``) and the mark still is `expected`.
    @discardableResult
    public func transitionMark(at index: Int, from expected: FlowMark, to next: FlowMark) -> Bool {
        guard expected.canTransition(to: next), index >= 0, index < capacity else { return false }
        return markAtomic(index).compareExchange(
            expected: expected.rawValue, desired: next.rawValue, ordering: .acquiringAndReleasing
        ).exchanged
    }

    // MARK: - Reading

    /// Calls `body` with each flow in the table (owner thread only), in pool order, until it
    /// returns false.
    public func forEach(_ body: (Int, FlowEntry) -> Bool) {
        for i in 0..<capacity where entries[i].inUse {
            if !body(i, entry(at: i)) { return }
        }
    }
}
