#!/usr/bin/env bash
# deploy/fuzz.sh [SECONDS [RUNS]]: builds dist-fuzz with libFuzzer and AddressSanitizer and runs
# each decoder target for SECONDS (default 15), or until it has run RUNS inputs if that comes
# first, from the seeds in Tests/fuzz/TARGET (new inputs it finds go to a scratch corpus, not
# the repository). A trap, leak, hang (5 s for one input) or 2 GB of memory fails the run; the
# input that did it is kept and named. FUZZ_SEED=N fixes libFuzzer's seed (the test command
# uses 1: the same inputs on every run); FUZZ_TARGETS="a b" runs only those targets. A campaign
# as issue 17 asks: `deploy/fuzz.sh 1800 10000000` (10 million inputs or 30 minutes each).
set -uo pipefail
cd "$(dirname "$0")/.."
[ -x /opt/swift/usr/bin/swift ] && export PATH=/opt/swift/usr/bin:$PATH
seconds=${1:-15}
runs_limit=${2:-0}
case "$seconds$runs_limit" in ''|*[!0-9]*) echo "usage: $0 [SECONDS [RUNS]]" >&2; exit 2 ;; esac
# (lld: gold cannot link the sanitizers' runtime here.)
swift build --build-path .build/fuzz --product dist-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld \
    2>&1 | grep -E 'error|Compiling dist_fuzz|complete' || true
bin=.build/fuzz/debug/dist-fuzz
# (libFuzzer prints the stack of a trap itself; Swift's backtracer would hold the process.)
export SWIFT_BACKTRACE=enable=no
[ -x "$bin" ] || { echo "fuzz: dist-fuzz did not build" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
while IFS=$'\t' read -r target about; do
    if [ -n "${FUZZ_TARGETS:-}" ] && ! grep -qw -- "$target" <<<"$FUZZ_TARGETS"; then continue; fi
    mkdir -p "$work/$target" "$work/crashes"
    log="$work/$target.log"
    started=$SECONDS
    "$bin" "$target" -max_total_time="$seconds" -runs="$([ "$runs_limit" = 0 ] && echo -1 || echo "$runs_limit")" \
        -timeout=5 -rss_limit_mb=2048 -seed="${FUZZ_SEED:-0}" \
        -artifact_prefix="$work/crashes/$target-" "$work/$target" "Tests/fuzz/$target" >"$log" 2>&1
    status=$?
    runs=$(grep -oE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' | tail -1)
    if [ "$status" = 0 ]; then
        echo "fuzz: $target ($about): ${runs:-?} inputs in $((SECONDS - started)) s, nothing found"
    else
        failed=1
        echo "fuzz: $target ($about): FAILED (exit $status)"
        grep -E 'ERROR|SUMMARY|Fatal error|#[0-9]+ 0x' "$log" | head -20
        for f in "$work/crashes/$target-"*; do
            [ -e "$f" ] || continue
            mkdir -p .build/fuzz/crashes && cp "$f" .build/fuzz/crashes/ && echo "fuzz: input kept in .build/fuzz/crashes/$(basename "$f")"
        done
    fi
done < <("$bin" --list)
exit $failed
