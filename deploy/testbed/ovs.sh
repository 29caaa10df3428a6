#!/usr/bin/env bash
# ovs.sh start|stop|status DIR: Open vSwitch (Debian's openvswitch-switch) with its own run,
# log and database directories under DIR, so it never touches a system OVS. ovs-vsctl and
# ovs-ofctl need the same environment: `eval "$(deploy/testbed/ovs.sh env DIR)"`.
set -euo pipefail
command=${1:-}
dir=${2:-}
[ -n "$command" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|status|env DIR" >&2; exit 2; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
export OVS_RUNDIR=$dir OVS_LOGDIR=$dir OVS_DBDIR=$dir
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
    ovs-vswitchd "unix:$dir/db.sock" --pidfile="$dir/ovs-vswitchd.pid" --log-file="$dir/ovs-vswitchd.log" \
        --detach --no-chdir </dev/null >/dev/null 2>&1
    echo "ovs: started in $dir (ovsdb-server $(cat "$dir/ovsdb-server.pid"), ovs-vswitchd $(cat "$dir/ovs-vswitchd.pid"))"
    ;;
stop)
    for daemon in ovs-vswitchd ovsdb-server; do
        if [ -e "$dir/$daemon.pid" ]; then
            pid=$(cat "$dir/$daemon.pid")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            rm -f "$dir/$daemon.pid"
        fi
    done
    echo "ovs: stopped ($dir)"
    ;;
status)
    for daemon in ovsdb-server ovs-vswitchd; do
        if [ -e "$dir/$daemon.pid" ] && kill -0 "$(cat "$dir/$daemon.pid")" 2>/dev/null; then
            echo "$daemon: running ($(cat "$dir/$daemon.pid"))"
        else
            echo "$daemon: not running"
        fi
    done
    ;;
*)
    echo "usage: $0 start|stop|status|env DIR" >&2
    exit 2
    ;;
esac
