"""dist-vnf's command line: help, and one clear line for every kind of bad argument."""
import os
import re
import subprocess
import tempfile
import unittest

from support import MIX_A, binary, file_prefix

BASE = ['--no-huge', '-m', '256', '--no-pci']


def run(args, timeout=60):
    return subprocess.run([binary()] + args, capture_output=True, text=True, timeout=timeout)


class CommandLineTests(unittest.TestCase):
    def assertOneLineError(self, result, *words, code=None):
        self.assertNotEqual(result.returncode, 0)
        self.assertGreater(result.returncode, 0, 'killed by a signal (crash?)')
        if code is not None:
            self.assertEqual(result.returncode, code)
        lines = [l for l in result.stderr.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, result.stderr)
        self.assertTrue(lines[0].startswith('dist-vnf: '), lines[0])
        for word in words:
            self.assertIn(word, lines[0])

    def test_help_prints_both_usages(self):
        result = run(['--', '--help'])
        self.assertEqual(result.returncode, 0)
        self.assertIn('usage: dist-vnf <EAL options> -- [options]', result.stdout)
        self.assertIn('--flows N', result.stdout)
        self.assertIn('--vdev', result.stdout + result.stderr)      # DPDK's own EAL usage
        self.assertIn('--lcores', result.stdout + result.stderr)

    def test_bad_application_arguments_name_the_argument(self):
        self.assertOneLineError(run(['-l', '0-1'] + BASE + ['--', '--flows', 'many']), '--flows', "'many'", code=2)
        self.assertOneLineError(run(['-l', '0-1'] + BASE + ['--', '--flows']), '--flows', code=2)
        self.assertOneLineError(run(['-l', '0-1'] + BASE + ['--', '--bogus']), '--bogus', code=2)
        self.assertOneLineError(run(['-l', '0-1'] + BASE + ['--', '--stats-period', '-3']), '--stats-period', code=2)
        self.assertOneLineError(run(['-l', '0-1'] + BASE + ['--', '--metrics', 'nowhere']), '--metrics', 'HOST:PORT', code=2)
        self.assertOneLineError(run(['-l', '0-1'] + BASE + ['--', '--mbuf-size', '99999999']), '--mbuf-size', code=2)
        self.assertOneLineError(run(['-l', '0-1'] + BASE + ['--', '--idle-sleep', '0']), '--idle-sleep', "'0'", code=2)
        self.assertOneLineError(run(['-l', '0-1'] + BASE + ['--', '--inspect-packets', '-1']), '--inspect-packets', code=2)
        self.assertOneLineError(run(['-l', '0-1'] + BASE + ['--', '--channel-compression', 'fast']),
                                '--channel-compression', "'fast'", code=2)
        # A channel frame is built in one mbuf: 9000 bytes do not fit the default 2048.
        key = os.path.join(tempfile.mkdtemp(), 'channel.key')
        with open(key, 'wb') as f:
            f.write(os.urandom(32))
        os.chmod(key, 0o600)
        channel = ['--channel', '198.18.100.1:7400', '--channel-key', key]
        lcores = ['--lcores', '0@0,1@1,2@0']
        self.assertOneLineError(run(lcores + BASE + ['--'] + channel + ['--channel-mtu', '9000']),
                                '--channel-mtu 9000', '--mbuf-size', code=2)
        self.assertOneLineError(run(lcores + BASE + ['--vdev', 'net_null0', '--'] + channel + ['--channel-port', '1']),
                                '--channel-port 1')

    def test_bad_eal_arguments_name_the_argument(self):
        self.assertOneLineError(run(['-l', '0-1', '--not-an-eal-option'] + BASE + ['--']), '--not-an-eal-option', code=2)
        self.assertOneLineError(run(['-l', '0-999'] + BASE + ['--file-prefix', file_prefix(), '--']), 'EAL', code=2)

    def test_missing_worker_or_port_is_explained(self):
        self.assertOneLineError(run(['-l', '0'] + BASE + ['--file-prefix', file_prefix(), '--vdev', 'net_null0', '--']),
                                'worker lcore', code=1)
        self.assertOneLineError(run(['-l', '0-1'] + BASE + ['--file-prefix', file_prefix(), '--']), 'no ports', code=1)

    def test_an_unreadable_pcap_is_a_clear_error(self):
        missing = os.path.join(tempfile.mkdtemp(), 'missing.pcap')
        result = run(['-l', '0-1'] + BASE + ['--file-prefix', file_prefix(), '--vdev', f'net_pcap0,rx_pcap={missing}', '--'])
        self.assertNotEqual(result.returncode, 0)
        self.assertGreater(result.returncode, 0)
        self.assertOneLineError(result, "Couldn't open", missing, code=1)

    def test_a_busy_admin_socket_is_refused(self):
        import socket
        path = os.path.join(tempfile.mkdtemp(), 'a.sock')
        holder = socket.socket(socket.AF_UNIX)
        holder.bind(path)
        holder.listen(1)
        try:
            result = run(['-l', '0-1'] + BASE + ['--file-prefix', file_prefix(), '--vdev', 'net_null0', '--',
                                                 '--admin', path, '--flows', '1024'])
            self.assertOneLineError(result, 'in use', code=1)
        finally:
            holder.close()


if __name__ == '__main__':
    unittest.main()


class ControllerCommandLineTests(unittest.TestCase):
    """dist-controller refuses arguments it cannot use before it binds anything."""

    def test_bad_controller_arguments_name_the_argument(self):
        controller = os.path.join(os.path.dirname(binary()), 'dist-controller')
        base = [controller, '--vnf', 'a=127.0.0.1:1@1', '--insecure-control']
        for args, word in ((['--settle', '5000'], '--settle'), (['--switch-unixctl', ''], '--switch-unixctl'),
                           (['--switch-unixctl', '/tmp/' + 'x' * 200], '--switch-unixctl')):
            result = subprocess.run(base + args, capture_output=True, text=True, timeout=60)
            self.assertEqual(result.returncode, 64, result.stderr)
            self.assertIn(word, result.stderr)


class CoreLatencyTests(unittest.TestCase):
    """dist-core-latency, which the handoff benchmark runs around each of its runs."""

    def tool(self, *args):
        path = os.path.join(os.path.dirname(binary()), 'dist-core-latency')
        return subprocess.run([path, *args], capture_output=True, text=True, timeout=60)

    def test_it_times_a_line_crossing_between_two_cpus(self):
        if os.cpu_count() < 2:
            self.skipTest('one CPU')
        result = self.tool('0', '1', '100')
        self.assertEqual(result.returncode, 0, result.stderr)
        m = re.match(r'core-latency (\d+) ns \(CPUs 0 and 1; (\d+) windows of 20 ms: (\d+) to (\d+)\)', result.stdout)
        self.assertIsNotNone(m, result.stdout)
        median, windows, low, high = map(int, m.groups())
        # (Five windows fill the 100 ms on an idle machine; under load a window waits for the
        # other CPU's thread and lasts longer, so fewer fit.)
        self.assertGreaterEqual(windows, 1)
        self.assertTrue(0 < low <= median <= high, result.stdout)

    def test_bad_arguments_are_refused(self):
        for args, code, words in ((['0', '0'], 2, 'two different CPUs'), (['x'], 2, 'usage'),
                                  (['0', str(os.cpu_count() + 64)], 1, 'cannot run on CPU')):
            result = self.tool(*args)
            self.assertEqual(result.returncode, code, (args, result.stderr))
            self.assertIn(words, result.stderr)
