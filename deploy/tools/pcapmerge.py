#!/usr/bin/env python3
"""Merges classic pcap files of Ethernet frames into one, one file after the other.

    deploy/tools/pcapmerge.py OUT.pcap IN.pcap... [--max-frame 9000]

Reads either byte order and microsecond or nanosecond stamps; skips pcapng files, other link
types and files that are not pcap at all, and stops reading a file at a record that runs past
its end. Each file keeps its own frames' spacing (capped at an hour) and starts a second after
the last one ended, so that flows of different files that happen to share addresses are
apart in time, as they were. Frames longer than --max-frame bytes are left out (the VNF's mbuf
holds one frame in one segment). Prints what it took.
"""
import argparse
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pcapcheck import read_pcap_file  # noqa: E402

ETHERNET = 1
MAX_GAP = 3600.0


def frames_of(path):
    """(seconds, frame, wire length) of each record of an Ethernet pcap file; [] for any
    other file."""
    try:
        link, records = read_pcap_file(path, whole=False)
    except (OSError, ValueError):
        return []
    return [(t, frame, max(wire, len(frame))) for t, frame, wire in records] if link == ETHERNET else []


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('out')
    parser.add_argument('inputs', nargs='+')
    parser.add_argument('--max-frame', type=int, default=9000)
    options = parser.parse_args()
    clock = 1_600_000_000.0
    files = frames = 0
    with open(options.out, 'wb') as out:
        out.write(struct.pack('<IHHiIII', 0xA1B2C3D4, 2, 4, 0, 0, 65535, ETHERNET))
        for path in sorted(options.inputs):
            records = frames_of(path)
            if not records:
                continue
            first = records[0][0]
            for stamp, frame, wire in records:
                if len(frame) > options.max_frame:
                    continue
                at = clock + max(0.0, min(stamp - first, MAX_GAP))
                whole = int(at)
                out.write(struct.pack('<IIII', whole, int((at - whole) * 1e6), len(frame), wire) + frame)
                frames += 1
            clock += max(0.0, min(records[-1][0] - first, MAX_GAP)) + 1.0
            files += 1
    print(f'{options.out}: {frames} frames from {files} files of {len(options.inputs)}')
    if not frames:
        sys.exit('no Ethernet frames found')


if __name__ == '__main__':
    main()
