import Foundation

/// The failure drills' hooks, at the steps of both Move modes (their phases, see
/// ``MoveReport``): the test bed sets them in the controller's environment to show what the VNFs
/// and the switch do without it (`Tests/integration/test_drills.py`).
enum FailureDrill {
    /// The hooks at a Move's step `name` (``dieAt``, ``stallAt``).
    static func at(_ name: String, moveID id: UInt64) {
        if name == dieAt {
            // A failure drill: the controller dies here as a crash would (no clean-up).
            fputs("dist-controller: move \(id): DIST_CONTROLLER_DIE_AT=\(name): killed\n", stderr)
            kill(getpid(), SIGKILL)
        }
        if name == stallAt {
            // A failure drill: the controller stops for 1 s (its event loop too), as one
            // descheduled or paging would, while the drill breaks something else. (Not longer:
            // the channel between the VNFs gives a Move up after about 2 s without an answer, and
            // a switch that is away takes the channel with it until the controller is back.)
            fputs("dist-controller: move \(id): DIST_CONTROLLER_STALL_AT=\(name): stalled for 1 s\n", stderr)
            usleep(1_000_000)
        }
    }

    /// A failure drill's hook (`DIST_CONTROLLER_DIE_AT=PHASE`): the controller is killed as it
    /// reaches that phase of a Move (see the phases in ``MoveReport``), so that the test
    /// bed can show what the VNFs do without it.
    static let dieAt = ProcessInfo.processInfo.environment["DIST_CONTROLLER_DIE_AT"]
    /// Another (`DIST_CONTROLLER_STALL_AT=PHASE`): the controller stalls there for 1 s.
    static let stallAt = ProcessInfo.processInfo.environment["DIST_CONTROLLER_STALL_AT"]
}
