"""dist-vnf's and dist-controller's logs: swift-log, one line per event, as text, logfmt or JSON
(--log-format), from a level up (--log-level)."""
import json
import os
import subprocess
import tempfile
import unittest

from support import MIX_A, ROOT, VNF, pcapcheck

EAL = ['-l', '0-1', '--no-huge', '-m', '512', '--no-pci']
CONTROLLER = os.path.join(ROOT, '.build', 'release', 'dist-controller')


class LogTests(unittest.TestCase):
    def run_vnf(self, *app):
        frames = len(pcapcheck.read_pcap(MIX_A))
        out = os.path.join(tempfile.mkdtemp(), 'out.pcap')
        vnf = VNF(EAL + ['--vdev', f'net_pcap0,rx_pcap={MIX_A},tx_pcap={out}'],
                  ['--flows', '65536', '--mbuf-size', '9216'] + list(app))
        try:
            vnf.wait_rx(frames)
        finally:
            self.assertEqual(vnf.stop(), 0, vnf.output())
        return vnf.output()

    def test_json_lines_name_the_instance_and_the_level(self):
        output = self.run_vnf('--id', 'vnf7', '--log-format', 'json')
        objects = [json.loads(l) for l in output.splitlines() if l.startswith('{')]
        self.assertGreater(len(objects), 10, output[-2000:])
        for o in objects:
            self.assertEqual(o['vnf'], 'vnf7', o)
            self.assertIn(o['level'], ('info', 'warning'), o)
            self.assertTrue(o['ts'].endswith('Z'), o)
        messages = [o['msg'] for o in objects]
        self.assertTrue(any('running' in m for m in messages), messages)
        final = [m for m in messages if m.startswith('final-stats-json: ')]
        self.assertEqual(len(final), 1)
        self.assertEqual(json.loads(final[0][len('final-stats-json: '):])['id'], 'vnf7')

    def test_logfmt_and_a_level(self):
        output = self.run_vnf('--id', 'vnf8', '--log-format', 'logfmt', '--log-level', 'warning')
        ours = [l for l in output.splitlines() if l.startswith('ts=')]
        self.assertFalse([l for l in ours if ' level=info ' in l], ours)
        quiet = self.run_vnf('--id', 'vnf8', '--log-format', 'logfmt')
        lines = [l for l in quiet.splitlines() if l.startswith('ts=')]
        self.assertTrue(any(' level=info vnf=vnf8 msg="[vnf8] running' in l for l in lines), lines[:5])

    def test_bad_log_arguments_are_refused(self):
        for args, word in ((['--log-format', 'yaml'], '--log-format'), (['--log-level', 'loud'], '--log-level')):
            result = subprocess.run([os.path.join(ROOT, '.build', 'release', 'dist-vnf')] + EAL + ['--'] + args,
                                    capture_output=True, text=True, timeout=60)
            self.assertEqual(result.returncode, 2, result.stderr)
            self.assertIn(word, result.stderr)
        result = subprocess.run([CONTROLLER, '--vnf', 'a=127.0.0.1:1@1', '--insecure-control', '--log-format', 'yaml'],
                                capture_output=True, text=True, timeout=60)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn('--log-format', result.stderr)
