#!/bin/bash
# make-certs.sh DIR [--expired] NAME...
#
# Certificates for DiST's control plane (mutual TLS between dist-controller, every dist-vnf and
# Open vSwitch): a CA in DIR/ca.pem and DIR/ca.key (made once, kept after), and for each NAME
# DIR/NAME.pem and DIR/NAME.key (ECDSA P-256, mode 0600), signed by it, valid for 825 days;
# with --expired, valid for one day in 2020 (for tests: a peer presenting it is refused).
# Needs openssl. An operator keeps ca.key offline and copies each host only its own pair and
# ca.pem.
set -euo pipefail

usage() { echo "usage: make-certs.sh DIR [--expired] NAME..." >&2; exit 2; }
[ $# -ge 2 ] || usage
dir=$1
shift
expired=
if [ "$1" = --expired ]; then expired=1; shift; fi
[ $# -ge 1 ] || usage
mkdir -p "$dir"
umask 077

if [ ! -s "$dir/ca.pem" ]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/ca.key" 2>/dev/null
    openssl req -x509 -new -key "$dir/ca.key" -sha256 -days 3650 -subj "/CN=DiST control-plane CA" \
        -out "$dir/ca.pem" 2>/dev/null
fi

for name in "$@"; do
    case "$name" in *[!A-Za-z0-9._-]*|"") echo "make-certs.sh: bad name '$name'" >&2; exit 2 ;; esac
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/$name.key" 2>/dev/null
    openssl req -new -key "$dir/$name.key" -subj "/CN=$name" -out "$dir/$name.csr" 2>/dev/null
    if [ -z "$expired" ]; then
        openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
            -sha256 -days 825 -out "$dir/$name.pem" 2>/dev/null
    else
        # (x509 -req cannot date a certificate in the past; `openssl ca` can.)
        work=$(mktemp -d)
        : >"$work/index.txt"
        cat >"$work/ca.cnf" <<EOF
[ca]
default_ca = expired
[expired]
database = $work/index.txt
new_certs_dir = $work
serial = $work/serial
default_md = sha256
policy = any
[any]
commonName = supplied
EOF
        echo 1000 >"$work/serial"
        openssl ca -batch -config "$work/ca.cnf" -cert "$dir/ca.pem" -keyfile "$dir/ca.key" -in "$dir/$name.csr" \
            -startdate 20200101000000Z -enddate 20200102000000Z -out "$dir/$name.pem" 2>/dev/null
        rm -rf "$work"
    fi
    rm -f "$dir/$name.csr"
done
rm -f "$dir/ca.srl"
