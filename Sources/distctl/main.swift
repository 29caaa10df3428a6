// distctl: the operator's CLI for the DiST controller (its northbound Unix socket).
import ArgumentParser
import DistFlow
import DistMove
import DistNorthbound
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
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw ValidationError("socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let ok = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard ok == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw ValidationError(
                "cannot reach the controller at \(path): \(why) (is dist-controller running? --socket or "
                    + "DIST_CONTROLLER_SOCKET)"
            )
        }
    }

    deinit { close(fd) }

    func send(_ request: NorthboundRequest) throws {
        let bytes = Array((request.line + "\n").utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
            guard n > 0 else { throw ValidationError("the controller closed the connection") }
            sent += n
        }
    }

    /// The next line, and what it says.
    func receive() throws -> (line: String, reply: NorthboundReply) {
        while true {
            if let nl = pending.firstIndex(of: 0x0A) {
                let line = String(decoding: pending[..<nl], as: UTF8.self)
                pending.removeFirst(nl + 1)
                guard let reply = NorthboundReply(line: line) else {
                    throw ValidationError(
                        "the controller sent a line this distctl does not understand: \(line.prefix(200))")
                }
                return (line, reply)
            }
            var buffer = [UInt8](repeating: 0, count: 65536)
            let n = read(fd, &buffer, buffer.count)
            guard n > 0 else { throw ValidationError("the controller closed the connection") }
            pending += buffer[0..<n]
        }
    }
}

struct Connection: ParsableArguments {
    @Option(
        name: .long,
        help: "The controller's northbound socket (default: $DIST_CONTROLLER_SOCKET or /run/dist/controller.sock).")
    var socket: String?

    @Flag(name: .long, help: "Print the controller's JSON instead of a table.")
    var json = false

    func open() throws -> Northbound {
        try Northbound(
            path: socket ?? ProcessInfo.processInfo.environment["DIST_CONTROLLER_SOCKET"] ?? "/run/dist/controller.sock"
        )
    }

    /// Sends one request, prints progress lines, returns the answer (throws on a failure).
    func ask(_ request: NorthboundRequest, progress: Bool = false) throws -> NorthboundReply {
        let nb = try open()
        try nb.send(request)
        while true {
            let (line, reply) = try nb.receive()
            if case .progress(let text, let seconds) = reply {
                if progress && !json { print(String(format: "[%7.3f s] ", seconds) + text) }
                continue
            }
            if json { print(line) }
            if case .failure(let why) = reply { throw ValidationError("controller: \(why)") }
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
        discussion:
            "Example: distctl move --from vnf1 --to vnf2 --filter nw_src=10.0.0.0/8 --guarantee lf --opt pz,ll,er "
            + "--mode opennf"
    )

    @OptionGroup var connection: Connection
    @Option(name: .long, help: "Source VNF.") var from: String
    @Option(name: .long, help: "Destination VNF.") var to: String
    @Option(
        name: .long,
        help: "Flows to move: nw_src, nw_dst (prefixes), nw_proto, tp_src, tp_dst, dl_vlan; both directions match.")
    var filter: String
    @Option(name: .long, help: "State scopes: per, multi, all (comma-separated).") var scope = "per,multi"
    @Option(name: .long, help: "ng (none), lf (loss-free), op (order-preserving).") var guarantee = "lf"
    @Option(name: .long, help: "Optimizations: pz, ll, er (comma-separated) or none.") var opt = "none"
    @Option(name: .long, help: "opennf (through the controller) or dist (peer to peer).") var mode = "opennf"
    @Option(
        name: .long, help: "state-first (the paper's) or redirect-first (the switch first, then the state; dist, lf).")
    var plan = "state-first"
    @Option(
        name: .long,
        help: "Move the filter's prefix as parts of this prefix length, one Move each, then the rest (dist).")
    var split: Int?
    @Option(name: .long, help: "The parts' order: state (fewest states first) or traffic (most packets first).")
    var splitOrder = "state"

    var command: MoveCommand {
        var c = MoveCommand(from: from, to: to, filter: filter)
        (c.scope, c.guarantee, c.opt, c.mode, c.plan, c.split, c.splitOrder) = (
            scope, guarantee, opt, mode, plan, split, splitOrder
        )
        return c
    }

    func validate() throws {
        do {
            _ = try command.spec()
        } catch {
            throw ValidationError("\(error)")
        }
    }

    func run() throws {
        guard case .report(let report) = try connection.ask(.move(command), progress: true) else {
            throw ValidationError("the controller's answer has no report")
        }
        if !connection.json { print(report.table) }
        if report.outcome != "completed" { throw ExitCode(3) }
    }
}

struct VNF: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The VNFs the controller knows.", subcommands: [List.self, Stats.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "VNFs, their southbound address, switch port, and whether they are connected.")
        @OptionGroup var connection: Connection
        func run() throws {
            guard case .vnfs(let vnfs, let sw) = try connection.ask(.vnfs), !connection.json else { return }
            print("NAME        CONTROL                 PORT  CONNECTED")
            for v in vnfs {
                let name = v.name.padding(toLength: 11, withPad: " ", startingAt: 0)
                let control = v.control.padding(toLength: 23, withPad: " ", startingAt: 0)
                let port = "\(v.switchPort)".padding(toLength: 5, withPad: " ", startingAt: 0)
                let state = v.connected ? "yes" : "no (\(v.lastError ?? "connecting"))"
                print("\(name) \(control) \(port) \(state)")
            }
            print(sw.map { "switch: datapath \($0.datapath)" } ?? "switch: not connected")
        }
    }

    struct Stats: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "A VNF's all-flows state (its counters).")
        @OptionGroup var connection: Connection
        @Argument(help: "VNF name.") var name: String
        func run() throws {
            guard case .stats(_, let c) = try connection.ask(.stats(vnf: name)), !connection.json else { return }
            let counts: [(String, String)] = [
                ("assets", "\(c.assets)"), ("bytes", "\(c.bytes)"), ("byTransport", "\(c.byTransport)"),
                ("flowsCreated", "\(c.flowsCreated)"), ("flowsExpired", "\(c.flowsExpired)"),
                ("packets", "\(c.packets)"), ("records", "\(c.records)"),
            ]
            for (key, value) in counts { print("\(key): \(value)") }
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
        let request = NorthboundRequest.flows(vnf: name, filter: try Self.parsed(filter), limit: limit)
        guard case .flows(_, let count, let flows) = try connection.ask(request), !connection.json else { return }
        print("\(count) flows")
        for f in flows {
            print(
                "\(f.proto) \(f.client):\(f.clientPort) -> \(f.server):\(f.serverPort)  packets "
                    + "\(f.packetsToServer)/\(f.packetsToClient)  \(f.tcpState)"
            )
        }
    }

    static func parsed(_ text: String) throws -> FlowFilter {
        do {
            return try FlowFilter(parsing: text)
        } catch {
            throw ValidationError("--filter: \(error)")
        }
    }
}

struct Assets: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A VNF's multi-flow state (what it learnt about hosts).")
    @OptionGroup var connection: Connection
    @Argument(help: "VNF name.") var name: String
    @Option(name: .long, help: "Only hosts within this filter's prefixes.") var filter = "*"
    func run() throws {
        guard case .assets(_, let assets) = try connection.ask(.assets(vnf: name, filter: try Flows.parsed(filter))),
            !connection.json
        else { return }
        print("\(assets.count) hosts")
        for a in assets {
            let os = a.asset.os.map { $0.text }
            let services = a.asset.services.map {
                "\($0.service):\($0.application) \($0.server ? "server" : "client") port \($0.port)"
            }
            print("\(a.address)  os [\(os.joined(separator: "; "))]  services [\(services.joined(separator: "; "))]")
        }
    }
}

DistCtl.main()
