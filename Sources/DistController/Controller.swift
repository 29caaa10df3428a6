import DistControl
import DistFlow
import DistMetrics
import DistMove
import DistOpenFlow
import DistPacket
import DistState
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// What the controller manages: the VNFs (southbound address and switch port each) and the
/// switch's forwarding roles in the test bed (where traffic comes in, where the VNFs' output
/// goes, which VNF serves by default).
public struct ControllerConfig: Sendable {
    public struct VNF: Sendable, Equatable {
        public var name: String
        public var host: String
        public var port: Int
        public var switchPort: UInt32
        public init(name: String, host: String, port: Int, switchPort: UInt32) {
            self.name = name
            self.host = host
            self.port = port
            self.switchPort = switchPort
        }

        /// `NAME=HOST:PORT@SWITCHPORT`, e.g. `vnf1=198.19.1.2:7001@11`.
        public init(parsing text: String) throws {
            let bad = ControllerError("--vnf '\(text)' is not NAME=HOST:PORT@SWITCHPORT (e.g. vnf1=127.0.0.1:7001@11)")
            guard let eq = text.firstIndex(of: "="), let at = text.lastIndex(of: "@"), eq < at else { throw bad }
            let name = String(text[..<eq])
            let address = String(text[text.index(after: eq)..<at])
            guard !name.isEmpty, let colon = address.lastIndex(of: ":"),
                let port = Int(address[address.index(after: colon)...]), (1...65535).contains(port),
                let switchPort = UInt32(text[text.index(after: at)...]), switchPort > 0, switchPort < 0xFFFF_FF00
            else { throw bad }
            var host = String(address[..<colon])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            guard !host.isEmpty else { throw bad }
            self.init(name: name, host: host, port: port, switchPort: switchPort)
        }
    }

    public var vnfs: [VNF]
    public var openflowHost: String
    public var openflowPort: Int
    public var northboundPath: String
    /// The switch port traffic enters on (the test bed's source).
    public var ingressPort: UInt32?
    /// The switch port the VNFs' output goes to (the test bed's sink).
    public var egressPort: UInt32?
    /// The VNF traffic goes to before any Move.
    public var defaultVNF: String?
    public var requestTimeout: Double
    /// PACKET_OUTs per second at most (redirected packets re-injected through the switch).
    public var packetOutRate: Int
    /// How long a dist Move lets the switch's datapath catch up with a rule change before it
    /// sends an in-band control packet. Open vSwitch answers the barrier once its tables have
    /// changed, and updates the flows cached in its datapath afterwards (revalidator threads):
    /// a packet may still take the old way for a moment, and one that reaches the source after
    /// the IBC could not follow. Measured here: under 1 ms after the barrier reply.
    public var settleMilliseconds: Int
    /// How long a dist Move's source waits for the controller's next step before it ends the
    /// Move itself (seconds; nil: the VNF's default, 3 s). See `MoveEngine.overdue`.
    public var movePatience: Double?
    /// Open vSwitch's control socket (`ovs-vswitchd --unixctl=PATH`): an OP Move brings the
    /// switch's datapath up to date with its new rules through it before the in-band control
    /// packet goes (``DatapathSync``). nil: it waits for the copies and ``settleMilliseconds``.
    public var switchUnixctl: String?
    /// Mutual TLS to every VNF's southbound API (``ControlTLS/client(_:)``); nil: plaintext.
    public var vnfTLS: NIOSSLContext?
    /// Mutual TLS on the OpenFlow listener (the switch presents a certificate of the CA); nil:
    /// plain TCP.
    public var openflowTLS: NIOSSLContext?
    /// The switch's own certificate: a connection that presents another is refused (with
    /// `openflowTLS`; nil: any of the CA).
    public var switchCertificate: NIOSSLCertificate?

    public init(
        vnfs: [VNF], openflowHost: String = "127.0.0.1", openflowPort: Int = 6653, northboundPath: String,
        ingressPort: UInt32? = nil, egressPort: UInt32? = nil, defaultVNF: String? = nil, requestTimeout: Double = 5,
        packetOutRate: Int = 10_000, settleMilliseconds: Int = 10
    ) {
        self.packetOutRate = packetOutRate
        self.settleMilliseconds = settleMilliseconds
        self.vnfs = vnfs
        self.openflowHost = openflowHost
        self.openflowPort = openflowPort
        self.northboundPath = northboundPath
        self.ingressPort = ingressPort
        self.egressPort = egressPort
        self.defaultVNF = defaultVNF
        self.requestTimeout = requestTimeout
    }
}

/// The controller daemon: OpenFlow 1.3 server for the switch, southbound client of every VNF,
/// northbound JSON-lines server on a Unix socket (what distctl talks to). One event loop
/// thread runs all of it, so no state here needs a lock.
public final class Controller {
    public let config: ControllerConfig
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let loop: EventLoop
    var vnfs: [VNFClient] = []
    /// The switch connection in use (its datapath and ports).
    var sw: SwitchConnection?
    /// The switch as Moves use it, across its connections, with the rules they put in force.
    let link: SwitchLink
    var openflowServer: Channel?
    var northboundServer: Channel?
    var moving: MoveRun?
    /// The last Move id given. Ids start at random (below 2^31: a rule's cookie holds one, with
    /// bit 31 for the reflector's), so that a controller that starts again does not reuse its
    /// predecessor's: a VNF refuses a Move id it has seen (a recording of that Move).
    var moves = UInt64.random(in: 0x10000..<0x7000_0000)
    /// The VNFs asked for Moves a controller before this one left behind (see ``endLeftBehind(_:_:)``).
    var leftBehindChecked = Set<String>()
    /// `--metrics`: the book Moves and connections are published in (nil: none), and the
    /// Moves' totals kept for it.
    public var metrics: MetricsBook?
    var movesEnded: [String: UInt64] = [:]
    var moveSums = (messages: UInt64(0), perFlow: UInt64(0), multiFlow: UInt64(0), redirected: UInt64(0))
    let log: (String) -> Void

    public init(config: ControllerConfig, log: @escaping (String) -> Void) throws {
        var names = Set<String>()
        for v in config.vnfs where !names.insert(v.name).inserted {
            throw ControllerError("VNF name \(v.name) given twice")
        }
        if let d = config.defaultVNF, !names.contains(d) {
            throw ControllerError("--default \(d) is not one of the VNFs")
        }
        self.config = config
        self.loop = group.next()
        self.log = log
        link = SwitchLink(loop: loop, log: log)
        link.datapathSync = config.switchUnixctl.map { DatapathSync(path: $0, loop: loop) }
    }

    /// Starts the servers and the VNF connections; returns the bound OpenFlow port.
    public func start() throws -> Int {
        let of = try ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                let connection = SwitchConnection(channel: channel, log: self.log)
                return channel.eventLoop.makeCompletedFuture {
                    if let tls = self.config.openflowTLS {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                    }
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(OpenFlowDecoder()),
                        SwitchHandler(connection: connection, onClose: { self.switchGone($0) }),
                    ])
                    self.switchArrived(connection)
                }
            }
            .bind(host: config.openflowHost, port: config.openflowPort).wait()
        openflowServer = of
        // The socket file is made 0600 (no one else may connect), and a peer of another user is
        // refused anyway (its credentials, SO_PEERCRED): distctl moves traffic and state.
        let mask = umask(0o177)
        defer { umask(mask) }
        northboundServer = try ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                Self.peerIsTrusted(channel).flatMapThrowing { trusted in
                    guard trusted else {
                        self.log("northbound: refused a client of another user")
                        throw ControllerError("a northbound client of another user")
                    }
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(LineDecoder()), NorthboundHandler(controller: self),
                    ])
                }
            }
            .bind(unixDomainSocketPath: config.northboundPath, cleanupExistingSocketFile: true).wait()
        chmod(config.northboundPath, 0o600)
        try loop.submit {
            for v in self.config.vnfs {
                let client = VNFClient(
                    name: v.name, host: v.host, port: v.port, switchPort: v.switchPort, loop: self.loop,
                    tls: self.config.vnfTLS,
                    requestTimeout: .milliseconds(Int64(self.config.requestTimeout * 1000)), log: self.log)
                self.vnfs.append(client)
                client.onInfo = { [weak client] in
                    guard let client, let sw = self.sw, sw.datapathID != nil else { return }
                    self.installChannelRule(client, sw)
                    // (Another VNF's Move left behind may have waited for this one.)
                    for v in self.vnfs { self.endLeftBehind(v) }
                }
                client.start()
            }
        }.wait()
        return of.localAddress?.port ?? config.openflowPort
    }

    /// `struct ucred` (Glibc keeps it behind _GNU_SOURCE).
    struct PeerCredentials: Sendable {
        var pid: Int32 = 0
        var uid: UInt32 = .max
        var gid: UInt32 = .max
    }

    /// Whether a Unix-socket peer runs as this process's user or as root.
    static func peerIsTrusted(_ channel: Channel) -> EventLoopFuture<Bool> {
        guard let provider = channel as? SocketOptionProvider else {
            return channel.eventLoop.makeSucceededFuture(false)
        }
        return provider.unsafeGetSocketOption(level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
            .map { (credentials: PeerCredentials) in credentials.uid == geteuid() || credentials.uid == 0 }
            .recover { _ in false }
    }

    public func shutdown() {
        try? loop.submit {
            self.vnfs.forEach { $0.stop() }
            self.sw?.channel.close(promise: nil)
        }.wait()
        try? openflowServer?.close().wait()
        try? northboundServer?.close().wait()
        try? group.syncShutdownGracefully()
        try? FileManager.default.removeItem(atPath: config.northboundPath)
    }
}
