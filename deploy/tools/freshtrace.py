#!/usr/bin/env python3
"""freshtrace.py: a capture in which every pass brings new flows and new hosts, for a detection
benchmark that inspects as live traffic makes it (a trace replayed as it is would, from its
second pass on, bring only flows already known and inspected).

    freshtrace.py --passes K --out FILE [--trace traces/mix-a.pcap]

Writes K copies of the trace one after the other, copy p dated p days after the trace; in copy p every
IP address of every frame's outer header (IPv4 and IPv6, after up to two VLAN tags; ARP's too)
has p XORed into its second and third bytes, so each copy's hosts and flows are the copy's
own, and within a copy hosts and flows stand to each other as in the trace (copy 0 is the
trace itself). Payloads, ports and everything else stay as they were.
"""
import argparse
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pcapcheck  # noqa: E402


def rewrite(frame, p):
    """`frame` with `p` XORed into bytes 1-2 of each address of its outer IP (or ARP) header."""
    if p == 0 or len(frame) < 14:
        return frame
    f = bytearray(frame)
    etype, l3 = pcapcheck.network_layer(frame)
    if etype == 0x0800 and len(f) >= l3 + 20:
        offsets = (l3 + 12, l3 + 16)
    elif etype == 0x86DD and len(f) >= l3 + 40:
        offsets = (l3 + 8, l3 + 24)
    elif etype == 0x0806 and len(f) >= l3 + 28:
        offsets = (l3 + 14, l3 + 24)
    else:
        return bytes(f)
    for o in offsets:
        f[o + 1] ^= (p >> 8) & 0xFF
        f[o + 2] ^= p & 0xFF
    return bytes(f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--passes', type=int, required=True)
    parser.add_argument('--out', required=True)
    parser.add_argument('--trace', default=os.path.join(HERE, '..', '..', 'traces', 'mix-a.pcap'))
    options = parser.parse_args()
    if not 1 <= options.passes <= 65535:
        sys.exit('freshtrace.py: --passes must be 1 to 65535')
    records = pcapcheck.read_pcap_records(options.trace)
    with open(options.out, 'wb') as out:
        out.write(struct.pack('<IHHiIII', 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for p in range(options.passes):
            for at, frame in records:
                micros = int(round((at + p * 86400) * 1e6))
                data = rewrite(frame, p)
                out.write(struct.pack('<IIII', micros // 1000000, micros % 1000000, len(data), len(data)))
                out.write(data)
    print(f'{options.passes * len(records)} frames in {options.passes} passes of {len(records)}')


if __name__ == '__main__':
    main()
