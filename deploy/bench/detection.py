#!/usr/bin/env python3
"""Detection benchmark: dist-vnf with PRADS detection against Debian's prads, and against
itself with detection off, in one invocation.

    deploy/bench/detection.py [--runs 3] [--seconds 5]

- prads: `prads -r mix-a.pcap -l LOG`, the trace read once from the file; its rate is the
  trace's frames over the run's wall time.
- dist-vnf: one worker core, net_pcap (rx_pcap=mix-a, infinite_rx=1) into net_null, as in
  deploy/bench/forwarding.py; the rate is the median of per-second rates after warm-up, with
  detection on (signatures from /etc/prads) and off (--no-detection).
Prints the median of each over the runs and the two ratios (targets: 20x prads, 0.5x itself).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import forwarding  # noqa: E402  (same runner, same devices)

FRAMES_IN_MIX_A = 54981


def prads_rate(trace):
    with tempfile.TemporaryDirectory() as d:
        start = time.monotonic()
        subprocess.run(['prads', '-r', trace, '-l', os.path.join(d, 'prads.log')], capture_output=True, check=True)
        return FRAMES_IN_MIX_A / (time.monotonic() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--seconds', type=int, default=5, help='seconds measured per dist-vnf run, after warm-up')
    options = parser.parse_args()
    trace = forwarding.MIX_A
    prads, on, off = [], [], []
    for run in range(options.runs):
        prads.append(prads_rate(trace))
        rate, _, _ = forwarding.dist_rate(trace, options.seconds, 9216, 65535, 1536, f'bench-det{run}', flows=65536, extra=())
        on.append(rate)
        rate, _, _ = forwarding.dist_rate(trace, options.seconds, 9216, 65535, 1536, f'bench-nodet{run}', flows=65536)
        off.append(rate)
        print(f'run {run + 1}: prads {prads[-1] / 1e6:.3f} Mpps, dist-vnf detection on {on[-1] / 1e6:.2f} Mpps, '
              f'off {off[-1] / 1e6:.2f} Mpps')
    p, d, n = statistics.median(prads), statistics.median(on), statistics.median(off)
    print(f'median: prads {p / 1e6:.3f} Mpps, dist-vnf with detection {d / 1e6:.2f} Mpps, without {n / 1e6:.2f} Mpps')
    print(f'dist-vnf (detection) / prads = {d / p:.1f}x (target >= 20); detection on / off = {d / n:.2f} (target >= 0.5)')


if __name__ == '__main__':
    main()
