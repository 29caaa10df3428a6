import Atomics
import DistFlow
import DistPacket
import DistPipeline
import DistState
import Foundation
import Testing

/// Two threads ask one worker at once (the main lcore and the transfer lcore do): each gets the
/// answer to its own request, never the other's.
@Suite struct WorkerMailboxTests {
    /// Runs a worker thread serving `mailboxes` and two askers, 2,000 requests each, the first
    /// on `mailboxes[0]` and the second on the last one. Returns the answers that were another's
    /// and the requests not answered within their timeout.
    static func twoAskers(_ mailboxes: [WorkerMailbox]) -> (wrong: Int, unanswered: Int) {
        let stats = UnsafeMutablePointer<WorkerStats>.allocate(capacity: 1)
        stats.initialize(to: WorkerStats())
        defer { stats.deallocate() }
        let table = FlowTable(capacity: 64)
        for i in 0..<10 {
            let key = FlowKey(
                loAddr: IPAddress(ipv4: 0xC612_0000 | UInt32(i)), hiAddr: IPAddress(ipv4: 0xC613_0001),
                loPort: 1000, hiPort: 80, proto: 6, vlanKey: 0)
            // (The table sets the entry's hash.)
            table.insert(FlowEntry(key: key, hash: 0, clientIsLo: true, now: 1))
        }
        // (The worker thread alone touches the fast path.)
        let path = MarkConcurrencyTests.Box(FastPath(table: table, stats: stats))
        let stop = ManagedAtomic(false)
        let worker = Thread {
            while !stop.load(ordering: .relaxed) { for m in mailboxes { m.serve(path.value) } }
        }
        worker.start()
        let wrong = ManagedAtomic(0)
        let unanswered = ManagedAtomic(0)
        let done = DispatchGroup()
        for (limit, mailbox) in [(3, mailboxes[0]), (7, mailboxes[mailboxes.count - 1])] {
            done.enter()
            Thread {
                for _ in 0..<2000 {
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
        return (wrong.load(ordering: .relaxed), unanswered.load(ordering: .relaxed))
    }

    /// As a worker runs: each asking thread has its own mailbox, so neither waits behind the
    /// other's stream of requests, however busy the machine (with one mailbox, an asker that
    /// asks again at once could keep the other out past its timeout).
    @Test func askersWithMailboxesOfTheirOwnAreAllAnswered() {
        let (wrong, unanswered) = Self.twoAskers([WorkerMailbox(), WorkerMailbox()])
        #expect(wrong == 0)
        #expect(unanswered == 0)
    }

    /// Two askers sharing one mailbox never get each other's answer.
    @Test func askersSharingAMailboxNeverGetEachOthersAnswer() {
        #expect(Self.twoAskers([WorkerMailbox()]).wrong == 0)
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
