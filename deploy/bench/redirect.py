#!/usr/bin/env python3
"""Redirect benchmark on DPDK: the highest rate a DiST Move carries from source to destination.

    deploy/bench/redirect.py [--runs 3] [--seconds 4] [--size 300] [--rates 250000,500000,...]

Three DPDK processes on shared-memory links (net_memif): dist-wire replays a generated trace of
UDP packets (256 flows) at a set rate, paced by the TSC, into the Move's source; the source's
port 1 is its link to the destination, which forwards what it gets into net_null. At each rate,
in turn:

  forwarded   no Move: the source's worker forwards every packet over the link (no channel, no
              cipher) and the destination forwards it on; the figure is the destination's rate;
  redirected  a loss-free Move of every flow (late locking, early release) is opened on the
              source through its southbound API and never ended by a switch update: the
              source's worker redirects every packet to its transfer lcore, which seals them
              into channel frames (AES-256-GCM); the destination's transfer lcore opens them
              and hands them to its worker, which processes and forwards them. The figure is
              the destination's `delivered` rate.

A rate is carried when the Move's delivered rate is at least 97% of the offered rate, no packet
met a full transfer ring in the measured seconds and the Move was not given up (packets that met
a full ring as the Move began are printed apart: there the Move's start, not its rate, is
measured, and on two shared CPUs a scheduler's slice decides it). The rates are tried from low
to high until one is not carried (a given-up Move is the loss-free answer to a channel that
falls behind: the source processes what it kept). Each run starts all three processes afresh.
Printed: each rate's figures, then per run the highest rate carried, and their median.

CPUs (two here): dist-wire, both main lcores and both workers share CPU 0; the two transfer
lcores share CPU 1. Also printed: each transfer lcore's load (the share of the time its rounds
that did work took, from its statistics line) and the packets the source's transfer lcore
redirected per busy second, an estimate of what it sustains on a core of its own.
"""
import argparse
import json
import os
import re
import shutil
import socket
import statistics
import struct
import sys
import tempfile
import time

from dpdkproc import Process

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIST_VNF = os.path.join(ROOT, '.build', 'release', 'dist-vnf')
DIST_WIRE = os.path.join(ROOT, '.build', 'release', 'dist-wire')
SOURCE_MAC, DESTINATION_MAC, WIRE_MAC = '02:00:00:00:00:01', '02:00:00:00:00:02', '02:00:00:00:00:03'
SOURCE_CHANNEL, DESTINATION_CHANNEL = '198.18.100.1:7400', '198.18.100.2:7400'


def checksum(header):
    total = sum(struct.unpack('!10H', header))
    total = (total & 0xFFFF) + (total >> 16)
    return (~((total & 0xFFFF) + (total >> 16))) & 0xFFFF


def udp_frame(flow, size):
    """A UDP packet of `size` bytes (Ethernet included) of flow `flow`, 198.18.1.0/24 to 198.18.2.0/24."""
    payload = bytes(size - 14 - 20 - 8)
    src = bytes([198, 18, 1, flow % 256])
    dst = bytes([198, 18, 2, (flow // 256) % 256])
    udp = struct.pack('!HHHH', 10000 + flow, 5001, 8 + len(payload), 0) + payload
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack('!H', checksum(ip)) + ip[12:]
    eth = bytes.fromhex('020000000002' '020000000001') + b'\x08\x00'
    return eth + ip + udp


def write_trace(path, flows, size, frames):
    with open(path, 'wb') as f:
        f.write(struct.pack('<IHHiIII', 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(frames):
            frame = udp_frame(i % flows, size)
            f.write(struct.pack('<IIII', i // 1000, (i % 1000) * 1000, len(frame), len(frame)))
            f.write(frame)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def dist_vnf(name, eal, options):
    return Process(name, [DIST_VNF, *eal, '--', '--id', name, '--no-detection', '--stats-period', '1',
                          '--idle-sleep', '20', *options])


def counters(process):
    """(rx, delivered, ring_full) of each of `process`'s statistics lines so far."""
    out = []
    for line in process.lines:
        m = re.search(r'stats: rx (\d+) ', line)
        if m:
            d = re.search(r' delivered (\d+) ring_full (\d+)', line)
            out.append((int(m.group(1)), *((int(d.group(1)), int(d.group(2))) if d else (0, 0))))
    return out


def southbound(port, request):
    with socket.create_connection(('127.0.0.1', port), timeout=10) as s:
        body = json.dumps(request).encode()
        s.sendall(struct.pack('>I', len(body)) + body)
        length = struct.unpack('>I', s.recv(4, socket.MSG_WAITALL))[0]
        return json.loads(s.recv(length, socket.MSG_WAITALL))


def trace_option(name, work):
    """With DIST_BENCH_TRACE=1, each end writes its channel trace (for diagnosis; it slows them)."""
    if not os.environ.get('DIST_BENCH_TRACE'):
        return []
    path = os.path.join(work, f'{name}.trace')
    print(f'{name}: channel trace in {path}', file=sys.stderr)
    return ['--channel-trace', path]


def rate(samples, index):
    """The median per-second rate of counter `index` between consecutive statistics lines."""
    return statistics.median(b[index] - a[index] for a, b in zip(samples, samples[1:]))


def window(process, seconds):
    """The statistics lines `process` prints over the next `seconds` (and the one before)."""
    before = max(0, len(counters(process)) - 1)
    process.read(seconds + 1)
    return counters(process)[before:]


def busy(process, lines):
    """The median load of `process`'s transfer lcore over its statistics lines after the first
    `lines` (the share of time in rounds that did work; a round the scheduler cut short counts
    whole, so on a shared CPU this overstates it)."""
    shares = [float(m.group(1)) / 100 for line in process.lines[lines:]
              for m in [re.search(r' transfer_busy (\d+)%', line)] if m]
    return statistics.median(shares) if shares else 0.0


def measure(trace, frames, pps, seconds, work, move_id):
    """At `pps`: (forwarded pps, delivered pps during the Move, packets at a full transfer ring during
    the measured seconds and before them (the Move's start), given up, each end's transfer lcore's
    load meanwhile)."""
    data, link = os.path.join(work, 'data.sock'), os.path.join(work, 'link.sock')
    key = os.path.join(work, 'channel.key')
    with open(key, 'wb') as f:
        f.write(os.urandom(32))
    os.chmod(key, 0o600)
    control = free_port()
    common = ['--no-huge', '-m', '1536', '--no-pci']
    tag = f'{os.getpid()}-{move_id}'
    processes = []
    try:
        destination = dist_vnf('destination', [
            '--lcores', '0@0,1@0,2@1', *common, '--file-prefix', f'rbd{tag}',
            '--vdev', f'net_memif0,role=server,socket={link},id=0,mac={DESTINATION_MAC},rsize=13,bsize=9216',
            '--vdev', 'net_null0,no-rx=1'],
            ['--channel', DESTINATION_CHANNEL, '--channel-key', key, '--channel-port', '0', '--mbuf-size', '9216',
             '--channel-peer', f'{SOURCE_CHANNEL}@{SOURCE_MAC}', *trace_option('destination', work)])
        processes.append(destination)
        destination.wait_for('DiST channel')
        source = dist_vnf('source', [
            '--lcores', '0@0,1@0,2@1', *common, '--file-prefix', f'rbs{tag}',
            '--vdev', f'net_memif1,role=server,socket={data},id=0,mac={SOURCE_MAC},rsize=13',
            '--vdev', f'net_memif2,role=client,socket={link},id=0,mac={SOURCE_MAC},rsize=13,bsize=9216'],
            ['--channel', SOURCE_CHANNEL, '--channel-key', key, '--channel-port', '1', '--mbuf-size', '9216',
             '--mbufs', '65536',
             '--control', f'127.0.0.1:{control}', '--insecure-control',
             '--channel-peer', f'{DESTINATION_CHANNEL}@{DESTINATION_MAC}', *trace_option('source', work)])
        processes.append(source)
        source.wait_for('running;')
        # (Long enough for the warm-up, both windows and the Move's start; stopped after.)
        loops = max(1, int(pps * (2 * seconds + 12) / frames) + 1)
        wire = Process('dist-wire', [
            DIST_WIRE, '--lcores', '0@0', *common, '-m', '256', '--file-prefix', f'rbw{tag}',
            '--vdev', f'net_memif3,role=client,socket={data},id=0,mac={WIRE_MAC},rsize=13', '--',
            'replay', '--pcap', trace, '--pps', str(pps), '--loop', str(loops)])
        processes.append(wire)
        wire.wait_for('dist-wire: sending')
        destination.read(2)
        forwarded = rate(window(destination, seconds), 0)
        reply = southbound(control, {
            'type': 'movePerFlow', 'id': 1, 'moveID': move_id, 'filter': '*', 'guarantee': 'lf',
            'lateLocking': True, 'earlyRelease': True, 'dst': f'{DESTINATION_CHANNEL}@{DESTINATION_MAC}',
            'patience': 600})
        if reply.get('type') == 'error':
            raise SystemExit(f'the source refused the Move: {reply}')
        destination.read(1.5)
        source.read(0.05)
        ring_before = counters(source)[-1][2]
        lines = len(source.lines), len(destination.lines)
        samples = window(destination, seconds)
        source.read(0.2)
        cpu = [busy(p, n) for p, n in zip((source, destination), lines)]
        ring_after = counters(source)[-1][2]
        delivered = rate(samples, 1)
        given_up = any('given up' in line for line in source.lines + destination.lines)
        southbound(control, {'type': 'abortMove', 'id': 2, 'moveID': move_id, 'reason': 'benchmark over'})
        if os.environ.get('DIST_BENCH_DEBUG'):
            for p in processes:
                print(f'--- {p.name}\n' + ''.join(p.lines[-12:]), file=sys.stderr)
        return forwarded, delivered, ring_after - ring_before, ring_before, given_up, cpu
    finally:
        for p in reversed(processes):
            p.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--seconds', type=int, default=4)
    parser.add_argument('--size', type=int, default=300, help='bytes per packet (Ethernet included)')
    parser.add_argument('--flows', type=int, default=256)
    parser.add_argument('--frames', type=int, default=32768, help='frames in the generated trace')
    parser.add_argument('--rates', default='250000,500000,600000,700000,800000,1000000,1250000,1500000',
                        help='offered rates to try, packets a second, lowest first')
    a = parser.parse_args()
    try:
        ladder = sorted(int(r) for r in a.rates.split(','))
    except ValueError:
        parser.error('--rates: packets a second, separated by commas')
    if not (64 <= a.size <= 1500 and a.runs > 0 and a.seconds > 1 and 0 < a.flows <= 65536 and ladder[0] > 0):
        parser.error('--size 64 to 1500, --runs positive, --seconds 2 or more, --flows 1 to 65536, rates positive')
    for binary in (DIST_VNF, DIST_WIRE):
        if not os.access(binary, os.X_OK):
            sys.exit(f'{binary} is missing: swift build -c release')
    work = tempfile.mkdtemp(prefix='dist-redirect-bench-')
    trace = os.path.join(work, 'udp.pcap')
    write_trace(trace, a.flows, a.size, a.frames)
    carried, capacity = [], []
    move_id = 1
    for i in range(a.runs):
        best, ratio = 0, None
        for pps in ladder:
            move_id += 1
            forwarded, delivered, ring_full, at_start, given_up, cpu = measure(
                trace, a.frames, pps, a.seconds, work, move_id)
            ok = delivered >= 0.97 * pps and ring_full == 0 and not given_up
            print(f'run {i + 1} at {pps / 1e6:.2f} Mpps offered: forwarded {forwarded / 1e6:.3f} Mpps, '
                  f'redirected {delivered / 1e6:.3f} Mpps, ring full {ring_full} (at the start {at_start})'
                  f'{", Move given up" if given_up else ""}; transfer lcores busy {cpu[0]:.0%} (source), '
                  f'{cpu[1]:.0%} (destination): {"carried" if ok else "not carried"}', flush=True)
            if not ok:
                break
            best, ratio = pps, delivered / forwarded
            per_cpu = delivered / max(cpu[0], 1e-3)
        carried.append(best)
        if best:
            capacity.append(per_cpu)
        print(f'run {i + 1}: carried {best / 1e6:.2f} Mpps' +
              (f' (redirected/forwarded there {ratio:.2f}; {per_cpu / 1e6:.2f} Mpps a busy second of the '
               'source\'s transfer lcore)' if best else ''), flush=True)
    print(f'redirect_mpps {statistics.median(carried) / 1e6:.2f} (median of {a.runs} runs: the highest offered '
          f'rate a Move carried; {a.size}-byte packets, {a.flows} flows; runs '
          f'{", ".join(f"{c / 1e6:.2f}" for c in carried)})')
    if capacity:
        print(f'source_transfer_lcore_mpps {statistics.median(capacity) / 1e6:.2f} (median over the runs that '
              'carried a rate: packets it redirected at the highest rate carried, by the time it was busy; what it '
              'sustains on a core of its own, less what the scheduler took from it in its busy rounds)')
    if not os.environ.get('DIST_BENCH_TRACE'):
        shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
