// distctl: the operator's CLI for the DiST controller (its northbound Unix socket).
import ArgumentParser
import DistMove
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// One connection to the controller's northbound socket: JSON objects, one per line.
final class Northbound {
    let fd: Int32
    var pending: [UInt8] = []

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ValidationError("cannot create a socket") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw ValidationError("socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard ok == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw ValidationError("cannot reach the controller at \(path): \(why) (is dist-controller running? --socket or DIST_CONTROLLER_SOCKET)")
        }
    }

    deinit { close(fd) }

    func send(_ object: [String: Any]) throws {
        var data = try JSONSerialization.data(withJSONObject: object)
        data.append(0x0A)
        try data.withUnsafeBytes { raw in
            var sent = 0
            while sent < raw.count {
                let n = write(fd, raw.baseAddress! + sent, raw.count - sent)
                guard n > 0 else { throw ValidationError("the controller closed the connection") }
                sent += n
            }
        }
    }

    /// The next line, as a JSON object.
    func receive() throws -> [String: Any] {
        while true {
            if let nl = pending.firstIndex(of: 0x0A) {
                let line = Array(pending[..<nl])
                pending.removeFirst(nl + 1)
                guard let object = try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                    throw ValidationError("the controller sent something that is not a JSON object")
                }
                return object
            }
            var buffer = [UInt8](repeating: 0, count: 65536)
            let n = read(fd, &buffer, buffer.count)
            guard n > 0 else { throw ValidationError("the controller closed the connection") }
            pending += buffer[0..<n]
        }
    }
}

struct Connection: ParsableArguments {
    @Option(name: .long, help: "The controller's northbound socket (default: $DIST_CONTROLLER_SOCKET or /run/dist/controller.sock).")
    var socket: String?

    @Flag(name: .long, help: "Print the controller's JSON instead of a table.")
    var json = false

    func open() throws -> Northbound {
        try Northbound(path: socket ?? ProcessInfo.processInfo.environment["DIST_CONTROLLER_SOCKET"] ?? "/run/dist/controller.sock")
    }

    /// Sends one request, prints progress lines, returns the answer (throws on `ok: false`).
    func ask(_ request: [String: Any], progress: Bool = false) throws -> [String: Any] {
        let nb = try open()
        try nb.send(request)
        while true {
            let reply = try nb.receive()
            if let text = reply["progress"] as? String {
                if progress && !json { print(String(format: "[%7.3f s] ", reply["t"] as? Double ?? 0) + text) }
                continue
            }
            if json { print(String(decoding: try JSONSerialization.data(withJSONObject: reply, options: [.sortedKeys, .prettyPrinted]), as: UTF8.self)) }
            if reply["ok"] as? Bool != true, reply["report"] == nil {
                throw ValidationError("controller: \(reply["error"] as? String ?? "request failed")")
            }
            return reply
        }
    }
}

struct DistCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "distctl",
        abstract: "Operate DiST: move flows and their state between VNFs, list VNFs, read their state.",
        subcommands: [Move.self, VNF.self, Flows.self, Assets.self])
}

struct Move: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Move the state and traffic of the flows a filter matches from one VNF to another.",
        discussion: "Example: distctl move --from vnf1 --to vnf2 --filter nw_src=10.0.0.0/8 --guarantee lf --opt pz,ll,er --mode opennf")

    @OptionGroup var connection: Connection
    @Option(name: .long, help: "Source VNF.") var from: String
    @Option(name: .long, help: "Destination VNF.") var to: String
    @Option(name: .long, help: "Flows to move: nw_src, nw_dst (prefixes), nw_proto, tp_src, tp_dst, dl_vlan; both directions match.")
    var filter: String
    @Option(name: .long, help: "State scopes: per, multi, all (comma-separated).") var scope = "per,multi"
    @Option(name: .long, help: "ng (none), lf (loss-free), op (order-preserving).") var guarantee = "lf"
    @Option(name: .long, help: "Optimizations: pz, ll, er (comma-separated) or none.") var opt = "none"
    @Option(name: .long, help: "opennf (through the controller) or dist (peer to peer).") var mode = "opennf"
    @Option(name: .long, help: "state-first (the paper's) or redirect-first (the switch first, then the state; dist, lf).")
    var plan = "state-first"
    @Option(name: .long, help: "Move the filter's prefix as parts of this prefix length, one Move each, then the rest (dist).")
    var split: Int?
    @Option(name: .long, help: "The parts' order: state (fewest states first) or traffic (most packets first).")
    var splitOrder = "state"

    func validate() throws {
        do {
            var spec = try MoveSpec(source: from, destination: to, filter: filter, scope: scope, guarantee: guarantee,
                                    optimizations: opt, mode: mode)
            try spec.arrange(plan: plan, split: split, splitOrder: splitOrder)
        } catch {
            throw ValidationError("\(error)")
        }
    }

    func run() throws {
        let reply = try connection.ask(["command": "move", "from": from, "to": to, "filter": filter, "scope": scope,
                                        "guarantee": guarantee, "opt": opt, "mode": mode, "plan": plan,
                                        "split": split as Any? ?? NSNull(), "splitOrder": splitOrder], progress: true)
        guard let object = reply["report"],
              let report = try? JSONDecoder().decode(MoveReport.self, from: JSONSerialization.data(withJSONObject: object))
        else { throw ValidationError("the controller's answer has no report") }
        if !connection.json { print(report.table) }
        if report.outcome != "completed" { throw ExitCode(3) }
    }
}

struct VNF: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The VNFs the controller knows.", subcommands: [List.self, Stats.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "VNFs, their southbound address, switch port, and whether they are connected.")
        @OptionGroup var connection: Connection
        func run() throws {
            let reply = try connection.ask(["command": "vnfs"])
            guard !connection.json else { return }
            print("NAME        CONTROL                 PORT  CONNECTED")
            for v in reply["vnfs"] as? [[String: Any]] ?? [] {
                let name = (v["name"] as? String ?? "?").padding(toLength: 11, withPad: " ", startingAt: 0)
                let control = (v["control"] as? String ?? "?").padding(toLength: 23, withPad: " ", startingAt: 0)
                let port = "\(v["switch_port"] as? Int ?? 0)".padding(toLength: 5, withPad: " ", startingAt: 0)
                let state = v["connected"] as? Bool == true ? "yes" : "no (\(v["last_error"] as? String ?? "connecting"))"
                print("\(name) \(control) \(port) \(state)")
            }
            if let sw = reply["switch"] as? [String: Any] {
                print("switch: datapath \(sw["datapath"] as? String ?? "?")")
            } else {
                print("switch: not connected")
            }
        }
    }

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A VNF's all-flows state (its counters).")
        @OptionGroup var connection: Connection
        @Argument(help: "VNF name.") var name: String
        func run() throws {
            let reply = try connection.ask(["command": "stats", "vnf": name])
            guard !connection.json, let c = reply["counters"] as? [String: Any] else { return }
            for key in c.keys.sorted() { print("\(key): \(c[key]!)") }
        }
    }
}

struct Flows: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A VNF's per-flow state.")
    @OptionGroup var connection: Connection
    @Argument(help: "VNF name.") var name: String
    @Option(name: .long, help: "Only flows this filter matches.") var filter = "*"
    @Option(name: .long, help: "At most this many flows are printed.") var limit = 20
    func run() throws {
        let reply = try connection.ask(["command": "flows", "vnf": name, "filter": filter, "limit": limit])
        guard !connection.json else { return }
        print("\(reply["count"] as? Int ?? 0) flows")
        for f in reply["flows"] as? [[String: Any]] ?? [] {
            print("\(f["proto"] ?? "?") \(f["client"] ?? "?"):\(f["client_port"] ?? "?") -> \(f["server"] ?? "?"):\(f["server_port"] ?? "?")  packets \(f["packets_to_server"] ?? 0)/\(f["packets_to_client"] ?? 0)  \(f["tcp_state"] ?? "")")
        }
    }
}

struct Assets: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A VNF's multi-flow state (what it learnt about hosts).")
    @OptionGroup var connection: Connection
    @Argument(help: "VNF name.") var name: String
    @Option(name: .long, help: "Only hosts within this filter's prefixes.") var filter = "*"
    func run() throws {
        let reply = try connection.ask(["command": "assets", "vnf": name, "filter": filter])
        guard !connection.json else { return }
        print("\(reply["count"] as? Int ?? 0) hosts")
        for a in reply["assets"] as? [[String: Any]] ?? [] {
            let os = (a["os"] as? [[String: Any]] ?? []).compactMap { $0["text"] as? String }
            let services = (a["services"] as? [[String: Any]] ?? []).compactMap { $0["text"] as? String ?? $0["banner"] as? String }
            print("\(a["address"] ?? "?")  os [\(os.joined(separator: "; "))]  services [\(services.joined(separator: "; "))]")
        }
    }
}

DistCtl.main()
