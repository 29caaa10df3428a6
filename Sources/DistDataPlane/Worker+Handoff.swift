import CDPDKShim
import CDistIntrinsics
import DistPipeline

/// Worker handoff, the owner's side: what other workers received of this worker's flows.
extension Worker {
    /// Stopping: says this worker receives no more, then processes what the others hand it
    /// until every one of them has said so and the rings are empty. A frame a port took in is
    /// sent by its flow's owner, not left in a ring, however the workers' stops interleave.
    /// (Bounded: a worker that never stops is waited for about a second.)
    func finishHandoffs(_ burst: Burst) {
        guard let receiving else { return }
        // (Releasing: what this worker staged is published before the others see it stop.)
        receiving.wrappingDecrement(ordering: .releasing)
        for _ in 0..<100_000 {
            // Read before the rings: once it says none receives, what the rings hold is all.
            let others = receiving.load(ordering: .acquiring)
            let (any, _) = handoff.forEachPending { receiveHandoffs($0, burst) }
            if others <= 0 && !any { return }
            if !any { usleep(10) }
        }
    }

    /// Asks for the slots of up to a burst of what `ring` holds, to be read a little later
    /// (they were written on the other worker's core, past its caches). Returns false.
    @inline(__always)
    static func askForSlots(_ ring: HandoffRing<HandoffPacket>) -> Bool {
        let (items, taken) = ring.peek(limit: Int(Worker.burstSize))
        askForSlots(items, count: taken)
        return false
    }

    @inline(__always)
    static func askForSlots(_ items: UnsafePointer<HandoffPacket>, count: Int) {
        let bytes = UnsafeRawPointer(items)
        for offset in stride(from: 0, to: count * MemoryLayout<HandoffPacket>.stride, by: 64) {
            dist_prefetch_read(bytes + offset)
        }
    }

    /// Asks for the mbufs of up to a burst of what `ring` holds (see
    /// ``askForPackets(_:count:frames:)``). Returns false.
    @inline(__always)
    static func askForPackets(_ ring: HandoffRing<HandoffPacket>, frames: Bool) -> Bool {
        let (items, taken) = ring.peek(limit: Int(Worker.burstSize))
        askForPackets(items, count: taken, frames: frames)
        return false
    }

    /// Asks for the mbufs of `count` handed-off packets, exclusive: the receiver's core wrote
    /// their two header lines last; sending reads both (freeing reads the second), and a
    /// receive here reuses them and writes both. With `frames`, the lines of the frame too (up
    /// to ``warmedFrameBytes``), which a receive that copies frames here writes next.
    @inline(__always)
    static func askForPackets(_ items: UnsafePointer<HandoffPacket>, count: Int, frames: Bool) {
        for i in 0..<count {
            guard let mbuf = UnsafeRawPointer(items[i].packet) else { continue }
            dist_prefetch_exclusive(mbuf)
            dist_prefetch_exclusive(mbuf + 64)
            if frames {
                let frame = UnsafeRawPointer(items[i].frame)
                for offset in stride(from: 0, to: min(Int(items[i].segmentLength), warmedFrameBytes), by: 64) {
                    dist_prefetch_exclusive(frame + offset)
                }
            }
        }
    }

    /// Most of a frame ``askForPackets(_:count:frames:)`` asks for: the next frame received into
    /// the mbuf has a length of its own, and three in four of mix-a's fit in four lines.
    static var warmedFrameBytes: Int { 256 }

    /// Processes and forwards up to a burst of the packets another worker handed this one (it
    /// owns their flows); returns whether more than a burst was waiting.
    func receiveHandoffs(_ ring: HandoffRing<HandoffPacket>, _ burst: Burst) -> Bool {
        // The packets are processed where they lie in the ring; their slots go back after.
        let (items, taken) = ring.peek(limit: Int(Worker.burstSize))
        // Asked for again: the round asked for what it saw as it began (these then hit); what
        // came after, or at a stop, is asked for only now.
        Worker.askForSlots(items, count: taken)
        Worker.askForPackets(items, count: taken, frames: false)
        var start = 0
        while start < taken {
            // One port's run at a time (they leave by the port their receiver routed them to).
            let run = items + start
            let port = run[0].port
            var n = 0
            while start + n < taken && run[n].port == port {
                burst.packets[n] = run[n].packet
                burst.data[n] = run[n].frame
                burst.segmentLengths[n] = run[n].segmentLength
                n += 1
            }
            start += n
            let events = fastPath.processHandedOff(run, count: n, now: clock.now())
            let keep = events ? sortOut(burst, count: n, port: port) : UInt16(n)
            transmit(burst.packets, count: keep, port: port)
        }
        ring.consume(taken)
        return taken == Int(Worker.burstSize)
    }
}

#if canImport(Glibc)
    import Glibc
#endif
