"""What deploy/bench/move.py reports of its results: the Markdown tables (table1.md) and the
PNG plots (matplotlib), from the results alone (`move.py --plot RESULTS_JSON` draws them again).
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile

MOVE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'move.py')


def table_markdown(results):
    def f(v, fmt):
        return '-' if v is None else format(v, fmt)
    lines = [f'Test bed switch `{results.get("switch", "kernel")}`, profile `{results["profile"]}`, 1000 pps, every IPv4 flow moved 20 s into mix-a, '
             f'median of {results.get("table1_runs", results["runs"])} runs (`deploy/bench/move.py`). Ceiling of the test bed (no Move, '
             f'nothing lost): {results.get("ceiling", "-")} pps. OpenNF*: opennf with the control plane as fast as the data plane.', '',
             '| Config | # States | # Redirected | MoveTime (s) | RedirTime (s) | Ser% | Deser% | Controller msgs | Retransmissions | Lost | Reordered in flows | Reordered across moved flows |',
             '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |']
    for r in results.get('table1', []):
        parts = f' ({r["parts"]:.0f} parts)' if r.get('parts') else ''
        lines.append(f'| {r["config"]}{parts} | {f(r["states"], ".0f")} | {f(r["redirected"], ".0f")} | {f(r["move_time"], ".3f")} | '
                     f'{f(r["redir_time"], ".3f")} | {f(r["ser"], ".2f")} | {f(r["deser"], ".2f")} | {f(r["messages"], ".0f")} | '
                     f'{f(r.get("retransmissions"), ".0f")} | {r["lost"]} | {r["reordered_within_flows"]} | {r.get("moved_reordered", "-")} |')
    rows = {r['config']: r for r in results.get('table1', [])}
    a, b = rows.get('OpenNF LF PZ LL ER'), rows.get('DiST LF PZ LL ER')
    if a and b and a['move_time'] and b['move_time']:
        lines += ['', f'LF PZ|LL|ER MoveTime, opennf / dist: {a["move_time"] / b["move_time"]:.1f}x.']
    if results.get('cost'):
        lines += ['', f'Move cost as state grows: every flow of N concurrent TCP flows moved (LF PZ|LL|ER) at '
                  f'{results["cost"][0]["pps"]} pps, median of {results.get("cost_runs", results["runs"])} run(s):', '',
                  '| Mode | Flows | # States | MoveTime (s) | Ser% | Deser% | Channel bytes | Controller msgs | Lost (median / worst) | Completed |',
                  '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |']
        for e in results['cost']:
            lines.append(f'| {e["mode"]} | {e["flows"]} | {f(e["states"], ".0f")} | {f(e["move_time"], ".3f")} | {f(e["ser"], ".2f")} | '
                         f'{f(e["deser"], ".2f")} | {f(e["channel_bytes"], ".0f")} | {f(e["messages"], ".0f")} | '
                         f'{f(e["lost"], ".0f")} / {e["lost_worst"]} | {e["completed"]} |')
    for key, title in (('loss', 'Loss against rate'), ('drop', 'With 10% of the channel\'s frames dropped')):
        if not results.get(key):
            continue
        lines += ['', f'{title}, PZ|LL|ER Move of every IPv4 flow half way through the replay, median of '
                  f'{results.get(key + "_runs", results["runs"])} run(s):', '',
                  '| Mode | Guarantee | Rate (pps) | Lost (median / worst) | Duplicated | Reordered in flows | Redirected | Retransmissions | MoveTime (s) | Moves completed | pcapcmp agrees | Switch dropped (runs\' sum) |',
                  '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |']
        for e in results[key]:
            lines.append(f'| {e.get("mode", "opennf")} | {e.get("guarantee", "lf").upper()} | {e["pps"]} | {f(e["lost"], ".0f")} / {f(e.get("lost_worst"), ".0f")} | '
                         f'{e.get("duplicated", "-")} | {f(e["reordered_within_flows"], ".0f")} | {f(e["redirected"], ".0f")} | '
                         f'{f(e.get("retransmissions"), ".0f")} | {f(e["move_time"], ".3f")} | {e["completed"]} | '
                         f'{ {True: "yes", False: "NO", None: "-"}[e.get("pcapcmp_agrees")] } | {switch_dropped(e)} |')
    return '\n'.join(lines) + '\n'


def switch_dropped(entry):
    """What the switch's ports dropped in a point's runs, summed per port and direction (the
    switch's own view: TX to a port whose ring was full, RX it could not take)."""
    total = {}
    for r in entry.get('runs', []):
        for port, counts in (r.get('switch_drops') or {}).items():
            for direction, n in counts.items():
                total[f'{port} {direction}'] = total.get(f'{port} {direction}', 0) + n
    if not entry.get('runs'):
        return '-'
    return ', '.join(f'{k} {v}' for k, v in sorted(total.items())) or '0'


def stacked(plt, by_mode, key, path, ylabel, title, draw):
    """One panel per mode of a time series around a Move, the Move shaded."""
    fig, axes = plt.subplots(len(by_mode), 1, figsize=(6, 2.6 * len(by_mode)), squeeze=False)
    for ax, (mode, f6) in zip(axes[:, 0], sorted(by_mode.items())):
        draw(ax, [t for t, _ in f6[key]], [v for _, v in f6[key]])
        ax.axvspan(f6['move_start'], f6['redir_end'], color='orange', alpha=0.3, label='Move')
        ax.set_ylabel(ylabel, fontsize=8)
        ax.set_title(title.format(mode), fontsize=9)
        ax.legend(fontsize=7)
    axes[-1, 0].set_xlabel('time since the replay began (s)')
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def cost_plot(plt, results, out):
    """MoveTime against the states moved (log-log), each mode, with the line a MoveTime
    linear in the states from the smallest dist Move would follow."""
    fig, ax = plt.subplots(figsize=(6, 4))
    series = {}
    for e in results['cost']:
        if e.get('move_time') and e.get('states'):
            series.setdefault(e['mode'], []).append((e['states'], e['move_time']))
    for mode, pts in sorted(series.items()):
        pts.sort()
        ax.plot([x for x, _ in pts], [y for _, y in pts], 'o-' if mode == 'opennf' else 's-', label=f'{mode} LF PZ|LL|ER')
    if series.get('dist'):
        (x0, y0), xs = series['dist'][0], [x for x, _ in series['dist']]
        ax.plot(xs, [y0 * x / x0 for x in xs], ':', color='gray', label='linear in the states')
    ax.set_xscale('log')
    ax.set_yscale('log')
    ax.set_xlabel('per-flow states moved')
    ax.set_ylabel('MoveTime (s)')
    pps = {e['pps'] for e in results['cost']}
    ax.set_title(f'Move cost: {results.get("switch", "kernel")} test bed, {results.get("profile")} profile, '
                 f'{"/".join(str(p) for p in sorted(pps))} pps, median of {results.get("cost_runs", "?")}', fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, 'movetime-vs-states.png'), dpi=120)
    plt.close(fig)


def plots(results, out):
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        # Debian's python3-matplotlib serves the system interpreter; another python3 may be first on PATH.
        system = '/usr/bin/python3'
        if os.path.realpath(sys.executable) != os.path.realpath(system) and os.path.exists(system):
            with tempfile.NamedTemporaryFile('w', suffix='.json') as f:
                json.dump(results, f)
                f.flush()
                subprocess.run([system, MOVE, '--plot', f.name, '--out', out])
        else:
            print('(matplotlib missing: no plots; apt-get install python3-matplotlib)')
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for mode in sorted({p.get('mode', 'opennf') for p in results.get('figure5', [])}):
        for pps in sorted({p['pps'] for p in results['figure5']}):
            pts = sorted((p['states'], p['move_time']) for p in results['figure5'] if p['pps'] == pps and p.get('mode', 'opennf') == mode)
            if pts:
                ax.plot([s for s, _ in pts], [t for _, t in pts], 'o-' if mode == 'opennf' else 's--', label=f'{mode} {pps} pps')
    ax.set_xlabel('states moved (per-flow)')
    ax.set_ylabel('MoveTime (s)')
    ratios = []
    for p in results.get('figure5', []):
        if p.get('mode') == 'dist':
            same = [q['move_time'] for q in results['figure5'] if q.get('mode', 'opennf') == 'opennf' and q['pps'] == p['pps'] and q['filter'] == p['filter']]
            if same and p['move_time']:
                ratios.append(statistics.median(same) / p['move_time'])
    ratio = f' (opennf/dist median {statistics.median(ratios):.1f}x)' if ratios else ''
    ax.set_title('LF PZ|LL|ER: MoveTime against states' + ratio, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    if results.get('figure5'):
        fig.savefig(os.path.join(out, 'figure5-movetime.png'), dpi=120)
    plt.close(fig)
    f6s = results.get('figure6') or {}
    if 'series' in f6s:
        f6s = {'opennf': f6s}
    if f6s:
        stacked(plt, f6s, 'series', os.path.join(out, 'figure6-sink-rate.png'), 'packets/s at the sink',
                'Sink rate around a {} LF PZ|LL|ER Move, 1000 pps', lambda ax, xs, ys: ax.plot(xs, ys, lw=1))
        with_latency = {m: f6 for m, f6 in f6s.items() if f6.get('latency')}
        if with_latency:
            def dots(ax, xs, ys):
                ax.plot(xs, ys, '.', ms=2)
                ax.set_yscale('log')
            stacked(plt, with_latency, 'latency', os.path.join(out, 'latency-during-move.png'), 'latency (ms)',
                    'Per-packet latency of moved flows through the VNFs, {} LF PZ|LL|ER, 1000 pps', dots)
    if results.get('cost'):
        cost_plot(plt, results, out)
    if results.get('loss') or results.get('drop'):
        fig, ax = plt.subplots(figsize=(6, 4))
        entries = results.get('loss', []) + results.get('drop', [])
        for key in sorted({(e.get('mode', 'opennf'), e.get('guarantee', 'lf'), e.get('drop', 0)) for e in entries}):
            pts = [e for e in entries if (e.get('mode', 'opennf'), e.get('guarantee', 'lf'), e.get('drop', 0)) == key]
            label = f'{key[0]} {key[1].upper()}' + (f' {key[2]}% channel drop' if key[2] else '')
            xs = [e['pps'] for e in pts]
            ax.plot(xs, [e['lost'] or 0 for e in pts], 'o-', label=f'{label}: lost')
            ax.plot(xs, [e['reordered_within_flows'] or 0 for e in pts], 's--', label=f'{label}: reordered within flows')
        ax.set_xscale('log')
        ax.set_xlabel('replay rate (pps)')
        ax.set_ylabel('packets (median)')
        ax.set_title('PZ|LL|ER Move: loss against rate')
        ax.legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(os.path.join(out, 'loss-vs-rate.png'), dpi=120)
