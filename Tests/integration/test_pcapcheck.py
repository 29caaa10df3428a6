"""The project's loss-and-order checker, on traces with known damage, cross-checked
against shared/tools/pcapcmp.py when that copy is beside the project."""
import os
import random
import re
import subprocess
import sys
import tempfile
import unittest

from support import MIX_A, ROOT, SHARED_PCAPCMP, eth, ipv4, pcapcheck, udp, write_pcap

CHECKER = os.path.join(ROOT, 'deploy', 'tools', 'pcapcheck.py')


def run_checker(sent, received, *flags):
    out = subprocess.run([sys.executable, CHECKER, 'compare', sent, received, *flags],
                         capture_output=True, text=True)
    fields = dict(re.findall(r'(\w+)=(\w+)', out.stdout))
    return out.returncode, fields


def run_reference(sent, received, *flags):
    out = subprocess.run([sys.executable, SHARED_PCAPCMP, sent, received, *flags], capture_output=True, text=True)
    return out.returncode, dict(re.findall(r'(\w+)=(\w+)', out.stdout))


class PcapCheckTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.frames = pcapcheck.read_pcap(MIX_A)
        cls.dir = tempfile.mkdtemp(prefix='pcapcheck-')

    def scenario(self, name, received, expect, strict_ok=None):
        sent_path = os.path.join(self.dir, 'sent.pcap')
        if not os.path.exists(sent_path):
            write_pcap(sent_path, self.frames)
        path = os.path.join(self.dir, name + '.pcap')
        write_pcap(path, received)
        code, got = run_checker(sent_path, path)
        for key, value in expect.items():
            self.assertEqual(int(got[key]), value, f'{name}: {key}')
        self.assertEqual(code, 0 if expect.get('lost', 0) == 0 and expect.get('duplicated', 0) == 0
                         and expect.get('reordered_within_flows', 0) == 0 else 1, name)
        strict_code, _ = run_checker(sent_path, path, '--strict')
        if strict_ok is not None:
            self.assertEqual(strict_code == 0, strict_ok, f'{name} --strict')
        if os.path.exists(SHARED_PCAPCMP):
            # Cross-check: the independent reference must see the same counts and verdicts.
            ref_code, ref = run_reference(sent_path, path)
            for key in ('sent', 'received', 'lost', 'duplicated', 'extra', 'reordered', 'reordered_within_flows'):
                self.assertEqual(got[key], ref[key], f'{name}: {key} differs from pcapcmp.py')
            self.assertEqual(code, ref_code, f'{name}: verdict differs from pcapcmp.py')
            self.assertEqual(strict_code, run_reference(sent_path, path, '--strict')[0], f'{name}: strict verdict')

    def test_a_copy_to_both_vnfs_left_the_switch_once(self):
        """An order-preserving Move's first phase sends each packet to both VNFs: seen in both
        captures, it left the switch once. With a frame the trace repeats, counting the copy
        as a second sending placed the later repeat too early, and a correct sink order was
        judged reordered (58 times in one ICMP flow at 5,000 pps)."""
        def frame(payload):
            return eth(0x0800) + ipv4(17, [198, 18, 0, 1], [198, 18, 0, 2], udp(5000, 6000, payload))
        x, a = frame(b'same'), frame(b'other')
        sent = [x, a, x]
        to_vnf1 = [(1.0000, x)]                         # phase 1: a copy to each
        to_vnf2 = [(1.0003, x), (2.0, a), (3.0, x)]     # phase 2: the destination only
        reference, verdict = pcapcheck.judge_testbed(sent, [x, a, x], [to_vnf1, to_vnf2])
        self.assertEqual(reference, [x, a, x])
        self.assertEqual(verdict['reordered_within_flows'], 0)
        self.assertEqual(verdict['lost'], 0)
        # A real reorder is still one.
        _, verdict = pcapcheck.judge_testbed(sent, [a, x, x], [to_vnf1, to_vnf2])
        self.assertEqual(verdict['reordered_within_flows'], 1)

    def test_identical_trace_passes(self):
        self.scenario('same', self.frames, {'lost': 0, 'duplicated': 0, 'extra': 0, 'reordered': 0,
                                            'reordered_within_flows': 0}, strict_ok=True)

    def test_lost_frames_are_counted(self):
        received = [f for i, f in enumerate(self.frames) if i % 97 != 5]
        self.scenario('lost', received, {'lost': len(self.frames) - len(received), 'extra': 0})

    def test_duplicates_and_extras_are_counted(self):
        from collections import Counter
        copies = Counter(self.frames)
        unique = next(i for i, f in enumerate(self.frames) if copies[f] == 1)
        received = list(self.frames) + [self.frames[unique], b'\x00' * 60]
        self.scenario('dup', received, {'lost': 0, 'duplicated': 1, 'extra': 1}, strict_ok=False)

    def test_reordering_within_a_flow_fails(self):
        received = list(self.frames)
        # Find two frames of the same flow close together and swap them.
        seen = {}
        for i, f in enumerate(self.frames[:2000]):
            k = pcapcheck.flow_of(f)
            if k is not None and k in seen and i - seen[k] < 50 and self.frames[seen[k]] != f:
                j = seen[k]
                received[i], received[j] = received[j], received[i]
                break
            seen[k] = i
        else:
            self.fail('no swappable pair found')
        self.scenario('inflow', received, {'lost': 0, 'reordered_within_flows': 1}, strict_ok=False)

    def test_reordering_across_flows_only_fails_strict(self):
        received = list(self.frames)
        rng = random.Random(7)
        swaps = 0
        for _ in range(5000):
            i = rng.randrange(len(received) - 1)
            a, b = pcapcheck.flow_of(received[i]), pcapcheck.flow_of(received[i + 1])
            if a is not None and b is not None and a != b and received[i] != received[i + 1]:
                received[i], received[i + 1] = received[i + 1], received[i]
                swaps += 1
                if swaps == 20:
                    break
        self.assertEqual(swaps, 20)
        self.scenario('across', received, {'lost': 0, 'reordered_within_flows': 0}, strict_ok=False)

    def test_flow_count_matches_a_hand_count(self):
        from support import eth, ipv4, tcp, udp
        a, b = [198, 18, 0, 1], [198, 18, 0, 2]
        frames = [eth(0x0800) + ipv4(6, a, b, tcp(1, 2, 2)), eth(0x0800) + ipv4(6, b, a, tcp(2, 1, 0x12)),
                  eth(0x0800, [5]) + ipv4(6, a, b, tcp(1, 2, 2)), eth(0x0800) + ipv4(17, a, b, udp(1, 2)),
                  eth(0x0806) + bytes(28)]
        path = os.path.join(self.dir, 'hand.pcap')
        write_pcap(path, frames)
        out = subprocess.run([sys.executable, CHECKER, 'flows', path], capture_output=True, text=True)
        self.assertIn('flows=3', out.stdout)

    def test_unreadable_input_is_an_error_not_a_verdict(self):
        bad = os.path.join(self.dir, 'bad.pcap')
        with open(bad, 'wb') as f:
            f.write(b'not a pcap at all, not even close')
        out = subprocess.run([sys.executable, CHECKER, 'compare', bad, MIX_A], capture_output=True, text=True)
        self.assertEqual(out.returncode, 2)
        self.assertIn('not a classic pcap', out.stderr)


if __name__ == '__main__':
    unittest.main()
