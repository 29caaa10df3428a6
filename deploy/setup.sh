#!/usr/bin/env bash
# Installs what DiST needs on Debian 12 and builds it (release). Used by the README's two
# commands; safe to run again. Needs root for apt-get (or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(libdpdk-dev dpdk dpdk-dev libnuma-dev libpcap-dev libpcre2-dev libhyperscan-dev libzstd-dev libssl-dev prads openvswitch-switch openvswitch-switch-dpdk tcpreplay tcpdump tshark openssl python3 python3-matplotlib iproute2 valgrind)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

echo "== installing Debian packages: ${PACKAGES[*]}"
export DEBIAN_FRONTEND=noninteractive
as_root apt-get update -qq
as_root apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null

# The metrics tests read a scrape with Prometheus's own Python parser.
python3 -c 'import prometheus_client' 2>/dev/null \
    || python3 -m pip install --quiet --root-user-action=ignore prometheus_client \
    || echo "setup: could not install prometheus_client from PyPI; the metrics tests will be skipped" >&2

if ! command -v swift >/dev/null 2>&1; then
    if [ -x /opt/swift/usr/bin/swift ]; then
        export PATH=/opt/swift/usr/bin:$PATH
    else
        echo "setup: Swift 6.1 or newer is needed (swift not on PATH, none in /opt/swift)" >&2
        exit 1
    fi
fi

echo "== building (swift build -c release)"
swift build -c release 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || true
for bin in dist-vnf dist-controller distctl dist-delayline dist-wire; do
    test -x ".build/release/$bin" || { echo "setup: build failed ($bin missing)" >&2; exit 1; }
done
echo "== built .build/release/{dist-vnf,dist-controller,distctl,dist-delayline,dist-wire}"
