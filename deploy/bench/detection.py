#!/usr/bin/env python3
"""Detection benchmark: dist-vnf with PRADS detection against Debian's prads on traffic that
keeps bringing new flows, and against dpdk-testpmd on the same devices, in one invocation.

    deploy/bench/detection.py [--runs 3] [--passes 20] [--memory-passes 8] [--seconds 5]

1. Fresh flows, one pass read from a file: a capture of PASSES copies of mix-a, each copy with
   hosts and flows of its own (deploy/tools/freshtrace.py), so every flow's first packets are
   inspected as on live traffic. prads reads it with `prads -r` (its rate: the frames over the
   run's time less its start-up, timed on a one-frame capture); dist-vnf reads it once through
   net_pcap into net_null on one worker core, with detection on and off (its rate: the frames
   over the time from its first packet to its last, by the admin socket's counters).
2. Fresh flows from memory: a capture of MEMORY_PASSES copies, which net_pcap (infinite_rx)
   loads into mbufs before dist-vnf starts, as a NIC would have put them there; the rate is
   taken over the first time round, in which every flow is new. prads has no such mode: its
   figure stays the one from the file (reading it is a few percent of prads's time).
3. mix-a from memory, as deploy/bench/forwarding.py runs it: net_pcap with infinite_rx into
   net_null, dist-vnf with detection on and off against testpmd's io forwarding on the same
   devices. After the first pass every flow is known and inspected as far as the limits allow:
   this measures the tracking of known flows more than detection. testpmd runs before, between
   and after the two (and each run's last testpmd is the next run's first): each dist-vnf figure
   is set against the mean of the testpmd runs either side of it.
Prints the median of each over the runs, and the median of each run's own ratios (targets: at least 10x prads on fresh
flows; with detection on, at least 0.6x testpmd on mix-a from memory).
"""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import forwarding  # noqa: E402  (same runner, same devices)

ROOT = forwarding.ROOT
FRESHTRACE = os.path.join(ROOT, 'deploy', 'tools', 'freshtrace.py')
sys.path.insert(0, os.path.join(ROOT, 'deploy', 'tools'))
import pcapcheck  # noqa: E402


def prads_seconds(trace):
    with tempfile.TemporaryDirectory() as d:
        start = time.monotonic()
        subprocess.run(['prads', '-r', trace, '-l', os.path.join(d, 'prads.log')], capture_output=True, check=True)
        return time.monotonic() - start


def admin(path, request):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall((json.dumps(request) + '\n').encode())
        data = b''
        while not data.endswith(b'\n'):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


def dist_single_pass(trace, frames, prefix, detection, memory=False):
    """dist-vnf through `trace` once: frames per second from its first packet to its `frames`th.
    From the file, or (`memory`) from net_pcap's copy of it in memory (infinite_rx, which loads
    every frame into an mbuf before it starts: the first time round, every flow is new)."""
    with tempfile.TemporaryDirectory() as d:
        sock = os.path.join(d, 'admin.sock')
        # Each frame held takes a 9216-byte mbuf (mix-a has frames of up to 7314 bytes).
        mbufs, megabytes = (frames + 65536, (frames + 65536) * 9600 // (1 << 20) + 1024) if memory else (65535, 1536)
        rx = f'rx_pcap={trace},infinite_rx=1' if memory else f'rx_pcap={trace}'
        args = [forwarding.DIST_VNF, '-l', '0-1', '--no-huge', '-m', str(megabytes), '--no-pci', '--file-prefix', prefix,
                '--vdev', f'net_pcap0,{rx}', '--vdev', 'net_null0,no-rx=1', '--',
                '--id', 'bench', '--mbuf-size', '9216', '--mbufs', str(mbufs), '--flows', str(1 << 21),
                '--admin', sock] + ([] if detection else ['--no-detection'])
        p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 300
            while not os.path.exists(sock):
                if p.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f'dist-vnf did not start: {args}')
                time.sleep(0.01)
            first = None
            while time.monotonic() < deadline:
                rx = admin(sock, {'cmd': 'stats'})['rx_packets']
                now = time.monotonic()
                if rx > 0 and first is None:
                    first = (now, rx)
                if rx >= frames:
                    return (rx - first[1]) / (now - first[0])
                time.sleep(0.002)
            sys.exit('dist-vnf did not read the whole capture in time')
        finally:
            p.send_signal(signal.SIGINT)
            p.wait(timeout=60)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--passes', type=int, default=20, help='copies of mix-a in the fresh-flow capture')
    parser.add_argument('--memory-passes', type=int, default=8,
                        help='copies of mix-a in the fresh-flow capture read from memory (each frame held takes 9.6 kB)')
    parser.add_argument('--seconds', type=int, default=5, help='seconds measured per run from memory, after warm-up')
    options = parser.parse_args()
    work = tempfile.mkdtemp(prefix='dist-detection-bench-')
    fresh = os.path.join(work, 'fresh.pcap')
    subprocess.run([sys.executable, FRESHTRACE, '--passes', str(options.passes), '--out', fresh], check=True,
                   capture_output=True)
    frames = len(pcapcheck.read_pcap(fresh))
    held = os.path.join(work, 'fresh-held.pcap')
    subprocess.run([sys.executable, FRESHTRACE, '--passes', str(options.memory_passes), '--out', held], check=True,
                   capture_output=True)
    held_frames = len(pcapcheck.read_pcap(held))
    one = os.path.join(work, 'one.pcap')
    pcapcheck.write_pcap(one, pcapcheck.read_pcap(forwarding.MIX_A)[:1])
    subprocess.run(['cat', fresh], stdout=subprocess.DEVNULL, check=True)  # (in the page cache for all)
    rows = {k: [] for k in ('prads', 'fresh_on', 'fresh_off', 'held_on', 'held_off', 'mem_on', 'mem_off', 'testpmd')}
    testpmd = []  # every testpmd run in turn
    around = {'mem_on': [], 'mem_off': []}  # for each dist-vnf run, the testpmd runs either side

    def testpmd_rate(prefix):
        return forwarding.testpmd_rate(forwarding.MIX_A, options.seconds, 9216, 65535, 1536, prefix)

    for run in range(options.runs):
        start_up = prads_seconds(one)
        rows['prads'].append(frames / max(1e-3, prads_seconds(fresh) - start_up))
        rows['fresh_on'].append(dist_single_pass(fresh, frames, f'bench-fon{run}', True))
        rows['fresh_off'].append(dist_single_pass(fresh, frames, f'bench-foff{run}', False))
        rows['held_on'].append(dist_single_pass(held, held_frames, f'bench-hon{run}', True, memory=True))
        rows['held_off'].append(dist_single_pass(held, held_frames, f'bench-hoff{run}', False, memory=True))
        # testpmd, detection on, testpmd, detection off, testpmd (the last is the next run's
        # first): each dist-vnf figure is set against the mean of the testpmd runs either side
        # of it, so that a machine speeding up or slowing down over the minute favours neither.
        if not testpmd:
            testpmd.append(testpmd_rate(f'bench-pmd{run}a'))
        rows['mem_on'].append(forwarding.dist_rate(forwarding.MIX_A, options.seconds, 9216, 65535, 1536,
                                                   f'bench-det{run}', flows=65536, extra=())[0])
        testpmd.append(testpmd_rate(f'bench-pmd{run}b'))
        rows['mem_off'].append(forwarding.dist_rate(forwarding.MIX_A, options.seconds, 9216, 65535, 1536,
                                                    f'bench-nodet{run}', flows=65536)[0])
        testpmd.append(testpmd_rate(f'bench-pmd{run}c'))
        rows['testpmd'].append(statistics.mean(testpmd[-3:]))
        around['mem_on'].append(statistics.mean(testpmd[-3:-1]))
        around['mem_off'].append(statistics.mean(testpmd[-2:]))
        print(f'run {run + 1}: ' + ', '.join(f'{k} {v[-1] / 1e6:.3f} Mpps' for k, v in rows.items())
              + ' (testpmd: ' + ', '.join(f'{t / 1e6:.2f}' for t in testpmd[-3:]) + ')', flush=True)
    m = {k: statistics.median(v) for k, v in rows.items()}

    def paired(a, b):
        """The median of the runs' own ratios: a run's two figures are taken within a minute of
        each other, so the machine's slow minutes are not set against its fast ones (against
        testpmd: the mean of the testpmd runs just before and just after)."""
        return statistics.median(x / y for x, y in zip(rows[a], around[a] if b == 'testpmd' else rows[b]))

    print(f'fresh flows ({frames} frames, one pass from the file): prads {m["prads"] / 1e6:.3f} Mpps, dist-vnf '
          f'detection on {m["fresh_on"] / 1e6:.3f} Mpps ({paired("fresh_on", "prads"):.1f}x prads, target >= 10), '
          f'off {m["fresh_off"] / 1e6:.3f} Mpps')
    print(f'fresh flows ({held_frames} frames, the first time round from memory): dist-vnf detection on '
          f'{m["held_on"] / 1e6:.3f} Mpps ({paired("held_on", "prads"):.1f}x prads from the file), '
          f'off {m["held_off"] / 1e6:.3f} Mpps')
    print(f'mix-a from memory: testpmd {m["testpmd"] / 1e6:.2f} Mpps, dist-vnf detection on {m["mem_on"] / 1e6:.2f} '
          f'Mpps ({paired("mem_on", "testpmd"):.2f}x testpmd, target >= 0.6), off {m["mem_off"] / 1e6:.2f} Mpps '
          f'({paired("mem_off", "testpmd"):.2f}x)')
    print('(rates: the median of each over the runs; ratios: the median of the runs\' own ratios)')


if __name__ == '__main__':
    main()
