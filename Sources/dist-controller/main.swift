// dist-controller: the DiST controller daemon. OpenFlow 1.3 to the switch, the southbound API to
// every VNF, a northbound JSON-lines API on a Unix socket for distctl.
import ArgumentParser
import DistController
import DistLog
import DistMetrics
import DistServer
import Foundation
import Logging
import NIOSSL

#if canImport(Glibc)
    import Glibc
#endif

/// The daemon's logger (swift-log onto ``LineLogHandler``), set up once the options are read.
nonisolated(unsafe) var logger = Logger(label: "dist-controller") { _ in LineLogHandler(format: .text, level: .info) }

/// One event, information or (`level`) worse. Every line of the text format starts "dist-controller:".
func say(_ text: String, level: Logger.Level = .info) {
    logger.log(level: level, "dist-controller: \(text)")
}

struct DistControllerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dist-controller",
        abstract: "The DiST controller: OpenFlow 1.3 to the switch, southbound to the VNFs, northbound for distctl.",
        discussion: """
            Example (the test bed's):
              dist-controller --openflow 127.0.0.1:6653 --northbound /tmp/dist-testbed/controller.sock \\
                --vnf vnf1=198.19.1.2:7001@11 --vnf vnf2=198.19.2.2:7001@12 --ingress 1 --egress 2 --default vnf1
            """)

    @Option(name: .long, help: "Where the switch connects (HOST:PORT).")
    var openflow = "127.0.0.1:6653"

    @Option(name: .long, help: "The northbound Unix socket distctl talks to.")
    var northbound = "/run/dist/controller.sock"

    @Option(
        name: .long,
        help:
            ArgumentHelp(
                "A VNF: NAME=HOST:PORT@SWITCHPORT (its southbound address and the switch port of its data "
                    + "port). Repeat per VNF.")
    )
    var vnf: [String] = []

    @Option(name: .long, help: "The switch port traffic enters on.")
    var ingress: UInt32?

    @Option(name: .long, help: "The switch port the VNFs' output goes to.")
    var egress: UInt32?

    @Option(name: .customLong("default"), help: "The VNF traffic goes to before any Move.")
    var defaultVNF: String?

    @Option(name: .long, help: "Seconds a VNF may take to answer a request.")
    var requestTimeout: Double = 5

    @Option(
        name: .long,
        help: "PACKET_OUTs per second at most (re-injected packets are paced so the switch does not drop a burst).")
    var packetOutRate = 10_000

    @Option(
        name: .long,
        help:
            ArgumentHelp(
                "Milliseconds a dist Move lets the switch's datapath catch up with a rule change before its in-band "
                    + "control packet (Open vSwitch updates cached flows after the barrier reply).")
    )
    var settle = 10

    @Option(
        name: .long,
        help: "This controller's certificate (PEM), presented to every VNF's southbound API (mutual TLS 1.3).")
    var tlsCert: String?

    @Option(name: .long, help: "Its private key (PEM).")
    var tlsKey: String?

    @Option(name: .long, help: "The CA every VNF's certificate must chain to.")
    var tlsCa: String?

    @Option(
        name: .long,
        help:
            ArgumentHelp(
                "The switch's certificate (PEM): an OpenFlow connection that presents another is refused (with TLS; "
                    + "default: any of the CA).")
    )
    var switchCert: String?

    @Flag(
        name: .long,
        help:
            ArgumentHelp(
                "Plaintext control plane instead: the VNFs (they must run with --insecure-control) and OpenFlow (the "
                    + "switch's tcp: target).")
    )
    var insecureControl = false

    @Option(
        name: .long,
        help:
            ArgumentHelp(
                "Seconds a dist Move's source waits for the controller's next step (the switch update, the in-band "
                    + "control packet) before it ends the Move itself (default: the VNF's, 3).")
    )
    var movePatience: Double?

    @Option(
        name: .long,
        help:
            ArgumentHelp(
                "Open vSwitch's control socket (ovs-vswitchd --unixctl=PATH): an OP Move clears the switch's datapath "
                    + "flow cache through it before its in-band control packet, so no flow is still forwarded by "
                    + "the rule before (without it: the copies, then --settle).",
                valueName: "PATH"))
    var switchUnixctl: String?

    @Option(
        name: .long,
        help:
            "Serve Prometheus metrics at http://HOST:PORT/metrics (Moves by mode, guarantee and outcome, MoveTime, connections)."
    )
    var metrics: String?

    @Option(name: .long, help: "How log lines are written: text (the message), logfmt (key=value) or json.")
    var logFormat = "text"

    @Option(name: .long, help: "The least level logged: trace, debug, info, notice, warning, error or critical.")
    var logLevel = "info"

    func validate() throws {
        guard LogFormat(rawValue: logFormat) != nil else {
            throw ValidationError("--log-format must be text, logfmt or json")
        }
        guard LineLogHandler.level(logLevel) != nil else {
            throw ValidationError("--log-level must be trace, debug, info, notice, warning, error or critical")
        }
        if let metrics, Self.endpoint(metrics) == nil {
            throw ValidationError("--metrics '\(metrics)' is not HOST:PORT")
        }
        if let p = movePatience, !(0.1...600).contains(p) {
            throw ValidationError("--move-patience must be 0.1 to 600 seconds")
        }
        guard settle >= 0, settle <= 1000 else { throw ValidationError("--settle must be 0 to 1000 milliseconds") }
        if let path = switchUnixctl, path.isEmpty || path.utf8.count > 107 {
            throw ValidationError("--switch-unixctl must be the path of a Unix socket (at most 107 bytes)")
        }
        guard packetOutRate >= 1000, packetOutRate <= 1_000_000 else {
            throw ValidationError("--packet-out-rate must be 1000 to 1000000")
        }
        guard !vnf.isEmpty else { throw ValidationError("give at least one --vnf NAME=HOST:PORT@SWITCHPORT") }
        guard requestTimeout > 0, requestTimeout <= 600 else {
            throw ValidationError("--request-timeout must be in (0, 600] seconds")
        }
        guard Self.endpoint(openflow) != nil else { throw ValidationError("--openflow '\(openflow)' is not HOST:PORT") }
        let files = [tlsCert, tlsKey, tlsCa].compactMap { $0 }
        if insecureControl && !files.isEmpty {
            throw ValidationError("--insecure-control and --tls-cert/-key/-ca exclude each other")
        }
        if insecureControl && switchCert != nil {
            throw ValidationError("--switch-cert needs TLS (not --insecure-control)")
        }
        if !insecureControl && files.count != 3 {
            throw ValidationError(
                "give --tls-cert, --tls-key and --tls-ca (mutual TLS to the VNFs), or --insecure-control")
        }
    }

    static func endpoint(_ text: String) -> (String, Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        return (String(text[..<colon]), port)
    }

    func run() throws {
        let (format, level) = (LogFormat(rawValue: logFormat)!, LineLogHandler.level(logLevel)!)
        LoggingSystem.bootstrap { _ in LineLogHandler(format: format, level: level) }
        logger = Logger(label: "dist-controller")
        let vnfs = try vnf.map { try ControllerConfig.VNF(parsing: $0) }
        let (host, port) = Self.endpoint(openflow)!
        var config = ControllerConfig(
            vnfs: vnfs, openflowHost: host, openflowPort: port, northboundPath: northbound,
            ingressPort: ingress, egressPort: egress, defaultVNF: defaultVNF, requestTimeout: requestTimeout,
            packetOutRate: packetOutRate, settleMilliseconds: settle)
        config.movePatience = movePatience
        // (Not checked here: the switch may start after the controller. A Move that cannot use
        // it says so in its report, and waits for the copies instead.)
        config.switchUnixctl = switchUnixctl
        if let tlsCert, let tlsKey, let tlsCa {
            do {
                let files = ControlTLS.Files(certificate: tlsCert, key: tlsKey, ca: tlsCa)
                config.vnfTLS = try ControlTLS.client(files)
                config.openflowTLS = try ControlTLS.server(files)
                config.switchCertificate = try switchCert.map { path in
                    // (The switch's own certificate: the first in its file.)
                    guard let first = try NIOSSLCertificate.fromPEMFile(path).first else {
                        throw ValidationError("\(path) holds no PEM certificate")
                    }
                    return first
                }
            } catch {
                throw ValidationError("TLS: \(error)")
            }
        } else {
            say(
                "warning: a plaintext control plane (--insecure-control): VNFs and switch unauthenticated",
                level: .warning)
        }
        let controller: Controller
        do {
            controller = try Controller(config: config, log: { say($0) })
        } catch {
            throw ValidationError("\(error)")
        }
        var metricsServer: MetricsServer?
        if let metrics, let (host, port) = Self.endpoint(metrics) {
            let book = MetricsBook()
            do {
                metricsServer = try MetricsServer(host: host, port: UInt16(port), book: book)
            } catch {
                say("cannot serve metrics on \(metrics): \(error)", level: .error)
                throw ExitCode(1)
            }
            controller.publish(into: book)
            say("metrics on http://\(host):\(metricsServer!.port)/metrics")
        }
        let bound: Int
        do {
            bound = try controller.start()
        } catch {
            say("cannot start: \(error)", level: .error)
            throw ExitCode(1)
        }
        say(
            "OpenFlow on \(host):\(bound), northbound \(northbound), VNFs "
                + vnfs.map { "\($0.name)=\($0.host):\($0.port)@\($0.switchPort)" }.joined(separator: " "))
        signal(SIGPIPE, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let stop = DispatchSemaphore(value: 0)
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { stop.signal() }
            s.resume()
            sources.append(s)
        }
        stop.wait()
        say("stopping")
        controller.shutdown()
        metricsServer?.close()
    }
}

DistControllerCommand.main()
