#!/usr/bin/env bash
# testbed.sh up|down|status|replay|move|ctl: the DiST test bed on one machine.
#
#   up [--vnfs N] [--workers W] [--profile none|paper|fast-control] [--channel-drop P] [--switch kernel|dpdk]
#      [--flows N]       (flow table capacity per worker, default 65536)
#                        source and sink namespaces, Open vSwitch (userspace datapath, private
#                        run dir) with one port each for the source, the sink and N dist-vnf
#                        instances (default 2) on veths through DPDK's net_af_packet; a separate
#                        control network (a veth per VNF, 198.19.I.0/24) to dist-controller, which
#                        the switch connects to (OpenFlow 1.3) and which installs the forwarding:
#                        source to vnf1, every VNF to the sink. The sink records what arrives.
#                        --profile paper: control links 10 Mbit/s (tbf) and 10 ms one way (a TCP
#                        delay proxy on every control connection, the switch's included), data
#                        links 100 Mbit/s and 1 ms one way (dist-delayline between the switch
#                        and each VNF). fast-control: the same data plane, and the control
#                        plane as fast (100 Mbit/s, 1 ms: the paper's OpenNF*). none (the
#                        default): no shaping.
#                        Every VNF has an end of DiST's channel on its data port
#                        (198.18.100.I:7400 on VLAN 390I, the switch forwarding by the tag;
#                        key $DIST_TESTBED_DIR/channel.key, made by up);
#                        --channel-drop P (paper profile): the delay lines drop P% of it (each
#                        line what its VNF sends, so every frame crosses one that drops;
#                        P% exactly, evenly spread).
#                        --workers W: worker lcores per VNF (default 1), each with its own
#                        queue of the VNF's port (net_af_packet qpairs, the kernel's fanout;
#                        packets a worker does not own go to their owner); W,W2,...: per VNF.
#                        --switch dpdk: Open vSwitch's DPDK datapath (openvswitch-switch-dpdk,
#                        one PMD thread on CPU 1) with every VNF on a vhost-user port
#                        (dist-vnf's net_virtio_user in server mode, a socket in the state
#                        directory, W queues); dist-wire replays into the switch's port 1 and
#                        records its port 2 and mirrors of what it sends each VNF, all on
#                        vhost-user ports. Needs 2 MB hugepages (up reserves what its
#                        processes need when fewer are free, by the VNFs' worker counts; down
#                        gives back what it reserved); profile none only. docs/testbed-dpdk.md
#                        says why.
#   replay PCAP PPS      replays a capture at PPS frames/s (tcpreplay from the source namespace;
#                        DPDK switch: dist-wire replay)
#   move ARGS...         distctl move ARGS (e.g. --from vnf1 --to vnf2 --filter nw_src=10.0.0.0/8)
#   ctl ARGS...          any distctl command against the test bed's controller
#   restart-controller   stops dist-controller if it runs and starts it again (a failure drill;
#                        DIST_CONTROLLER_DIE_AT=PHASE in the environment kills the new one as
#                        a DiST Move reaches that phase, e.g. state-sent or switch-updated;
#                        DIST_MOVE_PATIENCE=S, the sources' patience, see docs/moving.md)
#   restart-switch       kills ovs-vswitchd and starts it again (a failure drill: it comes back
#                        with an empty flow table, and the controller installs its rules again)
#   check SENT.pcap [--moved PREFIX] [--order all]
#                        the checker's verdict on what crossed the test bed: loss and duplication
#                        against SENT, order against what left the switch towards the VNFs
#   metrics              a scrape of every process's Prometheus metrics (dist-controller on
#                        127.0.0.1:9180, each dist-vnf on 198.19.I.2:9100), each after a
#                        line '# scrape NAME URL'
#   status               what runs
#   down                 removes everything `up` made, and only that
#
# State (pid files, captures, logs, OVS's files) lives in $DIST_TESTBED_DIR (/tmp/dist-testbed).
# DIST_CHANNEL_TRACE=1 (up): every VNF writes its channel's decisions to vnfI-channel.trace there.
# DIST_SWITCH_SYNC=off (up): the controller is not given Open vSwitch's control socket, and an OP
# Move waits for the copies and --settle instead of clearing the switch's datapath flow cache.
# DIST_INSECURE_CONTROL=1 (up): a plaintext control plane (no TLS on OpenFlow or the southbound
# API), to measure what TLS costs a Move.
# Addresses come from 198.18.0.0/15; IPv6 is off on every test link (no stray neighbour
# discovery) and MTUs are raised for jumbo frames.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
dir=${DIST_TESTBED_DIR:-/tmp/dist-testbed}
vnf_bin=${DIST_VNF:-$root/.build/release/dist-vnf}
ctl_bin=${DIST_CONTROLLER:-$root/.build/release/dist-controller}
controller_metrics_port=${DIST_CONTROLLER_METRICS_PORT:-9180}
distctl_bin=${DISTCTL:-$root/.build/release/distctl}
delayline_bin=${DIST_DELAYLINE:-$root/.build/release/dist-delayline}
wire_bin=${DIST_WIRE:-$root/.build/release/dist-wire}
prefix=dtb

say() { echo "testbed: $*"; }
# Whether a process is still running. A zombie is not: the daemons here are orphans, and this
# machine's init reaps orphans about every two seconds, so `kill -0` would see each that long.
running() { [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]; }
ovs() { "$here/testbed/ovs.sh" "$@"; }
ovs_env() { eval "$("$here/testbed/ovs.sh" env "$dir/ovs")"; }

. "$here/testbed/up.sh"

replay() {
    local pcap=$1 pps=$2
    [ -e "$dir/up" ] || { say "not up" >&2; exit 1; }
    if [ "$(cat "$dir/switch")" = dpdk ]; then
        "$wire_bin" --lcores 0@0 --in-memory --single-file-segments -m 128 --no-pci --file-prefix "$prefix-replay" \
            --vdev "net_virtio_user0,path=$dir/ovs/$prefix-src,queue_size=1024" -- replay --pcap "$pcap" --pps "$pps" \
            >"$dir/replay.log" 2>&1 || { say "replay failed: $(tail -3 "$dir/replay.log")" >&2; exit 1; }
    else
        ip netns exec "$prefix-src" tcpreplay -q --pps="$pps" -i src0 "$pcap" >"$dir/tcpreplay.log" 2>&1
    fi
    say "replayed $pcap at $pps pps"
}

check() {  # check SENT.pcap [pcapcheck testbed options]: the loss-and-order verdict of a run
    [ -e "$dir/vnfs" ] || { say "no run to check in $dir" >&2; exit 1; }
    local sent=$1
    shift
    sleep 0.5  # the last frames reach the captures
    if [ "$(cat "$dir/switch" 2>/dev/null)" = dpdk ]; then
        # The recorder writes in blocks: flushed (SIGUSR2), then read once the sizes hold.
        kill -USR2 "$(cat "$dir/recorder.pid")"
        local size=-1
        for _ in $(seq 1 50); do
            sleep 0.2
            [ "$(cat "$dir"/*.pcap | wc -c)" = "$size" ] && break
            size=$(cat "$dir"/*.pcap | wc -c)
        done
    fi
    local captures=()
    for f in "$dir"/to-vnf*.pcap; do [ -e "$f" ] && captures+=("$f"); done
    python3 "$here/tools/pcapcheck.py" testbed "$sent" "$dir/sink.pcap" "${captures[@]}" "$@"
}

# The TLS options of NAME's pair and the CA (the three option names given), or
# --insecure-control with DIST_INSECURE_CONTROL=1. (The test bed's paths have no spaces.)
control_tls() {
    if [ -n "${DIST_INSECURE_CONTROL:-}" ]; then echo --insecure-control; return; fi
    echo "$2" "$dir/tls/$1.pem" "$3" "$dir/tls/$1.key" "$4" "$dir/tls/ca.pem"
}

# dist-controller with the VNFs `up` named (its log appended to).
start_controller() {
    local vnf_args=()
    mapfile -t vnf_args <"$dir/controller.vnfs"
    "$ctl_bin" --openflow 127.0.0.1:6653 --northbound "$dir/controller.sock" "${vnf_args[@]}" \
        $(control_tls controller --tls-cert --tls-key --tls-ca) \
        $([ -n "${DIST_INSECURE_CONTROL:-}" ] || echo --switch-cert "$dir/tls/switch.pem") \
        --ingress 1 --egress 2 --default vnf1 --request-timeout "${DIST_REQUEST_TIMEOUT:-5}" \
        --packet-out-rate "${DIST_PACKET_OUT_RATE:-10000}" ${DIST_MOVE_PATIENCE:+--move-patience "$DIST_MOVE_PATIENCE"} \
        $([ "${DIST_SWITCH_SYNC:-on}" = off ] || echo --switch-unixctl "$dir/ovs/ovs-vswitchd.ctl") \
        --metrics "127.0.0.1:$controller_metrics_port" >>"$dir/controller.log" 2>&1 &
    echo $! >"$dir/controller.pid"
}

# A failure drill's second half: the controller (killed, or still running: stopped first)
# starts again and takes the switch and the VNFs back.
# A failure drill: ovs-vswitchd killed and started again; done once the controller has
# installed the test bed's rules on the new connection (and the Moves' rules, if any).
restart_switch() {
    [ -e "$dir/up" ] || { say "not up" >&2; exit 1; }
    local before
    before=$(grep -c 'test bed rules installed' "$dir/controller.log" || true)
    ovs restart "$dir/ovs" $([ "$(cat "$dir/switch" 2>/dev/null)" = dpdk ] && echo dpdk) >/dev/null
    for _ in $(seq 1 300); do
        if [ "$(grep -c 'test bed rules installed' "$dir/controller.log" || true)" -gt "$before" ]; then
            say "switch restarted ($(cat "$dir/ovs/ovs-vswitchd.pid"))"
            return 0
        fi
        sleep 0.1
    done
    say "the restarted switch did not come back to the controller:" >&2
    tail -20 "$dir/controller.log" >&2
    exit 1
}

restart_controller() {
    [ -e "$dir/up" ] || { say "not up" >&2; exit 1; }
    local pid
    pid=$(cat "$dir/controller.pid" 2>/dev/null || true)
    if [ -n "$pid" ] && running "$pid"; then
        kill -INT "$pid"
        for _ in $(seq 1 100); do running "$pid" || break; sleep 0.05; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/controller.sock"
    start_controller
    local vnfs
    vnfs=$(grep -c "=" "$dir/controller.vnfs")
    # (The switch reconnects with a backoff of up to 8 s after its controller went away.)
    local listed
    for _ in $(seq 1 200); do
        listed=$("$distctl_bin" vnf list --socket "$dir/controller.sock" 2>/dev/null || true)
        [ "$(grep -c ' yes$' <<<"$listed")" = "$vnfs" ] && grep -q '^switch: datapath' <<<"$listed" \
            && { say "controller restarted ($(cat "$dir/controller.pid"))"; return 0; }
        sleep 0.1
    done
    say "the restarted controller did not take the switch and the VNFs back:" >&2
    tail -20 "$dir/controller.log" >&2
    exit 1
}

ctl() {
    [ -e "$dir/up" ] || { say "not up" >&2; exit 1; }
    "$distctl_bin" "$@" --socket "$dir/controller.sock"
}

status() {
    [ -e "$dir/up" ] || { say "down"; return 0; }
    say "up ($dir)"
    "$here/testbed/ovs.sh" status "$dir/ovs" | sed 's/^/  /'
    for f in "$dir"/*.pid; do
        [ -e "$f" ] || continue
        local pid
        pid=$(cat "$f")
        if running "$pid"; then echo "  $(basename "$f" .pid): running ($pid)"; else echo "  $(basename "$f" .pid): gone"; fi
    done
}

down() {
    # What each switch port sent, received and dropped (read live from the datapath: the
    # database's statistics lag by seconds), for finding where a run lost frames.
    local ctl
    for ctl in "$dir"/ovs/ovs-vswitchd*.ctl; do
        [ -S "$ctl" ] && ovs-appctl -t "$ctl" --timeout=5 dpctl/show -s >"$dir/switch-ports.txt" 2>/dev/null || true
    done
    # What is still on its way to the captures (a Move's held packets, the switch's queues)
    # reaches them first: down waits until they have grown by nothing for a second (5 s at most).
    local sizes last="" quiet=0
    for _ in $(seq 1 50); do
        sizes=$(stat -c %s "$dir"/*.pcap 2>/dev/null | paste -sd, || true)
        if [ "$sizes" = "$last" ]; then quiet=$((quiet + 1)); else quiet=0; fi
        [ "$quiet" -ge 10 ] && break
        last=$sizes
        sleep 0.1
    done
    # Then every process at once.
    local f pids=()
    for f in "$dir"/*.pid; do
        [ -e "$f" ] || continue
        pids+=("$(cat "$f")")
        kill -INT "${pids[-1]}" 2>/dev/null || true
    done
    local pid
    for pid in "${pids[@]}"; do
        for _ in $(seq 1 100); do running "$pid" || break; sleep 0.05; done
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -f "$dir"/*.pid
    [ -d "$dir/ovs" ] && ovs stop "$dir/ovs" >/dev/null || true
    rm -rf "$dir/ovs"
    for ns in $(ip netns list | awk '{print $1}' | grep "^$prefix-" || true); do ip netns delete "$ns"; done
    for l in $(ip -o link | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^$prefix-" || true); do ip link delete "$l" 2>/dev/null || true; done
    rm -f "$dir"/*.vhost "$dir/switch"
    if [ -s "$dir/hugepages" ]; then
        echo "$(cat "$dir/hugepages")" >/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages || true
        rm -f "$dir/hugepages"
    fi
    if [ -s "$dir/rmem_default" ]; then
        sysctl -qw "net.core.rmem_default=$(cat "$dir/rmem_default")"
        rm -f "$dir/rmem_default"
    fi
    rm -f "$dir/up"
    say "down"
}

# A scrape of every process's Prometheus metrics, each after a line naming it.
metrics() {
    [ -e "$dir/up" ] || { say "not up" >&2; exit 1; }
    local targets=("controller http://127.0.0.1:$controller_metrics_port/metrics") i
    for i in $(seq 1 "$(grep -c "=" "$dir/controller.vnfs")"); do targets+=("vnf$i http://198.19.$i.2:9100/metrics"); done
    local t
    for t in "${targets[@]}"; do
        echo "# scrape ${t% *} ${t#* }"
        python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "${t#* }" \
            || echo "# (no answer)"
    done
}

case "${1:-}" in
up) shift; up "$@" ;;
metrics) metrics ;;
down) down ;;
status) status ;;
replay) shift; [ $# -eq 2 ] || { echo "usage: $0 replay PCAP PPS" >&2; exit 2; }; replay "$@" ;;
move) shift; ctl move "$@" ;;
ctl) shift; ctl "$@" ;;
restart-controller) restart_controller ;;
restart-switch) restart_switch ;;
check) shift; [ $# -ge 1 ] || { echo "usage: $0 check SENT.pcap [--moved PREFIX] [--order all]" >&2; exit 2; }; check "$@" ;;
*) awk 'NR > 1 && !/^#/ {exit} NR > 1' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
