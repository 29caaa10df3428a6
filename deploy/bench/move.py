#!/usr/bin/env python3
"""Move benchmark on the test bed: the paper's Table 1, Figures 5 and 6, loss against rate, and
the test bed's ceiling, in one invocation (opennf mode; median of --runs per point).

    deploy/bench/move.py [--runs 3] [--profile paper] [--out deploy/bench/results] [--quick]

Every point is one run of the test bed (deploy/testbed.sh): up with the link profile, replay
of mix-a (IP fragments left out: the test bed's net_af_packet reassembles them) at a rate, a
Move started part way through, the replay's end, down, and the checker (loss and duplication
against the trace, order against what left the switch).

- Ceiling: replays without a Move at rising rates; the highest rate with nothing lost.
- Table 1: 1000 pps, a Move of every IPv4 flow (about 2,000 states after 20 s, as the paper's)
  20 s into the replay, for LF PZ, LF PZ|LL|ER and OP PZ|LL|ER: states, redirected packets,
  MoveTime, RedirTime, Ser% and Deser% (medians), and what the checker found.
- Figure 5: MoveTime against the number of states moved (prefixes of different sizes) at
  500, 1000 and 2500 pps, LF PZ|LL|ER.
- Figure 6: the sink's packet rate over time around a Move at 1000 pps, LF PZ|LL|ER.
- Loss against rate: LF PZ|LL|ER at 500 to 20,000 pps: packets lost and reordered (median).

Writes results.json, table1.md, and PNG plots (matplotlib) to --out; prints the Markdown.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TESTBED = os.path.join(ROOT, 'deploy', 'testbed.sh')
sys.path.insert(0, os.path.join(ROOT, 'deploy', 'tools'))
import pcapcheck  # noqa: E402

ALL_V4 = 'nw_src=0.0.0.0/0'
TABLE1 = [('lf', 'pz'), ('lf', 'pz,ll,er'), ('op', 'pz,ll,er')]


def testbed(directory, *args, check=True, timeout=300):
    env = dict(os.environ, DIST_TESTBED_DIR=directory)
    return subprocess.run([TESTBED, *args], capture_output=True, text=True, env=env, check=check, timeout=timeout)


def cut(work, frames):
    path = os.path.join(work, f'trace-{frames}.pcap')
    if not os.path.exists(path):
        subprocess.run([sys.executable, os.path.join(ROOT, 'deploy', 'tools', 'pcapcheck.py'), 'cut',
                        os.path.join(ROOT, 'traces', 'mix-a.pcap'), path, '--frames', str(frames), '--no-fragments'],
                       check=True, capture_output=True)
    return path


def run(work, name, trace, pps, profile, move=None, at=None):
    """One test bed run; returns the Move's report (or None), the checker's result, times."""
    directory = os.path.join(work, name)
    testbed(directory, 'up', '--profile', profile)
    report, started, ended = None, None, None
    try:
        replay = threading.Thread(target=testbed, args=(directory, 'replay', trace, str(pps)), kwargs={'timeout': 900})
        t0 = time.time()
        replay.start()
        if move:
            time.sleep(at)
            guarantee, opt, flt = move
            started = time.time()
            out = testbed(directory, 'move', '--from', 'vnf1', '--to', 'vnf2', '--filter', flt, '--guarantee', guarantee,
                          '--opt', opt, '--json', check=False)
            ended = time.time()
            try:
                report = json.loads(out.stdout[out.stdout.index('{'):])['report']
            except (ValueError, KeyError):
                report = {'outcome': 'failed', 'reason': (out.stdout + out.stderr)[-300:]}
        replay.join()
        time.sleep(1)
    finally:
        testbed(directory, 'down', check=False)
    order = 'all' if move and move[0] == 'op' else 'none'
    out = testbed(directory, 'check', trace, '--order', order, '--json', check=False)
    result = json.loads(out.stdout)
    return {'name': name, 'pps': pps, 'report': report, 'check': result, 'replay_start': t0,
            'move_start': started, 'move_end': ended, 'dir': directory}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ceiling(work, profile, rates, runs):
    best = 0
    found = []
    for pps in rates:
        trace = cut(work, min(pps * 4, 50000))
        lost = [run(work, f'ceiling-{pps}-{i}', trace, pps, profile)['check']['lost'] for i in range(runs)]
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
    parser.add_argument('--profile', default='paper', choices=['paper', 'none'])
    parser.add_argument('--out', default=os.path.join(HERE, 'results'))
    parser.add_argument('--quick', action='store_true', help='one run per point, fewer points (a smoke test)')
    parser.add_argument('--plot', metavar='RESULTS_JSON', help='only draw the plots of an earlier run')
    parser.add_argument('--parts', default='ceiling,table1,figure5,loss',
                        help='what to measure (others are kept from an earlier results.json in --out)')
    options = parser.parse_args()
    if options.plot:
        with open(options.plot) as f:
            plots(json.load(f), options.out)
        return
    runs = 1 if options.quick else options.runs
    os.makedirs(options.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix='dist-bench-move-')
    parts = set(options.parts.split(','))
    results = {}
    previous = os.path.join(options.out, 'results.json')
    if parts != {'ceiling', 'table1', 'figure5', 'loss'} and os.path.exists(previous):
        with open(previous) as f:
            results = json.load(f)
    results.update({'profile': options.profile, 'runs': runs})

    if 'ceiling' in parts:
        rates = [1000, 5000, 10000, 20000, 30000] if not options.quick else [1000, 10000]
        results['ceiling'], results['ceiling_runs'] = ceiling(work, options.profile, rates, 1 if options.quick else 2)
        print(f'ceiling: {results["ceiling"]} pps with nothing lost', flush=True)
    if 'table1' in parts:
        table1(work, options, runs, results)
    if 'figure5' in parts:
        figure5(work, options, runs, results)
    if 'loss' in parts:
        loss_against_rate(work, options, runs, results)

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
    """Table 1 (and Figure 6 from its LF PZ|LL|ER runs)."""
    at = 20 if not options.quick else 8
    trace = cut(work, 1000 * (at + 6))
    table = []
    for guarantee, opt in TABLE1:
        points = [run(work, f'table1-{guarantee}-{opt.replace(",", "")}-{i}', trace, 1000, options.profile,
                      (guarantee, opt, ALL_V4), at) for i in range(runs)]
        reports = [p['report'] for p in points if p['report'] and p['report'].get('outcome') == 'completed']
        row = {'config': f'OpenNF {guarantee.upper()} {opt.upper().replace(",", " ")}', 'runs': len(points),
               'completed': len(reports),
               'states': median([r['perFlowStates'] for r in reports]),
               'redirected': median([r['packetsRedirected'] for r in reports]),
               'move_time': median([r['moveTime'] for r in reports]),
               'redir_time': median([r['redirTime'] for r in reports]),
               'ser': median([r['serializeSeconds'] / r['moveTime'] * 100 for r in reports if r['moveTime']]),
               'deser': median([r['deserializeSeconds'] / r['moveTime'] * 100 for r in reports if r['moveTime']]),
               'messages': median([r['messagesSent'] + r['messagesReceived'] for r in reports]),
               'lost': max(p['check']['lost'] for p in points),
               'reordered_within_flows': max(p['check']['reordered_within_flows'] for p in points),
               'moved_reordered': max(p['check']['moved_reordered'] for p in points)}
        table.append(row)
        print('table1:', json.dumps(row), flush=True)
        if (guarantee, opt) == ('lf', 'pz,ll,er'):
            results['figure6'] = figure6_series(points[0])
    results['table1'] = table


def figure5(work, options, runs, results):
    """MoveTime against states, several rates."""
    prefixes = ['nw_src=10.0.0.0/8', 'nw_src=192.168.0.0/16', ALL_V4] if not options.quick else ['nw_src=10.0.0.0/8', ALL_V4]
    fig5 = []
    for pps in ([500, 1000, 2500] if not options.quick else [1000]):
        trace = cut(work, min(50000, pps * 16))
        for flt in prefixes:
            for i in range(runs):
                p = run(work, f'fig5-{pps}-{flt.split("=")[1].replace("/", "_")}-{i}', trace, pps, options.profile,
                        ('lf', 'pz,ll,er', flt), 10)
                r = p['report'] or {}
                if r.get('outcome') == 'completed':
                    fig5.append({'pps': pps, 'filter': flt, 'states': r['perFlowStates'], 'move_time': r['moveTime']})
                    print('figure5:', json.dumps(fig5[-1]), flush=True)
    results['figure5'] = fig5


def loss_against_rate(work, options, runs, results):
    loss = []
    for pps in ([500, 1000, 2500, 5000, 10000, 20000] if not options.quick else [1000, 5000]):
        frames = min(50000, pps * 8)
        trace = cut(work, frames)
        # Half way through the replay (mix-a lasts under 3 s at 20,000 pps).
        at = min(4.0, frames / pps / 2)
        points = [run(work, f'loss-{pps}-{i}', trace, pps, options.profile, ('lf', 'pz,ll,er', ALL_V4), at) for i in range(runs)]
        entry = {'pps': pps, 'lost': median([p['check']['lost'] for p in points]),
                 'reordered_within_flows': median([p['check']['reordered_within_flows'] for p in points]),
                 'move_time': median([(p['report'] or {}).get('moveTime') for p in points]),
                 'redirected': median([(p['report'] or {}).get('packetsRedirected') for p in points]),
                 'completed': sum(1 for p in points if (p['report'] or {}).get('outcome') == 'completed')}
        loss.append(entry)
        print('loss:', json.dumps(entry), flush=True)
    results['loss'] = loss


def figure6_series(point):
    """The sink's packets per 100 ms, with the Move's start and end, relative to the replay."""
    records = pcapcheck.read_pcap_records(os.path.join(point['dir'], 'sink.pcap'))
    t0 = point['replay_start']
    bins = {}
    for t, _ in records:
        k = int((t - t0) * 10)
        bins[k] = bins.get(k, 0) + 1
    series = [(k / 10, bins.get(k, 0) * 10) for k in range(min(bins), max(bins) + 1)] if bins else []
    report = point['report'] or {}
    start = (point['move_start'] or t0) - t0
    return {'series': series, 'move_start': start, 'move_end': start + report.get('moveTime', 0),
            'redir_end': start + max(report.get('moveTime', 0), report.get('redirTime', 0))}


def table_markdown(results):
    def f(v, fmt):
        return '-' if v is None else format(v, fmt)
    lines = [f'Test bed profile `{results["profile"]}`, 1000 pps, every IPv4 flow moved 20 s into mix-a, '
             f'median of {results["runs"]} runs (`deploy/bench/move.py`). Ceiling of the test bed (no Move, '
             f'nothing lost): {results["ceiling"]} pps.', '',
             '| Config | # States | # Redirected | MoveTime (s) | RedirTime (s) | Ser% | Deser% | Controller msgs | Lost | Reordered in flows |',
             '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |']
    for r in results['table1']:
        lines.append(f'| {r["config"]} | {f(r["states"], ".0f")} | {f(r["redirected"], ".0f")} | {f(r["move_time"], ".3f")} | '
                     f'{f(r["redir_time"], ".3f")} | {f(r["ser"], ".2f")} | {f(r["deser"], ".2f")} | {f(r["messages"], ".0f")} | '
                     f'{r["lost"]} | {r["reordered_within_flows"]} |')
    lines += ['', '| Rate (pps) | Lost (median) | Reordered in flows | Redirected | MoveTime (s) | Moves completed |',
              '| ---: | ---: | ---: | ---: | ---: | ---: |']
    for e in results['loss']:
        lines.append(f'| {e["pps"]} | {f(e["lost"], ".0f")} | {f(e["reordered_within_flows"], ".0f")} | '
                     f'{f(e["redirected"], ".0f")} | {f(e["move_time"], ".3f")} | {e["completed"]} |')
    return '\n'.join(lines) + '\n'


def plots(results, out):
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        # Debian's python3-matplotlib serves the system interpreter; another python3 may be first on PATH.
        system = '/usr/bin/python3'
        if os.path.realpath(sys.executable) != os.path.realpath(system) and os.path.exists(system):
            subprocess.run([system, os.path.abspath(__file__), '--plot', os.path.join(out, 'results.json'), '--out', out])
        else:
            print('(matplotlib missing: no plots; apt-get install python3-matplotlib)')
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for pps in sorted({p['pps'] for p in results['figure5']}):
        pts = sorted((p['states'], p['move_time']) for p in results['figure5'] if p['pps'] == pps)
        ax.plot([s for s, _ in pts], [t for _, t in pts], 'o-', label=f'{pps} pps')
    ax.set_xlabel('states moved (per-flow)')
    ax.set_ylabel('MoveTime (s)')
    ax.set_title('OpenNF LF PZ|LL|ER: MoveTime against states')
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, 'figure5-movetime.png'), dpi=120)
    if 'figure6' in results:
        f6 = results['figure6']
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.plot([t for t, _ in f6['series']], [r for _, r in f6['series']], lw=1)
        ax.axvspan(f6['move_start'], f6['redir_end'], color='orange', alpha=0.3, label='Move')
        ax.set_xlabel('time since the replay began (s)')
        ax.set_ylabel('packets/s at the sink')
        ax.set_title('Sink rate around an OpenNF LF PZ|LL|ER Move, 1000 pps')
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out, 'figure6-sink-rate.png'), dpi=120)
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = [e['pps'] for e in results['loss']]
    ax.plot(xs, [e['lost'] or 0 for e in results['loss']], 'o-', label='lost')
    ax.plot(xs, [e['reordered_within_flows'] or 0 for e in results['loss']], 's--', label='reordered within flows')
    ax.set_xscale('log')
    ax.set_xlabel('replay rate (pps)')
    ax.set_ylabel('packets (median)')
    ax.set_title('OpenNF LF PZ|LL|ER Move: loss against rate')
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, 'loss-vs-rate.png'), dpi=120)


if __name__ == '__main__':
    main()
