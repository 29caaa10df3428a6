#!/usr/bin/env bash
# testbed.sh up|down|status|replay: the DiST test bed on one machine.
#
#   up [--vnfs N]        source and sink namespaces, Open vSwitch (userspace datapath, private
#                        run dir) with one port each for the source, the sink and N dist-vnf
#                        instances (default 2) on veths through DPDK's net_af_packet; OpenFlow
#                        rules send the source's frames to vnf1 and every VNF's output to the
#                        sink; the sink records what arrives (tcpdump); the switch copies what
#                        it sends towards the VNFs to a capture too (the checker's reference).
#   replay PCAP PPS      replays a capture from the source namespace at PPS frames/s (tcpreplay)
#   status               what runs
#   down                 removes everything `up` made, and only that
#
# State (pid files, captures, logs, OVS's files) lives in $DIST_TESTBED_DIR (/tmp/dist-testbed).
# Addresses come from 198.18.0.0/15; IPv6 is off on every test link (no stray neighbour
# discovery) and MTUs are raised for jumbo frames.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
dir=${DIST_TESTBED_DIR:-/tmp/dist-testbed}
vnf_bin=${DIST_VNF:-$root/.build/release/dist-vnf}
prefix=dtb

say() { echo "testbed: $*"; }
ovs() { "$here/testbed/ovs.sh" "$@"; }
ovs_env() { eval "$("$here/testbed/ovs.sh" env "$dir/ovs")"; }

link() {  # link NAME_IN_NS NS NAME_ON_SWITCH
    ip link add "$3" type veth peer name "$1" netns "$2"
    ip netns exec "$2" sysctl -qw "net.ipv6.conf.$1.disable_ipv6=1"
    sysctl -qw "net.ipv6.conf.$3.disable_ipv6=1"
    ip netns exec "$2" ip link set "$1" mtu 9000 up
    ip link set "$3" mtu 9000 up
}

up() {
    local vnfs=2
    [ "${1:-}" = "--vnfs" ] && vnfs=$2
    [ -e "$dir/up" ] && { say "already up ($dir); run down first" >&2; exit 1; }
    [ -x "$vnf_bin" ] || { say "$vnf_bin missing: build first (deploy/setup.sh)" >&2; exit 1; }
    mkdir -p "$dir"
    rm -rf "$dir/ovs" "$dir/sink.pcap"
    touch "$dir/up"
    # A failure half way leaves nothing behind.
    trap 'say "up failed; cleaning up" >&2; down >/dev/null' ERR
    for ns in src sink; do ip netns add "$prefix-$ns"; ip netns exec "$prefix-$ns" ip link set lo up; done
    link src0 "$prefix-src" "$prefix-src"
    link sink0 "$prefix-sink" "$prefix-sink"
    ip netns exec "$prefix-src" ip addr add 198.18.0.1/24 dev src0
    ip netns exec "$prefix-sink" ip addr add 198.18.0.2/24 dev sink0
    for i in $(seq 1 "$vnfs"); do
        ip netns add "$prefix-vnf$i"
        ip netns exec "$prefix-vnf$i" ip link set lo up
        link "vnf$i" "$prefix-vnf$i" "$prefix-v$i"
    done
    ovs start "$dir/ovs" >/dev/null
    ovs_env
    ovs-vsctl add-br br0 -- set bridge br0 datapath_type=netdev protocols=OpenFlow13 fail_mode=secure
    ovs-vsctl add-port br0 "$prefix-src" -- set interface "$prefix-src" ofport_request=1
    ovs-vsctl add-port br0 "$prefix-sink" -- set interface "$prefix-sink" ofport_request=2
    for i in $(seq 1 "$vnfs"); do
        ovs-vsctl add-port br0 "$prefix-v$i" -- set interface "$prefix-v$i" ofport_request=$((10 + i))
    done
    ovs-ofctl -O OpenFlow13 add-flow br0 "priority=10,in_port=1,actions=output:11"
    for i in $(seq 1 "$vnfs"); do
        ovs-ofctl -O OpenFlow13 add-flow br0 "priority=10,in_port=$((10 + i)),actions=output:2"
    done
    # What leaves the switch towards the VNFs, and what reaches the sink.
    ip netns exec "$prefix-sink" tcpdump -i sink0 -U -w "$dir/sink.pcap" -s 0 >"$dir/sink-tcpdump.log" 2>&1 &
    echo $! >"$dir/sink-tcpdump.pid"
    for i in $(seq 1 "$vnfs"); do
        ip netns exec "$prefix-vnf$i" "$vnf_bin" -l 0-1 --no-huge -m 512 --no-pci --file-prefix "$prefix-vnf$i" \
            --vdev "net_af_packet0,iface=vnf$i,blocksz=12288,framesz=12288,framecnt=1024" -- --id "vnf$i" --flows 65536 --mbuf-size 12288 \
            --admin "$dir/vnf$i.sock" --asset-log "$dir/vnf$i-assets.log" >"$dir/vnf$i.log" 2>&1 &
        echo $! >"$dir/vnf$i.pid"
    done
    for i in $(seq 1 "$vnfs"); do
        for _ in $(seq 1 100); do [ -S "$dir/vnf$i.sock" ] && break; sleep 0.1; done
        [ -S "$dir/vnf$i.sock" ] || { say "vnf$i did not start:" >&2; cat "$dir/vnf$i.log" >&2; down >/dev/null; exit 1; }
    done
    for _ in $(seq 1 50); do grep -q "listening on" "$dir/sink-tcpdump.log" 2>/dev/null && break; sleep 0.1; done
    echo "$vnfs" >"$dir/vnfs"
    trap - ERR
    say "up: $vnfs VNFs, switch br0 (userspace), source $prefix-src, sink $prefix-sink; state in $dir"
}

replay() {
    local pcap=$1 pps=$2
    [ -e "$dir/up" ] || { say "not up" >&2; exit 1; }
    ip netns exec "$prefix-src" tcpreplay -q --pps="$pps" -i src0 "$pcap" >"$dir/tcpreplay.log" 2>&1
    say "replayed $pcap at $pps pps"
}

status() {
    [ -e "$dir/up" ] || { say "down"; return 0; }
    say "up ($dir)"
    "$here/testbed/ovs.sh" status "$dir/ovs" | sed 's/^/  /'
    for f in "$dir"/*.pid; do
        [ -e "$f" ] || continue
        local pid
        pid=$(cat "$f")
        if kill -0 "$pid" 2>/dev/null; then echo "  $(basename "$f" .pid): running ($pid)"; else echo "  $(basename "$f" .pid): gone"; fi
    done
}

down() {
    for f in "$dir"/*.pid; do
        [ -e "$f" ] || continue
        local pid
        pid=$(cat "$f")
        kill -INT "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$f"
    done
    [ -d "$dir/ovs" ] && ovs stop "$dir/ovs" >/dev/null || true
    rm -rf "$dir/ovs"
    for ns in $(ip netns list | awk '{print $1}' | grep "^$prefix-" || true); do ip netns delete "$ns"; done
    for l in $(ip -o link | awk -F': ' '{print $2}' | cut -d@ -f1 | grep "^$prefix-" || true); do ip link delete "$l" 2>/dev/null || true; done
    rm -f "$dir/up"
    say "down"
}

case "${1:-}" in
up) shift; up "$@" ;;
down) down ;;
status) status ;;
replay) shift; [ $# -eq 2 ] || { echo "usage: $0 replay PCAP PPS" >&2; exit 2; }; replay "$@" ;;
*) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
