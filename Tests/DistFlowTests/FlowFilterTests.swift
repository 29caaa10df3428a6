import DistFlow
import DistPacket
import Testing

/// OpenFlow-style filters on both directions of a flow.
@Suite struct FlowFilterTests {
    static func key(_ src: String, _ sport: UInt16, _ dst: String, _ dport: UInt16, proto: UInt8 = 6) -> FlowKey {
        var info = PacketInfo()
        info.l3 = .ipv4
        info.ipProto = proto
        info.src = IPAddress(text: src)!
        info.dst = IPAddress(text: dst)!
        info.srcPort = sport
        info.dstPort = dport
        return FlowKey.canonical(info).key
    }

    @Test func aFilterMatchesBothDirectionsOfAFlow() throws {
        let filter = try FlowFilter(parsing: "nw_src=10.0.0.0/8,tp_dst=80,nw_proto=6")
        #expect(filter.matches(Self.key("10.1.2.3", 5000, "198.18.0.1", 80)))
        #expect(filter.matches(Self.key("198.18.0.1", 80, "10.1.2.3", 5000)))  // the reply
        #expect(!filter.matches(Self.key("10.1.2.3", 5000, "198.18.0.1", 81)))
        #expect(!filter.matches(Self.key("10.1.2.3", 5000, "198.18.0.1", 80, proto: 17)))
        #expect(!filter.matches(Self.key("11.1.2.3", 5000, "198.18.0.1", 80)))
        #expect(FlowFilter.all.matches(Self.key("1.1.1.1", 1, "2.2.2.2", 2)))
    }

    @Test func ipv6PrefixesAndHosts() throws {
        let filter = try FlowFilter(parsing: "nw_dst=2001:db8::/32")
        #expect(filter.matches(Self.key("2001:db9::1", 1, "2001:db8::7", 2)))
        #expect(!filter.matches(Self.key("2001:db9::1", 1, "2001:db7::7", 2)))
        #expect(filter.matches(host: IPAddress(text: "2001:db8::1")!))
        #expect(!filter.matches(host: IPAddress(text: "10.0.0.1")!))
        #expect(try FlowFilter(parsing: "tp_dst=80").matches(host: IPAddress(text: "10.0.0.1")!))
    }

    @Test func badFiltersNameTheField() {
        #expect(throws: FlowFilter.ParseError.self) { try FlowFilter(parsing: "nw_src=10.0.0.0/40") }
        #expect(throws: FlowFilter.ParseError.self) { try FlowFilter(parsing: "tp_dst=70000") }
        #expect(throws: FlowFilter.ParseError.self) { try FlowFilter(parsing: "color=blue") }
        #expect(throws: FlowFilter.ParseError.self) { try FlowFilter(parsing: "nw_src") }
        #expect((try? FlowFilter(parsing: "nw_src=10.0.0.0/8,tp_dst=80"))?.description == "nw_src=10.0.0.0/8,tp_dst=80")
        #expect((try? FlowFilter(parsing: " * "))?.description == "*")
    }
}
