import DistFlow
import DistPRADS
import DistPacket
import DistState
import Foundation
import Testing

import DistPipeline

/// A worker's hosts exported in slices (a late-locking Move's end) are the whole export, in
/// order, each once, and a slice is never longer than asked.
@Suite struct AssetSliceTests {
    @Test(arguments: [1, 7, 100, 100_000])
    func slicesMakeTheWholeExport(limit: Int) throws {
        let signatures = try PRADSSignatures.load(directory: "/etc/prads")
        let stats = UnsafeMutablePointer<WorkerStats>.allocate(capacity: 1)
        defer { stats.deallocate() }
        stats.initialize(to: WorkerStats())
        let path = FastPath(
            table: FlowTable(capacity: 1 << 14), stats: stats, detector: Detector(signatures: signatures))
        path.process(frames: Array(FastPathTests.frames.prefix(20_000)))
        for filter in [FlowFilter.all, try FlowFilter(parsing: "nw_src=192.168.0.0/16")] {
            guard case .assets(let whole) = path.perform(.exportAssets(filter, peers: false)) else {
                Issue.record("no export")
                return
            }
            #expect(whole.count > (filter == .all ? 100 : 10))
            var slices: [AssetState] = []
            var after: IPAddress?
            while true {
                guard case .assets(let slice) = path.perform(.exportAssetsSlice(filter, after: after, limit: limit))
                else {
                    Issue.record("no slice")
                    return
                }
                #expect(slice.count <= limit)
                slices += slice
                guard slice.count == limit, let last = slice.last else { break }
                after = last.address
            }
            #expect(slices == whole, "limit \(limit)")
        }
    }

    /// The selection a slice makes: the k smallest, in order, duplicates and all.
    @Test func theSmallestAreSelectedInOrder() {
        for n in [0, 1, 2, 10, 1000] {
            let values = (0..<n).map { _ in Int.random(in: 0..<(n / 2 + 1)) }
            for k in [0, 1, 3, n / 2, n, n + 5] {
                #expect(FastPath.smallest(k, of: values) == Array(values.sorted().prefix(k)), "n \(n) k \(k)")
            }
        }
    }
}
