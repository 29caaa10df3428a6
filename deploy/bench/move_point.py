#!/usr/bin/env python3
"""One point of move.py's loss-against-rate part, on its own: a PZ|LL|ER Move of every IPv4 flow
half way through a replay of mix-a at PPS, on the paper's link profile, and what the checker
found (one JSON line per run).

    deploy/bench/move_point.py MODE GUARANTEE PPS [DROP_PERCENT] [RUNS]
    e.g. deploy/bench/move_point.py dist lf 10000 10 3
"""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import move  # noqa: E402


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    mode, guarantee, pps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    drop = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    runs = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    work = tempfile.mkdtemp(prefix='dist-bench-point-')
    frames = min(50000, pps * 8)
    trace = move.cut(work, frames)
    at = min(4.0, frames / pps / 2)
    up = ('--channel-drop', str(drop)) if drop else ()
    for i in range(runs):
        p = move.run(work, f'{mode}-{guarantee}-{pps}-{drop}-{i}', trace, pps, 'paper', (guarantee, 'pz,ll,er', move.ALL_V4, mode), at, up)
        r, c = p['report'] or {}, p['check']
        print(json.dumps({'mode': mode, 'guarantee': guarantee, 'pps': pps, 'drop': drop, 'lost': c['lost'],
                          'duplicated': c['duplicated'], 'reordered_within_flows': c['reordered_within_flows'],
                          'outcome': r.get('outcome'), 'move_time': r.get('moveTime'), 'redirected': r.get('packetsRedirected'),
                          'retransmissions': r.get('retransmissions'), 'timeouts': r.get('channelTimeouts'),
                          'pcapcmp_agrees': c.get('pcapcmp_agrees'), 'phases': r.get('phases'), 'source_phases': r.get('sourcePhases'), 'dir': p['dir']}), flush=True)


if __name__ == '__main__':
    main()
