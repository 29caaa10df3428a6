import DistPacket

/// An OpenFlow-style match on flows, applied to both directions of a flow (as OpenNF's filters
/// are): `nw_src`/`nw_dst` prefixes, `nw_proto`, `tp_src`/`tp_dst` ports, `dl_vlan`. A field left
/// out matches anything. A flow matches when one of its directions does.
///
/// Text form (distctl, the southbound API): `nw_src=10.0.0.0/8,tp_dst=80`; empty or `*`
/// matches every flow.
public struct FlowFilter: Sendable, Equatable, CustomStringConvertible {
    public var source: IPPrefix?
    public var destination: IPPrefix?
    public var proto: UInt8?
    public var sourcePort: UInt16?
    public var destinationPort: UInt16?
    public var vlan: UInt16?

    public init(
        source: IPPrefix? = nil, destination: IPPrefix? = nil, proto: UInt8? = nil,
        sourcePort: UInt16? = nil, destinationPort: UInt16? = nil, vlan: UInt16? = nil
    ) {
        self.source = source
        self.destination = destination
        self.proto = proto
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.vlan = vlan
    }

    /// Every flow.
    public static let all = FlowFilter()

    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// Parses the text form; a bad field is an error naming it.
    public init(parsing text: String) throws {
        self.init()
        let trimmed = FlowFilter.trim(Substring(text))
        if trimmed.isEmpty || trimmed == "*" { return }
        for part in trimmed.split(separator: ",") {
            let kv = part.split(separator: "=", maxSplits: 1).map { FlowFilter.trim($0) }
            guard kv.count == 2, !kv[1].isEmpty else {
                throw ParseError(description: "filter field '\(part)' is not name=value")
            }
            try set(kv[0], kv[1])
        }
    }

    static func trim(_ s: Substring) -> String {
        String(s.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }

    /// Sets one field from its text (`nw_src`, `nw_dst`, `nw_proto`, `tp_src`, `tp_dst`, `dl_vlan`).
    public mutating func set(_ name: String, _ value: String) throws {
        func number<T: FixedWidthInteger>(_ max: T) throws -> T {
            guard let n = T(value), n >= 0, n <= max else {
                throw ParseError(description: "filter field \(name): '\(value)' is not a number up to \(max)")
            }
            return n
        }
        func prefix() throws -> IPPrefix {
            guard let p = IPPrefix(value) else {
                throw ParseError(description: "filter field \(name): '\(value)' is not an IP prefix")
            }
            return p
        }
        switch name {
        case "nw_src": source = try prefix()
        case "nw_dst": destination = try prefix()
        case "nw_proto": proto = try number(UInt8.max)
        case "tp_src": sourcePort = try number(UInt16.max)
        case "tp_dst": destinationPort = try number(UInt16.max)
        case "dl_vlan": vlan = try number(UInt16(4095))
        default:
            throw ParseError(
                description: "unknown filter field '\(name)' (nw_src, nw_dst, nw_proto, tp_src, tp_dst, dl_vlan)")
        }
    }

    public var description: String {
        var parts: [String] = []
        if let source { parts.append("nw_src=\(source)") }
        if let destination { parts.append("nw_dst=\(destination)") }
        if let proto { parts.append("nw_proto=\(proto)") }
        if let sourcePort { parts.append("tp_src=\(sourcePort)") }
        if let destinationPort { parts.append("tp_dst=\(destinationPort)") }
        if let vlan { parts.append("dl_vlan=\(vlan)") }
        return parts.isEmpty ? "*" : parts.joined(separator: ",")
    }

    /// Whether the flow matches in either direction.
    public func matches(_ key: FlowKey) -> Bool {
        if let proto, proto != key.proto { return false }
        // A tunnelled flow's ports are its inner packets': a switch matches the outer header,
        // which has none.
        if key.isTunnelled && (sourcePort != nil || destinationPort != nil) { return false }
        if let vlan, vlan != UInt16(key.vlanKey >> 12) { return false }
        return direction(key.loAddr, key.loPort, key.hiAddr, key.hiPort)
            || direction(key.hiAddr, key.hiPort, key.loAddr, key.loPort)
    }

    func direction(_ a: IPAddress, _ aPort: UInt16, _ b: IPAddress, _ bPort: UInt16) -> Bool {
        if let source, !source.contains(a) { return false }
        if let destination, !destination.contains(b) { return false }
        if let sourcePort, sourcePort != aPort { return false }
        if let destinationPort, destinationPort != bPort { return false }
        return true
    }

    /// Whether a host's multi-flow state falls under the filter: the host is within either prefix
    /// (a filter without prefixes takes every host).
    public func matches(host: IPAddress) -> Bool {
        if source == nil && destination == nil { return true }
        return source?.contains(host) == true || destination?.contains(host) == true
    }

    /// The filter's one prefix when it has a prefix and no other field (a split Move's parts
    /// are sub-prefixes of it).
    public var splitPrefix: IPPrefix? {
        guard proto == nil, sourcePort == nil, destinationPort == nil, vlan == nil else { return nil }
        switch (source, destination) {
        case (let p?, nil), (nil, let p?): return p
        default: return nil
        }
    }
}
