import DistFlow
import DistPRADS
import DistPacket

/// PRADS's detection on the packets the fast path tracks: which packets it has something to do
/// with, and the call that does it.
extension FastPath {
    /// Whether the detection would do nothing with this packet of a known flow (see
    /// ``FlowDetection/idle(l4:tcpFlags:inspect:fromClient:)``): most packets of a long flow.
    /// Checked inline, so that such a packet costs no call; `l4` and `tcpFlags` are what the
    /// fast path's parse found of the flow's transport (`.none`: not known).
    @inlinable @inline(__always)
    func detectionIdle(_ index: Int, fromLo: Bool, l4: L4Kind, tcpFlags: UInt8) -> Bool {
        let entry = table.pointer(at: index)
        let (fromClient, inspect) = side(of: entry, fromLo: fromLo)
        return FlowDetection(check: entry.pointee.inspection).idle(
            l4: l4, tcpFlags: tcpFlags, inspect: inspect, fromClient: fromClient)
    }

    /// Whether a packet of a known flow comes from its client, and whether its direction is
    /// still within PRADS's inspection limits.
    @inlinable @inline(__always)
    func side(of entry: UnsafeMutablePointer<FlowEntry>, fromLo: Bool) -> (fromClient: Bool, inspect: Bool) {
        let fromClient = fromLo == entry.pointee.clientIsLo
        let packets = fromClient ? entry.pointee.packetsToServer : entry.pointee.packetsToClient
        let bytes = fromClient ? entry.pointee.bytesToServer : entry.pointee.bytesToClient
        return (fromClient, inspection.allows(packets: packets, bytes: bytes))
    }

    /// Runs the detection on one tracked packet, with the flow's roles and inspection state:
    /// a new flow's first packet, or one ``detectionIdle(_:fromLo:l4:tcpFlags:)`` says the
    /// detection has something to do with. `parse`: the fast path's parse of it, if at hand (a
    /// plain packet's then spares PRADS's decoding a second walk of the frame).
    @usableFromInline @inline(never)
    func detect(
        frame: UnsafePointer<UInt8>, length: Int, wireLength: Int, l3Offset: Int,
        fromLo: Bool, entry index: Int, created: Bool, now: UInt64, parse: UnsafePointer<PacketInfo>? = nil
    ) {
        let entry = table.pointer(at: index)
        var fromClient = false
        var inspect = true
        if !created { (fromClient, inspect) = side(of: entry, fromLo: fromLo) }
        let bytes = UnsafeRawBufferPointer(start: frame, count: length)
        let decoded: Bool
        if let parse, parse.pointee.isPlain {
            PRADSDecoder.decode(
                bytes, plain: parse, wireLength: wireLength, timestamp: now / 1_000_000_000, into: &detection.pointee)
            decoded = true
        } else {
            decoded = PRADSDecoder.decode(
                bytes, wireLength: wireLength, timestamp: now / 1_000_000_000, into: &detection.pointee)
        }
        // The IP packet this flow is about (a tunnel in a tunnel: not).
        guard decoded, detection.pointee.l3 == l3Offset else { return }
        if !created {
            detection.pointee.role = fromClient ? .client : .server
            detection.pointee.inspect = inspect
        }
        var state = FlowDetection(check: entry.pointee.inspection)
        // A flow opened by a SYN+ACK already has its receiver as client (the table does what
        // PRADS's reversal does), so only later reversals swap the roles.
        let alreadyReversed = created && fromLo != entry.pointee.clientIsLo
        let reversed = inspector.unsafelyUnwrapped._withUnsafeGuaranteedRef {
            $0.inspect(&detection.pointee, flow: &state)
        }
        if reversed && !alreadyReversed {
            entry.pointee.swapRoles()
        }
        entry.pointee.inspection = state.check
    }
}
