import DistFlow
import DistPRADS
import DistPacket
import DistState

/// The per-packet work of a worker, without DPDK: parse each frame, count it, track its flow.
/// The worker hands it each RX burst; benchmarks and tests hand it frames from memory, so the
/// same code is measured and tested that runs on the lcore. Allocation-free and lock-free.
///
/// A burst goes through in three passes, as DPDK's l3fwd does with its hash lookups: parse
/// every frame and prefetch its flow's hash slot; then prefetch each entry the slots point at;
/// then update the flows, by which time their memory is in cache.
public final class FastPath {
    public let table: FlowTable
    /// The worker's counters (its own cache-line aligned slot, read by the main lcore).
    public let stats: UnsafeMutablePointer<WorkerStats>
    /// Largest burst ``process(count:data:segmentLengths:packetLengths:now:)`` accepts.
    public let maxBurst: Int
    @usableFromInline let infos: UnsafeMutablePointer<PacketInfo>
    @usableFromInline let probes: UnsafeMutablePointer<FlowProbe>
    /// Scratch space for the packet the detection looks at (reused: no copy per packet).
    @usableFromInline let detection: UnsafeMutablePointer<DetectionPacket>
    /// The network function: PRADS detection on every tracked packet (nil: forwarding only).
    public let detector: Detector?
    /// ``detector``, for the calls the fast path makes to it without retaining and releasing it
    /// around each (this path holds it for its life).
    @usableFromInline let inspector: Unmanaged<Detector>?
    /// ``detector``'s inspection limit (standard without one), where the per-packet gate reads it.
    @usableFromInline let inspection: InspectionLimit
    /// The event rule in force (OpenNF's enableEvents), set between bursts by the worker.
    public var eventRule: EventRule?
    /// While a worker's held packets drain (see ``HoldQueue``): the filter of the rule that held
    /// them. Packets it matches are kept too, behind them, whatever the event rule says.
    public var drainFilter: FlowFilter?
    /// What to do with each packet of the last burst (see ``Verdict``).
    public let verdicts: UnsafeMutablePointer<Verdict>
    /// This instance's end of the DiST channel (UDP to this address and port): such frames go
    /// to the transfer lcore, never through the network function.
    public var channel: (address: IPAddress, port: UInt16)?
    /// Which worker owns each flow, and which one this is: packets of flows another worker
    /// owns are handed to it (``Verdict/handoff``) through ``handoff``.
    public var ownership = FlowOwnership(workers: 1)
    public var index = 0
    /// This worker's ends of the worker handoff (with several workers).
    public var handoff: HandoffLinks<HandoffPacket>? {
        didSet { handoffLinks = handoff.map { Unmanaged.passUnretained($0) } }
    }
    /// ``handoff``, held by it, for the per-burst path, which then takes no retain and release
    /// (an atomic write each, every burst that hands a packet off).
    @usableFromInline var handoffLinks: Unmanaged<HandoffLinks<HandoffPacket>>?
    /// Each packet's receive time (ns since the epoch; `.max`: none) as its port stamped it, for the
    /// burst being processed: detection then dates what it learns by the packets, as PRADS reading
    /// a capture does (nil: by the clock). See ``stamp(_:now:)``.
    public var stamps: UnsafeMutablePointer<UInt64>?
    /// For each ``Verdict/handoff`` packet of the last burst, the worker that owns it.
    @usableFromInline let owners: UnsafeMutablePointer<UInt16>

    /// A packet's fate after ``process(count:data:segmentLengths:packetLengths:now:)``.
    public enum Verdict: UInt8, Sendable {
        /// Processed; forward it.
        case forward
        /// Raise it as an event and drop it here (state untouched).
        case raiseAndDrop
        /// Raise it as an event and hold it until events are disabled (state untouched).
        case raiseAndHold
        /// Processed; raise it as an event and forward it.
        case raiseAndForward
        /// Held until the rule goes, not raised (state untouched): a DiST Move's destination.
        case hold
        /// A frame of the DiST channel for this instance: to the transfer lcore (not processed).
        case divert
        /// A packet of a flow moving away (or unknown here) under a redirect rule: to the
        /// transfer lcore, which sends it to the peer (state untouched).
        case redirect
        /// Dropped here, not raised (state untouched): a copy the other end of an
        /// order-preserving Move processes, or that Move's in-band control packet.
        case discard
        /// Another worker owns the packet's flow: it is staged on ``handoff`` for that worker,
        /// unprocessed here.
        case handoff
        /// The source of an order-preserving Move got the request to reflect its in-band
        /// control packet: it goes back out as it came, not processed (state untouched).
        case pass
    }

    public init(
        table: FlowTable, stats: UnsafeMutablePointer<WorkerStats>, maxBurst: Int = 64,
        detector: Detector? = nil
    ) {
        self.table = table
        self.stats = stats
        self.maxBurst = maxBurst
        self.detector = detector
        inspector = detector.map { Unmanaged.passUnretained($0) }
        inspection = detector?.inspection ?? .standard
        infos = CacheLines.allocate(PacketInfo.self, capacity: maxBurst)
        infos.initialize(repeating: PacketInfo(), count: maxBurst)
        probes = CacheLines.allocate(FlowProbe.self, capacity: maxBurst)
        probes.initialize(repeating: FlowProbe(PacketInfo(), seed: 0), count: maxBurst)
        verdicts = CacheLines.allocate(Verdict.self, capacity: maxBurst)
        verdicts.initialize(repeating: .forward, count: maxBurst)
        owners = CacheLines.allocate(UInt16.self, capacity: maxBurst)
        owners.initialize(repeating: 0, count: maxBurst)
        detection = CacheLines.allocate(DetectionPacket.self, capacity: 1)
        detection.initialize(
            to: DetectionPacket(
                frame: UnsafeRawBufferPointer(start: nil, count: 0), end: 0,
                timestamp: 0, vlan: 0, l3: 0))
    }

    deinit {
        infos.deallocate()
        probes.deallocate()
        verdicts.deallocate()
        owners.deallocate()
        detection.deallocate()
    }

    /// Processes `count` frames (at most `maxBurst`): `data[i]` points at frame i, of which
    /// `segmentLengths[i]` bytes are contiguous (what the parser may read) and
    /// `packetLengths[i]` is its whole length. Returns true when some packet did not simply go
    /// on (its fate is then in ``verdicts``; otherwise every packet is to be forwarded).
    ///
    /// With several workers, a packet whose flow another worker owns is staged on ``handoff``
    /// (verdict ``Verdict/handoff``) with its parse, `packets[i]` as its handle and `port` as
    /// the port it leaves by; the caller flushes the links after the burst. When the owner's
    /// ring is full it is counted (``WorkerStats/handoffRingFull``) and its verdict is
    /// ``Verdict/discard``.
    @inlinable @discardableResult
    public func process(
        count: Int, data: UnsafePointer<UnsafePointer<UInt8>?>, segmentLengths: UnsafePointer<UInt16>,
        packetLengths: UnsafePointer<UInt32>, now: UInt64, packets: UnsafePointer<OpaquePointer?>? = nil,
        port: UInt16 = 0
    ) -> Bool {
        let stats = self.stats
        let ownership = self.ownership
        let index = self.index
        let several = ownership.workers > 1
        // `detect` borrows the detector from this path, which holds it for its life (bound here
        // by `if let`, it was retained and released at every tracked packet), and is not inlined
        // (inlined, it cost forwarding without detection 15 instructions a packet).
        let detecting = detector != nil
        let seed = table.hashSeed
        var handoffs = false
        var current = eventRule
        let drain = drainFilter
        var events = false
        var bytes: UInt64 = 0
        for i in 0..<count {
            PacketParser.parse(
                UnsafeRawPointer(data[i].unsafelyUnwrapped), length: Int(segmentLengths[i]),
                into: &infos[i])
            stats.pointee.count(infos[i])
            bytes &+= UInt64(packetLengths[i])
            verdicts[i] = .forward
            if infos[i].hasFlow {
                if let channel, infos[i].l4 == .udp, infos[i].dstPort == channel.port, infos[i].dst == channel.address,
                    infos[i].tunnel == .none
                {
                    verdicts[i] = .divert
                    events = true
                    continue
                }
                probes[i] = FlowProbe(parse: infos + i, frame: data[i].unsafelyUnwrapped, seed: seed)
                if let rule = current, rule.cutsAtMarker,
                    let verdict = markerVerdict(
                        UnsafeRawBufferPointer(start: data[i], count: Int(segmentLengths[i])),
                        rule: rule, key: probes[i].key)
                {
                    verdicts[i] = verdict
                    events = true
                    current = eventRule
                    continue
                }
                if several {
                    let owner = ownership.owner(of: probes[i].key)
                    if owner != index {
                        verdicts[i] = .handoff
                        owners[i] = UInt16(truncatingIfNeeded: owner)
                        handoffs = true
                        events = true
                        continue
                    }
                }
                table.prefetchSlot(probes[i])
                // (Tested first: the call's argument is a copy of the key just written.)
                if current != nil || drain != nil, let verdict = ruleVerdict(probes[i].key, rule: current, drain: drain)
                {
                    verdicts[i] = verdict
                    events = true
                }
            } else if infos[i].l3 == .arp {
                arp(i, UnsafeRawBufferPointer(start: data[i], count: Int(segmentLengths[i])), now: now)
            }
        }
        // Without events every flow packet updates state; with them, only those not taken away.
        for i in 0..<count where infos[i].hasFlow && (!events || Self.updatesState(verdicts[i])) {
            table.prefetchEntry(probes[i])
        }
        for i in 0..<count where infos[i].hasFlow && (!events || Self.updatesState(verdicts[i])) {
            var entry = 0
            let outcome = table.track(
                probeAt: probes + i, tcpFlags: infos[i].l4 == .tcp ? infos[i].tcpFlags : nil,
                wireLength: packetLengths[i], now: now, index: &entry)
            if detecting,
                outcome == .created
                    || (outcome == .updated
                        && !detectionIdle(entry, fromLo: probes[i].fromLo, l4: infos[i].l4, tcpFlags: infos[i].tcpFlags))
            {
                detect(
                    frame: data[i].unsafelyUnwrapped, length: Int(segmentLengths[i]),
                    wireLength: Int(packetLengths[i]), l3Offset: Int(infos[i].flowL3Offset), fromLo: probes[i].fromLo,
                    entry: entry, created: outcome == .created, now: stamp(i, now: now), parse: infos + i)
            }
        }
        if handoffs {
            stageHandoffs(
                count: count, data: data, segmentLengths: segmentLengths, packetLengths: packetLengths,
                packets: packets, port: port)
        }
        stats.pointee.countBurst(count, bytes: bytes)
        return events
    }

    /// An ARP reply teaches the detector a host's Ethernet address (PRADS's arp=1), if asked.
    @usableFromInline
    func arp(_ i: Int, _ frame: UnsafeRawBufferPointer, now: UInt64) {
        guard let detector, detector.arp else { return }
        detector.arp(
            frame, at: Int(infos[i].l3Offset), vlan: UInt16(truncatingIfNeeded: infos[i].vlanKey >> 12),
            timestamp: now / 1_000_000_000)
    }

    /// Stages the last burst's ``Verdict/handoff`` packets for their owners, with their parse.
    @usableFromInline
    func stageHandoffs(
        count: Int, data: UnsafePointer<UnsafePointer<UInt8>?>, segmentLengths: UnsafePointer<UInt16>,
        packetLengths: UnsafePointer<UInt32>, packets: UnsafePointer<OpaquePointer?>?, port: UInt16
    ) {
        guard let links = handoffLinks else {
            for i in 0..<count where verdicts[i] == .handoff { verdicts[i] = .discard }
            return
        }
        links._withUnsafeGuaranteedRef { handoff in
            stage(
                handoff, count: count, data: data, segmentLengths: segmentLengths, packetLengths: packetLengths,
                packets: packets, port: port)
        }
    }

    /// ``stageHandoffs(count:data:segmentLengths:packetLengths:packets:port:)`` on `handoff`: each
    /// packet written into the next slot of its owner's ring, the rings' indices looked at once
    /// for the burst.
    @inline(__always) @usableFromInline
    func stage(
        _ handoff: HandoffLinks<HandoffPacket>, count: Int, data: UnsafePointer<UnsafePointer<UInt8>?>,
        segmentLengths: UnsafePointer<UInt16>, packetLengths: UnsafePointer<UInt32>,
        packets: UnsafePointer<OpaquePointer?>?, port: UInt16
    ) {
        // (Read once: a class property is loaded again at every packet.)
        let stamps = self.stamps
        handoff.open(wanted: count)
        for i in 0..<count where verdicts[i] == .handoff {
            guard let slot = handoff.slot(for: Int(owners[i])) else {
                // The owner's ring is full: dropped here, as if the port had dropped it (no
                // state was touched anywhere).
                stats.pointee.handoffRingFull &+= 1
                verdicts[i] = .discard
                continue
            }
            var seconds = UInt32.max
            if let stamps, stamps[i] != .max { seconds = UInt32(clamping: stamps[i] / 1_000_000_000) }
            HandoffPacket.stream(
                probe: probes + i, info: infos + i, frame: data[i].unsafelyUnwrapped, packet: packets?[i],
                packetLength: packetLengths[i], segmentLength: segmentLengths[i], port: port,
                stampSeconds: seconds, to: slot)
        }
        handoff.close()
    }

    /// Processes `count` packets other workers handed this one (``Verdict/handoff``): it owns
    /// their flows. Their receivers parsed and counted them and cut them at any in-band control
    /// packet already; this applies the rest of the event rule and tracks them, as
    /// ``process(count:data:segmentLengths:packetLengths:now:packets:port:)`` does, with
    /// ``verdicts`` and the result alike.
    @inlinable @discardableResult
    public func processHandedOff(_ packets: UnsafePointer<HandoffPacket>, count: Int, now: UInt64) -> Bool {
        let detecting = detector != nil
        let current = eventRule
        let drain = drainFilter
        let seed = table.hashSeed
        var events = false
        for i in 0..<count {
            verdicts[i] = .forward
            probes[i] = packets[i].probe(seed: seed)
            table.prefetchSlot(probes[i])
            // (Tested first, as in `process`: the call's argument is a copy of the key just written.)
            if current != nil || drain != nil, let verdict = ruleVerdict(probes[i].key, rule: current, drain: drain) {
                verdicts[i] = verdict
                events = true
            }
        }
        for i in 0..<count where !events || Self.updatesState(verdicts[i]) {
            table.prefetchEntry(probes[i])
        }
        for i in 0..<count where !events || Self.updatesState(verdicts[i]) {
            var entry = 0
            let outcome = table.track(
                probeAt: probes + i, tcpFlags: packets[i].isTCP ? packets[i].tcpFlags : nil,
                wireLength: packets[i].packetLength, now: now, index: &entry)
            let l4: L4Kind = packets[i].isTCP ? .tcp : .none
            if detecting,
                outcome == .created
                    || (outcome == .updated
                        && !detectionIdle(entry, fromLo: probes[i].fromLo, l4: l4, tcpFlags: packets[i].tcpFlags))
            {
                detect(
                    frame: packets[i].frame, length: Int(packets[i].segmentLength),
                    wireLength: Int(packets[i].packetLength), l3Offset: Int(packets[i].l3Offset),
                    fromLo: probes[i].fromLo, entry: entry, created: outcome == .created,
                    now: packets[i].stampSeconds != .max ? UInt64(packets[i].stampSeconds) * 1_000_000_000 : now)
            }
        }
        stats.pointee.handoffReceived &+= UInt64(count)
        return events
    }

    /// What the event rule (or a drain) does with a packet of this flow on the worker that owns
    /// it; nil: it is processed and forwarded.
    @inlinable @inline(__always)
    func ruleVerdict(_ key: FlowKey, rule current: EventRule?, drain: FlowFilter?) -> Verdict? {
        if let drain, drain.matches(key) { return .hold }
        guard let rule = current, rule.filter.matches(key) else { return nil }
        switch rule.action {
        case .redirect:
            // Marked flows are the peer's now; unknown ones start there.
            return lockedOrUnknown(key) ? .redirect : nil
        case .hold:
            return .hold
        case .gate:
            // Past its queue's cut: waits for the source's last redirected packet.
            return rule.sourceEnded ? nil : .hold
        case .discard:
            // Handed over by a worker whose queue had no cut: a copy all the same.
            stats.pointee.duplicatesDropped &+= 1
            return .discard
        case .drop, .buffer, .process:
            guard !rule.lateLocking || lockedOrUnknown(key) else { return nil }
            return rule.action == .drop ? .raiseAndDrop : rule.action == .buffer ? .raiseAndHold : .raiseAndForward
        }
    }

    /// A packet of a rule that cuts its queue at the Move's in-band control packet, on the
    /// worker that received it. Returns its verdict, or nil when it is past the cut and goes on
    /// to its flow's owner like any other.
    /// - `discard` (an order-preserving Move's source, after it): every packet is a copy the
    ///   destination processes; dropped.
    /// - `gate` (its destination): before this queue's copy of the control packet, packets are
    ///   copies the source redirects, dropped; after it they wait at their owner for the
    ///   source's end.
    /// - ordered `redirect` (its source): before the control packet the owner redirects them;
    ///   after it they are copies, dropped. The control packet itself goes to the transfer lcore,
    ///   which waits for every worker's.
    @usableFromInline
    func cut(_ frame: UnsafeRawBufferPointer) -> Verdict? {
        guard var rule = eventRule else { return nil }
        if let marker = InBandMarker.find(in: frame), marker.moveID == rule.moveID {
            guard marker.token == rule.ibcToken else {
                stats.pointee.markersForged &+= 1
                return .discard
            }
            stats.pointee.markers &+= 1
            if !rule.markerSeen && rule.action != .discard {
                rule.markerSeen = true
                // A gate whose source has ended has nothing left to hold.
                eventRule = rule.action == .gate && rule.sourceEnded ? nil : rule
            }
            return rule.action == .redirect ? .redirect : .discard
        }
        if rule.markerSeen && rule.action == .gate { return nil }
        if !rule.markerSeen && rule.action == .redirect { return nil }
        stats.pointee.duplicatesDropped &+= 1
        return .discard
    }

    /// Under a rule that cuts at a Move's in-band control packet: what becomes of a request to
    /// reflect one, or of a packet of the rule's filter (nil: it goes on as usual).
    @inlinable @inline(__always)
    func markerVerdict(_ frame: UnsafeRawBufferPointer, rule: EventRule, key: FlowKey) -> Verdict? {
        if InBandMarker.isReflectRequest(frame) { return reflect(frame, rule: rule) }
        return rule.filter.matches(key) ? cut(frame) : nil
    }

    /// What becomes of a request to reflect an in-band control packet: the source of that
    /// order-preserving Move sends it back out (the switch sends it on to both VNFs); anywhere
    /// else it is dropped (it is no cut).
    @usableFromInline
    func reflect(_ frame: UnsafeRawBufferPointer, rule: EventRule) -> Verdict {
        guard rule.action == .redirect, rule.ordered, let marker = InBandMarker.find(in: frame),
            marker.moveID == rule.moveID, marker.token == rule.ibcToken
        else {
            stats.pointee.duplicatesDropped &+= 1
            return .discard
        }
        stats.pointee.markers &+= 1
        return .pass
    }

    /// The source's last redirected packet of Move `moveID` is processed: what a `gate` held
    /// may go (true: release it). The rule goes too once this worker's queue had its in-band
    /// control packet; until then it still drops the copies that come before it.
    public func sourceEnded(moveID: UInt64) -> Bool {
        guard var rule = eventRule, rule.action == .gate, rule.moveID == moveID else { return false }
        if rule.markerSeen {
            eventRule = nil
        } else {
            rule.sourceEnded = true
            eventRule = rule
        }
        return true
    }

    /// Under late locking, whether a flow's packets are raised: its state was exported with a
    /// lock, or there is no state for it here (a flow that starts during the Move belongs to
    /// the destination).
    @usableFromInline
    func lockedOrUnknown(_ key: FlowKey) -> Bool {
        guard let index = table.find(key) else { return true }
        return table.mark(at: index) == .moving
    }

    /// Whether a packet with this verdict updates local state (raised-and-dropped or held
    /// packets belong to the controller now).
    @inlinable @inline(__always)
    static func updatesState(_ verdict: Verdict) -> Bool {
        verdict == .forward || verdict == .raiseAndForward
    }

    /// Packet `i`'s time: its port's stamp, or `now`.
    @inlinable @inline(__always)
    func stamp(_ i: Int, now: UInt64) -> UInt64 {
        guard let stamps, stamps[i] != .max else { return now }
        return stamps[i]
    }

    /// Between bursts: expire a few idle flows and publish the table's counters.
    @inlinable
    public func housekeeping(now: UInt64, expiryBudget: Int) {
        // While flows move out (a redirect rule), no entry goes: the transfer lcore holds their
        // positions.
        if eventRule?.action != .redirect { table.expire(now: now, budget: expiryBudget) }
        stats.pointee.flows = table.counters
        stats.pointee.activeFlows = UInt64(table.count)
        if let detector {
            stats.pointee.assetRecords = UInt64(detector.recordCount)
            stats.pointee.signatureRuns = UInt64(detector.counters.regexRuns)
            stats.pointee.matchLimitHits = UInt64(detector.matchLimitHits)
            stats.pointee.assets = UInt64(detector.assets.count)
            stats.pointee.assetsRefused = UInt64(detector.counters.assetsRefused + detector.counters.entriesRefused)
            stats.pointee.assetsEvicted = UInt64(detector.counters.assetsEvicted)
        }
    }

    /// Runs a capture's frames through in bursts, as a worker would receive them (for tests,
    /// benchmarks and offline runs; not the lcore's path). Frame i is seen at `start + i` µs.
    public func process(frames: [PcapFile.Frame], burst: Int = 32, start: UInt64 = 1_000_000_000) {
        let burst = max(1, min(burst, maxBurst))
        var i = 0
        while i < frames.count {
            let n = min(burst, frames.count - i)
            let buffers = (0..<n).map { j in
                let b = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(1, frames[i + j].bytes.count))
                _ = b.initialize(from: frames[i + j].bytes)
                return b
            }
            let data = buffers.map { UnsafePointer($0.baseAddress) }
            let segments = (0..<n).map { UInt16(clamping: frames[i + $0].bytes.count) }
            let lengths = (0..<n).map { frames[i + $0].originalLength }
            process(
                count: n, data: data, segmentLengths: segments, packetLengths: lengths, now: start + UInt64(i) * 1000)
            buffers.forEach { $0.deallocate() }
            i += n
        }
        housekeeping(now: start + UInt64(frames.count) * 1000, expiryBudget: 0)
    }
}
