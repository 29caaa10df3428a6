import DistFlow

/// What a Move is asked to do (`Move(src, dst, filter, scope, guarantee, optimizations, mode)`,
/// the paper's sections 2.2, 2.3 and 3.1).
public struct MoveSpec: Sendable, Equatable, CustomStringConvertible {
    public enum Guarantee: String, Sendable, CaseIterable {
        /// No guarantee: the source processes what arrives during the transfer.
        case ng
        /// Loss-free: packets of moved flows go to the controller while state moves.
        case lf
        /// Order-preserving: loss-free, and packets reach the destination in the order the
        /// switch sent them.
        case op
    }

    public enum Optimization: String, Sendable, CaseIterable, Comparable {
        /// Parallelize: state goes on to the destination as it arrives.
        case pz
        /// Late locking: a flow's packets are redirected only once its state has been exported.
        case ll
        /// Early release: a flow's redirected packets go on once its state is in.
        case er

        public static func < (a: Self, b: Self) -> Bool {
            allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
        }
    }

    public enum Scope: String, Sendable, CaseIterable, Comparable {
        case perFlow = "per"
        case multiFlow = "multi"
        case allFlows = "all"

        public static func < (a: Self, b: Self) -> Bool {
            allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
        }
    }

    public enum Mode: String, Sendable, CaseIterable {
        /// OpenNF's: state and redirected packets through the controller.
        case opennf
        /// DiST's: peer to peer over the data plane, the controller only signals.
        case dist
    }

    /// Beyond the paper (its section 6): which comes first, the state or the switch update.
    public enum Plan: String, Sendable, CaseIterable {
        /// The paper's: the state moves (packets of moved flows redirected to the
        /// destination), then the switch is updated.
        case stateFirst = "state-first"
        /// The switch is updated first: the destination holds the switch's packets while the
        /// state comes, the source processes what it got until then (dist, LF).
        case redirectFirst = "redirect-first"
    }

    /// Beyond the paper (its section 6): one large Move as smaller ones, one per sub-prefix
    /// of the filter's prefix that has flows, in an order, then one for the rest.
    public struct Split: Sendable, Equatable {
        public enum Order: String, Sendable, CaseIterable {
            /// Fewest states first: small parts move and reroute quickly.
            case state
            /// Most packets first: the source sheds its load soonest.
            case traffic
        }
        /// The length of the sub-prefixes (longer than the filter's prefix).
        public var prefixLength: Int
        public var order: Order
        public init(prefixLength: Int, order: Order) {
            self.prefixLength = prefixLength
            self.order = order
        }
    }

    public var source: String
    public var destination: String
    public var filter: FlowFilter
    public var scopes: Set<Scope>
    public var guarantee: Guarantee
    public var optimizations: Set<Optimization>
    public var mode: Mode
    public var plan: Plan = .stateFirst
    public var split: Split?

    public init(
        source: String, destination: String, filter: FlowFilter, scopes: Set<Scope> = [.perFlow, .multiFlow],
        guarantee: Guarantee = .lf, optimizations: Set<Optimization> = [], mode: Mode = .opennf
    ) {
        self.source = source
        self.destination = destination
        self.filter = filter
        self.scopes = scopes
        self.guarantee = guarantee
        self.optimizations = optimizations
        self.mode = mode
    }

    public struct Invalid: Error, CustomStringConvertible, Equatable {
        public var description: String
        public init(_ d: String) { description = d }
    }

    /// Parses the text forms distctl takes: `--scope per,multi,all`, `--guarantee ng|lf|op`,
    /// `--opt pz,ll,er` (or `none`), `--mode opennf|dist`.
    public init(
        source: String, destination: String, filter: String, scope: String = "per,multi",
        guarantee: String = "lf", optimizations: String = "", mode: String = "opennf"
    ) throws {
        guard !source.isEmpty, !destination.isEmpty else {
            throw Invalid("a Move needs a source and a destination VNF")
        }
        guard source != destination else { throw Invalid("source and destination are the same VNF (\(source))") }
        let parsedFilter: FlowFilter
        do {
            parsedFilter = try FlowFilter(parsing: filter)
        } catch {
            throw Invalid("\(error)")
        }
        guard let g = Guarantee(rawValue: guarantee.lowercased()) else {
            throw Invalid("guarantee '\(guarantee)' is not one of ng, lf, op")
        }
        guard let m = Mode(rawValue: mode.lowercased()) else {
            throw Invalid("mode '\(mode)' is not one of opennf, dist")
        }
        var opts = Set<Optimization>()
        for word in Self.words(optimizations) where word != "none" {
            guard let o = Optimization(rawValue: word) else {
                throw Invalid("optimization '\(word)' is not one of pz, ll, er")
            }
            opts.insert(o)
        }
        var scopes = Set<Scope>()
        for word in Self.words(scope) {
            let aliases: [String: Scope] = [
                "per": .perFlow, "perflow": .perFlow, "multi": .multiFlow, "multiflow": .multiFlow,
                "all": .allFlows, "allflows": .allFlows,
            ]
            guard let s = aliases[word] else { throw Invalid("scope '\(word)' is not one of per, multi, all") }
            scopes.insert(s)
        }
        guard !scopes.isEmpty else { throw Invalid("a Move needs at least one scope (per, multi, all)") }
        self.init(
            source: source, destination: destination, filter: parsedFilter, scopes: scopes, guarantee: g,
            optimizations: opts, mode: m)
    }

    static func words(_ text: String) -> [String] {
        text.lowercased().split(whereSeparator: { $0 == "," || $0 == "|" || $0 == " " }).map(String.init)
    }

    /// Sets the plan and the split from distctl's `--plan state-first|redirect-first` and
    /// `--split LENGTH --split-order state|traffic`, and checks they fit the rest.
    public mutating func arrange(plan: String = "state-first", split: Int? = nil, splitOrder: String = "state") throws {
        guard let p = Plan(rawValue: plan.lowercased()) else {
            throw Invalid("plan '\(plan)' is not one of state-first, redirect-first")
        }
        if p == .redirectFirst {
            guard mode == .dist else { throw Invalid("a redirect-first Move runs peer to peer: use --mode dist") }
            guard guarantee == .lf else { throw Invalid("a redirect-first Move is loss-free: use --guarantee lf") }
        }
        self.plan = p
        guard let length = split else {
            self.split = nil
            return
        }
        guard let order = Split.Order(rawValue: splitOrder.lowercased()) else {
            throw Invalid("split order '\(splitOrder)' is not one of state, traffic")
        }
        guard mode == .dist else { throw Invalid("a split Move runs its parts peer to peer: use --mode dist") }
        guard let prefix = filter.splitPrefix else {
            throw Invalid("a split Move needs a filter with one IP prefix (nw_src or nw_dst) and nothing else")
        }
        let family = prefix.address.isIPv4Mapped ? 32 : 128
        let current = prefix.length - (family == 32 ? 96 : 0)
        guard length > current, length <= family, length - current <= 16 else {
            throw Invalid(
                "--split \(length): the parts' prefix must be longer than the filter's (/\(current)), at most "
                    + "/\(family), and at most 16 bits longer"
            )
        }
        self.split = Split(prefixLength: length, order: order)
    }

    /// `lf pz|ll|er`, as the paper's tables name a configuration.
    public var configuration: String {
        let opts = optimizations.sorted().map { $0.rawValue }.joined(separator: "|")
        var text = guarantee.rawValue.uppercased() + (opts.isEmpty ? "" : " " + opts.uppercased())
        if plan == .redirectFirst { text += " redirect-first" }
        if let split { text += " split /\(split.prefixLength) by \(split.order.rawValue)" }
        return text
    }

    public var description: String {
        "\(mode.rawValue) \(configuration) \(source) -> \(destination) filter \(filter) scope "
            + scopes.sorted().map { $0.rawValue }.joined(separator: ",")
    }
}
