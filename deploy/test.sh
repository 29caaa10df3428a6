#!/usr/bin/env bash
# The README's test command: installs, builds, runs the unit tests (on the release build), the
# integration tests (dist-vnf on net_pcap, checked by deploy/tools/pcapcheck.py) and each
# decoder's fuzz target for 15 s (deploy/fuzz.sh).
set -uo pipefail
cd "$(dirname "$0")/.."
[ -x /opt/swift/usr/bin/swift ] && export PATH=/opt/swift/usr/bin:$PATH

deploy/setup.sh || exit 1
# Hugepages where the host allows them (one integration test runs on them); fine if not.
./hugepage-setup.sh 256 || echo "(continuing without hugepages)"
log=$(mktemp -d)

# The unit tests run on the release build setup.sh made: only the test targets are compiled
# again (a debug build of everything, as `swift test` makes, took nine minutes more).
echo "== unit tests (swift build -c release --build-tests; the tests bundle)"
if swift build -c release --build-tests >"$log/unit-build.txt" 2>&1; then
    # (swift-testing colours its lines even into a pipe: the colours go, so that the patterns
    # here and below match from the line's start.)
    .build/release/distPackageTests.xctest --testing-library swift-testing 2>&1 | sed 's/\x1b\[[0-9;]*m//g' \
        | tee "$log/unit.txt" | grep -E '^(✘|✔ Suite|✔ Test run|✘ Test run)|error:'
    unit_status=${PIPESTATUS[0]}
else
    grep -E 'error:' "$log/unit-build.txt" | head -40 | tee "$log/unit.txt"
    unit_status=1
fi
unit_total=$(grep -oE 'Test run with [0-9]+ test' "$log/unit.txt" | grep -oE '[0-9]+' | tail -1)
unit_failed=$(grep -cE '^✘ Test [^r].*failed' "$log/unit.txt")
unit_total=${unit_total:-0}
if [ "$unit_status" != 0 ] && [ "$unit_failed" = 0 ]; then unit_failed=1; fi

echo "== integration tests (Tests/integration)"
python3 deploy/tools/timed_unittest.py Tests/integration 2>&1 | tee "$log/integration.txt" | grep -E ' \.\.\. |^(FAIL|ERROR|Ran|OK)'
integration_status=${PIPESTATUS[0]}
sed -n '/^slowest tests:/,/^$/p' "$log/integration.txt"
integration_total=$(grep -oE '^Ran [0-9]+' "$log/integration.txt" | grep -oE '[0-9]+')
integration_failed=$(grep -cE ' \.\.\. (FAIL|ERROR)$' "$log/integration.txt")
integration_skipped=$(grep -cE ' \.\.\. skipped' "$log/integration.txt")
integration_total=${integration_total:-0}
if [ "$integration_status" != 0 ] && [ "$integration_failed" = 0 ]; then integration_failed=1; fi

echo "== fuzzing (deploy/fuzz.sh: each decoder 15 s under libFuzzer and AddressSanitizer, seed 1)"
FUZZ_SEED=1 deploy/fuzz.sh 15 2>&1 | tee "$log/fuzz.txt"
fuzz_status=${PIPESTATUS[0]}
fuzz_total=$(grep -cE '^fuzz: .*(nothing found|FAILED)' "$log/fuzz.txt")
fuzz_failed=$(grep -cE '^fuzz: .*FAILED' "$log/fuzz.txt")
if [ "$fuzz_status" != 0 ] && [ "$fuzz_failed" = 0 ]; then fuzz_failed=1; fi

# What failed and why, last, where a CI log's tail shows it: each failing test's assertion.
if [ "$integration_failed" != 0 ]; then
    echo "== why the integration tests failed"
    awk '/^==========/ {on=1} /^Ran [0-9]+ test/ {on=0} on' "$log/integration.txt" \
        | grep -vE 'ResourceWarning|^\s*$' | cut -c1-400 | tail -n 120
fi
if [ "$unit_failed" != 0 ]; then
    echo "== why the unit tests failed"
    grep -E '^✘ |recorded an issue|error:' "$log/unit.txt" | cut -c1-400 | tail -n 60
fi

failed=$((unit_failed + integration_failed + fuzz_failed))
passed=$((unit_total + integration_total + fuzz_total - failed - integration_skipped))
echo
echo "unit: $unit_total tests, $unit_failed failed; integration: $integration_total tests, $integration_failed failed, $integration_skipped skipped; fuzz: $fuzz_total targets, $fuzz_failed failed"
echo "tests: $passed passed, $failed failed, $integration_skipped skipped"
[ "$failed" = 0 ] && [ "$unit_status" = 0 ] && [ "$integration_status" = 0 ] && [ "$fuzz_status" = 0 ]
