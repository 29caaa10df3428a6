import Testing

@testable import DistController

/// What an opennf-mode Move tells its source it sent on: the raised packets' sequence numbers
/// as ranges of consecutive ones, whatever order early release sent them in.
@Suite struct OpenNFReleaseTests {
    @Test func sequenceNumbersBecomeRanges() {
        #expect(OpenNFMove.ranges([]) == [])
        #expect(OpenNFMove.ranges([5]) == [5...5])
        #expect(OpenNFMove.ranges([7, 3, 4, 5, 9, 8, 12, 4]) == [3...5, 7...9, 12...12])
        #expect(OpenNFMove.ranges([UInt64.max, 1, UInt64.max - 1]) == [1...1, (UInt64.max - 1)...UInt64.max])
    }
}
