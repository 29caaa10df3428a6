#!/usr/bin/env bash
# hugepage-setup.sh [COUNT]: reserve COUNT 2 MB hugepages (default 1024 = 2 GB) and mount
# hugetlbfs at /dev/hugepages, where the kernel allows it. Idempotent; says what it did.
# Without hugepages, run dist-vnf with the EAL options --no-huge -m MB instead.
set -euo pipefail
count=${1:-1024}
case "$count" in ''|*[!0-9]*) echo "usage: $0 [COUNT]  (COUNT: number of 2 MB pages)" >&2; exit 2;; esac
sys=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
mnt=/dev/hugepages

if [ ! -e "$sys" ]; then
    echo "hugepages: this kernel offers no 2 MB hugepages ($sys missing); use --no-huge -m MB" >&2
    exit 1
fi
have=$(cat "$sys")
if [ "$have" -ge "$count" ]; then
    echo "hugepages: $have x 2 MB already reserved (asked $count): nothing to do"
else
    if ! { echo "$count" > "$sys"; } 2>/dev/null; then
        echo "hugepages: cannot write $sys (not root, or not allowed here); use --no-huge -m MB" >&2
        exit 1
    fi
    got=$(cat "$sys")
    echo "hugepages: reserved $got x 2 MB (asked $count, had $have)"
    if [ "$got" -lt "$count" ]; then
        echo "hugepages: the kernel granted fewer than asked (memory fragmented?); DPDK will use what is there" >&2
    fi
fi
if grep -qs " $mnt hugetlbfs " /proc/mounts; then
    echo "hugepages: hugetlbfs already mounted at $mnt"
else
    mkdir -p "$mnt"
    if mount -t hugetlbfs -o pagesize=2M nodev "$mnt" 2>/dev/null; then
        echo "hugepages: mounted hugetlbfs at $mnt"
    else
        echo "hugepages: could not mount hugetlbfs at $mnt; use --no-huge -m MB" >&2
        exit 1
    fi
fi
