import DistPRADS
import DistPacket
import Testing

/// The log writer's merged view of the workers' assets.
@Suite struct AssetViewTests {
    static func record(_ asset: String, _ kind: String, _ port: UInt16, _ info: String) -> AssetRecord {
        AssetRecord(asset: asset, vlan: 0, port: port, proto: 6, kind: kind, info: info, distance: 0, discovered: 1)
    }

    @Test func whatAnotherWorkerAlreadyReportedIsNotRepeated() {
        let view = AssetView()
        #expect(view.add(Self.record("10.0.0.1", "SERVER", 443, "unknown:@https")))
        #expect(!view.add(Self.record("10.0.0.1", "SERVER", 443, "unknown:@https")))
        // New information for the same service replaces it, and is reported.
        #expect(view.add(Self.record("10.0.0.1", "SERVER", 443, "http:nginx")))
        // A port-name guess from a worker that saw less never undoes an identification.
        #expect(!view.add(Self.record("10.0.0.1", "SERVER", 443, "unknown:@https")))
        #expect(view.add(Self.record("10.0.0.2", "SERVER", 443, "unknown:@https")))
        // OS fingerprints of one kind accumulate; the same one twice is one.
        #expect(view.add(Self.record("10.0.0.1", "SYN", 5000, "a:unknown:unknown")))
        #expect(view.add(Self.record("10.0.0.1", "SYN", 5001, "b:Linux:2.6")))
        #expect(!view.add(Self.record("10.0.0.1", "SYN", 5002, "b:Linux:2.6")))
        #expect(view.recordCount == 5 && view.assetCount == 2)
        #expect(
            view.assets().first?.records.map(\.info).sorted() == ["a:unknown:unknown", "b:Linux:2.6", "http:nginx"])
    }

    /// Full, the view forgets the asset that has gone longest without a new record; one that
    /// keeps bringing news stays.
    @Test func aFullViewForgetsTheAssetQuietLongest() {
        let view = AssetView(maxAssets: 3)
        #expect(view.add(Self.record("10.0.0.1", "SERVER", 22, "ssh:OpenSSH")))
        for i in 2...20 {
            #expect(view.add(Self.record("10.0.1.\(i)", "SERVER", 80, "http:nginx")))
            // 10.0.0.1 shows a new service every other host.
            if i % 2 == 0 { #expect(view.add(Self.record("10.0.0.1", "SERVER", UInt16(1000 + i), "http:nginx"))) }
        }
        #expect(view.assetCount == 3)
        #expect(view.evicted == 20 - 3)
        let kept = view.assets().map(\.asset)
        #expect(kept.contains("10.0.0.1") && kept.contains("10.0.1.20"))
        #expect(view.assets(within: IPPrefix("10.0.0.1/32")!).first?.records.count == 11)
    }

    @Test func assetsAreSelectedByPrefix() throws {
        let view = AssetView()
        view.add(Self.record("10.1.2.3", "SYN", 1000, "x"))
        view.add(Self.record("192.168.1.1", "SYN", 1000, "y"))
        view.add(Self.record("2001:db8::5", "SYN", 1000, "z"))
        #expect(view.assets(within: IPPrefix("10.0.0.0/8")).map(\.asset) == ["10.1.2.3"])
        #expect(view.assets(within: IPPrefix("2001:db8::/32")).map(\.asset) == ["2001:db8::5"])
        #expect(view.assets(within: IPPrefix("0.0.0.0/0")).count == 2)
        #expect(view.assets(limit: 1).count == 1)
        #expect(IPPrefix("300.1.1.1/8") == nil && IPPrefix("10.0.0.0/33") == nil)
    }
}
