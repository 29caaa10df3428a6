#!/usr/bin/env bash
# Instructions per redirected packet of a DiST Move, both ends (dist-redirect-bench: the
# source's worker, its Move engine, the channel with AES-GCM, the destination's engine and
# worker, all on one thread, no DPDK), counted by callgrind: it redirects 20,000 and then
# 120,000 packets and divides the difference by 100,000, so set-up and the state's transfer
# cancel out. A figure machine noise does not move.
#   deploy/bench/redirect-instructions.sh [SIZE]   (bytes per packet, default 300)
set -euo pipefail
cd "$(dirname "$0")/../.."
size=${1:-300}
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install -y valgrind)" >&2; exit 1; }
swift build -c release --product dist-redirect-bench 2>&1 | grep -E 'error|warning: ' || true
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# valgrind cannot read the DWARF Swift emits; it needs no symbols to count instructions.
cp .build/release/dist-redirect-bench "$work/bench"
strip --strip-debug "$work/bench"
export SWIFT_DETERMINISTIC_HASHING=1
count() {
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.$1" "$work/bench" --packets "$1" --size "$size" 2>&1 \
        | sed -n 's/.*refs: *//p' | tr -d ,
}
low=$(count 20000)
high=$(count 120000)
echo "instructions_per_redirected_packet $(( (high - low) / 100000 )) (size $size bytes, both ends)"
