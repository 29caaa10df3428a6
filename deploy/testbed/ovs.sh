#!/usr/bin/env bash
# ovs.sh start|stop|restart|status DIR [dpdk]: Open vSwitch (Debian's openvswitch-switch) with its own
# run, log and database directories under DIR, so it never touches a system OVS. ovs-vsctl and
# ovs-ofctl need the same environment: `eval "$(deploy/testbed/ovs.sh env DIR)"`.
# start DIR dpdk: Debian's openvswitch-switch-dpdk binary instead, run directly (the system's
# update-alternatives choice is left alone), DPDK initialised without PCI devices, 1 GB of
# hugepages, one PMD thread on CPU $DIST_OVS_PMD_CPU (default 1) that sleeps up to 50 us when
# idle (on a 2-CPU host a busy-polling PMD starves every other poller).
set -euo pipefail
command=${1:-}
dir=${2:-}
mode=${3:-}
[ -n "$command" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|restart|status|env DIR [dpdk]" >&2; exit 2; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
export OVS_RUNDIR=$dir OVS_LOGDIR=$dir OVS_DBDIR=$dir
# Whether a process is still running (a zombie is not: see testbed.sh).
running() { [ -r "/proc/$1/stat" ] && [ "$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null)" != Z ]; }
case "$command" in
env)
    echo "export OVS_RUNDIR=$dir OVS_LOGDIR=$dir OVS_DBDIR=$dir"
    ;;
start)
    if [ ! -e "$dir/conf.db" ]; then
        ovsdb-tool create "$dir/conf.db" /usr/share/openvswitch/vswitch.ovsschema
    fi
    # Daemons keep no descriptor of ours (a caller reading our output would wait for ever).
    ovsdb-server "$dir/conf.db" --remote="punix:$dir/db.sock" --pidfile="$dir/ovsdb-server.pid" \
        --log-file="$dir/ovsdb-server.log" --detach --no-chdir </dev/null >/dev/null 2>&1
    ovs-vsctl --db="unix:$dir/db.sock" --no-wait init
    vswitchd=ovs-vswitchd
    if [ "$mode" = dpdk ]; then
        vswitchd=/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk
        [ -x "$vswitchd" ] || { echo "ovs: $vswitchd missing (apt-get install openvswitch-switch-dpdk)" >&2; exit 1; }
        ovs-vsctl --db="unix:$dir/db.sock" --no-wait set Open_vSwitch . other_config:dpdk-init=true \
            "other_config:dpdk-extra=--no-pci --file-prefix $(basename "$dir")-ovs" other_config:dpdk-socket-mem=1024 other_config:dpdk-socket-limit=1024 \
            other_config:pmd-cpu-mask=$(printf '0x%x' $((1 << ${DIST_OVS_PMD_CPU:-1}))) other_config:pmd-maxsleep=50
    fi
    "$vswitchd" "unix:$dir/db.sock" --pidfile="$dir/ovs-vswitchd.pid" --log-file="$dir/ovs-vswitchd.log" --unixctl="$dir/ovs-vswitchd.ctl" \
        --detach --no-chdir </dev/null >/dev/null 2>&1
    if [ "$mode" = dpdk ] && [ "$(ovs-vsctl --db="unix:$dir/db.sock" get Open_vSwitch . dpdk_initialized)" != true ]; then
        echo "ovs: DPDK did not initialise (hugepages? see $dir/ovs-vswitchd.log)" >&2
        exit 1
    fi
    echo "ovs: started in $dir (ovsdb-server $(cat "$dir/ovsdb-server.pid"), ovs-vswitchd $(cat "$dir/ovs-vswitchd.pid"))"
    ;;
stop)
    # Both at once.
    pids=()
    for daemon in ovs-vswitchd ovsdb-server; do
        if [ -e "$dir/$daemon.pid" ]; then
            pids+=("$(cat "$dir/$daemon.pid")")
            kill "${pids[-1]}" 2>/dev/null || true
        fi
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 1 100); do running "$pid" || break; sleep 0.05; done
    done
    rm -f "$dir/ovs-vswitchd.pid" "$dir/ovsdb-server.pid"
    echo "ovs: stopped ($dir)"
    ;;
restart)
    # ovs-vswitchd alone, as a crash and a supervisor's restart would: it comes back with the
    # bridges and ports of its database and an empty flow table.
    pid=$(cat "$dir/ovs-vswitchd.pid")
    kill -9 "$pid"
    for _ in $(seq 1 100); do running "$pid" || break; sleep 0.05; done
    rm -f "$dir/ovs-vswitchd.pid"
    vswitchd=ovs-vswitchd
    [ "$mode" = dpdk ] && vswitchd=/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk
    "$vswitchd" "unix:$dir/db.sock" --pidfile="$dir/ovs-vswitchd.pid" --log-file="$dir/ovs-vswitchd.log" --unixctl="$dir/ovs-vswitchd.ctl" \
        --detach --no-chdir </dev/null >/dev/null 2>&1
    echo "ovs: ovs-vswitchd restarted ($(cat "$dir/ovs-vswitchd.pid"))"
    ;;
status)
    for daemon in ovsdb-server ovs-vswitchd; do
        if [ -e "$dir/$daemon.pid" ] && running "$(cat "$dir/$daemon.pid")"; then
            echo "$daemon: running ($(cat "$dir/$daemon.pid"))"
        else
            echo "$daemon: not running"
        fi
    done
    ;;
*)
    echo "usage: $0 start|stop|restart|status|env DIR [dpdk]" >&2
    exit 2
    ;;
esac
