// swift-tools-version:6.1
//
// DiST: a kernel-bypass VNF runtime on DPDK that moves live network-function
// state between instances peer to peer.
//
// Module map (one concept each; only DistDataPlane and the executable touch DPDK):
//   CDPDKShim      C wrappers for what Swift cannot import from DPDK (EAL, ports, mbufs).
//   CDistIntrinsics  CPU hints (prefetch) Swift cannot spell, the address hash key. No DPDK.
//   CDistCipher    AES-256-GCM with a kept key schedule (OpenSSL's libcrypto) for the channel.
//   DistPacket     Frame parsing: Ethernet/VLAN/ARP/IPv4/IPv6/TCP/UDP/ICMP. No DPDK.
//   DistFlow       Per-worker flow table with per-flow atomic Move marks. No DPDK.
//   DistPipeline   The per-packet work (parse, count, track) and worker counters. No DPDK.
//   DistState      The binary, versioned codec of NF state chunks (all three scopes). No DPDK.
//   DistControl    The southbound API (OpenNF's get/put/del of state, framed JSON). No DPDK.
//   DistOpenFlow   OpenFlow 1.3 messages on bytes (the controller's side of the switch). No I/O.
//   DistChannel    DiST's VNF-to-VNF channel: frames, AES-GCM, window, retransmission. No I/O.
//   DistMove       Move's pure parts: spec, report, switch matches, in-band control packet,
//                  the controller's redirect buffer. No I/O.
//   DistNorthbound The operator's protocol to the controller (distctl), typed. No I/O.
//   DistController The controller daemon's parts on SwiftNIO: switch, VNF clients, Move, northbound.
//   DistMetrics    Prometheus metrics (swift-metrics onto swift-prometheus) and their HTTP
//                  endpoint on SwiftNIO, on a thread of its own. No DPDK.
//   DistLog        swift-log's handler for the daemons: one line per event, text, logfmt or JSON.
//   DistAdmin      The admin protocol: one JSON request and reply a line, typed. No I/O.
//   DistServer     The main lcore's non-blocking socket server (Unix, TCP, TCP with mutual TLS)
//                  and the admin socket on it. No DPDK.
//   CPCRE2         Debian's PCRE2 (libpcre2-dev), the regex engine of PRADS's signatures.
//   CHyperscan     Debian's Hyperscan (libhyperscan-dev): a signature list's prefilter.
//   CZstd          Debian's Zstandard (libzstd-dev): the channel's frames of states, compressed.
//   DistPRADS      PRADS-compatible detection: signature files and matching. No DPDK.
//   DistTransfer   The VNF's side of a Move (MoveEngine): marks, sessions, release, abort. No DPDK.
//   DistLoopback   A whole instance in one thread (FastPath workers + MoveEngine) for tests and
//                  benchmarks of the Move without DPDK.
//   DistDataPlane  EAL, ports, mempools, worker lcores: the thin DPDK layer.
//   dist-vnf       The VNF process: argument parsing, statistics, signals.
//   dist-wire      DPDK traffic ends: a paced pcap replayer, a soak generator and a recorder.
import PackageDescription

let dpdkLibraries: [LinkerSetting] = [
    "rte_eal", "rte_ethdev", "rte_mbuf", "rte_mempool", "rte_ring", "rte_net", "rte_kvargs",
].map { .linkedLibrary($0) }

let package = Package(
    name: "dist",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "dist-vnf", targets: ["dist-vnf"]),
        .executable(name: "dist-delayline", targets: ["dist-delayline"]),
        .executable(name: "dist-wire", targets: ["dist-wire"]),
        .executable(name: "dist-controller", targets: ["dist-controller"]),
        .executable(name: "distctl", targets: ["distctl"]),
        .library(name: "DistPacket", targets: ["DistPacket"]),
        .library(name: "DistFlow", targets: ["DistFlow"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .target(
            name: "CDPDKShim",
            cSettings: [
                // SwiftPM cannot parse Debian's libdpdk.pc (multi-line Description), so the
                // include paths are given by hand. Only the .c file sees DPDK headers: the public
                // header is plain C with opaque types, so Swift never imports rte_*.h.
                .unsafeFlags([
                    "-I/usr/include/dpdk", "-I/usr/include/x86_64-linux-gnu/dpdk",
                    "-include", "rte_config.h", "-O3",
                    // DPDK 22.11 on x86_64 needs at least SSE4.2 (its "generic" machine is corei7).
                    "-march=corei7",
                ])
            ],
            linkerSettings: dpdkLibraries
        ),
        .target(name: "CDistIntrinsics"),
        .target(name: "CDistCipher", linkerSettings: [.linkedLibrary("crypto")]),
        .target(name: "DistPacket", dependencies: ["CDistIntrinsics"]),
        .target(
            name: "DistFlow",
            dependencies: ["DistPacket", "CDistIntrinsics", .product(name: "Atomics", package: "swift-atomics")]
        ),
        .target(name: "DistAdmin"),
        .target(
            name: "DistServer",
            dependencies: [
                "DistAdmin",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]),
        .target(
            name: "DistMetrics",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),
        .target(name: "DistLog", dependencies: [.product(name: "Logging", package: "swift-log")]),
        .target(name: "DistControl", dependencies: ["DistState", "DistFlow"]),
        .target(name: "DistOpenFlow", dependencies: ["DistPacket"]),
        // (The Move engine and its channel have one owner, the transfer lcore; dynamic exclusivity
        // checks on their class properties cost a thread-local lookup per access, several per
        // redirected packet. As DistPRADS.)
        .target(
            name: "DistChannel",
            dependencies: ["CDistCipher", "DistPacket", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"])]),
        .target(name: "DistMove", dependencies: ["DistFlow", "DistPacket", "DistOpenFlow"]),
        .target(
            name: "DistTransfer",
            dependencies: [
                "CZstd", "DistChannel", "DistState", "DistFlow", "DistPacket", "DistMove", "DistPipeline",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"])]),
        .systemLibrary(name: "CPCRE2", providers: [.apt(["libpcre2-dev"])]),
        .systemLibrary(name: "CHyperscan", providers: [.apt(["libhyperscan-dev"])]),
        .systemLibrary(name: "CZstd", providers: [.apt(["libzstd-dev"])]),
        .target(
            name: "DistPRADS", dependencies: ["CPCRE2", "CHyperscan", "DistPacket", "DistFlow"],
            // The detector's state has one owner (its worker); dynamic exclusivity checks on its
            // class properties cost a thread-local lookup per access on the fast path.
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"])]
        ),
        .target(name: "DistState", dependencies: ["DistFlow", "DistPacket", "DistPRADS", "CDistIntrinsics"]),
        .target(
            name: "DistPipeline",
            dependencies: [
                "DistPacket", "DistFlow", "DistPRADS", "DistState", "CDistIntrinsics",
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            // (A FastPath has one owner, its worker; the checks cost a thread-local lookup per
            // access to its properties, hundreds of instructions per packet under an event rule.)
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"])]),
        .target(
            name: "DistDataPlane",
            dependencies: [
                "CDPDKShim", "CDistIntrinsics", "DistPacket", "DistFlow", "DistPipeline", "DistState", "DistTransfer",
                "DistChannel", "DistMove",
                .product(name: "Atomics", package: "swift-atomics"), .product(name: "Crypto", package: "swift-crypto"),
            ],
            // (Each Worker and the TransferAgent are used by their own lcore alone.)
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"])]
        ),
        .executableTarget(
            name: "dist-vnf",
            dependencies: [
                "DistDataPlane", "DistServer", "DistAdmin", "DistControl", "DistState", "DistFlow", "DistPacket",
                "DistPipeline",
                "DistTransfer", "DistChannel", "DistPRADS", "DistMetrics", "DistLog",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Atomics", package: "swift-atomics"), .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .executableTarget(
            name: "dist-delayline", dependencies: ["DistLog", .product(name: "Logging", package: "swift-log")],
            path: "Sources/dist-delayline"),
        .executableTarget(
            name: "dist-wire",
            dependencies: [
                "CDPDKShim", "DistDataPlane", "DistPacket", "DistPipeline", "DistLoopback", "DistLog",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.swiftLanguageMode(.v5)]),
        .target(
            name: "DistController",
            dependencies: [
                "DistMove", "DistNorthbound", "DistOpenFlow", "DistState", "DistFlow", "DistPacket", "DistControl",
                "DistMetrics", .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            // Everything in it lives on one event loop (checked at run time); Swift 5 mode spares
            // NIO's closures the Sendable annotations that would say so again. Its tests drive
            // its internal parts (the Move's steps against a model switch), so it is built
            // testable in every configuration: the unit tests run on the release build.
            swiftSettings: [.swiftLanguageMode(.v5), .unsafeFlags(["-enable-testing"])]
        ),
        .executableTarget(
            name: "dist-controller",
            dependencies: [
                "DistController", "DistServer", "DistMetrics", "DistLog",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .executableTarget(
            name: "distctl",
            dependencies: [
                "DistMove", "DistNorthbound", "DistFlow",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .target(
            name: "DistNorthbound", dependencies: ["DistControl", "DistMove", "DistState", "DistFlow", "DistPRADS"]),
        .target(
            name: "DistLoopback",
            dependencies: [
                "DistTransfer", "DistChannel", "DistState", "DistFlow", "DistPacket", "DistPipeline", "DistMove",
                "DistPRADS", .product(name: "Crypto", package: "swift-crypto"),
            ],
            // (It stands in for DistDataPlane's workers, which run so: one owner per instance.)
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"])]),
        .target(name: "CFuzzDriver"),
        .executableTarget(
            name: "dist-fuzz",
            dependencies: [
                "CFuzzDriver", "DistAdmin", "DistChannel", "DistControl", "DistFlow", "DistNorthbound", "DistOpenFlow",
                "DistPacket",
                "DistPipeline",
                "DistPRADS", "DistState", "DistTransfer", .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .executableTarget(
            name: "dist-state-bench",
            dependencies: ["DistState", "DistPipeline", "DistPRADS", "DistFlow", "DistPacket"],
            path: "Benchmarks/StateCodec"
        ),
        .executableTarget(
            name: "dist-detection-bench",
            dependencies: ["DistPRADS", "DistPacket"],
            path: "Benchmarks/Detection"
        ),
        .executableTarget(
            name: "dist-channel-bench",
            dependencies: ["DistChannel", .product(name: "Crypto", package: "swift-crypto")],
            path: "Benchmarks/Channel",
            swiftSettings: [.swiftLanguageMode(.v5)]
        ),
        .executableTarget(
            name: "dist-redirect-bench",
            dependencies: ["DistLoopback", "DistTransfer", "DistChannel", "DistFlow", "DistMove", "DistPacket"],
            path: "Benchmarks/Redirect"
        ),
        .executableTarget(
            name: "dist-move-bench",
            dependencies: ["DistLoopback", "DistTransfer", "DistFlow", "DistPacket", "DistPRADS"],
            path: "Benchmarks/MoveCost"
        ),
        .executableTarget(
            name: "dist-core-latency",
            dependencies: ["CDistIntrinsics", .product(name: "Atomics", package: "swift-atomics")],
            path: "Benchmarks/CoreLatency"
        ),
        .executableTarget(
            name: "dist-fastpath-bench",
            dependencies: ["DistPipeline", "DistFlow", "DistPacket", "DistPRADS"],
            path: "Benchmarks/FastPath"
        ),
        .testTarget(name: "DistPacketTests", dependencies: ["DistPacket", "CDistIntrinsics"]),
        .testTarget(name: "DistFlowTests", dependencies: ["DistFlow", "DistPacket", "CDistIntrinsics"]),
        .testTarget(name: "DistServerTests", dependencies: ["DistServer", "DistAdmin"]),
        .testTarget(name: "DistMetricsTests", dependencies: ["DistMetrics"]),
        .testTarget(
            name: "DistLogTests", dependencies: ["DistLog", .product(name: "Logging", package: "swift-log")]),
        .testTarget(
            name: "DistControllerTests",
            dependencies: [
                "DistController", "DistControl", "DistNorthbound", "DistMove", "DistState", "DistPRADS", "DistServer",
                "DistOpenFlow", "DistFlow", "DistPacket", "DistLoopback", "DistTransfer", "DistPipeline", "DistChannel",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: [.swiftLanguageMode(.v5)]),
        .testTarget(
            name: "DistTransferTests",
            dependencies: [
                "DistTransfer", "DistLoopback", "DistChannel", "DistState", "DistFlow", "DistPacket",
                "DistPRADS", "DistPipeline", .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .testTarget(
            name: "DistChannelTests", dependencies: ["DistChannel", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "DistMoveTests", dependencies: ["DistMove", "DistFlow", "DistPacket", "DistOpenFlow"]),
        .testTarget(name: "DistOpenFlowTests", dependencies: ["DistOpenFlow"], exclude: ["Fixtures"]),
        .testTarget(
            name: "DistControlTests",
            dependencies: ["DistControl", "DistState", "DistPipeline", "DistPRADS", "DistFlow", "DistPacket"]),
        .testTarget(
            name: "DistStateTests", dependencies: ["DistState", "DistPipeline", "DistPRADS", "DistFlow", "DistPacket"]),
        .testTarget(name: "DistPRADSTests", dependencies: ["DistPRADS", "DistPacket", "DistLoopback"]),
        .testTarget(
            name: "DistPipelineTests",
            dependencies: [
                "DistPipeline", "DistFlow", "DistPacket", "DistState", "DistMove", "DistServer", "DistAdmin",
                .product(name: "Atomics", package: "swift-atomics"),
            ]),
    ]
)
