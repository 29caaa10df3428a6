"""The Move tests' harness: a test bed of dist-controller, Open vSwitch and two dist-vnf
(deploy/testbed.sh), replayed traffic, a Move, the checker's verdict, and asset parity with one
dist-vnf reading the frames the switch sent on. The tests are in test_move.py (one worker per
VNF), test_move_workers.py (several) and test_move_failures.py (a destination that stops
answering or dies mid-Move)."""
import collections
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from support import MIX_A, ROOT, SHARED_PCAPCMP, VNF, admin_request, asset_facts, facts_agreement, scrapes, write_pcap

sys.path.insert(0, os.path.join(ROOT, 'deploy', 'tools'))
import pcapcheck  # noqa: E402

TESTBED = os.path.join(ROOT, 'deploy', 'testbed.sh')
FRAMES = 6000
# 10.0.0.0/8 carries most of the trace's frames 1000-2500: a Move 1.5 s into a 1000 pps replay
# has packets of moved flows arriving all through it.
FILTER = 'nw_src=10.0.0.0/8'
MOVE_AT = 1.5
# An OP Move's messages at most, and an LF one's (see dist_moved).
OP_MESSAGES = 14
LF_MESSAGES = 11


def records(path):
    """An asset log's records without the time they were learnt, counted."""
    with open(path) as f:
        lines = [line.strip() for line in f if line.strip() and not line.startswith('asset,')]
    return collections.Counter(line.rsplit(',', 1)[0] for line in lines)


class TestBed:
    def __init__(self, directory, **env):
        self.dir = directory
        self.env = dict(os.environ, DIST_TESTBED_DIR=directory, **env)

    def run(self, *args, check=True, timeout=120):
        out = subprocess.run([TESTBED, *args], capture_output=True, text=True, env=self.env, timeout=timeout)
        if check and out.returncode != 0:
            # (What the test bed said is the whole diagnosis: CalledProcessError would hide it.)
            raise AssertionError(f'testbed.sh {" ".join(args)} exited {out.returncode}:\n'
                                 f'{out.stdout[-2000:]}\n{out.stderr[-4000:]}')
        return out

    def pid(self, name):
        with open(os.path.join(self.dir, f'{name}.pid')) as f:
            return int(f.read())


class MoveCase(unittest.TestCase):
    """A test bed per test, the trace's first FRAMES frames replayed at 1000 pps, and a Move
    MOVE_AT seconds in (see ``moved``)."""
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='dist-move-')
        cls.trace = os.path.join(cls.tmp, 'part.pcap')
        cls.frames = pcapcheck.read_pcap(MIX_A)[:FRAMES]
        write_pcap(cls.trace, cls.frames)

    def session(self, name, *up, **env):
        bed = TestBed(os.path.join(self.tmp, name), **env)
        out = bed.run('up', *up)
        self.assertIn('up: 2 VNFs', out.stdout, out.stderr)
        return bed

    def replay(self, bed):
        thread = threading.Thread(target=bed.run, args=('replay', self.trace, '1000'), kwargs={'timeout': 60})
        thread.start()
        return thread

    def move(self, bed, *args):
        out = bed.run('move', '--from', 'vnf1', '--to', 'vnf2', '--filter', FILTER, '--json', *args, check=False)
        reply = json.loads(out.stdout[out.stdout.index('{'):])
        return reply['report'], out

    def verdict(self, bed, order):
        reference = os.path.join(bed.dir, 'reference.pcap')
        out = bed.run('check', self.trace, '--moved', '10.0.0.0/8', '--order', order, '--json',
                      '--reference', reference, check=False)
        result = json.loads(out.stdout)
        if os.path.exists(SHARED_PCAPCMP):
            # The independent checker agrees: delivery against the trace, order against the switch's.
            shared = subprocess.run([sys.executable, SHARED_PCAPCMP, self.trace, os.path.join(bed.dir, 'sink.pcap')],
                                    capture_output=True, text=True).stdout
            for key in ('lost', 'duplicated'):
                self.assertIn(f'{key}={result[key]}', shared)
            shared = subprocess.run([sys.executable, SHARED_PCAPCMP, reference, os.path.join(bed.dir, 'sink.pcap')],
                                    capture_output=True, text=True).stdout
            self.assertIn(f"reordered_within_flows={result['reordered_within_flows']}", shared)
        return result

    def offline_records(self, pcap):
        """What one dist-vnf learns from these frames, read in this order from a file: no Move
        and no switch between them."""
        frames = len(pcapcheck.read_pcap(pcap))
        log = pcap + '-assets.log'
        if os.path.exists(log):
            os.remove(log)  # (dist-vnf appends: this run's records only)
        vnf = VNF(['-l', '0-1', '--no-huge', '-m', '512', '--no-pci', '--vdev', f'net_pcap0,rx_pcap={pcap},tx_pcap={pcap}.out'],
                  ['--id', 'offline', '--mbuf-size', '12288', '--flows', '65536', '--asset-log', log])
        try:
            vnf.wait_rx(frames)
        finally:
            vnf.stop()
        return records(log)

    def moved(self, guarantee, opt, order, mode='opennf', up=(), extra=(), parity=True):
        name = f'{mode}-{guarantee}-{opt.replace(",", "")}-{"".join(up).replace("-", "").replace(",", "")}{"".join(extra).replace("-", "")}'
        bed = self.session(name, *up)
        try:
            replay = self.replay(bed)
            time.sleep(MOVE_AT)
            report, out = self.move(bed, '--guarantee', guarantee, '--opt', opt, '--mode', mode, *extra)
            replay.join()
            flows_after = bed.run('ctl', 'flows', 'vnf1', '--filter', FILTER).stdout
            reply = admin_request(os.path.join(bed.dir, 'vnf2.sock'), {'cmd': 'flows', 'limit': 100000})
            self.destination_flows = reply.get('flows', [])
            self.assertIn('flows', reply, reply)
            ended_in = self.destination_said(bed) if mode == 'dist' and report.get('outcome') == 'completed' else None
            self.scrapes = scrapes(bed.run('metrics', check=False).stdout)
        finally:
            bed.run('down')
        if ended_in is not None:
            # The destination kept what it imported: its side of the Move completed too (it
            # did not give the Move up, forgetting the flows, for want of the source's last ack).
            self.assertIn('in: completed', ended_in)
        self.assertEqual(report['outcome'], 'completed', out.stdout + out.stderr)
        self.assertGreater(report['perFlowStates'], 10, report)
        self.assertGreater(report['moveTime'], 0, report)
        if guarantee != 'ng':
            # The source's copy is gone. (Without a guarantee, a packet the switch still sent
            # the source after the update starts its flow there again.)
            self.assertTrue(flows_after.startswith('0 flows'), flows_after)
        result = self.verdict(bed, order)
        self.assertEqual(result['verdict'], 'PASS', result)
        # What the two VNFs learnt together about the moved hosts is what one dist-vnf learns,
        # once each, from the same frames in the order the switch sent them on (the switch
        # reorders frames of different flows, and a host's fingerprint record can depend on
        # which of its flows' FIN comes first). Records of other hosts can differ: the Move's
        # rules change how the switch orders the two directions of flows it does not move.
        if not parity:
            return report, result
        expected = self.offline_records(os.path.join(bed.dir, 'reference.pcap'))
        together = records(os.path.join(bed.dir, 'vnf1-assets.log')) + records(os.path.join(bed.dir, 'vnf2-assets.log'))
        moved_hosts = self.of_moved(together)
        self.assertGreater(sum(moved_hosts.values()), 10)
        if parity == 'workers':
            # Several workers: each keeps the hosts its own flows touch, and PRADS records a
            # host's first sighting of each thing, which for two workers is either's first.
            # What was learnt of the moved hosts agrees (asset_facts), not record for record.
            precision, recall = facts_agreement(asset_facts(self.of_moved(expected)), asset_facts(moved_hosts))
            self.assertGreaterEqual(min(precision, recall), 0.97, (precision, recall))
        else:
            self.assertEqual(moved_hosts, self.of_moved(expected))
        return report, result

    def dist_moved(self, guarantee, opt, up=(), extra=(), parity=True):
        # Across flows, order holds only where one worker sends them all: several workers send
        # on queues of their own, and the sink sees their frames interleaved, Move or not.
        # Within a flow, the kernel's fanout can put its two directions on two queues (it did
        # with an IPv4-in-IPv6 tunnel of the trace, outside any Move): the two workers then
        # send them in the order they run, and only each direction keeps its order.
        counts = up[up.index('--workers') + 1].split(',') if '--workers' in up else ['1']
        one_worker = all(c == '1' for c in counts)
        within = 'flows' if one_worker else 'directions'
        order = {'lf': within, 'op': 'all' if 'll' not in opt and one_worker else within}.get(guarantee, 'none')
        report, result = self.moved(guarantee, opt, order, mode='dist', up=up, extra=extra, parity=parity)
        # The controller only signals: a handful of messages whatever the flows, packets and
        # workers (OP adds its reflector's FLOW_MOD and DELETE, and the datapath's update: a
        # BARRIER and Open vSwitch's revalidator/purge, each with its reply; the switch's
        # reflector makes the in-band control packet's copies for several workers out of one
        # PACKET_OUT; LF and redirect-first have the BARRIER and the purge, each with its reply,
        # then the IBC).
        limit = OP_MESSAGES if guarantee == 'op' else LF_MESSAGES
        self.assertLessEqual(report['messagesSent'] + report['messagesReceived'], limit, report)
        self.assertGreater(report['channelFrames'], 0, report)
        if guarantee != 'ng':
            # Redirected packets and the switch's meet at the destination in order.
            self.assertEqual(result['reordered_within_directions' if within == 'directions' else 'reordered_within_flows'],
                             0, result)
        return report, result

    @staticmethod
    def destination_said(bed, timeout=8):
        """The destination's log line on how the Move in ended (waits for it)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with open(os.path.join(bed.dir, 'vnf2.log'), errors='replace') as f:
                lines = [line for line in f if ' in: ' in line and '] move ' in line]
            if lines:
                return lines[-1]
            time.sleep(0.2)
        return 'no line in vnf2.log on the Move in'

    @staticmethod
    def of_moved(counted):
        import ipaddress
        prefix = ipaddress.ip_network(FILTER.split('=')[1])
        def inside(record):
            try:
                return ipaddress.ip_address(record.split(',')[0]) in prefix
            except ValueError:
                return False
        return collections.Counter({r: n for r, n in counted.items() if inside(r)})
