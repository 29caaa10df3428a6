#!/usr/bin/env python3
"""assetcheck: compare two PRADS-format asset logs.

    assetcheck.py REFERENCE.log CANDIDATE.log [--min 0.99] [--show N] [--json]

Each log line `asset,vlan,port,proto,service,[service-info],distance,discovered` is reduced to
(asset, vlan, port, proto, service, service-info): distance and discovery time vary between
runs and are left out. Prints how many records each side has, how many they share, the
candidate's precision and recall, and with --show the first N records only one side has.
Exit 0 when precision and recall both reach --min (default 0.99), 1 when not, 2 on bad input.
"""
import json
import sys


def records(path):
    found = set()
    with open(path, errors='replace') as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip('\n')
            if not line or line.startswith('#') or line.startswith('asset,'):
                continue
            start = line.find(',[')
            end = line.rfind('],')
            if start < 0 or end < start:
                raise ValueError(f'{path}:{number}: not a PRADS asset line')
            fields = line[:start].split(',')
            if len(fields) < 5:
                raise ValueError(f'{path}:{number}: fewer than five fields before the service-info')
            found.add(tuple(fields[:5]) + (line[start + 2:end],))
    return found


def main(argv):
    args, options = [], {'--min': '0.99', '--show': '0'}
    i = 0
    while i < len(argv):
        if argv[i] in options:
            if i + 1 >= len(argv):
                print(f'assetcheck: {argv[i]} needs a value', file=sys.stderr)
                return 2
            options[argv[i]] = argv[i + 1]
            i += 2
        elif argv[i] == '--json':
            options['--json'] = True
            i += 1
        else:
            args.append(argv[i])
            i += 1
    if len(args) != 2:
        print(__doc__.strip().split('\n\n')[0], file=sys.stderr)
        return 2
    try:
        minimum, show = float(options['--min']), int(options['--show'])
        reference, candidate = records(args[0]), records(args[1])
    except (OSError, ValueError) as error:
        print(f'assetcheck: {error}', file=sys.stderr)
        return 2
    common = reference & candidate
    precision = len(common) / len(candidate) if candidate else 0.0
    recall = len(common) / len(reference) if reference else 0.0
    ok = precision >= minimum and recall >= minimum
    result = {'reference': len(reference), 'candidate': len(candidate), 'common': len(common),
              'precision': f'{precision:.4f}', 'recall': f'{recall:.4f}', 'verdict': 'PASS' if ok else 'FAIL'}
    if options.get('--json'):
        print(json.dumps(result, sort_keys=True))
    else:
        print(' '.join(f'{k}={v}' for k, v in result.items()))
        for title, rows in (('only in reference', reference - candidate), ('only in candidate', candidate - reference)):
            for row in sorted(rows)[:show]:
                print(f'{title}: {",".join(row[:5])},[{row[5]}]')
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
