import DistFlow
import DistPRADS
import DistPacket
import DistPipeline
import Testing

/// Packets of known flows that PRADS's detection would do nothing with are not decoded again:
/// the data plane learns what PRADS's own decoding learns, decoding a fraction of the frames.
@Suite struct IdleDetectionTests {
    @Test func whatTheDetectionWouldDoNothingWith() {
        let fresh = FlowDetection()
        let clientKnown = FlowDetection(check: 0x08)
        let serviceKnown = FlowDetection(check: 0x04)
        let ack: UInt8 = 0x10
        // Past the limits: no inspection, and no fingerprint without SYN, FIN or RST.
        #expect(fresh.idle(l4: .tcp, tcpFlags: ack, inspect: false, fromClient: true))
        #expect(fresh.idle(l4: .tcp, tcpFlags: ack | 0x08, inspect: false, fromClient: false))
        for flag: UInt8 in [0x01, 0x02, 0x04] {
            #expect(!fresh.idle(l4: .tcp, tcpFlags: ack | flag, inspect: false, fromClient: true))
        }
        // Within the limits: only a side already identified is done.
        #expect(!fresh.idle(l4: .tcp, tcpFlags: ack, inspect: true, fromClient: true))
        #expect(clientKnown.idle(l4: .tcp, tcpFlags: ack, inspect: true, fromClient: true))
        #expect(!clientKnown.idle(l4: .tcp, tcpFlags: ack, inspect: true, fromClient: false))
        #expect(serviceKnown.idle(l4: .tcp, tcpFlags: ack, inspect: true, fromClient: false))
        // UDP: past the limits. ICMP never (PRADS's decoder inspects none). Anything else (a
        // fragment PRADS reads as a header, a tunnel it decodes) is decoded.
        #expect(fresh.idle(l4: .udp, tcpFlags: 0, inspect: false, fromClient: true))
        #expect(!fresh.idle(l4: .udp, tcpFlags: 0, inspect: true, fromClient: true))
        for l4 in [L4Kind.icmp, .icmpv6] {
            #expect(fresh.idle(l4: l4, tcpFlags: 0, inspect: true, fromClient: true))
        }
        for l4 in [L4Kind.fragment, .other, .none] {
            #expect(!fresh.idle(l4: l4, tcpFlags: 0, inspect: false, fromClient: true))
        }
    }

    @Test func theDataPlaneLearnsWhatPRADSDoesDecodingAFraction() throws {
        let frames = TunnelDetectionTests.frames
        try #require(frames.count == 6_000, "mix-a is needed")
        let (reference, dataPlane, _, decoded) = try TunnelDetectionTests.learnt(frames)
        #expect(reference.count > 100)
        #expect(
            dataPlane == reference,
            Comment(
                rawValue: "only the data plane's: \(dataPlane.subtracting(reference).sorted()), "
                    + "only the reference's: \(reference.subtracting(dataPlane).sorted())"))
        #expect(decoded * 2 < frames.count, "\(decoded) of \(frames.count) frames decoded")
    }
}
