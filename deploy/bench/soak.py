#!/usr/bin/env python3
"""Soak: dist-vnf for minutes at the highest rate one worker holds, on churning flows and
spoofed sources; its resident memory must stay flat and every frame be accounted for.

    deploy/bench/soak.py [--minutes 10] [--pps N] [--flows 1000000] [--spoofed 10000000]
                         [--table 262144] [--warmup 120] [--png FILE]

dist-wire generates the traffic (ChurnTraffic: --flows UDP flows in turn, each back once a
cycle, and every 4th frame an IPv6 SYN from one of --spoofed sources in turn) into dist-vnf
over net_memif; dist-vnf, detection on, one worker, forwards into net_null. Its flow table
(--table entries, smaller than --flows) fills, expires idle flows (UDP and TCP after 0.1 s
here: each flow comes back only after the others have had their turn) and reuses their entries;
detection learns hosts from the SYNs up to its bound (1,048,576 a worker), then forgets the host
quiet longest for each new one (counted); the asset log goes to /dev/null (a record per spoofed
host would fill a disk).

Without --pps, 10-second probes find the rate first: the highest of a ladder at which dist-vnf
received all that was sent (its port dropped nothing) and sent it all on. Every 5 s the VNF's resident memory (VmRSS) is
sampled; after --warmup seconds it must stay within 5% (max against min). At the end,
`rx = tx + tx_dropped` from its final statistics, and what dist-wire sent = rx + what the port
counted dropped (no mbuf, missed).
Printed: the figures, PASS or FAIL; a PNG of memory against time if matplotlib is there.
CPUs: dist-wire and the main lcore on CPU 0, the worker on CPU 1.
"""
import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time

from dpdkproc import Process

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIST_VNF = os.path.join(ROOT, '.build', 'release', 'dist-vnf')
DIST_WIRE = os.path.join(ROOT, '.build', 'release', 'dist-wire')
COMMON = ['--no-huge', '--no-pci']


def rss_kib(process):
    with open(f'/proc/{process.process.pid}/status') as f:
        return int(re.search(r'VmRSS:\s+(\d+)', f.read()).group(1))


def start(work, tag, table):
    sock = os.path.join(work, f'{tag}.sock')
    vnf = Process('dist-vnf', [
        DIST_VNF, '--lcores', '0@0,1@1', *COMMON, '-m', '3072', '--file-prefix', f'soak{tag}',
        '--vdev', f'net_memif0,role=server,socket={sock},id=0,rsize=13', '--vdev', 'net_null0,no-rx=1',
        '--', '--id', 'soak', '--flows', str(table), '--udp-timeout', '0.1', '--tcp-timeout', '0.1',
        '--stats-period', '10', '--idle-sleep', '20', '--asset-log', '/dev/null'])
    vnf.wait_for('running;')
    return vnf, sock


def generate(sock, tag, pps, seconds, a):
    return Process('dist-wire', [DIST_WIRE, '--lcores', '0@0', *COMMON, '-m', '256', '--file-prefix', f'soakw{tag}',
                    '--vdev', f'net_memif1,role=client,socket={sock},id=0,rsize=13', '--',
                    'generate', '--pps', str(pps), '--seconds', str(seconds), '--flows', str(a.flows),
                    '--spoofed', str(a.spoofed)])


def sent_by(wire):
    for line in wire.lines:
        m = re.search(r'generated (\d+) frames in ([\d.]+) s', line)
        if m:
            return int(m.group(1)), float(m.group(2))
    raise SystemExit('dist-wire did not finish:\n' + ''.join(wire.lines[-10:]))


def final_stats(vnf):
    for line in vnf.lines:
        if line.startswith('final-stats-json: '):
            return json.loads(line[len('final-stats-json: '):])
    raise SystemExit('dist-vnf gave no final statistics:\n' + ''.join(vnf.lines[-20:]))


def accounted(stats, sent):
    """Whether every frame dist-wire sent is accounted for: received, or dropped at the port and
    counted there (no mbuf, missed); and every frame received sent on, or counted dropped."""
    port = stats['ports'][0]['stats']
    at_port = port['rx_missed'] + port['rx_nombuf'] + port['rx_errors']
    rx, tx, dropped = stats['rx_packets'], stats['tx_packets'], stats['tx_dropped']
    ok = rx + at_port == sent and rx == tx + dropped
    return ok, at_port, f'sent {sent}, rx {rx} (dropped at the port {at_port}), tx {tx}, tx_dropped {dropped}'


def probe(work, a):
    """The highest rate of the ladder that dist-vnf takes whole for 10 s."""
    best = None
    for i, pps in enumerate([500_000, 1_000_000, 2_000_000, 3_000_000, 4_000_000, 5_000_000, 6_000_000]):
        vnf, sock = start(work, f'probe{i}', a.table)
        wire = generate(sock, f'probe{i}', pps, 10, a)
        wire.process.wait()
        wire.read(0.5)
        sent, elapsed = sent_by(wire)
        vnf.stop()
        ok, at_port, detail = accounted(final_stats(vnf), sent)
        held = ok and at_port == 0 and sent / elapsed >= 0.97 * pps
        print(f'probe {pps / 1e6:.2f} Mpps: {detail}, {sent / elapsed / 1e6:.2f} Mpps sent: '
              f'{"held" if held else "not held"}', flush=True)
        if not held:
            break
        best = pps
    if best is None:
        raise SystemExit('dist-vnf did not hold even the lowest rate')
    return best


def plot(samples, warmup, path):
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        print('(no matplotlib: no PNG)')
        return
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot([t for t, _ in samples], [r / 1024 for _, r in samples], marker='.')
    ax.axvline(warmup, color='grey', linestyle='--', label='end of warm-up')
    ax.set_xlabel('seconds')
    ax.set_ylabel('dist-vnf resident memory (MiB)')
    ax.set_ylim(bottom=0)
    ax.set_title('Soak: resident memory')
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f'memory plot: {path}')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--minutes', type=float, default=10)
    parser.add_argument('--pps', type=int)
    parser.add_argument('--flows', type=int, default=1_000_000)
    parser.add_argument('--spoofed', type=int, default=10_000_000)
    parser.add_argument('--table', type=int, default=262_144, help="dist-vnf's flow table entries")
    parser.add_argument('--warmup', type=int, default=120, help='seconds before memory must be flat')
    parser.add_argument('--png', default=os.path.join(ROOT, 'deploy', 'bench', 'results', 'soak-rss.png'))
    a = parser.parse_args()
    if a.minutes <= 0 or a.flows <= 0 or a.spoofed < 0 or a.table <= 0 or a.warmup < 0:
        parser.error('--minutes, --flows and --table positive; --spoofed and --warmup not negative')
    for binary in (DIST_VNF, DIST_WIRE):
        if not os.access(binary, os.X_OK):
            sys.exit(f'{binary} is missing: swift build -c release')
    work = tempfile.mkdtemp(prefix='dist-soak-')
    pps = a.pps or probe(work, a)
    seconds = int(a.minutes * 60)
    print(f'soak: {pps / 1e6:.2f} Mpps for {seconds} s, {a.flows} flows, {a.spoofed} spoofed sources, '
          f'table {a.table}', flush=True)
    vnf, sock = start(work, 'soak', a.table)
    wire = generate(sock, 'soak', pps, seconds, a)
    samples = []
    began = time.time()
    while wire.process.poll() is None:
        samples.append((time.time() - began, rss_kib(vnf)))
        vnf.read(2.5)
        wire.read(2.5)
    wire.read(0.5)
    sent, elapsed = sent_by(wire)
    vnf.stop(timeout=60)
    stats = final_stats(vnf)
    ok, _, detail = accounted(stats, sent)
    after = [r for t, r in samples if t >= a.warmup]
    flat = bool(after) and (max(after) - min(after)) / min(after) <= 0.05
    print(f'sent {sent} frames in {elapsed:.0f} s ({sent / elapsed / 1e6:.2f} Mpps)')
    print(f'frames: {detail}: {"accounted for" if ok else "NOT accounted for"}')
    print(f'flows: created {stats["flows"]["created"]}, expired {stats["flows"]["expired"]}, '
          f'table full {stats["flows"]["table_full"]}; detection: assets {stats["detection"]["assets"]}, '
          f'records {stats["detection"]["records"]}, evicted {stats["detection"]["evicted"]}, '
          f'refused {stats["detection"]["refused"]}; merged view {stats["asset_view"]["assets"]} assets, '
          f'{stats["asset_view"]["evicted"]} evicted')
    if after:
        print(f'resident memory after {a.warmup} s: {min(after) / 1024:.0f} to {max(after) / 1024:.0f} MiB '
              f'({(max(after) - min(after)) / min(after):.1%}; median {statistics.median(after) / 1024:.0f} MiB; '
              f'at the start {samples[0][1] / 1024:.0f} MiB): {"flat" if flat else "NOT flat"}')
    plot(samples, a.warmup, a.png)
    print('PASS' if ok and flat else 'FAIL')
    sys.exit(0 if ok and flat else 1)


if __name__ == '__main__':
    main()
