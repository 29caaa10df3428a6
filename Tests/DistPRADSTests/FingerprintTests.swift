import DistPRADS
import DistPacket
import Foundation
import Testing

/// p0f-style fingerprint files and each fingerprint kind, on frames from the project's trace.
@Suite struct FingerprintTests {
    @Test(arguments: FingerprintKind.allCases)
    func debianFingerprintFilesLoadWhole(kind: FingerprintKind) throws {
        let path = "/etc/prads/" + kind.file
        try #require(FileManager.default.fileExists(atPath: path), "Debian's prads package provides \(path)")
        let (db, errors) = try TCPFingerprintDatabase.load(path)
        #expect(errors.isEmpty, "\(errors)")
        #expect(db.signatures.count >= 9)  // tcp-stray-ack.fp is the smallest, with 9
    }

    @Test func malformedFingerprintLinesAreNamedAndTheRestLoads() {
        let text = """
            # comment
            65535:64:1:60:M*,N,W1,N,N,T:.:FreeBSD:8.0
            65535:64:1:60:M*,N,W1:.:only seven fields
            nonsense:64:1:60:M*:.:Linux:2.6
            65535:64:1:60:M*,Q:.:Linux:bad option
            S4:64:1:60:M*,S,T,N,W7:.:Linux:3.x
            5840:64:1:60:M*:Y:Linux:bad quirk
            """
        let (db, errors) = TCPFingerprintDatabase.parse(text, file: "x.fp")
        #expect(db.signatures.map(\.os) == ["FreeBSD", "Linux"])
        #expect(errors.map(\.line) == [3, 4, 5, 7])
        #expect(errors[0].description.hasPrefix("x.fp:3: "))
    }

    @Test func quirksAndOptionsParseLikeP0f() throws {
        let (db, errors) = TCPFingerprintDatabase.parse(
            "%8192:128:1:*:M%1460,N,W*,T0,?30:ZPA!:@Windows:generic\n", file: "t")
        try #require(errors.isEmpty)
        let s = db.signatures[0]
        #expect(s.windowModulo == .constant && s.windowSize == 8192 && s.size == 0)
        #expect(s.options == [2, 1, 3, 8, 30] && s.mssModulo && s.mss == 1460 && s.windowScaleModulo && s.zeroStamp)
        #expect(s.quirks == [.zeroID, .past, .ack, .broken])
        #expect(s.generic && s.os == "Windows")
    }

    @Test func eachFingerprintKindOnTheTraceReadsAsPradsWritesIt() throws {
        // The first frames of mix-a, and what Debian's prads logs for them.
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("traces/mix-a.pcap")
        let file = try PcapFile(bytes: [UInt8](try Data(contentsOf: url)))
        let engine = PRADSEngine(signatures: try PRADSSignatures.load(directory: "/etc/prads"))
        var records: [String] = []
        engine.onRecord = { records.append("\($0.asset),\($0.port),\($0.kind),[\($0.info)]") }
        for frame in file.frames.prefix(120) {
            engine.process(frame: frame.bytes, wireLength: Int(frame.originalLength), timestamp: UInt64(frame.seconds))
        }
        #expect(
            records.contains(
                "192.168.1.13,55523,SYN,[65535:64:1:64:M1460,N,W5,N,N,T,S,E,E:PZ:unknown:unknown:link:"
                    + "ethernet/modem:uptime:1415hrs]"
            ))
        #expect(
            records.contains(
                "178.62.197.130,443,SYNACK,[65160:52:1:60:M1452,S,T,N,W7:ZAT:unknown:unknown:link:pppoe "
                    + "(DSL):uptime:1743hrs]"
            ))
        #expect(records.contains("192.168.1.13,55523,FIN,[4096:64:1:52:N,N,T:ZATFN:unknown:unknown:uptime:1415hrs]"))
        #expect(records.contains("192.168.1.13,55523,RST,[0:64:1:40:.:Z:Linux:recent 2.4/2.6 (dropped)]"))
        #expect(records.contains("192.168.1.13,443,CLIENT,[unknown:@https]"))
        #expect(records.contains("178.62.197.130,443,SERVER,[unknown:@https]"))
    }

    @Test func linkTypesFollowTheMSS() {
        let links = LinkTypes.prads
        #expect(links.name(mss: 1460) == "ethernet/modem")
        #expect(links.name(mss: 1452) == "pppoe (DSL)")
        #expect(links.name(mss: 1420) == "3G WAN")
        #expect(links.name(mss: 1386) == "unknown-1426")
        #expect(links.name(mss: 65495) == "unknown-65535")
    }

    @Test func mtuSigAddsWhatTheCompiledTableLacksAndNamesBadLines() throws {
        let (links, errors) = LinkTypes.parse(
            "# comment\n1408,\"OpenVPN\"\n1386,\"my tunnel\"\nnot a line\n", file: "mtu.sig")
        #expect(errors.map(\.line) == [4])
        #expect(links.name(mss: 1368) == "virtualization")  // prads prints its compiled-in name
        #expect(links.name(mss: 1346) == "my tunnel")
        let (debian, debianErrors) = try LinkTypes.load("/etc/prads/mtu.sig")
        #expect(debianErrors.isEmpty && debian.count == LinkTypes.prads.count)
    }

    @Test func macVendorsTakeTheLongestPrefix() {
        let (vendors, errors) = MACVendors.parse(
            """
            00:50:C2\tIeee            # IEEE registration
            00:50:C2:00:10:00/36\tJmbsDevelo # JMBS
            zz:zz\tBroken
            """, file: "mac.sig")
        #expect(errors.count == 1 && errors[0].line == 3)
        #expect(vendors.vendor(of: [0x00, 0x50, 0xC2, 0x00, 0x10, 0x05]) == "JmbsDevelo")
        #expect(vendors.vendor(of: [0x00, 0x50, 0xC2, 0x99, 0x10, 0x05]) == "Ieee")
        #expect(vendors.vendor(of: [0x01, 0x50, 0xC2, 0x99, 0x10, 0x05]) == nil)
    }

    /// A SYN whose options are an EOL and then an option of length 0 (tcpdump's test captures
    /// have such): Debian's prads logs `E.` with the quirks `P!`; the broken option is not listed.
    @Test func anOptionOfBadLengthIsNotListed() throws {
        let frame: [UInt8] =
            [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00]
            + [0x45, 0, 0, 48, 0, 1, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2]
            + [0x9C, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x70, 0x02, 0xFF, 0xFF, 0, 0, 0, 0]
            + [0x00, 0x10, 0x00, 0x01, 0x01, 0x01, 0x01, 0x01]
        let engine = PRADSEngine(signatures: try PRADSSignatures.load(directory: "/etc/prads"))
        var records: [String] = []
        engine.onRecord = { records.append("\($0.asset),\($0.port),\($0.kind),[\($0.info)]") }
        engine.process(frame: frame, timestamp: 1_600_000_000)
        #expect(records == ["198.18.0.1,40000,SYN,[65535:64:1:48:E.:P!:unknown:unknown]"])
    }

    /// Found by the fuzzer (`signatures`): an option value of twenty digits overflowed.
    @Test func anOptionValueTooLongIsAnError() {
        let (db, errors) = TCPFingerprintDatabase.parse(
            "S4:64:1:60:M99999999999999999999999,S,T,N,W7:.:Linux:2.6\n", file: "tcp-syn.fp")
        #expect(errors.count == 1 && errors[0].line == 1)
        #expect(db.signatures.isEmpty)
    }

    /// Found by the fuzzer (`signatures`): a prefix of a slash and no address trapped.
    @Test func aPrefixWithNoAddressIsAnError() {
        let (vendors, errors) = MACVendors.parse("/\tSlash\n/24\tBits\n00:50:C2/\tNoBits\n", file: "mac.sig")
        #expect(errors.map(\.line) == [1, 2, 3])
        #expect(vendors.vendor(of: [0x00, 0x50, 0xC2, 0, 0, 0]) == nil)
    }
}
