import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The signature sets PRADS loads from its directory (`/etc/prads` by default).
public struct PRADSSignatures: Sendable {
    public var tcpServices: [ServiceSignature] = []
    public var tcpClients: [ServiceSignature] = []
    public var udpServices: [ServiceSignature] = []
    public var webApplications: [ServiceSignature] = []
    public var fingerprints: [FingerprintKind: TCPFingerprintDatabase] = [:]
    public var macVendors = MACVendors()
    public var linkTypes = LinkTypes.prads
    /// Every line that could not be used, with file and line.
    public var errors: [SignatureFileError] = []

    public init() {}

    /// Loads the files PRADS's default configuration uses from `directory`. A missing file is
    /// an error; a malformed line is reported in `errors` and the rest of its file is used.
    public static func load(directory: String) throws -> PRADSSignatures {
        var s = PRADSSignatures()
        func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
        func services(_ name: String) throws -> [ServiceSignature] {
            let (signatures, errors) = try ServiceSignatureFile.load(path(name))
            s.errors += errors
            return signatures
        }
        s.tcpServices = try services("tcp-service.sig")
        s.tcpClients = try services("tcp-clients.sig")
        s.udpServices = try services("udp-service.sig")
        if FileManager.default.fileExists(atPath: path("web-application.sig")) {
            s.webApplications = try services("web-application.sig")
        }
        for kind in FingerprintKind.allCases where FileManager.default.fileExists(atPath: path(kind.file)) {
            let (db, errors) = try TCPFingerprintDatabase.load(path(kind.file))
            s.fingerprints[kind] = db
            s.errors += errors
        }
        if FileManager.default.fileExists(atPath: path("mtu.sig")) {
            let (links, errors) = try LinkTypes.load(path("mtu.sig"))
            s.linkTypes = links
            s.errors += errors
        }
        if FileManager.default.fileExists(atPath: path("mac.sig")) {
            let (vendors, errors) = try MACVendors.load(path("mac.sig"))
            s.macVendors = vendors
            s.errors += errors
        }
        return s
    }
}

/// One line of PRADS's asset log.
public struct AssetRecord: Sendable, Equatable, CustomStringConvertible {
    public var asset: String
    public var vlan: UInt16
    public var port: UInt16
    public var proto: UInt8
    /// SYN, SYNACK, RST, FIN, ACK, SERVER, CLIENT or ARP.
    public var kind: String
    public var info: String
    public var distance: Int
    public var discovered: UInt64

    public init(
        asset: String, vlan: UInt16, port: UInt16, proto: UInt8, kind: String, info: String,
        distance: Int, discovered: UInt64
    ) {
        self.asset = asset
        self.vlan = vlan
        self.port = port
        self.proto = proto
        self.kind = kind
        self.info = info
        self.distance = distance
        self.discovered = discovered
    }

    /// The line as PRADS writes it: `asset,vlan,port,proto,service,[service-info],distance,discovered`.
    public var description: String {
        "\(asset),\(vlan),\(port),\(proto),\(kind),[\(info)],\(distance),\(discovered)"
    }

    public static let header = "asset,vlan,port,proto,service,[service-info],distance,discovered"
}
