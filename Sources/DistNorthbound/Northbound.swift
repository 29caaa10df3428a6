import DistControl
import DistFlow
import DistMove
import DistPRADS
import DistState
import Foundation

/// A northbound request (operator to dist-controller, on its Unix socket): one JSON object per
/// line, `command` naming the case. Decoding names the first field that is wrong.
public enum NorthboundRequest: Sendable, Equatable {
    /// The VNFs and the switch, as the controller sees them.
    case vnfs
    /// A VNF's all-flows state.
    case stats(vnf: String)
    /// A VNF's per-flow state: how many match, and the first `limit`.
    case flows(vnf: String, filter: FlowFilter, limit: Int)
    /// A VNF's multi-flow state (the hosts within the filter's prefixes).
    case assets(vnf: String, filter: FlowFilter)
    case move(MoveCommand)

    /// A request line; its error says what is wrong with it.
    public init(line: String) throws {
        let c: KeyedDecodingContainer<JSONKey>
        do {
            c = try JSONDecoder().decode(Object.self, from: Data(line.utf8)).container
        } catch {
            throw NorthboundError("a request is one JSON object per line")
        }
        guard let command = try c.optional("command", String.self) else {
            throw NorthboundError("\"command\" is missing")
        }
        switch command {
        case "vnfs": self = .vnfs
        case "stats": self = .stats(vnf: try c.vnf("vnf"))
        case "flows":
            self = .flows(
                vnf: try c.vnf("vnf"), filter: try c.filter(), limit: try c.optional("limit", Int.self) ?? 100)
        case "assets": self = .assets(vnf: try c.vnf("vnf"), filter: try c.filter())
        case "move": self = .move(try MoveCommand(from: c))
        default: throw NorthboundError("unknown command '\(command)' (vnfs, stats, flows, assets, move)")
        }
    }

    /// The request's line (without its newline).
    public var line: String { NorthboundJSON.line(Encoded(request: self)) }

    struct Encoded: Encodable {
        let request: NorthboundRequest

        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: JSONKey.self)
            switch request {
            case .vnfs:
                try c.encode("vnfs", forKey: "command")
            case .stats(let vnf):
                try c.encode("stats", forKey: "command")
                try c.encode(vnf, forKey: "vnf")
            case .flows(let vnf, let filter, let limit):
                try c.encode("flows", forKey: "command")
                try c.encode(vnf, forKey: "vnf")
                try c.encode("\(filter)", forKey: "filter")
                try c.encode(limit, forKey: "limit")
            case .assets(let vnf, let filter):
                try c.encode("assets", forKey: "command")
                try c.encode(vnf, forKey: "vnf")
                try c.encode("\(filter)", forKey: "filter")
            case .move(let m):
                try c.encode("move", forKey: "command")
                for (key, value) in [
                    ("from", m.from), ("to", m.to), ("filter", m.filter), ("scope", m.scope),
                    ("guarantee", m.guarantee),
                    ("opt", m.opt), ("mode", m.mode), ("plan", m.plan), ("splitOrder", m.splitOrder),
                ] {
                    try c.encode(value, forKey: JSONKey(stringValue: key))
                }
                try c.encodeIfPresent(m.split, forKey: "split")
            }
        }
    }
}

/// `move`: distctl's options, as the operator gave them (``spec()`` checks them).
public struct MoveCommand: Sendable, Equatable {
    public var from: String
    public var to: String
    public var filter: String
    public var scope = "per,multi"
    public var guarantee = "lf"
    public var opt = ""
    public var mode = "opennf"
    public var plan = "state-first"
    public var split: Int?
    public var splitOrder = "state"

    public init(from: String, to: String, filter: String) {
        self.from = from
        self.to = to
        self.filter = filter
    }

    /// The Move it asks for.
    public func spec() throws -> MoveSpec {
        var spec = try MoveSpec(
            source: from, destination: to, filter: filter, scope: scope, guarantee: guarantee, optimizations: opt,
            mode: mode)
        try spec.arrange(plan: plan, split: split, splitOrder: splitOrder)
        return spec
    }

    init(from c: KeyedDecodingContainer<JSONKey>) throws {
        from = try c.vnf("from")
        to = try c.vnf("to")
        filter = try c.optional("filter", String.self) ?? "*"
        scope = try c.optional("scope", String.self) ?? scope
        guarantee = try c.optional("guarantee", String.self) ?? guarantee
        opt = try c.optional("opt", String.self) ?? opt
        mode = try c.optional("mode", String.self) ?? mode
        plan = try c.optional("plan", String.self) ?? plan
        split = try c.optional("split", Int.self)
        splitOrder = try c.optional("splitOrder", String.self) ?? splitOrder
    }
}

public struct NorthboundError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ d: String) { description = d }
}

/// Any JSON object, kept as a container to read fields from.
struct Object: Decodable {
    let container: KeyedDecodingContainer<JSONKey>
    init(from decoder: Decoder) throws { container = try decoder.container(keyedBy: JSONKey.self) }
}

extension KeyedDecodingContainer where Key == JSONKey {
    /// `key`'s value (nil when absent or null); an error naming it when it is not a `T`.
    func optional<T: Decodable>(_ key: JSONKey, _ type: T.Type) throws -> T? {
        guard contains(key), (try? decodeNil(forKey: key)) != true else { return nil }
        do {
            return try decode(T.self, forKey: key)
        } catch {
            throw NorthboundError(
                "\"\(key.stringValue)\" must be "
                    + "\(T.self == String.self ? "a string" : T.self == Int.self ? "an integer" : "\(T.self)")"
            )
        }
    }

    func vnf(_ key: JSONKey) throws -> String {
        guard let name = try optional(key, String.self) else {
            throw NorthboundError("\"\(key.stringValue)\" (a VNF name) is missing")
        }
        return name
    }

    func filter() throws -> FlowFilter {
        try FlowFilter(parsing: try optional("filter", String.self) ?? "*")
    }
}
