#!/usr/bin/env python3
"""Move benchmark on the test bed: the paper's Table 1, Figures 5 and 6, loss against rate, and
the test bed's ceiling, in one invocation, for both modes side by side (opennf: through the
controller; dist: peer to peer over the data plane), median of --runs per point.

    deploy/bench/move.py [--runs 3] [--profile paper] [--modes opennf,dist] [--out deploy/bench/results] [--quick]
                         [--switch kernel|dpdk]

Every point is one run of the test bed (deploy/testbed.sh): up with the link profile, replay
of mix-a (IP fragments left out: the test bed's net_af_packet reassembles them) at a rate, a
Move started part way through, the replay's end, down, and the checker (loss and duplication
against the trace, order against what left the switch).

- Ceiling: replays without a Move at rising rates; the highest rate with nothing lost.
- Table 1: 1000 pps, a Move of every IPv4 flow (about 2,000 states after 20 s, as the paper's)
  20 s into the replay, for LF PZ, LF PZ|LL|ER and OP PZ|LL|ER in each mode (dist: OP PZ too,
  which keeps the order across the moved flows), and OpenNF* (opennf LF PZ|LL|ER with the
  control plane as fast as the data plane, the fast-control profile): states, redirected
  packets, MoveTime, RedirTime, Ser% and Deser% (medians), controller messages, and what the
  checker found; the opennf/dist MoveTime ratio.
- Figure 5: MoveTime against the number of states moved (prefixes of different sizes) at
  500, 1000 and 2500 pps, LF PZ|LL|ER.
- Figure 6: the sink's packet rate over time around a Move at 1000 pps, LF PZ|LL|ER, and the
  latency of each moved packet (first seen at a VNF's port to seen at the sink) over time.
- Loss against rate: LF PZ|LL|ER (and dist OP PZ|LL|ER) at 500 to 20,000 pps: packets lost,
  duplicated and reordered (median).
- Move cost as state grows (--parts cost): deploy/tools/flowtrace.py's 1,000, 10,000 and
  100,000 concurrent TCP flows, all moved (LF PZ|LL|ER) while each sends one more packet:
  MoveTime, Ser%, Deser%, bytes on the channel, controller messages, lost (opennf up to 10,000),
  and movetime-vs-states.png (log-log, with the line a MoveTime linear in the states follows).
- Channel drop: dist LF and OP PZ|LL|ER at the same rates with 10% of the channel's frames
  dropped by the test bed's delay lines (--parts drop).

--switch dpdk runs every point on the test bed on Open vSwitch's DPDK datapath (profile none),
at the rates it exists for: the ceiling from 20,000 pps up, loss against rate at 10,000 to
100,000 pps and the ceiling.

Writes results.json, table1.md, and PNG plots (matplotlib) to --out; prints the Markdown.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from movereport import plots, table_markdown

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TESTBED = os.path.join(ROOT, 'deploy', 'testbed.sh')
sys.path.insert(0, os.path.join(ROOT, 'deploy', 'tools'))
import pcapcheck  # noqa: E402

ALL_V4 = 'nw_src=0.0.0.0/0'
# (mode, guarantee, optimizations); 'opennf*' is opennf on the fast-control profile.
# Beyond the paper (dist): redirect-first, and the Move split per /4 of the address space.
REDIRECT_FIRST = ('--plan', 'redirect-first')
SPLIT_STATE = ('--split', '4', '--split-order', 'state')
SPLIT_TRAFFIC = ('--split', '4', '--split-order', 'traffic')
TABLE1 = [('opennf', 'lf', 'pz'), ('opennf', 'lf', 'pz,ll,er'), ('opennf', 'op', 'pz,ll,er'), ('opennf*', 'lf', 'pz,ll,er'),
          ('dist', 'lf', 'pz'), ('dist', 'lf', 'pz,ll,er'), ('dist', 'op', 'pz'), ('dist', 'op', 'pz,ll,er'),
          ('dist', 'lf', 'pz,ll,er', REDIRECT_FIRST), ('dist', 'lf', 'pz,ll,er', SPLIT_STATE), ('dist', 'lf', 'pz,ll,er', SPLIT_TRAFFIC)]
EXTRA_LABEL = {REDIRECT_FIRST: ' redirect-first', SPLIT_STATE: ' split /4 by state', SPLIT_TRAFFIC: ' split /4 by traffic'}
# Loss against rate: the guarantees measured per mode.
GUARANTEES = {'opennf': ['lf'], 'dist': ['lf', 'op']}


def testbed(directory, *args, check=True, timeout=300):
    env = dict(os.environ, DIST_TESTBED_DIR=directory)
    return subprocess.run([TESTBED, *args], capture_output=True, text=True, env=env, check=check, timeout=timeout)


def cut(work, frames):
    """The first `frames` frames of mix-a without fragments; past the trace's own, of passes of
    it that each bring new flows and hosts (freshtrace.py), so that a high rate lasts."""
    path = os.path.join(work, f'trace-{frames}.pcap')
    if not os.path.exists(path):
        source = os.path.join(ROOT, 'traces', 'mix-a.pcap')
        if frames > 50000:
            passes = frames // 50000 + 1
            source = os.path.join(work, f'fresh-{passes}.pcap')
            subprocess.run([sys.executable, os.path.join(ROOT, 'deploy', 'tools', 'freshtrace.py'), '--passes', str(passes),
                            '--out', source], check=True, capture_output=True)
        subprocess.run([sys.executable, os.path.join(ROOT, 'deploy', 'tools', 'pcapcheck.py'), 'cut',
                        source, path, '--frames', str(frames), '--no-fragments'],
                       check=True, capture_output=True)
    return path


def lasting(pps, frames):
    """`frames`, or as many as `pps` sends in 2 s if that is more (a Move half way through then
    meets traffic however fast the rate)."""
    return max(frames, pps * 2)


# testbed.sh up's --switch for every run (--switch).
SWITCH = ['--switch', 'kernel']


def run(work, name, trace, pps, profile, move=None, at=None, up=()):
    """One test bed run; returns the Move's report (or None), the checker's result, times."""
    directory = os.path.join(work, name)
    testbed(directory, 'up', '--profile', profile, *SWITCH, *up)
    report, started, ended = None, None, None
    try:
        replay = threading.Thread(target=testbed, args=(directory, 'replay', trace, str(pps)), kwargs={'timeout': 900})
        t0 = time.time()
        replay.start()
        if SWITCH[1] == 'dpdk':
            # dist-wire starts DPDK and waits for its port before the first frame: time from then.
            log = os.path.join(directory, 'replay.log')
            for _ in range(200):
                if os.path.exists(log) and 'sending' in open(log).read():
                    break
                time.sleep(0.05)
            t0 = time.time()
        if move:
            time.sleep(at)
            guarantee, opt, flt = move[:3]
            mode = move[3] if len(move) > 3 else 'opennf'
            extra = move[4] if len(move) > 4 else ()
            started = time.time()
            out = testbed(directory, 'move', '--from', 'vnf1', '--to', 'vnf2', '--filter', flt, '--guarantee', guarantee,
                          '--opt', opt, '--mode', mode, '--json', *extra, check=False)
            ended = time.time()
            try:
                report = json.loads(out.stdout[out.stdout.index('{'):])['report']
            except (ValueError, KeyError):
                report = {'outcome': 'failed', 'reason': (out.stdout + out.stderr)[-300:]}
        replay.join()
        time.sleep(1)
    finally:
        testbed(directory, 'down', check=False)
    # OP without late locking keeps the moved traffic's order across flows; with it, within flows.
    order = ('all' if 'll' not in move[1] else 'flows') if move and move[0] == 'op' else 'none'
    out = testbed(directory, 'check', trace, '--order', order, '--json', check=False)
    result = json.loads(out.stdout)
    result['pcapcmp_agrees'] = pcapcmp_agrees(trace, os.path.join(directory, 'sink.pcap'), result)
    result['switch_drops'] = switch_drops(directory)
    return {'name': name, 'pps': pps, 'report': report, 'check': result, 'replay_start': t0,
            'move_start': started, 'move_end': ended, 'dir': directory}


def switch_drops(directory):
    """The switch's port counters of frames dropped, where not zero (`down` saves them from the
    datapath): where a run's lost frames went, when the switch dropped them."""
    drops, name = {}, None
    try:
        with open(os.path.join(directory, 'switch-ports.txt')) as f:
            for line in f:
                m = re.search(r'port \d+: (\S+)', line)
                if m:
                    name = m.group(1)
                    continue
                m = re.match(r'\s*(RX|TX) packets:\d+ errors:(\d+|\?) dropped:(\d+)', line)
                lost = (int(m.group(2)) if m and m.group(2).isdigit() else 0) + (int(m.group(3)) if m else 0)
                if name and lost > 0:
                    drops.setdefault(name, {})[m.group(1)] = lost
    except OSError:
        return None
    return drops


def pcapcmp_agrees(trace, sink, result):
    """Whether the independent checker beside the project (../shared/tools/pcapcmp.py) counts
    the same loss and duplication; None where it is not there (a user's clone)."""
    shared = os.path.join(os.path.dirname(ROOT), 'shared', 'tools', 'pcapcmp.py')
    if not os.path.exists(shared):
        return None
    out = subprocess.run([sys.executable, shared, trace, sink], capture_output=True, text=True).stdout
    return all(f'{key}={result[key]}' in out for key in ('lost', 'duplicated'))


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ceiling(work, profile, rates, runs, up=()):
    best = 0
    found = []
    for pps in rates:
        trace = cut(work, lasting(pps, min(pps * 4, 50000)))
        lost = [run(work, f'ceiling-{pps}-{i}', trace, pps, profile, up=up)['check']['lost'] for i in range(runs)]
        found.append({'pps': pps, 'lost': lost})
        print(f'ceiling: {pps} pps lost {lost}', flush=True)
        if max(lost) == 0:
            best = pps
        else:
            break
    return best, found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--workers', default='1', help='Table 1: worker lcores per VNF (testbed.sh up --workers)')
    parser.add_argument('--profile', default='paper', choices=['paper', 'none'])
    parser.add_argument('--modes', default='opennf,dist', help='Move modes to measure (opennf, dist)')
    parser.add_argument('--out', default=os.path.join(HERE, 'results'))
    parser.add_argument('--quick', action='store_true', help='one run per point, fewer points (a smoke test)')
    parser.add_argument('--plot', metavar='RESULTS_JSON', help='only draw the plots of an earlier run')
    parser.add_argument('--rows', help='Table 1: only these rows (their names, comma-separated, e.g. "DiST OP PZ,DiST OP PZ LL ER"); '
                        'the others are kept from an earlier results.json in --out')
    parser.add_argument('--switch', default='kernel', choices=['kernel', 'dpdk'], help='the test bed\'s switch (testbed.sh up --switch)')
    parser.add_argument('--rates', help='loss against rate: only these rates (pps, comma-separated)')
    parser.add_argument('--guarantees', help='loss against rate: only these guarantees (lf, op)')
    parser.add_argument('--parts', default='ceiling,table1,figure5,loss,drop',  # and cost
                        help='what to measure (others are kept from an earlier results.json in --out)')
    options = parser.parse_args()
    if options.plot:
        with open(options.plot) as f:
            plots(json.load(f), options.out)
        return
    runs = 1 if options.quick else options.runs
    if options.switch == 'dpdk' and options.profile != 'none':
        parser.error('--switch dpdk runs with --profile none (its data links have no delay line)')
    SWITCH[1] = options.switch
    os.makedirs(options.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix='dist-bench-move-')
    parts = set(options.parts.split(','))
    results = {}
    previous = os.path.join(options.out, 'results.json')
    if parts != {'ceiling', 'table1', 'figure5', 'loss', 'drop'} and os.path.exists(previous):
        with open(previous) as f:
            results = json.load(f)
    results.update({'profile': options.profile, 'runs': runs, 'switch': options.switch, 'workers': options.workers})

    if 'ceiling' in parts:
        rates = [1000, 5000, 10000, 20000, 30000] if not options.quick else [1000, 10000]
        if options.switch == 'dpdk':
            rates = [20000, 50000, 75000, 100000, 150000, 200000] if not options.quick else [20000, 50000]
        results['ceiling'], results['ceiling_runs'] = ceiling(work, options.profile, rates, 1 if options.quick else 2,
                                                              up=('--workers', options.workers))
        print(f'ceiling: {results["ceiling"]} pps with nothing lost', flush=True)
    if 'table1' in parts:
        table1(work, options, runs, results)
    if 'cost' in parts:
        move_cost(work, options, runs, results)
    if 'figure5' in parts:
        figure5(work, options, runs, results)
    if 'loss' in parts:
        loss_against_rate(work, options, runs, results)
    if 'drop' in parts:
        loss_against_rate(work, options, runs, results, drop=10)

    with open(os.path.join(options.out, 'results.json'), 'w') as f:
        json.dump(results, f, indent=1)
    markdown = table_markdown(results)
    with open(os.path.join(options.out, 'table1.md'), 'w') as f:
        f.write(markdown)
    plots(results, options.out)
    print()
    print(markdown)
    print(f'results and plots in {options.out}; runs in {work}')


def table1(work, options, runs, results):
    """Table 1 (and Figure 6 from its LF PZ|LL|ER runs), for each mode."""
    at = 20 if not options.quick else 8
    trace = cut(work, 1000 * (at + 6))
    modes = options.modes.split(',')
    table = []
    wanted = [w.strip() for w in options.rows.split(',')] if options.rows else None
    kept = {r['config']: r for r in results.get('table1', [])} if wanted else {}
    if not wanted:
        results['figure6'] = {}
    for mode, guarantee, opt, *more in TABLE1:
        extra = more[0] if more else ()
        profile = 'fast-control' if mode == 'opennf*' else options.profile
        if mode == 'opennf*' and options.profile == 'none':
            continue
        label = {'opennf': 'OpenNF', 'opennf*': 'OpenNF*', 'dist': 'DiST'}[mode]
        config = f'{label} {guarantee.upper()} {opt.upper().replace(",", " ")}{EXTRA_LABEL.get(extra, "")}'
        if options.workers != '1':
            config += f' ({options.workers} workers)'
        if (wanted and config not in wanted) or mode.rstrip('*') not in modes:
            # Not measured now: an earlier run's row stays.
            if config in kept:
                table.append(kept[config])
            continue
        tag = ''.join(a.strip('-')[:6] for a in extra)
        points = [run(work, f'table1-{mode.rstrip("*")}{"x" if mode.endswith("*") else ""}-{guarantee}-{opt.replace(",", "")}{tag}-{i}',
                      trace, 1000, profile, (guarantee, opt, ALL_V4, mode.rstrip('*'), extra), at,
                      up=('--workers', options.workers)) for i in range(runs)]
        reports = [p['report'] for p in points if p['report'] and p['report'].get('outcome') == 'completed']
        row = {'mode': mode, 'config': config,
               'parts': median([len(r.get('parts', [])) for r in reports]) if extra in (SPLIT_STATE, SPLIT_TRAFFIC) else None,
               'runs': len(points),
               'completed': len(reports),
               'states': median([r['perFlowStates'] for r in reports]),
               'redirected': median([r['packetsRedirected'] for r in reports]),
               'move_time': median([r['moveTime'] for r in reports]),
               'redir_time': median([r['redirTime'] for r in reports]),
               'ser': median([r['serializeSeconds'] / r['moveTime'] * 100 for r in reports if r['moveTime']]),
               'deser': median([r['deserializeSeconds'] / r['moveTime'] * 100 for r in reports if r['moveTime']]),
               'messages': median([r['messagesSent'] + r['messagesReceived'] for r in reports]),
               'retransmissions': median([r.get('retransmissions', 0) for r in reports]),
               'lost': max(p['check']['lost'] for p in points),
               'reordered_within_flows': max(p['check']['reordered_within_flows'] for p in points),
               'moved_reordered': max(p['check']['moved_reordered'] for p in points)}
        table.append(row)
        print('table1:', json.dumps(row), flush=True)
        if (guarantee, opt, extra) == ('lf', 'pz,ll,er', ()) and mode in ('opennf', 'dist') and not wanted:
            results['figure6'][mode] = figure6_series(points[0])
    results['table1'] = table
    results['table1_runs'] = runs


def move_cost(work, options, runs, results):
    """MoveTime as the states grow: every flow of flowtrace.py's N concurrent TCP flows moved
    (LF PZ|LL|ER) while each sends one more packet (the Move starts 0.3 s into that round)."""
    rate = 50000 if options.switch == 'dpdk' else 5000
    cost = []
    for n in ([1000, 10000, 100000] if not options.quick else [1000, 10000]):
        trace = os.path.join(work, f'flows-{n}.pcap')
        if not os.path.exists(trace):
            subprocess.run([sys.executable, os.path.join(ROOT, 'deploy', 'tools', 'flowtrace.py'), '--flows', str(n),
                            '--out', trace], check=True, capture_output=True)
        # (opennf moves every state through the controller: past 10,000 it does not finish in
        # the test bed's time.)
        for mode in [m for m in options.modes.split(',') if m == 'dist' or n <= 10000]:
            points = [run(work, f'cost-{mode}-{n}-{i}', trace, rate, options.profile,
                          ('lf', 'pz,ll,er', 'nw_src=198.18.0.0/16', mode), 5 * n / rate + 0.3,
                          up=('--flows', str(max(65536, 2 * n)))) for i in range(runs)]
            reports = [p['report'] or {} for p in points]
            entry = {'mode': mode, 'flows': n, 'pps': rate,
                     'states': median([r.get('perFlowStates') for r in reports]),
                     'move_time': median([r.get('moveTime') for r in reports]),
                     'ser': median([100 * r['serializeSeconds'] / r['moveTime'] for r in reports
                                    if r.get('moveTime') and r.get('serializeSeconds') is not None]),
                     'deser': median([100 * r['deserializeSeconds'] / r['moveTime'] for r in reports
                                      if r.get('moveTime') and r.get('deserializeSeconds') is not None]),
                     'channel_bytes': median([r.get('channelBytes') for r in reports]),
                     'messages': median([(r.get('messagesSent') or 0) + (r.get('messagesReceived') or 0) for r in reports]),
                     # Which messages (the first run's), so that a count off the usual says why.
                     'message_kinds': reports[0].get('messageKinds'),
                     'lost': median([p['check']['lost'] for p in points]),
                     'lost_worst': max(p['check']['lost'] for p in points),
                     'completed': sum(1 for r in reports if r.get('outcome') == 'completed')}
            cost.append(entry)
            print('cost:', json.dumps(entry), flush=True)
    results['cost'] = cost
    results['cost_runs'] = runs


def figure5(work, options, runs, results):
    """MoveTime against states, several rates, each mode."""
    prefixes = ['nw_src=10.0.0.0/8', 'nw_src=192.168.0.0/16', ALL_V4] if not options.quick else ['nw_src=10.0.0.0/8', ALL_V4]
    fig5 = []
    for mode in options.modes.split(','):
        for pps in ([500, 1000, 2500] if not options.quick else [1000]):
            trace = cut(work, min(50000, pps * 16))
            for flt in prefixes:
                for i in range(runs):
                    p = run(work, f'fig5-{mode}-{pps}-{flt.split("=")[1].replace("/", "_")}-{i}', trace, pps, options.profile,
                            ('lf', 'pz,ll,er', flt, mode), 10)
                    r = p['report'] or {}
                    if r.get('outcome') == 'completed':
                        fig5.append({'mode': mode, 'pps': pps, 'filter': flt, 'states': r['perFlowStates'], 'move_time': r['moveTime']})
                        print('figure5:', json.dumps(fig5[-1]), flush=True)
    results['figure5'] = fig5


def loss_rates(options, results):
    if options.rates:
        return [int(r) for r in options.rates.split(',')]
    if options.switch == 'dpdk':
        rates = [10000, 20000, 50000, 100000] if not options.quick else [20000, 50000]
        return sorted(set(rates + ([results['ceiling']] if results.get('ceiling') else [])))
    return [500, 1000, 2500, 5000, 10000, 20000] if not options.quick else [1000, 5000]


def loss_against_rate(work, options, runs, results, drop=0):
    """Each mode's guarantees at rising rates (dist only, with `drop`% of the channel dropped)."""
    loss = []
    modes = [m for m in options.modes.split(',') if not drop or m == 'dist']
    up = ('--channel-drop', str(drop)) if drop else ()
    for mode in modes:
        for guarantee in GUARANTEES[mode]:
            if options.guarantees and guarantee not in options.guarantees.split(','):
                continue
            for pps in loss_rates(options, results):
                frames = lasting(pps, min(50000, pps * 8))
                trace = cut(work, frames)
                # Half way through the replay (mix-a lasts under 3 s at 20,000 pps).
                at = min(4.0, frames / pps / 2)
                points = [run(work, f'{"drop" if drop else "loss"}-{mode}-{guarantee}-{pps}-{i}', trace, pps, options.profile,
                              (guarantee, 'pz,ll,er', ALL_V4, mode), at, up) for i in range(runs)]
                entry = {'mode': mode, 'guarantee': guarantee, 'pps': pps, 'drop': drop,
                         'lost': median([p['check']['lost'] for p in points]),
                         'lost_worst': max(p['check']['lost'] for p in points),
                         'duplicated': max(p['check']['duplicated'] for p in points),
                         'reordered_within_flows': median([p['check']['reordered_within_flows'] for p in points]),
                         'move_time': median([(p['report'] or {}).get('moveTime') for p in points]),
                         'redirected': median([(p['report'] or {}).get('packetsRedirected') for p in points]),
                         'retransmissions': median([(p['report'] or {}).get('retransmissions', 0) for p in points]),
                         'completed': sum(1 for p in points if (p['report'] or {}).get('outcome') == 'completed'),
                         'pcapcmp_agrees': None if any(p['check'].get('pcapcmp_agrees') is None for p in points)
                         else all(p['check']['pcapcmp_agrees'] for p in points),
                         # Each run's loss, what the switch's ports dropped and what the Move warned of.
                         'runs': [{'lost': p['check']['lost'], 'switch_drops': p['check'].get('switch_drops'),
                                   'warnings': (p['report'] or {}).get('warnings', [])} for p in points]}
                loss.append(entry)
                print('drop:' if drop else 'loss:', json.dumps(entry), flush=True)
    results['drop' if drop else 'loss'] = loss
    results['drop_runs' if drop else 'loss_runs'] = runs


def figure6_series(point):
    """The sink's packets per 100 ms, with the Move's start and end, relative to the replay; and
    each packet's latency through the VNFs (first seen on a VNF's port, then at the sink) in
    the 3 s around the Move."""
    records = pcapcheck.read_pcap_records(os.path.join(point['dir'], 'sink.pcap'))
    t0 = point['replay_start']
    bins = {}
    for t, _ in records:
        k = int((t - t0) * 10)
        bins[k] = bins.get(k, 0) + 1
    series = [(k / 10, bins.get(k, 0) * 10) for k in range(min(bins), max(bins) + 1)] if bins else []
    report = point['report'] or {}
    start = (point['move_start'] or t0) - t0
    arrived = {}
    for port in ('to-vnf1.pcap', 'to-vnf2.pcap'):
        path = os.path.join(point['dir'], port)
        if os.path.exists(path):
            for t, frame in pcapcheck.read_pcap_records(path):
                if frame not in arrived or t < arrived[frame]:
                    arrived[frame] = t
    latency = []
    for t, frame in records:
        if frame in arrived and start - 1 <= t - t0 <= start + 2:
            latency.append((round(t - t0, 6), round((t - arrived[frame]) * 1000, 3)))
    return {'series': series, 'move_start': start, 'move_end': start + report.get('moveTime', 0),
            'redir_end': start + max(report.get('moveTime', 0), report.get('redirTime', 0)), 'latency': latency}


if __name__ == '__main__':
    main()
