import DistOpenFlow

/// The rules the controller has put in force at the switch, as the switch's flow table holds
/// them: every FLOW_MOD applied here as OpenFlow 1.3 applies it there. A switch that restarts
/// comes back with an empty table (Open vSwitch keeps its bridges and ports, not its flows);
/// without this the moved flows' traffic would go back to the VNF that served it before any
/// Move, which no longer has their state. The controller installs ``rules`` again whenever the
/// switch connects.
///
/// What a Move sends is modelled exactly: ADD (a rule of the same match and priority is
/// replaced), and MODIFY and DELETE selected by cookie with every field wildcarded. Those
/// with a match select rules of that very match (strict or not: the controller sends none
/// that would differ).
public struct SwitchTable: Equatable, Sendable {
    public private(set) var rules: [OFFlowMod] = []

    public init() {}

    public mutating func apply(_ mod: OFFlowMod) {
        switch mod.command {
        case .add:
            var rule = mod
            rule.cookieMask = 0
            rule.bufferID = OpenFlow.noBuffer
            if let i = index(of: mod) {
                rules[i] = rule
            } else {
                rules.append(rule)
            }
        case .modify, .modifyStrict:
            for i in rules.indices where selects(mod, rules[i]) { rules[i].instructions = mod.instructions }
        case .delete, .deleteStrict:
            rules = rules.filter { !selects(mod, $0) }
        }
    }

    /// Takes over rules read from the switch (a flow-stats reply: a controller that started
    /// again finds its predecessor's Moves' rules there), but none of a match and priority
    /// already kept: what this controller did since is newer. Returns how many it took.
    @discardableResult
    public mutating func adopt(_ read: [OFFlowMod]) -> Int {
        var taken = 0
        for rule in read where index(of: rule) == nil {
            var add = rule
            add.command = .add
            apply(add)
            taken += 1
        }
        return taken
    }

    /// The rule of `rule`'s match and priority, if one is kept.
    func index(of rule: OFFlowMod) -> Int? {
        rules.firstIndex { Self.same($0.match, rule.match) && $0.priority == rule.priority }
    }

    /// The same match, whatever the order of its fields (a switch reports them in its own).
    static func same(_ a: OFMatch, _ b: OFMatch) -> Bool {
        a.fields.count == b.fields.count && a.fields.allSatisfy { b.fields.contains($0) }
    }

    /// Whether MODIFY or DELETE `mod` selects `rule`.
    func selects(_ mod: OFFlowMod, _ rule: OFFlowMod) -> Bool {
        guard rule.cookie & mod.cookieMask == mod.cookie & mod.cookieMask else { return false }
        if mod.command == .modifyStrict || mod.command == .deleteStrict {
            return rule.priority == mod.priority && Self.same(rule.match, mod.match)
        }
        return mod.match.fields.isEmpty || Self.same(mod.match, rule.match)
    }
}
