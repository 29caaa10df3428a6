import DistControl
import DistFlow
import DistMove
import DistPRADS
import DistState
import Foundation

/// A line dist-controller sends back: progress while a Move runs, then one answer (`ok` says
/// whether it is one, `error` why not).
public enum NorthboundReply: Sendable, Equatable {
    /// What a Move is doing, `seconds` after it began.
    case progress(String, seconds: Double)
    case failure(String)
    case vnfs([VNFStatus], switch: SwitchStatus?)
    case stats(vnf: String, counters: InstanceCounters)
    /// `count` flows matched; `flows` holds the first of them.
    case flows(vnf: String, count: Int, flows: [FlowSummary])
    case assets(vnf: String, assets: [HostAsset])
    /// A Move's end (`ok` when it completed).
    case report(MoveReport)

    public struct VNFStatus: Sendable, Equatable, Codable {
        public var name: String
        public var control: String
        public var switchPort: UInt32
        public var connected: Bool
        public var lastError: String?

        public init(name: String, control: String, switchPort: UInt32, connected: Bool, lastError: String?) {
            self.name = name
            self.control = control
            self.switchPort = switchPort
            self.connected = connected
            self.lastError = lastError
        }

        enum CodingKeys: String, CodingKey {
            case name, control, connected
            case switchPort = "switch_port", lastError = "last_error"
        }
    }

    public struct SwitchStatus: Sendable, Equatable, Codable {
        /// The datapath id, in hex.
        public var datapath: String
        public var ports: [Port]

        public struct Port: Sendable, Equatable, Codable {
            public var number: UInt32
            public var name: String
            public init(number: UInt32, name: String) {
                self.number = number
                self.name = name
            }
        }

        public init(datapath: String, ports: [Port]) {
            self.datapath = datapath
            self.ports = ports
        }
    }

    /// One flow, as an operator reads it.
    public struct FlowSummary: Sendable, Equatable, Codable {
        public var proto: UInt8
        public var client: String
        public var clientPort: UInt16
        public var server: String
        public var serverPort: UInt16
        public var packetsToServer: UInt64
        public var packetsToClient: UInt64
        public var bytesToServer: UInt64
        public var bytesToClient: UInt64
        public var tcpState: String

        public init(_ e: FlowEntry) {
            proto = e.key.proto
            client = e.client.addr.text
            clientPort = e.client.port
            server = e.server.addr.text
            serverPort = e.server.port
            packetsToServer = e.packetsToServer
            packetsToClient = e.packetsToClient
            bytesToServer = e.bytesToServer
            bytesToClient = e.bytesToClient
            tcpState = "\(e.tcpState)"
        }

        enum CodingKeys: String, CodingKey {
            case proto, client, server
            case clientPort = "client_port", serverPort = "server_port", packetsToServer = "packets_to_server"
            case packetsToClient = "packets_to_client", bytesToServer = "bytes_to_server", bytesToClient =
                "bytes_to_client"
            case tcpState = "tcp_state"
        }
    }

    /// A host and what was learnt about it: the asset's fields, and `address`.
    public struct HostAsset: Sendable, Equatable, Codable {
        public var address: String
        public var asset: Detector.Asset

        public init(_ a: AssetState) {
            address = a.address.text
            asset = a.asset
        }

        public init(from decoder: Decoder) throws {
            asset = try Detector.Asset(from: decoder)
            address = try decoder.container(keyedBy: JSONKey.self).decode(String.self, forKey: "address")
        }

        public func encode(to encoder: Encoder) throws {
            try asset.encode(to: encoder)
            var c = encoder.container(keyedBy: JSONKey.self)
            try c.encode(address, forKey: "address")
        }
    }

    /// The reply's line (without its newline).
    public var line: String { NorthboundJSON.line(Encoded(reply: self)) }

    /// A reply line, or nil when it is none this side knows.
    public init?(line: String) {
        guard let c = try? JSONDecoder().decode(Object.self, from: Data(line.utf8)).container,
            let reply = try? Self(from: c)
        else {
            return nil
        }
        self = reply
    }

    init(from c: KeyedDecodingContainer<JSONKey>) throws {
        if let text = try c.decodeIfPresent(String.self, forKey: "progress") {
            self = .progress(text, seconds: try c.decodeIfPresent(Double.self, forKey: "t") ?? 0)
        } else if c.contains("report") {
            self = .report(try c.decode(MoveReport.self, forKey: "report"))
        } else if try c.decodeIfPresent(Bool.self, forKey: "ok") != true {
            self = .failure(try c.decodeIfPresent(String.self, forKey: "error") ?? "request failed")
        } else if c.contains("vnfs") {
            self = .vnfs(
                try c.decode([VNFStatus].self, forKey: "vnfs"),
                switch: try c.decodeIfPresent(SwitchStatus.self, forKey: "switch"))
        } else if c.contains("counters") {
            self = .stats(
                vnf: try c.decode(String.self, forKey: "vnf"),
                counters: try c.decode(InstanceCounters.self, forKey: "counters"))
        } else if c.contains("flows") {
            self = .flows(
                vnf: try c.decode(String.self, forKey: "vnf"), count: try c.decode(Int.self, forKey: "count"),
                flows: try c.decode([FlowSummary].self, forKey: "flows"))
        } else if c.contains("assets") {
            self = .assets(
                vnf: try c.decode(String.self, forKey: "vnf"), assets: try c.decode([HostAsset].self, forKey: "assets"))
        } else {
            throw NorthboundError("a reply of no kind known")
        }
    }

    struct Encoded: Encodable {
        let reply: NorthboundReply

        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: JSONKey.self)
            switch reply {
            case .progress(let text, let seconds):
                try c.encode(text, forKey: "progress")
                try c.encode(seconds, forKey: "t")
                return
            case .failure(let why):
                try c.encode(false, forKey: "ok")
                try c.encode(why, forKey: "error")
                return
            case .report(let report):
                try c.encode(report.outcome == "completed", forKey: "ok")
                try c.encode(report, forKey: "report")
                return
            case .vnfs(let vnfs, let sw):
                try c.encode(vnfs, forKey: "vnfs")
                if let sw { try c.encode(sw, forKey: "switch") } else { try c.encodeNil(forKey: "switch") }
            case .stats(let vnf, let counters):
                try c.encode(vnf, forKey: "vnf")
                try c.encode(counters, forKey: "counters")
            case .flows(let vnf, let count, let flows):
                try c.encode(vnf, forKey: "vnf")
                try c.encode(count, forKey: "count")
                try c.encode(flows, forKey: "flows")
            case .assets(let vnf, let assets):
                try c.encode(vnf, forKey: "vnf")
                try c.encode(assets.count, forKey: "count")
                try c.encode(assets, forKey: "assets")
            }
            try c.encode(true, forKey: "ok")
        }
    }
}

/// The northbound's JSON: one line per message, keys sorted.
enum NorthboundJSON {
    static func line<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // (These types encode whatever they hold: a Move's times are finite numbers.)
        let data =
            (try? encoder.encode(value)) ?? Data(#"{"ok":false,"error":"a reply that could not be encoded"}"#.utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
