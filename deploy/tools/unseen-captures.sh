#!/usr/bin/env bash
# Detection parity with Debian's prads on captures the project was not built on: the test
# captures in the source packages of tcpdump (hundreds of crafted and fuzzed frames, each file
# a parser bug of tcpdump's) and nDPI (real traffic of some 190 applications; mix-a was cut from
# a later nDPI's captures, so the two overlap). Fetches both from deb.debian.org (checked by
# SHA-256), merges each one's Ethernet pcap files into one capture (pcapmerge.py), and runs
# test_detection's parity check on both (DIST_EXTRA_PCAPS), which prints precision and recall
# and names every record only one side has.
#   deploy/tools/unseen-captures.sh [WORKDIR]     (needs the release build and prads)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=${1:-$(mktemp -d)}
mkdir -p "$work"
fetch() {  # NAME URL SHA256
    if [ ! -f "$work/$1" ]; then
        curl -fsS -o "$work/$1.part" "$2"
        mv "$work/$1.part" "$work/$1"
    fi
    echo "$3  $work/$1" | sha256sum -c --quiet -
}
pool=http://deb.debian.org/debian/pool/main
fetch tcpdump.tar.gz "$pool/t/tcpdump/tcpdump_4.99.3.orig.tar.gz" \
    ad75a6ed3dc0d9732945b2e5483cb41dc8b4b528a169315e499c6861952e73b3
fetch ndpi.tar.gz "$pool/n/ndpi/ndpi_4.2.orig.tar.gz" \
    e54ce8fe13adc5d747be7553513657fae78f796e0bd459e122c280cc06ce4daf
for name in tcpdump ndpi; do
    mkdir -p "$work/$name"
    tar xzf "$work/$name.tar.gz" -C "$work/$name" --wildcards '*/tests/*.pcap*' '*/tests/pcap/*'  2>/dev/null || true
    python3 "$root/deploy/tools/pcapmerge.py" "$work/$name.pcap" $(find "$work/$name" -name '*.pcap*' -type f)
done
cd "$root/Tests/integration"
DIST_EXTRA_PCAPS="$work/tcpdump.pcap:$work/ndpi.pcap" python3 -m pytest -q -s test_detection.py -k user_captures
