import DistFlow
import DistLoopback
import DistPRADS
import DistPacket
import DistTransfer
import Testing

/// A Move carries a tunnelled flow like any other: the flows of a tunnel's ends move (the filter
/// is on the outer header, as the switch's rule is), each inner flow keeps its own key and
/// state, and the inner hosts detection learnt go with them.
@Suite struct TunnelMoveTests {
    /// An inner SYN from `client` (a frame of ``SampleTraffic/syn(from:port:)``) carried inside
    /// IPv4 by protocol 94 from tunnel end 198.18.0.1 to 198.19.0.1.
    static func tunnelled(_ client: UInt32, port: UInt16) -> [UInt8] {
        let inner = Array(SampleTraffic.syn(from: client, port: port)[14...])
        let length = 20 + inner.count
        var outer: [UInt8] = [0x45, 0, UInt8(length >> 8), UInt8(length & 0xFF), 0, 0, 0x40, 0, 64, 94, 0, 0]
        outer += [198, 18, 0, 1, 198, 19, 0, 1]
        return [2, 0, 0, 0, 0, 0xBB, 2, 0, 0, 0, 0, 0xAA, 0x08, 0x00] + outer + inner
    }

    @Test func aTunnelsFlowsAndTheirInnerHostsMove() throws {
        let signatures = try PRADSSignatures.load(directory: "/etc/prads")
        let a = MoveInstance(
            workers: 2, address: "198.18.100.1:7700@02:00:00:00:00:01",
            detector: { _ in Detector(signatures: signatures) })
        let b = MoveInstance(
            workers: 2, address: "198.18.100.2:7700@02:00:00:00:00:02",
            detector: { _ in Detector(signatures: signatures) })
        let clients = (0..<6).map { 0x0A00_0001 + UInt32($0) }  // 10.0.0.1-6, inside the tunnel
        for (i, c) in clients.enumerated() { a.receive(Self.tunnelled(c, port: UInt16(40000 + i))) }
        let keys = clients.enumerated().map { FlowKey.of(Self.tunnelled($1, port: UInt16(40000 + $0)))! }
        #expect(Set(keys).count == 6 && keys.allSatisfy { $0.isTunnelled && $0.proto == 94 })
        func entry(_ i: MoveInstance, _ k: FlowKey) -> FlowEntry? {
            for p in i.paths { if let e = p.table.find(k) { return p.table.entry(at: e) } }
            return nil
        }
        let before = keys.map { entry(a, $0)?.packetsToServer }
        #expect(before.allSatisfy { $0 == 1 })
        let host = IPAddress(ipv4: clients[0])
        #expect(a.paths.contains { $0.detector?.asset(at: host) != nil }, "the inner host was fingerprinted")

        a.startLossFreeMove(filter: "nw_src=198.18.0.0/24", to: b, multiFlow: true)
        a.exchange(with: b, until: "moveStateSent", rounds: 200)
        #expect(a.notice("moveStateSent") != nil)
        for _ in 0..<5 { b.round() }
        // Each inner flow at the destination with its state, on the worker that owns it.
        for k in keys {
            let e = entry(b, k)
            #expect(e?.packetsToServer == 1 && e?.key == k, "\(k)")
        }
        #expect(b.paths.contains { $0.detector?.asset(at: host) != nil }, "the inner host moved with its flows")
    }
}
