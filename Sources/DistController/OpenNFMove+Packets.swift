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
            if let seq { released([seq]) }
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
        sw.packetOuts(packets.map { ($0.frame, $0.seq) }, port: dst.switchPort)
        report.packetsReleased += packets.count
        lastRedirect = now
    }

    /// Tells the source which of its raised packets went on (their PACKET_OUTs left for the
    /// switch together, or they were the controller's own): one message for them all.
    func released(_ seqs: [UInt64]) {
        src.post(.eventsReleased(seqs: Self.ranges(seqs)))
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
