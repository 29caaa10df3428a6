import DistFlow
import DistMove
import DistOpenFlow
import NIOCore

/// The packets of an opennf-mode Move: those the source raises, those the switch gives the
/// controller (OP), and what is sent on to the destination, which the source is told of.
extension OpenNFMove {
    /// A packet the source raised.
    func redirected(_ frame: [UInt8], seq: UInt64?) {
        if let marker = InBandControl.marker(in: frame) {
            if marker.moveID == id { ibcWaiters.removeValue(forKey: marker.phase)?.succeed(()) }
            // (The controller's own packet: the source must not send it on should the Move end.)
            if let seq {
                unreleased.append(seq)
                tellReleased()
            }
            return
        }
        report.packetsRedirected += 1
        lastEventAt = now
        send(buffer.arrived(Raised(frame: frame, seq: seq), key: FlowKey.of(frame)))
    }

    /// OP: a packet the switch sent to the controller.
    func fromSwitch(_ p: OFPacketIn) -> Bool {
        guard p.inPort == ingressPort, spec.guarantee == .op else { return false }
        guard InBandControl.marker(in: p.data) == nil else { return true }
        report.packetsFromSwitch += 1
        if switchUpdated { report.latePacketsFromSwitch += 1 }
        if sourceDrained {
            sw.packetOut(p.data, port: dst.switchPort)
        } else {
            fromSwitch.append(p.data)
        }
        return true
    }

    func send(_ packets: [Raised]) {
        guard !packets.isEmpty else { return }
        for p in packets {
            sw.packetOut(p.frame, port: dst.switchPort)
            if let seq = p.seq { unreleased.append(seq) }
        }
        report.packetsReleased += packets.count
        lastRedirect = now
        tellReleased()
    }

    /// Tells the source which of its raised packets went on, once they have left for the
    /// switch (PACKET_OUTs are paced): one message for all that left together.
    func tellReleased() {
        guard !unreleased.isEmpty, !releaseScheduled else { return }
        releaseScheduled = true
        sw.packetOutsSent().whenComplete { result in
            self.releaseScheduled = false
            // (Not sent, the switch gone: the source processes them should the Move end so.)
            guard case .success = result, !self.unreleased.isEmpty else { return }
            self.src.post(.eventsReleased(seqs: Self.ranges(self.unreleased)))
            self.unreleased = []
        }
    }

    /// Sequence numbers as ranges of consecutive ones.
    static func ranges(_ seqs: [UInt64]) -> [ClosedRange<UInt64>] {
        var out: [ClosedRange<UInt64>] = []
        for s in seqs.sorted() {
            if let last = out.last, s <= last.upperBound &+ 1, s >= last.lowerBound {
                out[out.count - 1] = last.lowerBound...max(last.upperBound, s)
            } else {
                out.append(s...s)
            }
        }
        return out
    }
}
