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
            if let i = rules.firstIndex(where: { $0.match == mod.match && $0.priority == mod.priority }) {
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

    /// Forgets every rule: the table a switch that restarted has.
    public mutating func clear() { rules = [] }

    /// Whether MODIFY or DELETE `mod` selects `rule`.
    func selects(_ mod: OFFlowMod, _ rule: OFFlowMod) -> Bool {
        guard rule.cookie & mod.cookieMask == mod.cookie & mod.cookieMask else { return false }
        if mod.command == .modifyStrict || mod.command == .deleteStrict {
            return rule.priority == mod.priority && rule.match == mod.match
        }
        return mod.match.fields.isEmpty || mod.match == rule.match
    }
}
