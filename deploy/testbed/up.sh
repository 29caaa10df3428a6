# The test bed's `up` (see testbed.sh): its helpers and its steps, each a function that reads
# and sets the options up() declares (bash scopes a function's locals to its callees).
# Sourced by testbed.sh, which defines say, running, ovs, ovs_env, down, start_controller and
# control_tls and the paths ($dir, $prefix, the binaries).

link() {  # link NAME_IN_NS NS NAME_ON_SWITCH
    ip link add "$3" type veth peer name "$1" netns "$2"
    ip netns exec "$2" sysctl -qw "net.ipv6.conf.$1.disable_ipv6=1"
    sysctl -qw "net.ipv6.conf.$3.disable_ipv6=1"
    ip netns exec "$2" ip link set "$1" mtu 9000 up
    ip link set "$3" mtu 9000 up
}

shape() {  # shape LINK [NS] RATE: a tbf rate limit on LINK's egress
    local cmd=(tc qdisc replace dev "$1" root tbf rate "$3" burst 96kb latency 50ms)  # burst above the largest (GSO) packet
    if [ -n "$2" ]; then ip netns exec "$2" "${cmd[@]}"; else "${cmd[@]}"; fi
}

proxy() {  # proxy NAME LISTEN TARGET: a control-link delay proxy (paper and fast-control profiles)
    python3 "$here/testbed/delayproxy.py" "$2" "$3" --delay-ms "$control_delay_ms" --rate-mbit "$control_mbit" >"$dir/$1.log" 2>&1 &
    echo $! >"$dir/$1.pid"
    for _ in $(seq 1 50); do grep -q "^delayproxy:" "$dir/$1.log" 2>/dev/null && return 0; sleep 0.1; done
    say "delay proxy $1 did not start: $(cat "$dir/$1.log")" >&2
    return 1
}

vnf_workers() {  # vnf_workers I WORKERS: VNF I's worker count (one count for all, or one per VNF)
    local counts=(${2//,/ })
    echo "${counts[$(( ($1 - 1) < ${#counts[@]} ? $1 - 1 : ${#counts[@]} - 1 ))]}"
}

vnf_megabytes() {  # vnf_megabytes W: a VNF's DPDK memory on the DPDK switch, for W workers. Its
    # pool of 12 kB mbufs fills 4,096 RX and TX descriptors a queue, and with several workers the
    # handoff rings' 4,096 a worker (about 12.6 MB a worker for each), besides the caches.
    [ "$1" -gt 1 ] && echo $((160 * $1 + 160)) || echo 320
}

hugepages() {  # hugepages VNFS WORKERS: enough free 2 MB pages for the switch (1 GB: its jumbo
    # mbufs), dist-wire (256 and 128 MB) and each VNF (vnf_megabytes)
    local free total megabytes=$((1024 + 384)) i need
    for i in $(seq 1 "$1"); do megabytes=$((megabytes + $(vnf_megabytes "$(vnf_workers "$i" "$2")"))); done
    need=$((megabytes / 2 + 48))
    free=$(awk '/^HugePages_Free/ {print $2}' /proc/meminfo)
    total=$(awk '/^HugePages_Total/ {print $2}' /proc/meminfo)
    [ "$free" -ge "$need" ] && return 0
    echo "$total" >"$dir/hugepages"
    "$root/hugepage-setup.sh" $((total - free + need)) >/dev/null
}

record() {  # record N: dist-wire records the sink and, mirrored, what the switch sends each VNF
    local vdevs=(--vdev "net_virtio_user0,path=$dir/sink.vhost,server=1,queue_size=4096") outs=$dir/sink.pcap i
    for i in $(seq 1 "$1"); do
        ovs-vsctl add-port br0 "$prefix-m$i" -- set interface "$prefix-m$i" type=dpdkvhostuserclient \
            "options:vhost-server-path=$dir/mirror$i.vhost" mtu_request=9000 ofport_request=$((20 + i)) \
            -- --id=@v get port "$prefix-v$i" -- --id=@m get port "$prefix-m$i" \
            -- --id=@r create mirror name="to-vnf$i" select-dst-port=@v output-port=@m \
            -- add bridge br0 mirrors @r >/dev/null
        vdevs+=(--vdev "net_virtio_user$i,path=$dir/mirror$i.vhost,server=1,queue_size=4096")
        outs=$outs,$dir/to-vnf$i.pcap
    done
    # Ahead of the VNFs on their CPU: a destination releasing what it held sends faster than
    # the rate it came at, and a recorder that waits for the CPU loses frames at the switch
    # (a full ring; at 50,000 pps, hundreds per Move under nice -10). Real-time, it runs as
    # soon as its idle sleep ends; it sleeps whenever its rings are empty.
    local first=(nice -n -10)
    if chrt -f 1 true 2>/dev/null; then first=(chrt -f 1); fi
    "${first[@]}" "$wire_bin" --lcores 0@0 --in-memory --single-file-segments -m 256 --no-pci --file-prefix "$prefix-recorder" "${vdevs[@]}" \
        -- record --out "$outs" >"$dir/recorder.log" 2>&1 &
    echo $! >"$dir/recorder.pid"
}

# Namespaces of this prefix from before: a live one (a mount point) is another test bed's, and
# up stops with its name; a bare file is what a machine restored from a disk image keeps of
# one (/run/netns can live on disk), and goes.
leftovers() {
    local f live=()
    for f in /run/netns/"$prefix"-*; do
        [ -e "$f" ] || continue
        if mountpoint -q "$f"; then live+=("${f##*/}"); else rm -f "$f"; fi
    done
    [ ${#live[@]} -eq 0 ] && return 0
    say "namespaces ${live[*]} belong to a test bed that is up; bring it down (DIST_TESTBED_DIR=ITS_DIR $0 down) first" >&2
    exit 1
}

up() {
    local vnfs=2 workers=1 profile=none channel_drop=0 control_mbit=0 control_delay_ms=0 switch=kernel flows=65536
    up_options "$@"
    up_prepare
    # A failure half way leaves nothing behind (errtrace: the trap fires in the steps too).
    set -o errtrace
    trap 'say "up failed at line $LINENO ($BASH_COMMAND); cleaning up" >&2; down >/dev/null' ERR
    up_links
    up_switch
    up_vnfs
    up_wait
    echo "$vnfs" >"$dir/vnfs"
    trap - ERR
    if [ "$switch" = dpdk ]; then
        local port
        for port in "$prefix-sink" $(for i in $(seq 1 "$vnfs"); do echo "$prefix-v$i $prefix-m$i"; done); do
            for _ in $(seq 1 100); do [ "$(ovs-vsctl get interface "$port" link_state)" = up ] && break; sleep 0.1; done
            [ "$(ovs-vsctl get interface "$port" link_state)" = up ] || { say "vhost-user port $port did not come up" >&2; down >/dev/null; exit 1; }
        done
    fi
    say "up: $vnfs VNFs, switch br0 ($switch) under dist-controller, profile $profile, source $prefix-src, sink $prefix-sink; state in $dir"
}

up_options() {  # the options, checked
    while [ $# -gt 0 ]; do
        case "$1" in
        --vnfs) vnfs=$2; shift 2 ;;
        --workers) workers=$2; shift 2 ;;
        --profile) profile=$2; shift 2 ;;
        --channel-drop) channel_drop=$2; shift 2 ;;
        --switch) switch=$2; shift 2 ;;
        --flows) flows=$2; shift 2 ;;
        *) say "unknown option $1 (--vnfs N, --workers W, --profile none|paper|fast-control, --channel-drop PERCENT, --switch kernel|dpdk, --flows N)" >&2; exit 2 ;;
        esac
    done
    # One count for every VNF, or one per VNF (2,1: two at vnf1, one at vnf2).
    local w
    for w in ${workers//,/ }; do
        case "$w" in
        1|2|3|4) ;;
        *) say "--workers must be 1 to 4, or a list of them (2,1)" >&2; exit 2 ;;
        esac
    done
    # paper: control plane 10 Mbit/s and 10 ms one way; fast-control (the paper's OpenNF*):
    # the control plane as fast as the data plane, 100 Mbit/s and 1 ms. Both: data plane
    # 100 Mbit/s and 1 ms.
    case "$profile" in
    none) ;;
    paper) control_mbit=10 control_delay_ms=10 ;;
    fast-control) control_mbit=100 control_delay_ms=1 ;;
    *) say "profile '$profile' is not none, paper or fast-control" >&2; exit 2 ;;
    esac
    case "$flows" in ''|*[!0-9]*) say "--flows must be a number" >&2; exit 2 ;; esac
    case "$switch" in
    kernel) ;;
    dpdk) [ "$profile" = none ] || { say "--switch dpdk runs with --profile none only (its data links are vhost-user rings, with no delay line)" >&2; exit 2; } ;;
    *) say "switch '$switch' is not kernel or dpdk" >&2; exit 2 ;;
    esac
    if [ "$channel_drop" != 0 ] && [ "$profile" = none ]; then
        say "--channel-drop needs --profile paper or fast-control (the delay lines drop the frames)" >&2; exit 2
    fi
}

up_prepare() {  # the state directory: keys, certificates, what down restores
    [ -e "$dir/up" ] && { say "already up ($dir); run down first" >&2; exit 1; }
    leftovers
    for bin in "$vnf_bin" "$ctl_bin" "$distctl_bin" "$delayline_bin" "$wire_bin"; do
        [ -x "$bin" ] || { say "$bin missing: build first (deploy/setup.sh)" >&2; exit 1; }
    done
    mkdir -p "$dir"
    rm -rf "$dir/ovs" "$dir/sink.pcap" "$dir"/to-vnf*.pcap "$dir"/*.log
    touch "$dir/up"
    # DiST's channel key: the same 32 random bytes for every VNF, readable by root only.
    (umask 077; head -c 32 /dev/urandom >"$dir/channel.key")
    # The control plane's certificates: a CA of this test bed's own, one for the controller, one
    # for the switch and one per VNF (mutual TLS on OpenFlow and every southbound connection).
    rm -rf "$dir/tls"
    local names=(controller switch) k
    for k in $(seq 1 "$vnfs"); do names+=("vnf$k"); done
    "$here/make-certs.sh" "$dir/tls" "${names[@]}"
    # Open vSwitch reads its (non-DPDK) ports through packet sockets of the default receive
    # buffer size; while its main thread executes a burst of PACKET_OUTs, frames arriving on a
    # port overflow it. A larger default while the test bed is up; down restores it.
    sysctl -n net.core.rmem_default >"$dir/rmem_default"
    sysctl -qw net.core.rmem_default=4194304
    echo "$switch" >"$dir/switch"
}

up_links() {  # namespaces, data links (delay lines in a profile) and the control network
    [ "$switch" = dpdk ] && hugepages "$vnfs" "$workers"
    if [ "$switch" = kernel ]; then
        for ns in src sink; do ip netns add "$prefix-$ns"; ip netns exec "$prefix-$ns" ip link set lo up; done
        link src0 "$prefix-src" "$prefix-src"
        link sink0 "$prefix-sink" "$prefix-sink"
        ip netns exec "$prefix-src" ip addr add 198.18.0.1/24 dev src0
        ip netns exec "$prefix-sink" ip addr add 198.18.0.2/24 dev sink0
    fi
    local vnf_args=()
    for i in $(seq 1 "$vnfs"); do
        ip netns add "$prefix-vnf$i"
        ip netns exec "$prefix-vnf$i" ip link set lo up
        if [ "$switch" = dpdk ]; then
            # The data link is a vhost-user socket; the VNF's namespace keeps its control link.
            :
        elif [ "$profile" != none ]; then
            # The data link through a delay line: switch port <-> dist-delayline <-> VNF.
            ip link add "$prefix-v$i" type veth peer name "$prefix-da$i"
            for l in "$prefix-v$i" "$prefix-da$i"; do
                sysctl -qw "net.ipv6.conf.$l.disable_ipv6=1"
                ip link set "$l" mtu 9000 up
            done
            link "vnf$i" "$prefix-vnf$i" "$prefix-db$i"
            local drop=()
            # Each line drops only what its VNF sends: a frame from VNF to VNF crosses two lines
            # and runs the chance once.
            [ "$channel_drop" != 0 ] && drop=(--drop-percent "$channel_drop" --drop-udp-port 7400 --drop-from b --seed "$i")
            "$delayline_bin" --a "$prefix-da$i" --b "$prefix-db$i" --delay-ms 1 --rate-mbit 100 "${drop[@]}" >"$dir/delayline-vnf$i.log" 2>&1 &
            echo $! >"$dir/delayline-vnf$i.pid"
        else
            link "vnf$i" "$prefix-vnf$i" "$prefix-v$i"
        fi
        # The control network: a link of its own per VNF.
        link ctl0 "$prefix-vnf$i" "$prefix-c$i"
        ip addr add "198.19.$i.1/24" dev "$prefix-c$i"
        ip netns exec "$prefix-vnf$i" ip addr add "198.19.$i.2/24" dev ctl0
        if [ "$profile" != none ]; then
            shape "$prefix-c$i" "" "${control_mbit}mbit"
            shape ctl0 "$prefix-vnf$i" "${control_mbit}mbit"
            proxy "control-vnf$i" "127.0.0.1:$((7100 + i))" "198.19.$i.2:7001"
            vnf_args+=(--vnf "vnf$i=127.0.0.1:$((7100 + i))@$((10 + i))")
        else
            vnf_args+=(--vnf "vnf$i=198.19.$i.2:7001@$((10 + i))")
        fi
    done
    echo "$profile" >"$dir/profile"
    printf '%s\n' "${vnf_args[@]}" >"$dir/controller.vnfs"
}

up_switch() {  # dist-controller, Open vSwitch and its ports, the recorders
    start_controller
    local of_proto=ssl
    [ -n "${DIST_INSECURE_CONTROL:-}" ] && of_proto=tcp
    local of_target=$of_proto:127.0.0.1:6653
    if [ "$profile" != none ]; then
        proxy control-switch 127.0.0.1:6654 127.0.0.1:6653
        of_target=$of_proto:127.0.0.1:6654
    fi
    ovs start "$dir/ovs" $([ "$switch" = dpdk ] && echo dpdk) >/dev/null
    ovs_env
    # The switch classifies frames as the VNFs do: mix-a has IPv4 behind two 802.1Q tags, which
    # dist-vnf (like PRADS) parses and a Move's filter takes; with Open vSwitch's default of
    # one tag, the Move's rules (ip, nw_src=...) would not take them, and an order-preserving
    # Move's source would drop them as copies the destination got.
    ovs-vsctl set Open_vSwitch . other_config:vlan-limit=2
    ovs-vsctl add-br br0 -- set bridge br0 datapath_type=netdev protocols=OpenFlow13 fail_mode=secure \
        other-config:disable-in-band=true
    if [ "$switch" = dpdk ]; then
        # The source is a vhost-user server port of the switch (each replay connects to it);
        # the sink is dist-wire's recorder, as is the mirror of what the switch sends each VNF.
        ovs-vsctl add-port br0 "$prefix-src" -- set interface "$prefix-src" type=dpdkvhostuser mtu_request=9000 ofport_request=1
        ovs-vsctl add-port br0 "$prefix-sink" -- set interface "$prefix-sink" type=dpdkvhostuserclient \
            "options:vhost-server-path=$dir/sink.vhost" mtu_request=9000 ofport_request=2
    else
        ovs-vsctl add-port br0 "$prefix-src" -- set interface "$prefix-src" ofport_request=1
        ovs-vsctl add-port br0 "$prefix-sink" -- set interface "$prefix-sink" ofport_request=2
    fi
    for i in $(seq 1 "$vnfs"); do
        if [ "$switch" = dpdk ]; then
            # (The MTU is set with the port: a later change reconnects the vhost-user socket.)
            ovs-vsctl add-port br0 "$prefix-v$i" -- set interface "$prefix-v$i" type=dpdkvhostuserclient \
                "options:vhost-server-path=$dir/vnf$i.vhost" mtu_request=9000 ofport_request=$((10 + i))
        else
            ovs-vsctl add-port br0 "$prefix-v$i" -- set interface "$prefix-v$i" ofport_request=$((10 + i))
        fi
    done
    ovs-vsctl set-ssl "$dir/tls/switch.key" "$dir/tls/switch.pem" "$dir/tls/ca.pem"
    ovs-vsctl set-controller br0 "$of_target"
    # What reaches the sink, and what leaves the switch towards each VNF (the order reference).
    if [ "$switch" = dpdk ]; then
        record "$vnfs"
    else
        ip netns exec "$prefix-sink" tcpdump -i sink0 -U -w "$dir/sink.pcap" -s 0 >"$dir/sink-tcpdump.log" 2>&1 &
        echo $! >"$dir/sink-tcpdump.pid"
    fi
    # (Where the switch sends, before the data link's delay line: the two lines queue
    # differently, so frames sent to two VNFs after it seem out of the order the switch sent
    # them in. An order-preserving Move's first phase sends one flow to both.)
    for i in $(seq 1 "$vnfs"); do
        [ "$switch" = dpdk ] && break
        local at=(ip netns exec "$prefix-vnf$i" tcpdump -i "vnf$i")
        [ "$profile" != none ] && at=(tcpdump -i "$prefix-da$i")
        "${at[@]}" -Q in -U -w "$dir/to-vnf$i.pcap" -s 0 --time-stamp-precision=nano \
            >"$dir/to-vnf$i-tcpdump.log" 2>&1 &
        echo $! >"$dir/to-vnf$i-tcpdump.pid"
    done
}

up_vnfs() {  # every dist-vnf, in its namespace
    local trace=()
    for i in $(seq 1 "$vnfs"); do
        [ -n "${DIST_CHANNEL_TRACE:-}" ] && trace=(--channel-trace "$dir/vnf$i-channel.trace")
        # Every other VNF is a channel peer (a Move may go to it, and nowhere else).
        local peers=() j
        for j in $(seq 1 "$vnfs"); do [ "$j" != "$i" ] && peers+=(--channel-peer "198.18.100.$j:7400#$((3900 + j))"); done
        # Two CPUs on the test machine: each VNF's worker gets its own, spread across VNFs, and
        # yields it when idle (OVS, tcpreplay and the other VNF share them).
        # The transfer lcore (2) shares the main lcore's CPU: both are idle but for a Move.
        # With several workers, worker k takes CPU (i + k) % 2.
        local n
        n=$(vnf_workers "$i" "$workers")
        local cores="0@$((i % 2))" k
        for k in $(seq 1 "$n"); do cores="$cores,$k@$(((i + k) % 2))"; done
        cores="$cores,$((n + 1))@$((i % 2))"
        # DPDK switch: its PMD thread has CPU 1 to itself; every VNF lcore shares CPU 0.
        [ "$switch" = dpdk ] && cores="(0-$((n + 1)))@0"
        local eal=(--no-huge -m 512 --vdev "net_af_packet0,iface=vnf$i,qpairs=$n,blocksz=12288,framesz=12288,framecnt=1024")
        # (vhost-user shares the VNF's packet memory with the switch: hugepages, in one file
        # per segment list, as a vhost-user device takes only a few memory regions.)
        # Rings of 4,096: a source redirecting everything mid-Move shares CPU 0 with the other
        # VNF and the recorder, and at 75,000 pps a 1,024 ring filled while it waited for it.
        local rings=()
        [ "$switch" = dpdk ] && eal=(--in-memory --single-file-segments -m "$(vnf_megabytes "$n")"
            --vdev "net_virtio_user0,path=$dir/vnf$i.vhost,server=1,queues=$n,queue_size=4096") && rings=(--rxd 4096 --txd 4096)
        ip netns exec "$prefix-vnf$i" "$vnf_bin" --lcores "$cores" "${eal[@]}" --no-pci --file-prefix "$prefix-vnf$i" \
            -- --id "vnf$i" --flows "$flows" --mbuf-size 12288 --idle-sleep 50 "${rings[@]}" \
            --admin "$dir/vnf$i.sock" --control "198.19.$i.2:7001" --asset-log "$dir/vnf$i-assets.log" \
            --metrics "198.19.$i.2:9100" \
            $(control_tls "vnf$i" --control-cert --control-key --control-ca) \
            --channel "198.18.100.$i:7400" --channel-vlan $((3900 + i)) --channel-key "$dir/channel.key" "${peers[@]}" "${trace[@]}" >"$dir/vnf$i.log" 2>&1 &
        echo $! >"$dir/vnf$i.pid"
    done
}

up_wait() {  # until every VNF listens, the controller holds the switch and the VNFs, and the recorders record
    for i in $(seq 1 "$vnfs"); do
        # (Up to 30 s: dist-vnf holds EAL's output until EAL is up, and on the DPDK switch one
        # VNF in about twenty took over 10 s to get there, its log still empty.)
        for _ in $(seq 1 300); do [ -S "$dir/vnf$i.sock" ] && break; sleep 0.1; done
        [ -S "$dir/vnf$i.sock" ] || { say "vnf$i did not start:" >&2; cat "$dir/vnf$i.log" >&2; down >/dev/null; exit 1; }
    done
    # The controller has the switch's rules in, and every VNF connected. (Up to 30 s: a switch
    # that found no controller listening retries after 1, 2, 4 and 8 s.)
    local ready=
    for _ in $(seq 1 300); do
        if ovs-ofctl -O OpenFlow13 dump-flows br0 2>/dev/null | grep -q "in_port=$((10 + vnfs))" \
            && [ "$("$distctl_bin" vnf list --socket "$dir/controller.sock" 2>/dev/null | grep -c ' yes$')" = "$vnfs" ]; then
            ready=1
            break
        fi
        sleep 0.1
    done
    if [ -z "$ready" ]; then
        say "the controller did not take over the switch and the VNFs:" >&2
        cat "$dir/controller.log" >&2
        say "the switch's log:" >&2
        grep -iE 'rconn|ssl|stream|connect' "$dir/ovs/ovs-vswitchd.log" | tail -20 >&2 || true
        down >/dev/null
        exit 1
    fi
    for log in "$dir"/*tcpdump.log; do
        for _ in $(seq 1 50); do grep -q "listening on" "$log" 2>/dev/null && break; sleep 0.1; done
    done
}
