import Atomics
import DistFlow
import DistPacket
import DistPipeline
import DistState
import Foundation
import Testing

/// Two threads ask one worker at once (the main lcore and the transfer lcore do): each gets the
/// answer to its own request, none is lost to the other's.
@Suite struct WorkerMailboxTests {
    @Test func twoAskersEachGetTheirOwnAnswer() throws {
        let stats = UnsafeMutablePointer<WorkerStats>.allocate(capacity: 1)
        stats.initialize(to: WorkerStats())
        defer { stats.deallocate() }
        let table = FlowTable(capacity: 64)
        for i in 0..<10 {
            let key = FlowKey(
                loAddr: IPAddress(ipv4: 0xC612_0000 | UInt32(i)), hiAddr: IPAddress(ipv4: 0xC613_0001),
                loPort: 1000, hiPort: 80, proto: 6, vlanKey: 0)
            table.insert(
                FlowEntry(key: key, hash: UInt32(truncatingIfNeeded: key.hashValue64), clientIsLo: true, now: 1))
        }
        // (The worker thread alone touches the fast path.)
        let path = MarkConcurrencyTests.Box(FastPath(table: table, stats: stats))
        let mailbox = WorkerMailbox()
        let stop = ManagedAtomic(false)
        let worker = Thread {
            while !stop.load(ordering: .relaxed) { mailbox.serve(path.value) }
        }
        worker.start()
        let rounds = 2000
        let wrong = ManagedAtomic(0)
        let unanswered = ManagedAtomic(0)
        let done = DispatchGroup()
        for limit in [3, 7] {
            done.enter()
            Thread {
                for _ in 0..<rounds {
                    switch mailbox.ask(.flows(limit: limit), timeout: 5) {
                    case .flows(let entries)?: if entries.count != limit { wrong.wrappingIncrement(ordering: .relaxed) }
                    case nil: unanswered.wrappingIncrement(ordering: .relaxed)
                    default: wrong.wrappingIncrement(ordering: .relaxed)
                    }
                }
                done.leave()
            }.start()
        }
        done.wait()
        stop.store(true, ordering: .relaxed)
        while !worker.isFinished { usleep(1000) }
        #expect(wrong.load(ordering: .relaxed) == 0)
        #expect(unanswered.load(ordering: .relaxed) == 0)
    }

    /// Nobody serves: the asker gives up after its timeout with nil, and the mailbox is free again.
    @Test func anUnansweredRequestIsTakenBack() {
        let mailbox = WorkerMailbox()
        let stats = UnsafeMutablePointer<WorkerStats>.allocate(capacity: 1)
        stats.initialize(to: WorkerStats())
        defer { stats.deallocate() }
        #expect(mailbox.ask(.flows(limit: 1), timeout: 0.01).isNil)
        #expect(mailbox.ask(.flows(limit: 1), timeout: 0.01).isNil)
        // Withdrawn: a worker that serves later finds nothing to serve.
        #expect(mailbox.serve(FastPath(table: FlowTable(capacity: 16), stats: stats)) == nil)
    }
}

extension Optional where Wrapped == StateResponse {
    var isNil: Bool { if case .none = self { true } else { false } }
}
