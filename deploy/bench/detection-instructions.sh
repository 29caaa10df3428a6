#!/usr/bin/env bash
# Instructions per frame of the worker's per-packet work with PRADS detection on (parse, count,
# track, inspect), counted by callgrind inside FastPath.process alone: a figure machine noise
# does not move. On a capture of fresh flows (deploy/tools/freshtrace.py, PASSES copies of
# mix-a, each with hosts of its own): its first pass inspects every flow's first packets as
# live traffic makes them; a second pass over the same frames finds every flow known, and
# inspects what the limits still allow (tracked frames, most of them).
#   deploy/bench/detection-instructions.sh [PASSES]
set -euo pipefail
cd "$(dirname "$0")/../.."
passes=${1:-4}
command -v valgrind >/dev/null || { echo "valgrind is needed (apt-get install -y valgrind)" >&2; exit 1; }
swift build -c release --product dist-fastpath-bench 2>&1 | grep -E 'error|warning: ' || true
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp .build/release/dist-fastpath-bench "$work/bench"
strip --strip-debug "$work/bench"
python3 deploy/tools/freshtrace.py --passes "$passes" --out "$work/fresh.pcap" >/dev/null
frames=$("$work/bench" "$work/fresh.pcap" 1 | sed -n 's/^frames \([0-9]*\).*/\1/p')
count() {  # instructions inside FastPath.process, for $1 passes, options $2...
    local n=$1
    shift
    valgrind --tool=callgrind --callgrind-out-file="$work/cg" --toggle-collect='*FastPathC7process5count4data*' \
        "$work/bench" "$work/fresh.pcap" "$n" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    callgrind_annotate "$work/cg" 2>/dev/null | sed -n 's/^ *\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,
}
on1=$(count 1 --detection)
on2=$(count 2 --detection)
off1=$(count 1)
off2=$(count 2)
python3 -c "
f = $frames
print(f'fresh trace: $passes copies of mix-a, {f} frames')
print(f'detection on: first pass (fresh flows, inspected) {$on1 / f:.1f} instructions per frame; second pass (flows known) {($on2 - $on1) / f:.1f}')
print(f'detection off: first pass {$off1 / f:.1f}; second pass {($off2 - $off1) / f:.1f}')"
