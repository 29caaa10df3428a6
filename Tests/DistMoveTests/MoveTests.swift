import DistFlow
import DistMove
import DistOpenFlow
import DistPacket
import Foundation
import Testing

let traceFrames: [PcapFile.Frame] = {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    let data = (try? Data(contentsOf: root.appendingPathComponent("traces/mix-a.pcap"))) ?? Data()
    return (try? PcapFile(bytes: [UInt8](data)).frames) ?? []
}()

@Suite struct MoveSpecTests {
    @Test func parsesWhatDistctlTakes() throws {
        let spec = try MoveSpec(
            source: "vnf1", destination: "vnf2", filter: "nw_src=10.0.0.0/8", scope: "per,multi,all",
            guarantee: "OP", optimizations: "pz,ll,er", mode: "opennf")
        #expect(spec.guarantee == .op && spec.optimizations == [.pz, .ll, .er] && spec.scopes.count == 3)
        #expect(spec.configuration == "OP PZ|LL|ER")
        #expect(try MoveSpec(source: "a", destination: "b", filter: "*", optimizations: "none").optimizations.isEmpty)
        #expect(try MoveSpec(source: "a", destination: "b", filter: "", guarantee: "ng").configuration == "NG")
    }

    @Test func plansAndSplitsFitTheRestOfTheMove() throws {
        var spec = try MoveSpec(
            source: "a", destination: "b", filter: "nw_src=10.0.0.0/8", optimizations: "pz,ll,er", mode: "dist")
        try spec.arrange(plan: "redirect-first")
        #expect(spec.plan == .redirectFirst && spec.configuration == "LF PZ|LL|ER redirect-first")
        try spec.arrange(split: 16, splitOrder: "traffic")
        #expect(spec.plan == .stateFirst && spec.split == MoveSpec.Split(prefixLength: 16, order: .traffic))
        #expect(spec.configuration == "LF PZ|LL|ER split /16 by traffic")
        var v6 = try MoveSpec(source: "a", destination: "b", filter: "nw_dst=2001:db8::/32", mode: "dist")
        try v6.arrange(split: 48)
        #expect(v6.split?.prefixLength == 48)
        let refused: [(String, String, String, Int?, String)] = [
            // (filter, mode/guarantee, plan, split, what the reason says)
            ("nw_src=10.0.0.0/8", "opennf/lf", "redirect-first", nil, "--mode dist"),
            ("nw_src=10.0.0.0/8", "dist/op", "redirect-first", nil, "--guarantee lf"),
            ("nw_src=10.0.0.0/8", "dist/lf", "sideways", nil, "plan 'sideways'"),
            ("nw_src=10.0.0.0/8", "opennf/lf", "state-first", 16, "--mode dist"),
            ("nw_src=10.0.0.0/8,tp_dst=80", "dist/lf", "state-first", 16, "one IP prefix"),
            ("*", "dist/lf", "state-first", 16, "one IP prefix"),
            ("nw_src=10.0.0.0/8", "dist/lf", "state-first", 8, "longer than the filter's (/8)"),
            ("nw_src=10.0.0.0/8", "dist/lf", "state-first", 33, "at most /32"),
            ("nw_src=10.0.0.0/8", "dist/lf", "state-first", 25, "at most 16 bits longer"),
        ]
        for (filter, how, plan, split, reason) in refused {
            let parts = how.split(separator: "/").map(String.init)
            var spec = try MoveSpec(source: "a", destination: "b", filter: filter, guarantee: parts[1], mode: parts[0])
            #expect(throws: MoveSpec.Invalid.self) { try spec.arrange(plan: plan, split: split) }
            do {
                try spec.arrange(plan: plan, split: split)
            } catch {
                #expect("\(error)".contains(reason), "\(error)")
            }
        }
        var spec2 = try MoveSpec(source: "a", destination: "b", filter: "nw_src=10.0.0.0/8", mode: "dist")
        #expect(throws: MoveSpec.Invalid.self) { try spec2.arrange(split: 16, splitOrder: "size") }
    }

    @Test func refusesWhatIsWrongWithAReason() {
        let cases: [(String, () throws -> MoveSpec)] = [
            ("not one of ng, lf, op", { try MoveSpec(source: "a", destination: "b", filter: "*", guarantee: "xx") }),
            ("optimization 'zz'", { try MoveSpec(source: "a", destination: "b", filter: "*", optimizations: "pz,zz") }),
            ("scope 'flows'", { try MoveSpec(source: "a", destination: "b", filter: "*", scope: "flows") }),
            ("the same VNF", { try MoveSpec(source: "a", destination: "a", filter: "*") }),
            ("not an IP prefix", { try MoveSpec(source: "a", destination: "b", filter: "nw_src=10.0.0.300/8") }),
            ("mode 'p2p'", { try MoveSpec(source: "a", destination: "b", filter: "*", mode: "p2p") }),
            ("at least one scope", { try MoveSpec(source: "a", destination: "b", filter: "*", scope: ",") }),
        ]
        for (expected, make) in cases {
            #expect(throws: MoveSpec.Invalid.self) { _ = try make() }
            do { _ = try make() } catch { #expect("\(error)".contains(expected), "\(error)") }
        }
    }

    @Test func reportTableHasEveryFigure() {
        var r = MoveReport()
        r.move = "opennf LF PZ vnf1 -> vnf2"
        r.moveTime = 0.5
        r.serializeSeconds = 0.05
        r.perFlowStates = 12
        r.warnings = ["a warning"]
        let t = r.table
        for word in [
            "MoveTime", "RedirTime", "12 / 0 / 0", "10.00% of MoveTime", "messages sent", "a warning",
            "Retransmissions",
        ] {
            #expect(t.contains(word), "\(word)")
        }
        let decoded = try? JSONDecoder().decode(MoveReport.self, from: JSONEncoder().encode(r))
        #expect(decoded == r)
    }
}

@Suite struct SwitchRulesTests {
    @Test func aPrefixBecomesOneMatchPerDirection() throws {
        let m = try SwitchRules.matches(for: FlowFilter(parsing: "nw_src=10.1.0.0/16"), inPort: 1)
        #expect(
            m == [
                OFMatch([.inPort(1), .ethType(0x0800), .ipv4Source(0x0A01_0000, mask: 0xFFFF_0000)]),
                OFMatch([.inPort(1), .ethType(0x0800), .ipv4Destination(0x0A01_0000, mask: 0xFFFF_0000)]),
            ])
    }

    @Test func portsWithoutProtocolCoverTCPAndUDP() throws {
        let m = try SwitchRules.matches(for: FlowFilter(parsing: "nw_dst=198.18.0.9,tp_dst=53"), inPort: 3)
        #expect(m.count == 4)
        #expect(
            m.contains(
                OFMatch([
                    .inPort(3), .ethType(0x0800), .ipProto(17), .ipv4Destination(0xC612_0009, mask: nil),
                    .udpDestination(53),
                ])))
        #expect(
            m.contains(
                OFMatch([
                    .inPort(3), .ethType(0x0800), .ipProto(6), .ipv4Source(0xC612_0009, mask: nil), .tcpSource(53),
                ])))
    }

    @Test func noPrefixMeansBothFamiliesAndIPv6MasksAreBytes() throws {
        #expect(try SwitchRules.matches(for: .all, inPort: 1).count == 2)
        let m = try SwitchRules.matches(for: FlowFilter(parsing: "nw_src=2001:db8::/33"), inPort: 1)
        guard case .ipv6Source(let value, let mask?) = m[0].fields.last else {
            Issue.record("\(m)")
            return
        }
        #expect(value[0..<5] == [0x20, 0x01, 0x0d, 0xb8, 0] && mask[0..<6] == [255, 255, 255, 255, 0x80, 0])
    }

    @Test func impossibleFiltersAreRefused() throws {
        #expect(throws: SwitchRules.Unsupported.self) {
            try SwitchRules.matches(for: FlowFilter(parsing: "nw_src=10.0.0.0/8,nw_dst=2001:db8::/32"), inPort: 1)
        }
        #expect(throws: SwitchRules.Unsupported.self) {
            try SwitchRules.matches(for: FlowFilter(parsing: "nw_proto=1,tp_dst=80"), inPort: 1)
        }
    }

    @Test func flowModsRoundTripThroughTheCodec() throws {
        for filter in [
            "nw_src=10.0.0.0/8,nw_proto=6,tp_dst=80", "nw_dst=2001:db8::/48", "dl_vlan=7,nw_src=192.168.1.0/24",
        ] {
            for match in try SwitchRules.matches(for: FlowFilter(parsing: filter), inPort: 1) {
                let mod = SwitchRules.flowMod(match, to: [12, OpenFlow.portController], priority: 200, cookie: 7)
                let decoded = try OFMessage.decode(OFMessage.flowMod(xid: 9, mod).encoded())
                #expect(decoded == .flowMod(xid: 9, mod))
            }
        }
    }

    @Test func oneModifyRedirectsEveryRuleOfAMoveByItsCookie() throws {
        let mod = SwitchRules.redirect(cookie: 0xD157_0000_0000_0042, to: [3])
        #expect(mod.command == .modify)
        #expect(mod.cookie == 0xD157_0000_0000_0042 && mod.cookieMask == ~0)
        #expect(mod.match.fields.isEmpty)
        #expect(mod.instructions == [.applyActions([.output(port: 3, maxLength: OpenFlow.maxLengthNoBuffer)])])
        let decoded = try OFMessage.decode(OFMessage.flowMod(xid: 4, mod).encoded())
        #expect(decoded == .flowMod(xid: 4, mod))
    }
}

@Suite struct ReflectorTests {
    /// The rule that sends an IBC the source reflects on to both VNFs: it matches the source's
    /// port and VLAN, pops the tag, writes an IBC's Ethernet source, outputs to the source's
    /// own port and the destination's; as bytes Open vSwitch reads (a set-field action padded
    /// to 16 bytes), and through the codec.
    /// A restarted controller's rules for a Move left behind reach its split part's rules too
    /// (tag above, part id below) and its reflector, and no other Move's rule or reflector.
    @Test func aMoveLeftBehindIsFoundByItsIdInEveryCookieThatCarriesIt() {
        let (back, reflector) = SwitchRules.backToSource(moveID: 0x42, port: 11)
        func selects(_ mod: OFFlowMod, _ cookie: UInt64) -> Bool {
            cookie & mod.cookieMask == mod.cookie & mod.cookieMask
        }
        #expect(back.command == .modify && reflector.command == .delete)
        #expect(selects(back, 0x42))
        #expect(selects(back, 0x5B17_0007_0000_0042), "a split part's rule")
        #expect(!selects(back, 0x43) && !selects(back, 0x5B17_0007_0000_0043))
        #expect(!selects(back, SwitchRules.reflectorCookie(0x42)))
        #expect(selects(reflector, SwitchRules.reflectorCookie(0x42)))
        #expect(selects(reflector, SwitchRules.reflectorCookie(0x5B17_0007_0000_0042)))
        #expect(!selects(reflector, 0x42) && !selects(reflector, SwitchRules.reflectorCookie(0x43)))
    }

    @Test func theReflectorSendsTheRequestOnToBothUntagged() throws {
        let mod = SwitchRules.reflector(from: 2, vlan: 3901, to: 3, priority: 300, cookie: 0x42)
        #expect(mod.cookie == SwitchRules.reflectorCookie(0x42) && mod.cookie != 0x42)
        #expect(mod.match.fields == [.inPort(2), .other(field: 6, hasMask: false, value: [0x1F, 0x3D])])
        guard case .applyActions(let actions)? = mod.instructions.first else {
            Issue.record("no actions")
            return
        }
        #expect(actions.count == 4)
        #expect(actions[0] == .other(type: 18, body: [0, 0, 0, 0]))
        #expect(actions[1] == .other(type: 25, body: [0x80, 0x00, 0x08, 6, 0x02, 0xD1, 0x57, 0x1B, 0xC0, 0x01, 0, 0]))
        #expect(actions[2...] == [.output(port: OpenFlow.portInPort), .output(port: 3)])
        #expect(try OFMessage.decode(OFMessage.flowMod(xid: 5, mod).encoded()) == .flowMod(xid: 5, mod))
        // Without a channel VLAN: the IBC's Ethernet destination, nothing to pop.
        let plain = SwitchRules.reflector(from: 2, vlan: nil, to: 3, priority: 300, cookie: 0x42)
        #expect(
            plain.match.fields == [.inPort(2), .other(field: 3, hasMask: false, value: InBandMarker.destinationMAC)])
        guard case .applyActions(let plainActions)? = plain.instructions.first else {
            Issue.record("no actions")
            return
        }
        #expect(plainActions.count == 3)
    }

    /// The controller's cut for an order-preserving Move: one request (tagged, with the reflect
    /// Ethernet source) that says how many copies the reflector makes of it, and that is an IBC
    /// of the filter's flows once the switch has reflected it.
    @Test func theOrderedCutIsOneRequestThatCountsItsCopies() throws {
        let filter = try FlowFilter(parsing: "nw_src=10.0.0.0/8")
        let cut = InBandControl.orderedCut(for: filter, moveID: 9, workers: [2, 1], vlan: 3901)
        let r = cut.request
        #expect(cut.copies.count == InBandControl.frames(for: filter, moveID: 9, workers: [2, 1]).count)
        #expect(cut.copies.count > 1)
        #expect(r.withUnsafeBytes { InBandMarker.isReflectRequest($0) })
        #expect(Array(r[12..<16]) == [0x81, 0x00, 0x0F, 0x3D])
        let copy = Array(r[0..<6]) + InBandMarker.sourceMAC + r[16...]
        #expect(!copy.withUnsafeBytes { InBandMarker.isReflectRequest($0) })
        let key = try #require(FlowKey.of(copy))
        #expect(filter.matches(key))
        #expect(InBandControl.marker(in: copy).map { $0.moveID == 9 && $0.phase == UInt32(cut.copies.count) } == true)
        let single = InBandControl.orderedCut(for: filter, moveID: 9, workers: [1, 1], vlan: nil)
        #expect(Array(single.request[6..<14]) == InBandMarker.reflectMAC + [0x08, 0x00] && single.copies.isEmpty)
    }

    /// The reflector, run on the request as Open vSwitch runs its actions, sends every copy of
    /// the IBC to both VNFs, one copy after the other from the one packet (so that nothing the
    /// switch forwards comes between them): port fields of UDP and TCP and IPv4 source
    /// addresses, with their checksums kept right.
    @Test(arguments: [
        "nw_src=10.0.0.0/8", "nw_proto=6,nw_dst=10.1.0.0/16,tp_src=80",
        "nw_proto=17,nw_src=10.0.0.0/8,tp_src=53,tp_dst=53", "nw_src=10.0.0.0/8,nw_proto=6",
    ])
    func theReflectorMakesEveryCopyFromOnePacket(text: String) throws {
        let filter = try FlowFilter(parsing: text)
        let cut = InBandControl.orderedCut(for: filter, moveID: 9, workers: [2, 4], vlan: 3901)
        let mod = SwitchRules.reflector(from: 2, vlan: 3901, to: 3, priority: 300, cookie: 0x42, cut: cut)
        // It matches what it writes: IPv4, and the transport protocol.
        #expect(mod.match.fields[2...] == [.ethType(0x0800), .ipProto(filter.proto ?? 17)])
        #expect(try OFMessage.decode(OFMessage.flowMod(xid: 5, mod).encoded()) == .flowMod(xid: 5, mod))
        let out = try SwitchModel.apply(mod, to: cut.request)
        let expected = InBandControl.frames(for: filter, moveID: 9, phase: UInt32(cut.copies.count), workers: [2, 4])
        #expect(expected.count == cut.copies.count && expected.count >= 64)
        #expect(out.map(\.port) == Array(repeating: [OpenFlow.portInPort, 3], count: expected.count).flatMap { $0 })
        #expect(out.map(\.frame) == expected.flatMap { [$0, $0] })
        for frame in expected { #expect(InBandControlTests.key(frame).map(filter.matches) == true) }
    }
}

/// What Open vSwitch does with a frame under a rule's actions, for the actions the controller's
/// rules use: pop a VLAN tag, write the Ethernet source, a transport port or an IPv4 source
/// (checksums updated as RFC 1624 says, a zero UDP checksum left zero), output.
enum SwitchModel {
    struct Unsupported: Error { var action: OFAction }

    static func apply(_ mod: OFFlowMod, to frame: [UInt8]) throws -> [(port: UInt32, frame: [UInt8])] {
        guard case .applyActions(let actions)? = mod.instructions.first else { return [] }
        var f = frame
        var out: [(port: UInt32, frame: [UInt8])] = []
        for action in actions {
            switch action {
            case .output(let port, _): out.append((port, f))
            case .other(type: 18, _): f.removeSubrange(12..<16)
            case .other(type: 25, let body):
                try write(field: body[2] >> 1, value: Array(body[4..<(4 + Int(body[3]))]), into: &f, action: action)
            default: throw Unsupported(action: action)
            }
        }
        return out
    }

    static func write(field: UInt8, value: [UInt8], into f: inout [UInt8], action: OFAction) throws {
        let ip = 14
        let l4 = 14 + Int(f[14] & 0x0F) * 4
        let sum = f[23] == 6 ? l4 + 16 : l4 + 6
        // (A UDP checksum of zero says there is none: it stays zero.)
        let l4Sums = f[23] == 17 && f[sum] == 0 && f[sum + 1] == 0 ? [] : [sum]
        switch field {
        case 4: f.replaceSubrange(6..<12, with: value)
        case 13, 15: replace(&f, at: l4, with: value, checksums: l4Sums)
        case 14, 16: replace(&f, at: l4 + 2, with: value, checksums: l4Sums)
        case 11: replace(&f, at: ip + 12, with: value, checksums: [ip + 10] + l4Sums)
        default: throw Unsupported(action: action)
        }
    }

    /// Writes `value` at `at` and updates each 16-bit checksum at `checksums` for the change.
    static func replace(_ f: inout [UInt8], at: Int, with value: [UInt8], checksums: [Int]) {
        for c in checksums {
            let old = UInt16(f[c]) << 8 | UInt16(f[c + 1])
            var sum = UInt32(~old)
            for i in stride(from: 0, to: value.count, by: 2) {
                sum += UInt32(~(UInt16(f[at + i]) << 8 | UInt16(f[at + i + 1])))
                sum += UInt32(UInt16(value[i]) << 8 | UInt16(value[i + 1]))
            }
            while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
            let new = ~UInt16(sum)
            f[c] = UInt8(new >> 8)
            f[c + 1] = UInt8(new & 0xFF)
        }
        f.replaceSubrange(at..<(at + value.count), with: value)
    }
}

@Suite struct InBandControlTests {
    static func key(_ frame: [UInt8]) -> FlowKey? { FlowKey.of(frame) }

    @Test func theIBCMatchesItsFilterAndCarriesItsMarker() throws {
        for text in [
            "nw_src=10.0.0.0/8", "nw_dst=192.168.1.7,nw_proto=6,tp_dst=80",
            "nw_src=2001:db8::/32,nw_proto=17,tp_src=53",
            "dl_vlan=12,nw_src=172.16.0.0/12", "*", "nw_proto=1",
        ] {
            let filter = try FlowFilter(parsing: text)
            let frame = InBandControl.frame(for: filter, moveID: 0x0102_0304_0506_0708, phase: 3)
            let key = try #require(Self.key(frame), "\(text)")
            #expect(filter.matches(key), "\(text)")
            let marker = try #require(InBandControl.marker(in: frame))
            #expect(marker.moveID == 0x0102_0304_0506_0708 && marker.phase == 3)
        }
    }

    @Test func anIPv4IBCHasAValidHeaderChecksum() {
        let f = InBandControl.frame(for: .all, moveID: 1)
        var sum: UInt32 = 0
        for i in stride(from: 14, to: 34, by: 2) { sum += UInt32(f[i]) << 8 | UInt32(f[i + 1]) }
        while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
        #expect(sum == 0xFFFF)
    }

    @Test func noFrameOfTheTraceIsTakenForAnIBC() {
        #expect(traceFrames.count > 50_000)
        #expect(traceFrames.allSatisfy { InBandControl.marker(in: $0.bytes) == nil })
    }
}

@Suite struct RedirectBufferTests {
    /// Frames of mix-a from its three busiest flows, in trace order.
    static let sample: [(key: FlowKey, frame: [UInt8])] = {
        var counts: [FlowKey: Int] = [:]
        let keyed = traceFrames.compactMap { f in FlowKey.of(f.bytes).map { ($0, f.bytes) } }
        for (k, _) in keyed { counts[k, default: 0] += 1 }
        let top = Set(counts.sorted { $0.value > $1.value }.prefix(3).map { $0.key })
        var taken: [FlowKey: Int] = [:]
        return keyed.filter { k, _ in
            guard top.contains(k), taken[k, default: 0] < 100 else { return false }
            taken[k, default: 0] += 1
            return true
        }.map { (key: $0.0, frame: $0.1) }
    }()

    @Test func withoutEarlyReleaseAllWaitThenGoInArrivalOrder() {
        var b = RedirectBuffer<[UInt8]>(earlyRelease: false)
        for s in Self.sample { #expect(b.arrived(s.frame, key: s.key).isEmpty) }
        #expect(b.stateIn([Self.sample[0].key]).isEmpty)
        #expect(b.waitingCount == Self.sample.count)
        #expect(b.releaseAll() == Self.sample.map { $0.frame })
        #expect(b.arrived([1, 2, 3], key: nil) == [[1, 2, 3]])
        #expect(b.buffered == Self.sample.count)
    }

    @Test func earlyReleaseLetsEachFlowGoWhenItsStateIsIn() {
        var b = RedirectBuffer<[UInt8]>(earlyRelease: true)
        let keys = Array(Set(Self.sample.map { $0.key }))
        #expect(keys.count == 3)
        for s in Self.sample { _ = b.arrived(s.frame, key: s.key) }
        let first = b.stateIn([keys[0]])
        #expect(first == Self.sample.filter { $0.key == keys[0] }.map { $0.frame })
        // A later packet of that flow goes at once; of another flow, it waits.
        #expect(b.arrived([9], key: keys[0]) == [[9]])
        #expect(b.arrived([8], key: keys[1]).isEmpty)
        // The export is complete and did not hold keys[2]: that flow began during the Move.
        let second = b.exportComplete([keys[0], keys[1]])
        #expect(second == Self.sample.filter { $0.key == keys[2] }.map { $0.frame })
        let rest = b.releaseAll()
        #expect(rest == Self.sample.filter { $0.key == keys[1] }.map { $0.frame } + [[8]])
        #expect(b.waitingCount == 0)
    }

    /// A full buffer drops what would go beyond its bytes, counted; what it holds goes on in
    /// order, and room made by a release is used again.
    @Test func aFullBufferDropsAndCountsWhatDoesNotFit() {
        let frames = Self.sample.prefix(10).map { $0.frame }
        let limit = frames.prefix(4).reduce(0) { $0 + $1.count }
        var b = RedirectBuffer<[UInt8]>(earlyRelease: false, limitBytes: limit)
        for f in frames { #expect(b.arrived(f, key: nil).isEmpty) }
        #expect(b.waitingCount == 4 && b.waitingBytes == limit)
        #expect(b.dropped == 6)
        #expect(b.releaseAll() == Array(frames.prefix(4)))
        #expect(b.waitingBytes == 0)
        // Open now: packets go at once, nothing counts against the bound.
        #expect(b.arrived(frames[9], key: nil) == [frames[9]])
        var e = RedirectBuffer<[UInt8]>(earlyRelease: true, limitBytes: frames[0].count)
        let key = Self.sample[0].key
        #expect(e.arrived(frames[0], key: key).isEmpty)
        #expect(e.arrived(frames[0], key: key).isEmpty)
        #expect(e.dropped == 1)
        #expect(e.stateIn([key]) == [frames[0]])
        #expect(e.waitingBytes == 0)
    }
}
