#!/usr/bin/env bash
# A Move-free tour of the data plane: install, build, forward the project's trace through
# dist-vnf on DPDK's net_pcap, print its statistics, check the output frame by frame, and
# compare the assets it detected with Debian's prads on the same trace.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /opt/swift/usr/bin/swift ] && export PATH=/opt/swift/usr/bin:$PATH
deploy/setup.sh

work=$(mktemp -d /tmp/dist-demo.XXXXXX)
trace=traces/mix-a.pcap
out=$work/out.pcap
echo "== dist-vnf: $trace -> $out (one worker, no hugepages)"
.build/release/dist-vnf -l 0-1 --no-huge -m 512 --no-pci --file-prefix "dist-demo-$$" \
    --vdev "net_pcap0,rx_pcap=$trace,tx_pcap=$out" \
    -- --id demo --stats-period 1 --mbuf-size 9216 --flows 65536 --admin "$work/admin.sock" \
    --asset-log "$work/assets.log" > "$work/vnf.log" 2>&1 &
pid=$!
trap 'kill -INT $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
want=$(python3 deploy/tools/pcapcheck.py flows "$trace" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["frames"])')
for _ in $(seq 1 300); do
    [ -S "$work/admin.sock" ] && got=$(python3 - "$work/admin.sock" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b'stats\n')
print(json.loads(s.makefile().readline())['rx_packets'])
PY
) && [ "${got:-0}" -ge "$want" ] && break
    sleep 0.2
done
kill -INT $pid; wait $pid; trap - EXIT
grep -vE '^(EAL|TELEMETRY):' "$work/vnf.log" | grep -v '^final-stats-json' 
echo "== checker: frames in vs frames out (deploy/tools/pcapcheck.py)"
python3 deploy/tools/pcapcheck.py compare "$trace" "$out" --strict
echo "== flows in the trace, counted independently"
python3 deploy/tools/pcapcheck.py flows "$trace"
echo "== assets: dist-vnf's log ($work/assets.log) against Debian's prads on the same trace"
prads -r "$trace" -l "$work/prads.log" >/dev/null 2>&1
python3 deploy/tools/assetcheck.py "$work/prads.log" "$work/assets.log" --show 10
