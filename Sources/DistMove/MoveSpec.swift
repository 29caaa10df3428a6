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
        case perFlow = "per", multiFlow = "multi", allFlows = "all"

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

    public var source: String
    public var destination: String
    public var filter: FlowFilter
    public var scopes: Set<Scope>
    public var guarantee: Guarantee
    public var optimizations: Set<Optimization>
    public var mode: Mode

    public init(source: String, destination: String, filter: FlowFilter, scopes: Set<Scope> = [.perFlow, .multiFlow],
                guarantee: Guarantee = .lf, optimizations: Set<Optimization> = [], mode: Mode = .opennf) {
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
    public init(source: String, destination: String, filter: String, scope: String = "per,multi",
                guarantee: String = "lf", optimizations: String = "", mode: String = "opennf") throws {
        guard !source.isEmpty, !destination.isEmpty else { throw Invalid("a Move needs a source and a destination VNF") }
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
        guard let m = Mode(rawValue: mode.lowercased()) else { throw Invalid("mode '\(mode)' is not one of opennf, dist") }
        var opts = Set<Optimization>()
        for word in Self.words(optimizations) where word != "none" {
            guard let o = Optimization(rawValue: word) else { throw Invalid("optimization '\(word)' is not one of pz, ll, er") }
            opts.insert(o)
        }
        var scopes = Set<Scope>()
        for word in Self.words(scope) {
            let aliases: [String: Scope] = ["per": .perFlow, "perflow": .perFlow, "multi": .multiFlow, "multiflow": .multiFlow,
                                            "all": .allFlows, "allflows": .allFlows]
            guard let s = aliases[word] else { throw Invalid("scope '\(word)' is not one of per, multi, all") }
            scopes.insert(s)
        }
        guard !scopes.isEmpty else { throw Invalid("a Move needs at least one scope (per, multi, all)") }
        self.init(source: source, destination: destination, filter: parsedFilter, scopes: scopes, guarantee: g,
                  optimizations: opts, mode: m)
    }

    static func words(_ text: String) -> [String] {
        text.lowercased().split(whereSeparator: { $0 == "," || $0 == "|" || $0 == " " }).map(String.init)
    }

    /// `lf pz|ll|er`, as the paper's tables name a configuration.
    public var configuration: String {
        let opts = optimizations.sorted().map { $0.rawValue }.joined(separator: "|")
        return guarantee.rawValue.uppercased() + (opts.isEmpty ? "" : " " + opts.uppercased())
    }

    public var description: String {
        "\(mode.rawValue) \(configuration) \(source) -> \(destination) filter \(filter) scope "
            + scopes.sorted().map { $0.rawValue }.joined(separator: ",")
    }
}
