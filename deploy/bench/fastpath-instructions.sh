#!/usr/bin/env bash
# Instructions per frame of the worker's per-packet work (parse, count, track), counted by
# callgrind on a fixed pcap: a figure machine noise does not move. It runs the fast-path
# benchmark twice (2 and 12 passes over the trace) and divides the difference by the frames
# of the 10 extra passes, so start-up and file loading cancel out.
#   deploy/bench/fastpath-instructions.sh [TRACE.pcap]
set -euo pipefail
cd "$(dirname "$0")/../.."
trace=${1:-traces/mix-a.pcap}
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install -y valgrind)" >&2; exit 1; }
swift build -c release --product dist-fastpath-bench 2>&1 | grep -E 'error|warning: ' || true
work=$(mktemp -d)
# valgrind cannot read the DWARF Swift emits; it needs no symbols to count instructions.
cp .build/release/dist-fastpath-bench "$work/bench"
strip --strip-debug "$work/bench"
# Deterministic hashing: both runs then allocate alike while setting up, and cancel out.
export SWIFT_DETERMINISTIC_HASHING=1
count() {
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.$1${2:-}" "$work/bench" "$trace" "$1" ${2:-} 2>&1 \
        | sed -n 's/.*refs: *//p' | tr -d ,
}
frames=$("$work/bench" "$trace" 1 | sed -n 's/^frames \([0-9]*\).*/\1/p')
low=$(count 2)
high=$(count 12)
# Two workers, every frame received by worker 0, worker 1's flows handed to it.
handed=$("$work/bench" "$trace" 1 --handoff | sed -n 's/.*handed_off \([0-9]*\).*/\1/p')
handoff_low=$(count 2 --handoff)
handoff_high=$(count 12 --handoff)
# The same two workers, each receiving only its own flows' frames: the handoff's reference.
owned_low=$(count 2 --owned)
owned_high=$(count 12 --owned)
# Instructions spent in the allocator and in reference counting, per frame: both must be 0.
runtime() {
    callgrind_annotate --threshold=100 "$work/cg.$1" 2>/dev/null \
        | awk '/malloc|free|swift_retain|swift_release|swift_allocObject/ {gsub(",", "", $1); s += $1} END {print s + 0}'
}
echo "trace $trace: $frames frames"
python3 -c "
frames = $frames * 10
print(f'instructions_per_frame {($high - $low) / frames:.1f}')
print(f'allocator_and_refcount_instructions_per_frame {($(runtime 12) - $(runtime 2)) / frames:.2f}')
extra = ($handoff_high - $handoff_low) - ($high - $low)
print(f'two workers: {$handed} of {$frames} frames handed off; instructions per handed-off frame, over its own processing: {extra / ($handed * 10):.1f}')
owned, crossed = ($owned_high - $owned_low) / frames, ($handoff_high - $handoff_low) / frames
print(f'two workers, each frame at its owner: {owned:.1f} instructions a frame; with those handed off: {crossed:.1f} '
      f'(handoff costs {100 * (1 - owned / crossed):.1f}% of the rate, if time went by instructions)')"
rm -rf "$work"
