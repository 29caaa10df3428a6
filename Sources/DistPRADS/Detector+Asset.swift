import DistPacket

/// What the detection keeps per host (multi-flow state), as PRADS does: OS fingerprints and
/// services, newest first, and the host's Ethernet address from ARP.
extension Detector {
    /// Multi-flow state: what is known about one host.
    public struct Asset: Sendable, Equatable, Codable {
        public var vlan: UInt16
        public var firstSeen: UInt64
        public var lastSeen: UInt64
        public var os: [OSEntry] = []
        public var services: [ServiceEntry] = []
        /// The host's Ethernet address from ARP (6 bytes), and its vendor from mac.sig.
        public var mac: [UInt8]? = nil
        public var vendor: String? = nil

        public init(
            vlan: UInt16, firstSeen: UInt64, lastSeen: UInt64, os: [OSEntry] = [], services: [ServiceEntry] = [],
            mac: [UInt8]? = nil, vendor: String? = nil
        ) {
            self.vlan = vlan
            self.firstSeen = firstSeen
            self.lastSeen = lastSeen
            self.os = os
            self.services = services
            self.mac = mac
            self.vendor = vendor
        }
    }

    public struct OSEntry: Sendable, Equatable, Codable {
        public var kind: FingerprintKind
        /// Index of the matching signature in its file's database; nil when none matched.
        public var signature: Int?
        public var text: String
        public var port: UInt16
        public var ttl: UInt8

        public init(kind: FingerprintKind, signature: Int?, text: String, port: UInt16, ttl: UInt8) {
            self.kind = kind
            self.signature = signature
            self.text = text
            self.port = port
            self.ttl = ttl
        }
    }

    public struct ServiceEntry: Sendable, Equatable, Codable {
        public var port: UInt16
        public var proto: UInt8
        public var service: String
        public var application: String
        public var server: Bool
        public var attempts: Int
        public var ttl: UInt8

        public init(
            port: UInt16, proto: UInt8, service: String, application: String, server: Bool, attempts: Int, ttl: UInt8
        ) {
            self.port = port
            self.proto = proto
            self.service = service
            self.application = application
            self.server = server
            self.attempts = attempts
            self.ttl = ttl
        }
    }
}

extension Detector.Asset {
    /// This host as two workers saw it, together: fingerprints and services from both (for a
    /// service both know, an identification beats a port-name guess), the wider time span.
    public func merged(with other: Detector.Asset) -> Detector.Asset {
        var m = self
        m.firstSeen = min(firstSeen, other.firstSeen)
        if m.mac == nil { m.mac = other.mac }
        if m.vendor == nil { m.vendor = other.vendor }
        if other.lastSeen > lastSeen {
            m.lastSeen = other.lastSeen
            m.vlan = other.vlan
        }
        for os in other.os
        where !m.os.contains(where: { $0.kind == os.kind && $0.signature == os.signature && $0.text == os.text }) {
            m.os.append(os)
        }
        for s in other.services {
            if let i = m.services.firstIndex(where: { $0.port == s.port && $0.proto == s.proto }) {
                if m.services[i].application.hasPrefix("@") && !s.application.hasPrefix("@") { m.services[i] = s }
            } else {
                m.services.append(s)
            }
        }
        return m
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
