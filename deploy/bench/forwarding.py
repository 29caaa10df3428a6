#!/usr/bin/env python3
"""Forwarding benchmark: dist-vnf against dpdk-testpmd on the same virtual devices.

    deploy/bench/forwarding.py [--runs 3] [--seconds 8] [--skip-million]

Both programs forward on one worker core from net_pcap (rx_pcap=TRACE, infinite_rx=1, so the
trace is replayed from memory as fast as the core can take it) into net_null (no-rx=1). The
reference is testpmd's io forwarding (no parsing, no state); dist-vnf parses every frame and
tracks its flow. Runs alternate between the two programs; each run's rate is the median of
SECONDS per-second rates taken after start-up and two warm-up seconds, and the figure is the
median over runs.

A two-worker part measures the worker handoff: two RX queues (net_pcap with two rx_pcap
files) and two workers. mix-a is split between the queues by flow twice: by each flow's owner
(no handoff possible), and by a hash unrelated to the owner (about half of each queue's frames
belong to the other worker and go to it through the handoff ring). Both runs replay the same
frames in all; only where they arrive differs. The ratio of the two rates of frames sent is
what handoff costs (each run with handoff against the mean of the runs without it just before
and just after) (a frame a full ring drops was received, not sent: infinite_rx overloads the
workers without pause, and the faster one's ring to the slower fills); testpmd forwards the
second split on two cores as the reference.

A further part does the same on a generated trace of 1,000,000 distinct UDP 5-tuples, so that
dist-vnf holds 1M concurrent flows (its default flow table), and prints the table's memory.
"""
import argparse
import os
import re
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIST_VNF = os.path.join(ROOT, '.build', 'release', 'dist-vnf')
MIX_A = os.path.join(ROOT, 'traces', 'mix-a.pcap')
WARMUP = 2


def run_until(args, rates_of, samples, timeout=180):
    """Runs a program until `rates_of(output)` yields `samples` per-second rates after the
    warm-up (start-up time, e.g. net_pcap loading its file, is not counted), then stops it
    with SIGINT. Returns (rates, output)."""
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         text=True, bufsize=1)
    lines = []
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            ready, _, _ = select.select([p.stdout], [], [], 1.0)
            if ready:
                line = p.stdout.readline()
                if not line:
                    break
                lines.append(line)
                rates = [r for r in rates_of(lines) if r > 0]
                if len(rates) >= WARMUP + samples:
                    break
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
        rest, _ = p.communicate(timeout=60)
        lines.append(rest or '')
    output = ''.join(lines)
    rates = [r for r in rates_of(lines) if r > 0]
    return rates[WARMUP:WARMUP + samples], output


def testpmd_rates(lines):
    rates, port = [], None
    for line in lines:
        m = re.search(r'statistics for port (\d+)', line)
        if m:
            port = int(m.group(1))
        m = re.search(r'Rx-pps:\s+(\d+)', line)
        if m and port == 0:
            rates.append(float(m.group(1)))
    return rates


def dist_rates(lines):
    return [float(m.group(1)) for line in lines for m in [re.search(r'stats: .*rx-pps (\d+)', line)] if m]


def dist_forwarded_rates(lines):
    """Frames sent per second, from the totals of consecutive statistics lines (the line's rate
    counts frames received, which with several workers include those a full handoff ring
    dropped)."""
    totals = [(int(m.group(1)), int(m.group(2)), float(m.group(3))) for line in lines
              for m in [re.search(r'stats: rx (\d+) tx (\d+) .*rx-pps (\d+)', line)] if m]
    rates = []
    for (rx0, tx0, _), (rx1, tx1, rate) in zip(totals, totals[1:]):
        if rx1 > rx0:
            rates.append(rate * (tx1 - tx0) / (rx1 - rx0))
    return rates


def testpmd_rate(trace, samples, mbuf_size, mbufs, memory, prefix):
    args = ['dpdk-testpmd', '-l', '0-1', '--no-huge', '-m', str(memory), '--no-pci', '--file-prefix', prefix,
            '--vdev', f'net_pcap0,rx_pcap={trace},infinite_rx=1', '--vdev', 'net_null0,no-rx=1', '--',
            '--forward-mode=io', '--stats-period', '1', f'--mbuf-size={mbuf_size}', f'--total-num-mbufs={mbufs}']
    rates, out = run_until(args, testpmd_rates, samples)
    if not rates:
        sys.exit('testpmd printed no rate:\n' + out[-3000:])
    return statistics.median(rates)


def dist_rate(trace, samples, mbuf_size, mbufs, memory, prefix, flows=None, extra=('--no-detection',)):
    args = [DIST_VNF, '-l', '0-1', '--no-huge', '-m', str(memory), '--no-pci', '--file-prefix', prefix,
            '--vdev', f'net_pcap0,rx_pcap={trace},infinite_rx=1', '--vdev', 'net_null0,no-rx=1', '--',
            '--id', 'bench', '--stats-period', '1', '--mbuf-size', str(mbuf_size), '--mbufs', str(mbufs)]
    args += list(extra)
    if flows:
        args += ['--flows', str(flows)]
    rates, out = run_until(args, dist_rates, samples)
    memory_line = re.search(r'flow tables: ([\d.]+) MiB', out)
    active = re.findall(r'stats: .* flows (\d+) ', out)
    if not rates:
        sys.exit('dist-vnf printed no rate:\n' + out[-3000:])
    return statistics.median(rates), (float(memory_line.group(1)) if memory_line else None), \
        (int(active[-1]) if active else 0)


def queue_traces(directory, workers=2):
    """mix-a split into one pcap per RX queue, twice: by each flow's owner (dist-vnf's owner
    function, computed apart), and by a hash of the flow that has nothing to do with its owner
    (CRC-32 of its key), so that about half of each queue's flows belong to another worker. The
    two splits hold the same frames (each flow's frames all on one queue), so the two runs differ
    only in where frames arrive, not in what the queues replay or how much memory it takes."""
    sys.path.insert(0, os.path.join(ROOT, 'deploy', 'tools'))
    sys.path.insert(0, os.path.join(ROOT, 'Tests', 'integration'))
    import ipaddress
    import zlib
    import pcapcheck
    from support import flow_owner
    owned = [[] for _ in range(workers)]
    crossed = [[] for _ in range(workers)]
    for frame in pcapcheck.read_pcap(MIX_A):
        key = pcapcheck.flow_of(frame)
        owner = queue = 0
        if key:
            proto, _, a, b = key
            ends = [(ipaddress.ip_address(e[0]), int.from_bytes(e[1], 'big') if isinstance(e[1], bytes) else e[1]) for e in (a, b)]
            owner = flow_owner(str(ends[0][0]), str(ends[1][0]), ends[0][1], ends[1][1], proto, workers)
            queue = zlib.crc32(repr(sorted(ends)).encode() + bytes([proto])) % workers
        owned[owner].append(frame)
        crossed[queue].append(frame)
    paths = {}
    for name, parts in (('owned', owned), ('crossed', crossed)):
        paths[name] = []
        for w, frames in enumerate(parts):
            path = os.path.join(directory, f'{name}-{w}.pcap')
            pcapcheck.write_pcap(path, frames)
            paths[name].append(path)
    return paths


def two_queue_args(traces):
    return ['--vdev', 'net_pcap0,' + ','.join(f'rx_pcap={t}' for t in traces) + ',infinite_rx=1',
            '--vdev', 'net_null0,no-rx=1']


def testpmd_two(traces, samples, prefix):
    # (infinite_rx keeps each queue's copy of the trace in mbufs: two copies of mix-a.)
    args = ['dpdk-testpmd', '--lcores', '0@0,1@0,2@1', '--no-huge', '-m', '3072', '--no-pci', '--file-prefix', prefix,
            *two_queue_args(traces), '--', '--forward-mode=io', '--stats-period', '1', '--mbuf-size=9344',
            '--total-num-mbufs=150000', '--rxq=2', '--txq=2', '--nb-cores=2']
    rates, out = run_until(args, testpmd_rates, samples)
    if not rates:
        sys.exit('testpmd printed no rate:\n' + out[-3000:])
    return statistics.median(rates)


def dist_two(traces, samples, prefix):
    args = [DIST_VNF, '--lcores', '0@0,1@0,2@1', '--no-huge', '-m', '3072', '--no-pci', '--file-prefix', prefix,
            *two_queue_args(traces), '--', '--id', 'bench', '--stats-period', '1', '--mbuf-size', '9216',
            '--mbufs', '150000', '--flows', '65536', '--no-detection']
    rates, out = run_until(args, dist_forwarded_rates, samples)
    if not rates:
        sys.exit('dist-vnf printed no rate:\n' + out[-3000:])
    handoff = re.findall(r'handoff (w0 \d+/\d+/\d+ w1 \d+/\d+/\d+)', out)
    return statistics.median(rates), (handoff[-1] if handoff else '')


CORE_LATENCY = os.path.join(ROOT, '.build', 'release', 'dist-core-latency')


def core_latency():
    """How long a cache line written on CPU 0 takes to be seen on CPU 1 now, in ns (None without
    the tool). On a virtual machine it is where the host has the two vCPUs at that moment."""
    if not os.path.exists(CORE_LATENCY):
        return None
    out = subprocess.run([CORE_LATENCY, '0', '1', '300'], capture_output=True, text=True).stdout
    m = re.search(r'core-latency (\d+) ns', out)
    return int(m.group(1)) if m else None


def placement(latencies):
    """The cores' placement over a run, from the latencies taken around it: a handed-off frame's
    cost is mostly cache lines crossing between the cores, so runs compare only within one."""
    if not latencies or None in latencies:
        return 'unknown'
    worst = max(latencies)
    return 'sharing a cache (<= 50 ns)' if worst <= 50 else 'one socket (<= 150 ns)' if worst <= 150 else 'apart (> 150 ns)'


def two_workers(options):
    with tempfile.TemporaryDirectory() as d:
        traces = queue_traces(d)
        print(f'== mix-a on two RX queues and two workers (net_pcap -> net_null), {options.runs} runs each')
        ratios, costs, by_placement = [], [], {}
        # Each run with handoff is set against the mean of the runs without it just before and
        # just after (the last one opens the next run), so that a host speeding up or slowing
        # down over the minute favours neither.
        owned = [dist_two(traces['owned'], options.seconds, 'bench-dvo')[0]]
        for run in range(options.runs):
            ref = testpmd_two(traces['crossed'], options.seconds, f'bench-tp2{run}')
            latencies = [core_latency()]
            spread, handoff = dist_two(traces['crossed'], options.seconds, f'bench-dvs{run}')
            latencies.append(core_latency())
            owned.append(dist_two(traces['owned'], options.seconds, f'bench-dvo{run}')[0])
            latencies.append(core_latency())
            alone = (owned[-2] + owned[-1]) / 2
            ratios.append(spread / ref)
            costs.append(1 - spread / alone)
            where = placement(latencies)
            by_placement.setdefault(where, []).append(costs[-1])
            print(f'run {run + 1}: testpmd {ref / 1e6:.2f} Mpps; dist-vnf each flow at its owner\'s queue {alone / 1e6:.2f} Mpps '
                  f'(the mean of {owned[-2] / 1e6:.2f} before and {owned[-1] / 1e6:.2f} after), '
                  f'half of the flows at the other queue {spread / 1e6:.2f} Mpps (handed off/received/ring full per worker: '
                  f'{handoff}); handoff costs {100 * (1 - spread / alone):.1f}%; a line crossed the cores in '
                  f'{" / ".join(str(x) for x in latencies)} ns before, between and after: {where}')
        print(f'median: handoff costs {100 * statistics.median(costs):.1f}% of the rate (target <= 20%); '
              f'dist-vnf with handoff / testpmd {statistics.median(ratios):.2f}')
        for where, values in sorted(by_placement.items()):
            print(f'  cores {where}: handoff costs {100 * statistics.median(values):.1f}% (median of {len(values)} runs: '
                  f'{", ".join(f"{100 * v:.0f}" for v in values)})')


def million_flow_trace(path, count=1_000_000):
    """A pcap of `count` 64-byte UDP frames, each its own 5-tuple (198.18.0.0/15 addresses)."""
    eth = bytes.fromhex('020000000002020000000001') + b'\x08\x00'
    header = struct.Struct('>BBHHHBBH4s4sHHHH')
    record = struct.Struct('<IIII')
    with open(path, 'wb') as f:
        f.write(struct.pack('<IHHiIII', 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        payload = b'\x00' * 18
        for i in range(count):
            src = bytes([198, 18 + (i >> 24 & 1), i >> 16 & 0xFF, i >> 8 & 0xFF])
            dst = bytes([198, 19, i & 0xFF, 1])
            ip = header.pack(0x45, 0, 20 + 8 + len(payload), 0, 0, 64, 17, 0, src, dst,
                             1024 + (i & 0x7FFF), 53, 8 + len(payload), 0)
            frame = eth + ip + payload
            f.write(record.pack(0, 0, len(frame), len(frame)))
            f.write(frame)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--seconds', type=int, default=5, help='seconds measured per run, after warm-up')
    parser.add_argument('--skip-million', action='store_true')
    parser.add_argument('--skip-one-worker', action='store_true')
    parser.add_argument('--skip-two-workers', action='store_true')
    options = parser.parse_args()
    if not os.path.exists(DIST_VNF):
        sys.exit(f'{DIST_VNF} is missing: run deploy/setup.sh (or swift build -c release)')

    if not options.skip_two_workers:
        two_workers(options)
    if not options.skip_one_worker:
        one_worker(options)
    if not options.skip_million:
        million(options)


def one_worker(options):
    print(f'== mix-a ({MIX_A}), one worker core, net_pcap infinite_rx -> net_null, {options.runs} runs each')
    reference, ours = [], []
    for run in range(options.runs):
        ref = testpmd_rate(MIX_A, options.seconds, 9344, 65535, 1536, f'bench-tp{run}')
        dist, _, _ = dist_rate(MIX_A, options.seconds, 9216, 65535, 1536, f'bench-dv{run}', flows=65536)
        reference.append(ref)
        ours.append(dist)
        print(f'run {run + 1}: testpmd {ref / 1e6:.2f} Mpps, dist-vnf {dist / 1e6:.2f} Mpps, ratio {dist / ref:.2f}')
    ref_m, ours_m = statistics.median(reference), statistics.median(ours)
    print(f'median: testpmd {ref_m / 1e6:.2f} Mpps, dist-vnf {ours_m / 1e6:.2f} Mpps, '
          f'dist-vnf/testpmd {ours_m / ref_m:.2f} (target >= 0.60)')


def million(options):
    with tempfile.TemporaryDirectory() as d:
        trace = os.path.join(d, 'million.pcap')
        million_flow_trace(trace)
        print('== 1,000,000 distinct UDP flows (generated), default flow table (1,048,576 flows)')
        reference, ours = [], []
        memory, active = None, 0
        seconds = options.seconds
        for run in range(options.runs):
            ref = testpmd_rate(trace, seconds, 256, 1_100_000, 2048, f'bench-tpm{run}')
            dist, memory, active = dist_rate(trace, seconds, 256, 1_100_000, 2048, f'bench-dvm{run}')
            reference.append(ref)
            ours.append(dist)
            print(f'run {run + 1}: testpmd {ref / 1e6:.2f} Mpps, dist-vnf {dist / 1e6:.2f} Mpps '
                  f'({active} flows active), ratio {dist / ref:.2f}')
        ref_m, ours_m = statistics.median(reference), statistics.median(ours)
        print(f'median: testpmd {ref_m / 1e6:.2f} Mpps, dist-vnf {ours_m / 1e6:.2f} Mpps with {active} flows, '
              f'dist-vnf/testpmd {ours_m / ref_m:.2f}; flow table memory {memory} MiB (limit 256 MiB)')


if __name__ == '__main__':
    main()
