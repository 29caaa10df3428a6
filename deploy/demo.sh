#!/usr/bin/env bash
# The README's main command: the end-to-end Move demo on the local test bed. Installs and
# builds, brings the test bed up (two dist-vnf, Open vSwitch, dist-controller; the paper's
# link profile), replays mix-a at 1000 pps, moves a prefix from vnf1 to vnf2 a third of the way
# through the OpenNF way (state and packets through the controller), and back from vnf2 to
# vnf1 two thirds through the DiST way (peer to peer over the data plane, the controller only
# signalling), both loss-free with PZ, LL and ER; prints both reports side by side, the
# checker's verdict on what reached the sink, and whether the two VNFs together learnt what one
# VNF learns from the same trace without a Move; then takes the test bed down.
#
# Environment: DEMO_FILTER (nw_src=192.168.0.0/16), DEMO_GUARANTEE (lf), DEMO_OPT (pz,ll,er),
# DEMO_PPS (1000), DEMO_PROFILE (paper), DEMO_FRAMES (all of mix-a).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x /opt/swift/usr/bin/swift ] && export PATH=/opt/swift/usr/bin:$PATH
deploy/setup.sh

filter=${DEMO_FILTER:-nw_src=192.168.0.0/16}
guarantee=${DEMO_GUARANTEE:-lf}
opt=${DEMO_OPT:-pz,ll,er}
pps=${DEMO_PPS:-1000}
profile=${DEMO_PROFILE:-paper}
work=$(mktemp -d /tmp/dist-demo.XXXXXX)
export DIST_TESTBED_DIR=$work/testbed
trace=$work/trace.pcap
# IP fragments cannot cross the test bed unchanged (net_af_packet reassembles them): left out.
python3 deploy/tools/pcapcheck.py cut traces/mix-a.pcap "$trace" --no-fragments ${DEMO_FRAMES:+--frames "$DEMO_FRAMES"}
frames=$(python3 -c "import sys; sys.path.insert(0,'deploy/tools'); import pcapcheck; print(len(pcapcheck.read_pcap('$trace')))")
third=$(python3 -c "print(round($frames / $pps / 3, 1))")

echo "== test bed up (profile $profile)"
deploy/testbed.sh up --profile "$profile"
trap 'deploy/testbed.sh down >/dev/null 2>&1 || true' EXIT
deploy/testbed.sh ctl vnf list

echo "== replaying $frames frames of mix-a at $pps pps; Moves after ${third} s (opennf) and $(python3 -c "print(2 * $third)") s (dist)"
deploy/testbed.sh replay "$trace" "$pps" &
replay=$!
status=0
move() {  # move FROM TO MODE: one Move, its report kept for the side-by-side table
    echo "== distctl move --from $1 --to $2 --filter $filter --guarantee $guarantee --opt $opt --mode $3"
    deploy/testbed.sh move --from "$1" --to "$2" --filter "$filter" --guarantee "$guarantee" --opt "$opt" --mode "$3" \
        --json >"$work/move-$3.json" || status=$?
    python3 - "$work/move-$3.json" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
report = json.loads(text[text.index('{'):])['report']
print(f"{report['move']}: {report['outcome']}{': ' + report['reason'] if report.get('reason') else ''}, "
      f"MoveTime {report['moveTime']:.4f} s, {report['perFlowStates']} states, {report['packetsRedirected']} packets redirected")
PY
}
sleep "$third"
move vnf1 vnf2 opennf
sleep "$third"
move vnf2 vnf1 dist
wait $replay
sleep 1
echo "== the two Moves side by side"
python3 - "$work/move-opennf.json" "$work/move-dist.json" <<'PY'
import json, sys
reports = []
for path in sys.argv[1:]:
    text = open(path).read()
    reports.append(json.loads(text[text.index('{'):])['report'])
rows = [('Move', lambda r: r['move'].split(' filter')[0]), ('Outcome', lambda r: r['outcome']),
        ('MoveTime', lambda r: f"{r['moveTime']:.4f} s"), ('RedirTime', lambda r: f"{r['redirTime']:.4f} s"),
        ('States per-flow / multi-flow', lambda r: f"{r['perFlowStates']} / {r['multiFlowStates']}"),
        ('Packets redirected / buffered', lambda r: f"{r['packetsRedirected']} / {r['packetsBuffered']}"),
        ('Serialize + deserialize', lambda r: f"{r['serializeSeconds'] + r['deserializeSeconds']:.4f} s"),
        ('Controller messages sent / received', lambda r: f"{r['messagesSent']} / {r['messagesReceived']}"),
        ('Controller bytes sent / received', lambda r: f"{r['bytesSent']} / {r['bytesReceived']}"),
        ('Channel frames / retransmissions', lambda r: f"{r.get('channelFrames', 0)} / {r.get('retransmissions', 0)}")]
width = max(len(name) for name, _ in rows)
print(f"{'':{width}} | {'opennf':<34} | dist")
for name, cell in rows:
    print(f"{name:{width}} | {cell(reports[0]):<34} | {cell(reports[1])}")
if reports[0]['moveTime'] and reports[1]['moveTime']:
    print(f"MoveTime opennf / dist: {reports[0]['moveTime'] / reports[1]['moveTime']:.1f}x")
PY
echo "== after the Moves (the prefix is back at vnf1)"
deploy/testbed.sh ctl flows vnf1 --filter "$filter" --limit 0 | head -1 | sed 's/^/vnf1: /'
deploy/testbed.sh ctl flows vnf2 --filter "$filter" --limit 0 | head -1 | sed 's/^/vnf2: /'
deploy/testbed.sh down
trap - EXIT

order=flows
[ "$guarantee" = op ] && order=all
[ "$guarantee" != op ] && order=none   # OpenNF's LF keeps no order for packets in flight at the switch update
moved=$(echo "$filter" | sed -n 's/.*nw_[sd][rs][ct]=\([^,]*\).*/\1/p')
echo "== checker: sink against the trace (loss, duplication) and against the switch's output (order)"
verdict=0
deploy/testbed.sh check "$trace" --order "$order" ${moved:+--moved "$moved"} || verdict=$?

echo "== state: vnf1 and vnf2 together against one dist-vnf on the same trace, no Move"
.build/release/dist-vnf -l 0-1 --no-huge -m 512 --no-pci --file-prefix "dist-demo-$$" \
    --vdev "net_pcap0,rx_pcap=$trace,tx_pcap=$work/offline.pcap" \
    -- --id offline --mbuf-size 9216 --flows 65536 --asset-log "$work/offline-assets.log" --admin "$work/offline.sock" \
    >"$work/offline.log" 2>&1 &
pid=$!
for _ in $(seq 1 600); do
    got=$(python3 - "$work/offline.sock" 2>/dev/null <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b'stats\n')
print(json.loads(s.makefile().readline())['rx_packets'])
PY
) && [ "${got:-0}" -ge "$frames" ] && break
    sleep 0.2
done
kill -INT $pid; wait $pid || true
parity=0
python3 - "$work/offline-assets.log" "$DIST_TESTBED_DIR/vnf1-assets.log" "$DIST_TESTBED_DIR/vnf2-assets.log" <<'PY' || parity=$?
import collections, sys
def records(path):
    with open(path) as f:
        return collections.Counter(l.strip().rsplit(',', 1)[0] for l in f if l.strip() and not l.startswith('asset,'))
offline = records(sys.argv[1])
together = records(sys.argv[2]) + records(sys.argv[3])
missing, extra = offline - together, together - offline
print(f'records: {sum(offline.values())} without a Move; {sum(together.values())} from vnf1 and vnf2 together; '
      f'{sum(missing.values())} missing, {sum(extra.values())} extra')
for r in list(missing)[:5]: print('  missing:', r)
for r in list(extra)[:5]: print('  extra:  ', r)
sys.exit(0 if not missing and not extra else 1)
PY
echo
echo "demo: Moves $([ $status = 0 ] && echo completed || echo FAILED), checker $([ $verdict = 0 ] && echo PASS || echo FAIL), state $([ $parity = 0 ] && echo 'equal to a run without a Move' || echo 'differs from a run without a Move (records above)'); files in $work"
# The exit status is the Move's and the checker's. The state comparison is against one dist-vnf
# reading the file, whose frames no switch reorders across flows; which packet first shows a
# host's service can differ then (docs/benchmarks.md).
[ $status = 0 ] && [ $verdict = 0 ]
