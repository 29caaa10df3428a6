#!/usr/bin/env python3
"""`python3 -m unittest discover ...` that also says how long each test took: the ten slowest
at the end (the integration suite's time is most of CI's), and every test's seconds in
$TIMINGS_FILE if set. Usage: timed_unittest.py START_DIR [PATTERN]."""
import os
import sys
import time
import unittest


class TimedResult(unittest.TextTestResult):
    timings = []

    def startTest(self, test):
        self._started = time.monotonic()
        super().startTest(test)

    def stopTest(self, test):
        TimedResult.timings.append((time.monotonic() - self._started, test.id()))
        super().stopTest(test)


def main():
    start = sys.argv[1] if len(sys.argv) > 1 else '.'
    pattern = sys.argv[2] if len(sys.argv) > 2 else 'test_*.py'
    suite = unittest.defaultTestLoader.discover(start, pattern=pattern, top_level_dir=start)
    runner = unittest.TextTestRunner(verbosity=2, resultclass=TimedResult)
    result = runner.run(suite)
    slowest = sorted(TimedResult.timings, reverse=True)
    print('slowest tests:', file=sys.stderr)
    for seconds, name in slowest[:10]:
        print(f'  {seconds:6.1f} s  {name}', file=sys.stderr)
    if os.environ.get('TIMINGS_FILE'):
        with open(os.environ['TIMINGS_FILE'], 'w') as f:
            for seconds, name in slowest:
                f.write(f'{seconds:.1f}\t{name}\n')
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == '__main__':
    main()
