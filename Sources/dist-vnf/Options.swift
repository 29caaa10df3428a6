import DistDataPlane
import DistFlow
import DistLog
import DistPRADS
import DistServer
import DistTransfer
import Logging

/// dist-vnf's own arguments (those after `--`).
struct Options {
    var id = "vnf"
    var statsPeriod: Double = 0
    var adminPath: String?
    var control: SocketServer.Endpoint?
    var metrics: SocketServer.Endpoint?
    /// The southbound API's certificate, key and CA (mutual TLS), or plaintext by request.
    var controlCertificate: String?
    var controlKey: String?
    var controlCA: String?
    var insecureControl = false
    var signatureDirectory = "/etc/prads"
    var detection = true
    var assetLogPath: String?
    var data = DataPlaneConfig()
    var help = false
    var logFormat = LogFormat.text
    var logLevel = Logger.Level.info
    /// DiST's channel: this instance's UDP address on its data port, the key file, the MTU.
    var channel: ChannelAddress?
    var channelKeyPath: String?
    var channelTracePath: String?
    /// nil: 9000, or what one mbuf holds if less (``fitChannelMTU()``).
    var channelMTU: Int?
    var channelVLAN: UInt16?
    var channelPeers = ChannelPeers()
    /// Moves out send their states compressed.
    var channelCompression = true

    static let usage = """
        usage: dist-vnf <EAL options> -- [options]

        A DiST VNF instance: a DPDK poll-mode data plane that parses every frame, tracks its
        flow, detects assets the way PRADS does, and forwards it on in order (one port: back
        out of the same port; two ports: 0 <-> 1 as in l2fwd). The main lcore only controls;
        every other lcore is a worker polling one RX queue per port.

        Options:
          --id NAME              instance name used in logs and replies (default: vnf)
          --flows N              flow table capacity per worker (default: 1048576)
          --stats-period SECS    print statistics every SECS seconds (default: 0, off)
          --log-format F         text (default: the message alone), logfmt (key=value: time, level,
                                 vnf, move...) or json (an object a line, for log shippers)
          --log-level L          trace, debug, info (default), notice, warning, error, critical
          --admin PATH           serve the admin socket (JSON lines, mode 0600) at PATH
          --control HOST:PORT    serve the southbound API (OpenNF's get/put/del of per-flow,
                                 multi-flow and all-flows state; length-prefixed JSON over TCP).
                                 :PORT listens on loopback; every address only as *:PORT.
                                 Mutual TLS 1.3: the controller must present a certificate of
                                 the CA (deploy/make-certs.sh makes them)
          --metrics HOST:PORT    serve Prometheus metrics at http://HOST:PORT/metrics (packets,
                                 bytes, drops and parse errors by reason, per worker and port;
                                 flows, hosts, handoffs, Moves); :PORT listens on loopback
          --control-cert FILE    this instance's certificate (PEM) for the southbound API
          --control-key FILE     its private key (PEM)
          --control-ca FILE      the CA a controller's certificate must chain to
          --insecure-control     plaintext southbound instead (anyone who reaches the port may
                                 read and write state: loopback or a closed network only)
          --signatures DIR       PRADS signature files for asset detection (default: /etc/prads,
                                 as Debian's prads package installs them)
          --asset-log PATH       append detected assets in PRADS's log format to PATH (SIGHUP
                                 reopens it, for logrotate)
          --no-detection         forward and track flows only (no asset detection)
          --arp                  also learn hosts' Ethernet addresses and vendors from ARP replies
                                 (PRADS's arp=1; off by default, as in prads)
          --capture-time         date what detection learns by each packet's receive time as its
                                 port stamps it (net_pcap: the capture's, as prads -r does), not
                                 by the clock; a port that cannot stamp: the clock, and a warning
          --max-hosts N          hosts each worker's detection keeps (default: 1048576); beyond,
                                 a new host replaces the host learnt longest ago and not seen since
          --inspect-packets N    packets of each direction of a flow whose payloads are matched
                                 against service signatures, within its first 500 kB (default:
                                 10, PRADS's MAX_PKT_CHECK); 0: every packet of a flow whose
                                 service is not known yet, as prads 0.3.3 does (slower)
          --mbufs N              mbufs in the packet pool (default: sized from ports and queues;
                                 net_pcap with infinite_rx=1 needs one per frame of its file)
          --mbuf-size BYTES      largest frame held in one mbuf (default: 2048; 9216 for jumbo)
          --rxd N, --txd N       RX / TX descriptors per queue (default: 1024)
          --channel IP:PORT      this instance's end of DiST's channel on its data port (UDP,
                                 built and parsed here); the last lcore becomes the transfer
                                 lcore, so give EAL at least three (e.g. -l 0-2)
          --channel-peer ADDR    a peer this instance may Move flows to (IPv4:PORT, optionally
                                 @MAC and #VLAN to admit only those); repeat per peer. A Move
                                 to any other destination is refused
          --channel-key FILE     the channel's key (32 bytes or more, mode 0600; needed with
                                 --channel, the same file on every instance)
          --channel-trace FILE   append every Move's channel decisions to FILE, a line each (acks,
                                 losses, frames sent and resent, timeouts; for diagnosis)
          --channel-mtu BYTES    largest IP packet the channel sends (default: 9000)
          --channel-compression on|off
                                 Moves out send their states compressed (Zstandard; default: on;
                                 off for a destination of a build that does not read them)
          --channel-vlan N       the VLAN peers tag this instance's channel frames with, so the
                                 switch can forward them by the tag alone (default: untagged)
          --channel-port N       the port the channel's frames leave by (default: where port 0's
                                 packets go: port 0 alone, else port 1), e.g. a port of a
                                 network kept for state transfer
          --release-pace FACTOR  packets held during a Move (at its destination) go on at FACTOR
                                 times the rate they came at once the hold ends, after a
                                 256 kB burst, so a long hold does not leave as one burst that
                                 overflows the next slow link; 0 sends them all at once
                                 (default: 2)
          --idle-yield           workers yield their CPU after a poll that found nothing (for
                                 hosts where lcores share CPUs with other busy programs)
          --idle-sleep USECS     and after 32 such polls in a row, sleep USECS microseconds
                                 (1 to 1000; a packet waits that long at most; implies
                                 --idle-yield; default: never sleep)
          --tcp-timeout SECS     idle TCP flow expiry (default: 300)
          --closed-timeout SECS  expiry after FIN from both sides or RST (default: 5)
          --udp-timeout SECS     idle UDP flow expiry (default: 60)
          --icmp-timeout SECS    idle ICMP flow expiry (default: 60)
          --other-timeout SECS   idle expiry for other protocols (default: 300)
          -h, --help             this text, then DPDK's EAL options

        Example (a pcap through one worker, no hugepages):
          dist-vnf -l 0-1 --no-huge -m 512 --no-pci \\
            --vdev net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap -- --stats-period 1

        EAL options commonly used: -l CORES, --vdev DEVICE, -a PCI, --no-pci, --no-huge,
        -m MB, --file-prefix NAME, --log-level LEVEL. DPDK's full list follows with --help.
        """

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Reads an argument's value, naming the argument in what it throws.
    struct Reader {
        let arguments: [String]
        var i = 0

        mutating func value(_ name: String) throws -> String {
            i += 1
            guard i < arguments.count else { throw Failure(description: "\(name) needs a value") }
            return arguments[i]
        }

        mutating func integer(_ name: String, _ range: ClosedRange<Int>) throws -> Int {
            let text = try value(name)
            guard let n = Int(text), range.contains(n) else {
                throw Failure(
                    description:
                        "\(name): expected an integer in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
            }
            return n
        }

        mutating func seconds(_ name: String, allowZero: Bool) throws -> Double {
            let text = try value(name)
            guard let s = Double(text), s.isFinite, s >= 0, allowZero || s > 0, s <= 86_400 * 365 else {
                throw Failure(description: "\(name): expected a number of seconds, got '\(text)'")
            }
            return s
        }

        mutating func nanoseconds(_ name: String) throws -> UInt64 {
            UInt64(try seconds(name, allowZero: false) * 1e9)
        }

        /// A TCP endpoint, HOST:PORT.
        mutating func endpoint(_ name: String) throws -> SocketServer.Endpoint {
            let text = try value(name)
            do {
                return try SocketServer.Endpoint.tcp(parsing: text)
            } catch {
                throw Failure(description: "\(name): \(error)")
            }
        }

        /// A non-empty value.
        mutating func text(_ name: String, _ what: String) throws -> String {
            let text = try value(name)
            guard !text.isEmpty else { throw Failure(description: "\(name): expected \(what)") }
            return text
        }
    }

    /// Parses the application arguments; throws with a one-line message naming the argument.
    static func parse(_ arguments: [String]) throws -> Options {
        var options = Options()
        var reader = Reader(arguments: arguments)
        while reader.i < arguments.count {
            let argument = arguments[reader.i]
            if try !options.takeGeneral(argument, &reader) && !options.takeChannel(argument, &reader)
                && !options.data.take(argument, &reader)
            {
                throw Failure(description: "unknown option '\(argument)' (see --help)")
            }
            reader.i += 1
        }
        if options.channelVLAN != nil && options.channel == nil {
            throw Failure(description: "--channel-vlan needs --channel")
        }
        if options.channelTracePath != nil && options.channel == nil {
            throw Failure(description: "--channel-trace needs --channel")
        }
        if options.data.channelPort != nil && options.channel == nil {
            throw Failure(description: "--channel-port needs --channel")
        }
        if (options.channel == nil) != (options.channelKeyPath == nil) {
            throw Failure(description: "--channel and --channel-key go together")
        }
        try options.checkControlTLS()
        try options.fitChannelMTU()
        return options
    }

    /// The channel's frames are built in one mbuf each: an MTU (IP packet) that one cannot hold
    /// with its Ethernet header and VLAN tag is refused when asked for, and lowered when not.
    mutating func fitChannelMTU() throws {
        let fits = Int(data.mbufDataRoom) - 128 - 18
        if let asked = channelMTU {
            guard asked <= fits else {
                throw Failure(
                    description:
                        "--channel-mtu \(asked) does not fit an mbuf of \(Int(data.mbufDataRoom) - 128) bytes with "
                        + "its Ethernet header: raise --mbuf-size or lower --channel-mtu"
                )
            }
        } else {
            channelMTU = min(9000, fits)
        }
    }

    /// The southbound API runs mutual TLS (all three files), or plaintext only when asked for.
    func checkControlTLS() throws {
        let files = [controlCertificate, controlKey, controlCA].compactMap { $0 }
        guard control != nil else {
            if !files.isEmpty || insecureControl {
                throw Failure(
                    description: "--control-cert, --control-key, --control-ca and --insecure-control need --control")
            }
            return
        }
        if insecureControl {
            if !files.isEmpty {
                throw Failure(description: "--insecure-control and --control-cert/-key/-ca exclude each other")
            }
            return
        }
        guard files.count == 3 else {
            throw Failure(
                description:
                    "--control needs --control-cert, --control-key and --control-ca (mutual TLS), or --insecure-control"
            )
        }
    }

    /// The southbound's TLS files (nil: plaintext, --insecure-control).
    var controlTLS: ControlTLS.Files? {
        guard let c = controlCertificate, let k = controlKey, let a = controlCA else { return nil }
        return ControlTLS.Files(certificate: c, key: k, ca: a)
    }

    /// The instance's own options; false for another's.
    mutating func takeGeneral(_ argument: String, _ reader: inout Reader) throws -> Bool {
        switch argument {
        case "-h", "--help": help = true
        case "--id":
            id = try reader.value(argument)
            guard !id.isEmpty, id.count <= 64 else { throw Failure(description: "--id: expected 1 to 64 characters") }
        case "--stats-period": statsPeriod = try reader.seconds(argument, allowZero: true)
        case "--admin":
            let path = try reader.value(argument)
            guard !path.isEmpty, path.utf8.count < 108 else {
                throw Failure(description: "--admin: expected a socket path of 1 to 107 bytes")
            }
            adminPath = path
        case "--log-format":
            let text = try reader.value(argument)
            guard let format = LogFormat(rawValue: text) else {
                throw Failure(description: "--log-format: expected text, logfmt or json, got '\(text)'")
            }
            logFormat = format
        case "--log-level":
            let text = try reader.value(argument)
            guard let level = LineLogHandler.level(text) else {
                throw Failure(
                    description:
                        "--log-level: expected trace, debug, info, notice, warning, error or critical, got '\(text)'")
            }
            logLevel = level
        case "--control": control = try reader.endpoint(argument)
        case "--metrics": metrics = try reader.endpoint(argument)
        case "--control-cert": controlCertificate = try reader.text(argument, "a PEM file")
        case "--control-key": controlKey = try reader.text(argument, "a PEM file")
        case "--control-ca": controlCA = try reader.text(argument, "a PEM file")
        case "--insecure-control": insecureControl = true
        case "--signatures": signatureDirectory = try reader.text(argument, "a directory")
        case "--asset-log": assetLogPath = try reader.text(argument, "a file path")
        case "--no-detection": detection = false
        default: return false
        }
        return true
    }

    /// The DiST channel's options; false for another's.
    mutating func takeChannel(_ argument: String, _ reader: inout Reader) throws -> Bool {
        switch argument {
        case "--channel":
            let text = try reader.value(argument)
            guard let address = ChannelAddress(text), !text.contains("@") else {
                throw Failure(description: "--channel: expected IPv4:PORT (e.g. 198.18.100.1:7400), got '\(text)'")
            }
            channel = address
            data.transferLcore = true
        case "--channel-peer":
            let text = try reader.value(argument)
            guard let peer = ChannelAddress(text) else {
                throw Failure(
                    description:
                        "--channel-peer: expected IPv4:PORT[@MAC][#VLAN] (e.g. 198.18.100.2:7400), got '\(text)'")
            }
            channelPeers.peers.append(peer)
        case "--channel-key": channelKeyPath = try reader.value(argument)
        case "--channel-trace": channelTracePath = try reader.text(argument, "a file path")
        case "--channel-vlan": channelVLAN = UInt16(try reader.integer(argument, 1...4094))
        case "--channel-mtu": channelMTU = try reader.integer(argument, 576...9216)
        case "--channel-compression":
            switch try reader.value(argument) {
            case "on": channelCompression = true
            case "off": channelCompression = false
            case let other:
                throw Failure(description: "--channel-compression: expected on or off, got '\(other)'")
            }
        case "--channel-port": data.channelPort = UInt16(try reader.integer(argument, 0...1023))
        default: return false
        }
        return true
    }
}

extension DataPlaneConfig {
    /// The data plane's options; false for another's.
    mutating func take(_ argument: String, _ reader: inout Options.Reader) throws -> Bool {
        switch argument {
        case "--flows": flowsPerWorker = try reader.integer(argument, 16...(1 << 28))
        case "--arp": arp = true
        case "--capture-time": captureTime = true
        case "--max-hosts": maxHostsPerWorker = try reader.integer(argument, 16...(1 << 26))
        case "--inspect-packets":
            let packets = try reader.integer(argument, 0...1_000_000)
            inspection = packets == 0 ? .unlimited : InspectionLimit(packets: UInt64(packets), bytes: InspectionLimit.standard.bytes)
        case "--idle-yield": idleYield = true
        case "--idle-sleep":
            let text = try reader.value(argument)
            guard let us = UInt32(text), (1...1000).contains(us) else {
                throw Options.Failure(description: "--idle-sleep: expected microseconds from 1 to 1000, got '\(text)'")
            }
            idleSleepMicroseconds = us
            idleYield = true
        case "--release-pace":
            let text = try reader.value(argument)
            guard let factor = Double(text), factor.isFinite, factor == 0 || (1.1...1000).contains(factor) else {
                throw Options.Failure(
                    description: "--release-pace: expected 0 (at once) or a factor from 1.1 to 1000, got '\(text)'")
            }
            holdPacing.factor = factor
        case "--mbufs": mbufs = UInt32(try reader.integer(argument, 1023...(1 << 26)))
        case "--mbuf-size": mbufDataRoom = UInt16(try reader.integer(argument, 256...(65535 - 128)) + 128)
        case "--rxd": rxDescriptors = UInt16(try reader.integer(argument, 32...32768))
        case "--txd": txDescriptors = UInt16(try reader.integer(argument, 32...32768))
        case "--tcp-timeout": timeouts.tcp = try reader.nanoseconds(argument)
        case "--closed-timeout": timeouts.tcpClosed = try reader.nanoseconds(argument)
        case "--udp-timeout": timeouts.udp = try reader.nanoseconds(argument)
        case "--icmp-timeout": timeouts.icmp = try reader.nanoseconds(argument)
        case "--other-timeout": timeouts.other = try reader.nanoseconds(argument)
        default: return false
        }
        return true
    }
}

/// DPDK 22.11's EAL options, to name a mistyped one in one line before EAL prints its usage.
enum EALOptions {
    /// Options that take a value (as the next argument, or after '=' for long ones).
    static let withValue: Set<String> = [
        "-c", "-l", "-n", "-r", "-a", "-b", "-d", "-m", "-s", "-S",
        "--lcores", "--main-lcore", "--service-corelist", "--service-coremask", "--allow", "--block",
        "--vdev", "--proc-type", "--file-prefix", "--base-virtaddr", "--socket-mem", "--socket-limit",
        "--huge-dir", "--log-level", "--iova-mode", "--vfio-intr", "--vfio-vf-token",
        "--mbuf-pool-ops-name", "--trace", "--trace-dir", "--trace-bufsz", "--trace-mode",
        "--force-max-simd-bitwidth", "--huge-unlink", "--create-uio-dev",
    ]
    /// Flags, and options whose value is optional and attached with '='.
    static let flags: Set<String> = [
        "-v", "-h", "--help", "--no-huge", "--no-pci", "--no-hpet", "--no-shconf", "--in-memory",
        "--legacy-mem", "--single-file-segments", "--match-allocations", "--no-telemetry",
        "--telemetry", "--vmware-tsc-map", "--syslog", "--huge-worker-stack", "--create-uio-dev",
        "--huge-unlink",
    ]

    /// The first argument EAL would not recognise, if any.
    static func firstUnknown(in arguments: [String]) -> String? {
        var i = 0
        while i < arguments.count {
            let argument = arguments[i]
            let name = argument.split(separator: "=", maxSplits: 1).first.map(String.init) ?? argument
            if withValue.contains(name) {
                // Short options may carry their value attached (-l0-1).
                if !argument.contains("=") { i += 1 }
            } else if flags.contains(name) {
            } else if argument.hasPrefix("-"), argument.count > 2, !argument.hasPrefix("--"),
                withValue.contains(String(argument.prefix(2)))
            {
            } else {
                return argument
            }
            i += 1
        }
        return nil
    }
}
