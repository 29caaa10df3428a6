import Crypto
import DistFlow
import DistPRADS
import DistPacket
import DistPipeline
import DistState
import Foundation

var key: SymmetricKey { SymmetricKey(data: [UInt8](repeating: 3, count: 32)) }

/// The states the detection builds from the first 6000 frames of mix-a, and those frames.
enum Trace {
    static let loaded: (frames: [PcapFile.Frame], chunks: [StateChunk]) = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        guard let data = try? Data(contentsOf: root.appendingPathComponent("traces/mix-a.pcap")),
            let file = try? PcapFile(bytes: [UInt8](data)),
            let signatures = try? PRADSSignatures.load(directory: "/etc/prads")
        else { return ([], []) }
        let frames = Array(file.frames.prefix(6000))
        let stats = UnsafeMutablePointer<WorkerStats>.allocate(capacity: 1)
        stats.initialize(to: WorkerStats())
        let detector = Detector(signatures: signatures)
        let path = FastPath(table: FlowTable(capacity: 1 << 14), stats: stats, detector: detector)
        path.process(frames: frames)
        var chunks: [StateChunk] = []
        path.table.forEach { _, e in
            chunks.append(.perFlow(e))
            return true
        }
        for address in detector.assets.keys.sorted() {
            chunks.append(.multiFlow(AssetState(address: address, asset: detector.asset(at: address)!)))
        }
        return (frames, chunks)
    }()
}

/// Frames between the two ends: loss, duplication, late delivery and corruption by chance.
struct Wire {
    var drop = 0.0, duplicate = 0.0, late = 0.0, corrupt = 0.0
    var alive = true
    var seed: UInt64
    var queue: [(at: UInt64, bytes: [UInt8])] = []

    mutating func chance() -> Double {
        seed ^= seed << 13
        seed ^= seed >> 7
        seed ^= seed << 17
        return Double(seed % 1_000_000) / 1_000_000
    }

    mutating func put(_ frames: [[UInt8]], now: UInt64) {
        for var f in frames where alive && chance() >= drop {
            if chance() < corrupt { f[Int(chance() * Double(f.count))] ^= 0x21 }
            queue.append((now + 300_000 + (chance() < late ? 2_000_000 : 0), f))
            if chance() < duplicate { queue.append((now + 1_000_000, f)) }
        }
    }

    mutating func take(_ now: UInt64) -> [[UInt8]] {
        let due = queue.filter { $0.at <= now }.sorted { $0.at < $1.at }.map { $0.bytes }
        queue.removeAll { $0.at <= now }
        return due
    }
}
