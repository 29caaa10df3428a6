import Atomics
import CDPDKShim
import Crypto
import DistChannel
import DistFlow
import DistPipeline
import DistState
import DistTransfer

#if canImport(Glibc)
    import Glibc
#endif

/// The transfer lcore: runs the instance's ``MoveEngine`` (DiST's Move, peer to peer over the
/// data port) and is its ``MoveHost`` on DPDK. Frames come from the workers' rings as mbufs
/// and leave as bytes for the engine; what the engine hands a worker goes through that
/// worker's ring, packets in mbufs from the instance's pool. The workers never wait for it.
public final class TransferAgent: MoveHost, @unchecked Sendable {
    public var local: ChannelAddress { engine.local }
    let plane: DataPlane
    let links: [TransferLink]
    public let lcore: UInt32
    /// Orders from the main lcore, and notices back to it.
    public let orders = SPSCRing<MoveCommand>(capacity: 64)
    public let notices = SPSCRing<MoveNotice>(capacity: 256)
    /// All-flows counters a Move brought here, for the main lcore to add.
    public let importedCounters = SPSCRing<InstanceCounters>(capacity: 64)
    /// Deliveries a worker's ring did not take within a million tries (a worker stuck).
    public private(set) var pushDropped = 0
    /// The longest a delivery waited for room in a worker's ring (ns).
    public private(set) var pushWaitMaxNs: UInt64 = 0
    /// Channel frames not sent, and packets not handed to a worker, because the mbuf pool was
    /// empty (counted: the channel retransmits a frame; a packet is lost and said so).
    public private(set) var transmitNoMbuf = 0
    public private(set) var processNoMbuf = 0
    /// Channel frames sent on the transfer lcore's own TX queue, and those dropped because
    /// the queue stayed full (the channel resends them).
    public let framesSent = ManagedAtomic<Int>(0)
    /// Time spent in rounds that did work (see ``WorkerStats/transferBusyNanoseconds``).
    public let busyNanoseconds = ManagedAtomic<UInt64>(0)
    public private(set) var framesDropped = 0
    /// Frames waiting for room in the own TX queue, oldest first.
    private var outgoing: [OpaquePointer?] = []
    private static let outgoingLimit = 4096
    /// The fewest free mbufs seen in the pool while a Move was under way here.
    public private(set) var poolLowWater: UInt32 = .max
    /// Where every Move's channel decisions go, line by line, if anywhere.
    let traceFile: UnsafeMutablePointer<FILE>?
    private var engineStorage: MoveEngine?
    var engine: MoveEngine { engineStorage! }

    public var rejectedFrames: Int { engine.rejectedFrames }
    /// The token `order`'s in-band control packets carry (for its controller).
    public func ibcToken(for order: MoveOrder) -> UInt64 { engine.ibcToken(order.moveID, nonce: order.nonce) }
    public var strayRedirects: Int { engine.strayRedirects }
    public var duplicatesDropped: Int { engine.duplicatesDropped }

    /// `traceFile`: a file to append every Move's channel trace to (see ``ChannelEndpoint/trace``).
    /// `compressStates`: Moves out send their states compressed (``MoveEngine/compressStates``).
    public init(
        plane: DataPlane, lcore: UInt32, local: ChannelAddress, key: SymmetricKey, mtu: Int = 9000,
        traceFile path: String? = nil, compressStates: Bool = true
    ) throws {
        if let path {
            guard let file = fopen(path, "a") else {
                throw TransferAgentError.traceFile(path, String(cString: strerror(errno)))
            }
            traceFile = file
        } else {
            traceFile = nil
        }
        self.plane = plane
        self.lcore = lcore
        links = plane.workers.map { $0.transfer! }
        let file = traceFile
        engineStorage = MoveEngine(
            local: local, key: key, mtu: mtu, host: self,
            traceLine: file.map { f in { line in fputs(line + "\n", f) } })
        engine.compressStates = compressStates
    }

    deinit {
        if let traceFile { fclose(traceFile) }
    }

    func run() -> Int32 {
        let clock = plane.clock
        var idle = plane.config.idleBackoff
        while !plane.stopFlag.load(ordering: .relaxed) {
            let began = clock.now()
            var busy = false
            orders.drain { command in
                busy = true
                switch command {
                case .start(let order):
                    engine.start(order, now: clock.now())
                case .abort(let id, let reason, let peerGone):
                    if !engine.abort(moveID: id, reason: reason, now: clock.now(), peerGone: peerGone) {
                        _ = notices.push(
                            MoveNotice(
                                moveID: id, type: "abortUnknown", outcome: "unknown",
                                reason: "no Move \(id) is under way here", counters: [:]))
                    }
                }
            }
            busy = takeFrames(now: clock.now()) || busy
            busy = engine.step(now: clock.now()) || busy
            busy = sendOutgoing() || busy
            // (Only after work: a read of the pool's count walks every lcore's cache.)
            if busy && engine.busy { poolLowWater = min(poolLowWater, plane.pool.available) }
            if busy { busyNanoseconds.wrappingIncrement(by: clock.now() &- began, ordering: .relaxed) }
            // (A sleep of tens of microseconds is far below the channel's pacing and timers.)
            idle.pause(busy: busy)
        }
        outgoing.withUnsafeMutableBufferPointer { dist_mbuf_free_bulk($0.baseAddress, UInt32($0.count)) }
        outgoing.removeAll()
        return 0
    }

    /// Hands the engine what the workers diverted or redirected here, and frees it. A
    /// redirected packet is read where it lies (the channel's next frame takes its one copy);
    /// a channel frame, which the engine keeps, is copied out once.
    func takeFrames(now: UInt64) -> Bool {
        let outer = taking
        taking = true
        defer { taking = outer }
        // (What a wait took out of the rings came before what is in them now.)
        var any = takeStashed(now: now)
        for (w, link) in links.enumerated() {
            link.toTransfer.drain { frame in
                any = true
                let length = Int(dist_mbuf_pkt_len(frame.mbuf))
                if frame.redirected, let data = dist_mbuf_contiguous(frame.mbuf) {
                    engine.redirected(UnsafeRawBufferPointer(start: data, count: length), from: w, now: now)
                } else {
                    let bytes = copied(frame.mbuf)
                    if frame.redirected {
                        bytes.withUnsafeBytes { engine.redirected($0, from: w, now: now) }
                    } else {
                        engine.channel(bytes, now: now)
                    }
                }
                dist_mbuf_free(frame.mbuf)
            }
        }
        return any
    }

    // MARK: - MoveHost

    public var workerCount: Int { links.count }
    public func now() -> UInt64 { plane.clock.now() }

    public func ask(_ request: StateRequest, worker: Int) -> StateResponse? {
        plane.perform(request, on: plane.workers[worker], from: .transfer, timeout: 1.0)
    }

    @discardableResult
    public func deliver(_ delivery: MoveDelivery, to worker: Int) -> Bool {
        let item: WorkerDelivery
        switch delivery {
        case .flows(let entries): item = .flows(entries)
        case .assets(let assets): item = .assets(assets)
        case .rule(let rule): item = .rule(rule)
        case .sourceEnded(let id): item = .sourceEnded(id)
        case .closeGate(let id): item = .closeGate(id)
        case .forget(let keys): item = .forget(keys)
        case .process(let frame):
            guard let m = frame.withUnsafeBufferPointer({ mbuf($0) }) else {
                processNoMbuf += 1
                return false
            }
            item = .process(m)
        }
        return push(item, to: worker)
    }

    public func transmit(_ datagram: [UInt8]) {
        guard let m = datagram.withUnsafeBufferPointer({ mbuf($0) }) else {
            transmitNoMbuf += 1
            return
        }
        guard plane.channelTxQueue != nil else {
            push(.transmit(m), to: 0)
            return
        }
        guard outgoing.count < Self.outgoingLimit else {
            // (The queue has taken nothing for thousands of frames: the channel's timers resend.)
            dist_mbuf_free(m)
            framesDropped += 1
            return
        }
        outgoing.append(m)
    }

    /// Puts what waits on the own TX queue, as far as it takes it. Returns whether any went.
    func sendOutgoing() -> Bool {
        guard let queue = plane.channelTxQueue, !outgoing.isEmpty else { return false }
        var sent = 0
        while sent < outgoing.count {
            let n = UInt16(min(outgoing.count - sent, 64))
            let went = outgoing.withUnsafeMutableBufferPointer {
                Int(dist_tx_burst(plane.channelPort, queue, $0.baseAddress! + sent, n))
            }
            sent += went
            if went < Int(n) { break }
        }
        outgoing.removeFirst(sent)
        framesSent.wrappingIncrement(by: sent, ordering: .relaxed)
        return sent > 0
    }

    public func table(_ worker: Int) -> FlowTable { plane.workers[worker].table }

    /// While it waits, what the workers send here is taken out of their rings (copied, the
    /// mbufs freed) and handed to the engine after the wait, in order: a wait of tens of
    /// milliseconds on a shared CPU must not fill the rings (their packets would be dropped)
    /// nor hold the pool.
    public func waitForQuiescence(timeout: UInt64) -> Bool {
        QuiescentCounter.waitForAll(links.map { $0.quiescent }, timeout: timeout) { stash() }
    }

    /// Frames taken out of the rings during a wait, for the engine once it is over.
    private var stashed: [(bytes: [UInt8], worker: Int, redirected: Bool)] = []
    /// takeFrames is handing the engine frames (the engine may wait for the workers meanwhile).
    private var taking = false

    func stash() {
        // (Not from within takeFrames: a wait the engine begins while handling a frame must
        // not drain the ring that frame came from under its own drain.)
        guard !taking else { return }
        for (w, link) in links.enumerated() {
            link.toTransfer.drain { frame in
                stashed.append((copied(frame.mbuf), w, frame.redirected))
                dist_mbuf_free(frame.mbuf)
            }
        }
    }

    /// Hands the engine what was stashed during a wait. Returns whether there was any.
    func takeStashed(now: UInt64) -> Bool {
        guard !stashed.isEmpty else { return false }
        let frames = stashed
        stashed = []
        for f in frames { engine.workerFrame(f.bytes, from: f.worker, redirected: f.redirected, now: now) }
        return true
    }

    public func rounds() -> [UInt64] { links.map { $0.quiescent.rounds } }
    public func drainedRounds() -> [UInt64] { links.map { $0.drained.load(ordering: .acquiring) } }
    public func takeWorkerFrames(_ engine: MoveEngine, now: UInt64) { _ = takeFrames(now: now) }
    public func ringFull() -> UInt64 { plane.workers.reduce(0) { $0 &+ $1.statsSlot.pointee.transferDropped } }

    public func switchArrivals(gated: Bool) -> UInt64 {
        plane.workers.reduce(0) {
            $0 &+ (gated ? $1.statsSlot.pointee.duplicatesDropped : $1.statsSlot.pointee.eventsHeld)
        }
    }

    public func owner(of key: FlowKey) -> Int { plane.ownership.owner(of: key) }

    public func diagnostics() -> [String: Int] {
        [
            "pushDropped": pushDropped, "pushWaitMaxNs": Int(clamping: pushWaitMaxNs), "transmitNoMbuf": transmitNoMbuf,
            "processNoMbuf": processNoMbuf, "ownQueueFramesSent": framesSent.load(ordering: .relaxed),
            "ownQueueFramesDropped": framesDropped,
            "poolLowWater": Int(poolLowWater == .max ? plane.pool.available : poolLowWater),
        ]
    }

    public func notify(_ notice: MoveNotice) {
        if let traceFile { fflush(traceFile) }
        if notice.type == Self.dieAt {
            // A failure drill: the instance dies here as a crash would, on the transfer lcore
            // before the Move's next frame goes out and before anybody hears this notice.
            let line = Array("move \(notice.moveID): DIST_VNF_DIE_AT=\(notice.type): killed\n".utf8)
            _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            kill(getpid(), SIGKILL)
        }
        _ = notices.push(notice)
    }

    /// A failure drill's hook (`DIST_VNF_DIE_AT=NOTICE`): the instance is killed as its Move
    /// engine gives that notice of a Move, e.g. `moveStateSent` at a source (every state is
    /// acknowledged, the controller has not heard) or `incomingStarted` at a destination (the
    /// Move's opening frame came, nothing is acknowledged), so that the test bed can show what
    /// the controller and the peer do without it.
    static let dieAt: String? = getenv("DIST_VNF_DIE_AT").map { String(cString: $0) }

    public func importCounters(_ counters: InstanceCounters) -> Bool { importedCounters.push(counters) }

    // MARK: - Rings and mbufs

    /// The packet's bytes (every segment), copied out of its mbuf.
    func copied(_ m: OpaquePointer) -> [UInt8] {
        let length = dist_mbuf_pkt_len(m)
        return [UInt8](unsafeUninitializedCapacity: Int(length)) { buffer, count in
            count = Int(dist_mbuf_copy(m, buffer.baseAddress, length))
        }
    }

    func mbuf(_ bytes: UnsafeBufferPointer<UInt8>) -> OpaquePointer? {
        dist_mbuf_from_bytes(plane.pool.pointer, bytes.baseAddress, UInt32(bytes.count))
    }

    /// Waits for room: the worker empties its ring every round. False (counted, the mbuf
    /// freed) when a worker took nothing for a million tries.
    @discardableResult
    func push(_ item: WorkerDelivery, to worker: Int) -> Bool {
        guard !links[worker].toWorker.push(item) else { return true }
        let since = plane.clock.now()
        defer { pushWaitMaxNs = max(pushWaitMaxNs, plane.clock.now() &- since) }
        var spins = 0
        while !links[worker].toWorker.push(item) {
            spins += 1
            if spins > 1_000_000 {
                pushDropped += 1
                switch item {
                case .process(let m), .transmit(let m): dist_mbuf_free(m)
                default: break
                }
                return false
            }
            sched_yield()
        }
        return true
    }
}

public enum TransferAgentError: Error, CustomStringConvertible {
    case traceFile(String, String)
    public var description: String {
        switch self {
        case .traceFile(let path, let why): "--channel-trace: cannot open \(path): \(why)"
        }
    }
}
