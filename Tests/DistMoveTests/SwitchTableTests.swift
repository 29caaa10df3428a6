import DistFlow
import DistMove
import DistOpenFlow
import Testing

/// The controller's copy of the switch's flow table follows the FLOW_MODs a Move sends as
/// OpenFlow 1.3 applies them, so that a switch that restarts gets back exactly what it had.
@Suite struct SwitchTableTests {
    let matches = try! SwitchRules.matches(for: try! FlowFilter(parsing: "nw_src=10.0.0.0/8"), inPort: 1)

    func ports(_ rule: OFFlowMod) -> [UInt32] {
        guard case .applyActions(let actions)? = rule.instructions.first else { return [] }
        return actions.compactMap { if case .output(let port, _) = $0 { port } else { nil } }
    }

    @Test func anAddReplacesTheRuleOfTheSameMatchAndPriority() {
        var table = SwitchTable()
        for m in matches { table.apply(SwitchRules.flowMod(m, to: [11], priority: 100, cookie: 7)) }
        #expect(table.rules.count == matches.count)
        // A later Move of the same traffic: its rules take the place of the earlier's.
        for m in matches { table.apply(SwitchRules.flowMod(m, to: [12], priority: 100, cookie: 8)) }
        #expect(table.rules.count == matches.count)
        #expect(table.rules.allSatisfy { $0.cookie == 8 && ports($0) == [12] })
        // Another priority is another rule.
        table.apply(SwitchRules.flowMod(matches[0], to: [11], priority: 101, cookie: 9))
        #expect(table.rules.count == matches.count + 1)
    }

    @Test func aModifyByCookieChangesWhereItsRulesSend() {
        var table = SwitchTable()
        table.apply(SwitchRules.flowMod(matches[0], to: [11, 12], priority: 100, cookie: 7))
        table.apply(SwitchRules.reflector(from: 11, vlan: 3901, to: 12, priority: 300, cookie: 7))
        table.apply(SwitchRules.flowMod(OFMatch([.inPort(2)]), to: [13], priority: 100, cookie: 8))
        table.apply(SwitchRules.redirect(cookie: 7, to: [12]))
        #expect(table.rules.map(ports) == [[12], ports(table.rules[1]), [13]])
        #expect(ports(table.rules[1]) != [12], "the reflector's cookie differs: left alone")
        // A Move left behind, by the low 32 bits of its id: a split part's rule too.
        table.apply(SwitchRules.flowMod(matches[0], to: [12], priority: 200, cookie: 0x5B17_0001_0000_0042))
        let (back, reflector) = SwitchRules.backToSource(moveID: 0x42, port: 11)
        table.apply(back)
        table.apply(reflector)
        #expect(ports(table.rules.last!) == [11])
    }

    @Test func aDeleteByCookieRemovesItsRulesOnly() {
        var table = SwitchTable()
        table.apply(SwitchRules.flowMod(matches[0], to: [11], priority: 100, cookie: 7))
        table.apply(SwitchRules.reflector(from: 11, vlan: 3901, to: 12, priority: 300, cookie: 7))
        table.apply(SwitchRules.delete(cookie: SwitchRules.reflectorCookie(7), mask: ~0))
        #expect(table.rules.count == 1 && table.rules[0].cookie == 7)
        table.apply(SwitchRules.delete(cookie: 0x5B17_0000_0000_0000, mask: 0xFFFF_FFFF_0000_0000))
        #expect(table.rules.count == 1)
        table.apply(SwitchRules.delete(cookie: 7, mask: ~0))
        #expect(table.rules.isEmpty)
    }

    @Test func strictCommandsSelectOneMatchAndPriority() {
        var table = SwitchTable()
        table.apply(SwitchRules.flowMod(matches[0], to: [11], priority: 100, cookie: 7))
        table.apply(SwitchRules.flowMod(matches[0], to: [11], priority: 101, cookie: 7))
        var mod = SwitchRules.delete(cookie: 7, mask: ~0)
        mod.command = .deleteStrict
        mod.match = matches[0]
        mod.priority = 101
        table.apply(mod)
        #expect(table.rules.map(\.priority) == [100])
        mod.match = OFMatch()
        mod.priority = 100
        table.apply(mod)
        #expect(table.rules.count == 1, "a strict delete of another match takes nothing")
    }

    /// Rules read from the switch are taken over unless this table has one of their match and
    /// priority (newer), whatever order the switch gives a match's fields in.
    @Test func rulesReadFromTheSwitchAreTakenOverUnlessNewerAreKept() {
        var table = SwitchTable()
        table.apply(SwitchRules.flowMod(matches[0], to: [12], priority: 100, cookie: 8))
        var reordered = SwitchRules.flowMod(matches[0], to: [11], priority: 100, cookie: 7)
        reordered.match.fields.reverse()
        let other = SwitchRules.flowMod(OFMatch([.inPort(3)]), to: [11], priority: 100, cookie: 7)
        #expect(table.adopt([reordered, other]) == 1)
        #expect(table.rules.map(\.cookie) == [8, 7])
        // A MODIFY by cookie reaches the adopted rule.
        table.apply(SwitchRules.redirect(cookie: 7, to: [12]))
        #expect(ports(table.rules[1]) == [12])
    }
}
