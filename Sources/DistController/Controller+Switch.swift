import DistMove
import DistOpenFlow
import NIOCore
import NIOSSL

/// The switch: which connection is used, and the test bed's base and channel rules.
extension Controller {
    /// A switch connection is used once its handshake is done (TLS, then OpenFlow's features)
    /// and it is the configured switch: until then the one in use stays, whatever connects.
    func switchArrived(_ connection: SwitchConnection) {
        connection.packetOutRate = config.packetOutRate
        connection.onReady = {
            guard self.isTheSwitch(connection) else {
                self.log("switch: refused a connection that is not the configured switch (its certificate)")
                connection.channel.close(promise: nil)
                return
            }
            if let old = self.sw, old !== connection, !old.closed {
                self.log("switch: a second connection from the switch; it replaces the first")
                old.channel.close(promise: nil)
            }
            self.sw = connection
            self.link.use(connection)
            self.installBaseRules(connection)
            for v in self.vnfs { self.installChannelRule(v, connection) }
            for v in self.vnfs { self.endLeftBehind(v) }
        }
    }

    /// Whether a connection presented the configured switch's certificate (any connection,
    /// without one configured).
    func isTheSwitch(_ connection: SwitchConnection) -> Bool {
        guard let expected = config.switchCertificate else { return true }
        let handler = try? connection.channel.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self)
        return handler?.peerCertificate == expected
    }

    func switchGone(_ connection: SwitchConnection) {
        if sw === connection {
            log("switch: disconnected")
            sw = nil
        }
        link.gone(connection)
    }

    /// The test bed's forwarding: ingress to the default VNF, every VNF's output to egress.
    func installBaseRules(_ connection: SwitchConnection) {
        var xids: [UInt32] = []
        func rule(_ inPort: UInt32, _ out: UInt32) {
            var mod = OFFlowMod()
            mod.priority = 10
            mod.match = OFMatch([.inPort(inPort)])
            mod.instructions = [.applyActions([.output(port: out)])]
            xids.append(connection.flowMod(mod))
        }
        if let ingress = config.ingressPort, let name = config.defaultVNF,
            let v = config.vnfs.first(where: { $0.name == name })
        {
            rule(ingress, v.switchPort)
        }
        if let egress = config.egressPort {
            for v in config.vnfs { rule(v.switchPort, egress) }
        }
        guard !xids.isEmpty else { return }
        connection.barrier(covering: xids).whenComplete { result in
            switch result {
            case .success: self.log("switch: test bed rules installed (\(xids.count))")
            case .failure(let e): self.log("switch: installing the test bed rules failed: \(e)")
            }
        }
    }

    /// DiST's channel: frames to a VNF's channel address go to its switch port, whoever sends
    /// them (above the test bed's rules, so a VNF's channel frames do not go to the sink). With
    /// a channel VLAN the rule matches the tag alone; without, the Ethernet destination. (A rule
    /// on any field makes Open vSwitch's userspace datapath tell every other frame apart by it
    /// too: the two directions of a flow differ in their Ethernet and IP destinations, so such
    /// a rule splits them into separate cache entries, and a new entry's first frame, going
    /// through the slow path, can be overtaken by the other direction's. The tag is the same
    /// both ways.)
    func installChannelRule(_ v: VNFClient, _ connection: SwitchConnection) {
        guard let text = v.channelAddress else { return }
        var mod = OFFlowMod()
        mod.priority = 200
        mod.cookie = SwitchLink.channelCookie
        if let hash = text.firstIndex(of: "#"), let vlan = UInt16(text[text.index(after: hash)...]) {
            mod.match = OFMatch([
                .other(field: 6, hasMask: false, value: [UInt8(0x10 | vlan >> 8), UInt8(vlan & 0xFF)])
            ])  // VLAN_VID
        } else if let mac = Self.channelMAC(text) {
            mod.match = OFMatch([.other(field: 3, hasMask: false, value: mac)])  // ETH_DST
        } else {
            return
        }
        mod.instructions = [.applyActions([.output(port: v.switchPort)])]
        let xid = connection.flowMod(mod)
        connection.barrier(covering: [xid]).whenComplete { result in
            switch result {
            case .success: self.log("switch: channel rule for \(v.name) (\(text)) installed")
            case .failure(let e): self.log("switch: the channel rule for \(v.name) failed: \(e)")
            }
        }
    }

    /// The Ethernet address of a channel address `IP:PORT@MAC`.
    static func channelMAC(_ text: String) -> [UInt8]? {
        guard let at = text.firstIndex(of: "@") else { return nil }
        let end = text.firstIndex(of: "#") ?? text.endIndex
        let bytes = text[text.index(after: at)..<end].split(separator: ":").compactMap { UInt8($0, radix: 16) }
        return bytes.count == 6 ? bytes : nil
    }
}
