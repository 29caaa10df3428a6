"""Test-bed elements, each measured for what it adds: the TCP delay proxy of control links."""
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import unittest

from support import ROOT

PROXY = os.path.join(ROOT, 'deploy', 'testbed', 'delayproxy.py')


def echo_server():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    s.listen(4)

    def serve():
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            def loop(c=c):
                with c:
                    while True:
                        data = c.recv(65536)
                        if not data:
                            return
                        c.sendall(data)
            threading.Thread(target=loop, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return s


class DelayProxyTests(unittest.TestCase):
    def start(self, target, delay_ms, rate_mbit):
        p = subprocess.Popen([sys.executable, PROXY, '127.0.0.1:0', f'127.0.0.1:{target}', '--delay-ms', str(delay_ms),
                              '--rate-mbit', str(rate_mbit)], stdout=subprocess.PIPE, text=True)
        line = p.stdout.readline()
        port = int(re.search(r'127\.0\.0\.1:(\d+) ->', line).group(1))
        self.addCleanup(lambda: (p.send_signal(signal.SIGINT), p.wait(timeout=10), p.stdout.close()))
        return port

    @staticmethod
    def round_trips(port, n=30):
        with socket.create_connection(('127.0.0.1', port)) as c:
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            times = []
            for _ in range(n):
                t = time.monotonic()
                c.sendall(b'x' * 64)
                got = b''
                while len(got) < 64:
                    got += c.recv(64 - len(got))
                times.append(time.monotonic() - t)
            return statistics.median(times)

    def test_it_adds_its_delay_each_way(self):
        server = echo_server()
        self.addCleanup(server.close)
        target = server.getsockname()[1]
        direct = self.round_trips(target)
        delayed = self.round_trips(self.start(target, delay_ms=10, rate_mbit=0))
        added = (delayed - direct) * 1000
        self.assertGreater(added, 19, f'{added:.1f} ms added to a round trip')
        self.assertLess(added, 30, f'{added:.1f} ms added to a round trip')

    def test_it_limits_the_rate(self):
        server = echo_server()
        self.addCleanup(server.close)
        port = self.start(server.getsockname()[1], delay_ms=0, rate_mbit=10)
        payload = b'y' * 500_000
        with socket.create_connection(('127.0.0.1', port)) as c:
            t = time.monotonic()
            threading.Thread(target=lambda: c.sendall(payload), daemon=True).start()
            got = 0
            while got < len(payload):
                got += len(c.recv(65536))
            elapsed = time.monotonic() - t
        # 500 kB at 10 Mbit/s is 0.4 s each way; the two ways overlap.
        self.assertGreater(elapsed, 0.35)
        self.assertLess(elapsed, 1.2)


if __name__ == '__main__':
    unittest.main()


DELAYLINE = os.path.join(ROOT, '.build', 'release', 'dist-delayline')

SENDER = r'''
import socket, struct, sys, time
iface, count, gap, size, ports = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), [int(p) for p in sys.argv[5].split(',')]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
for i in range(count):
    port = ports[i % len(ports)]
    payload = struct.pack('>Id', i, time.monotonic()).ljust(max(12, size - 42), b'\0')
    udp = struct.pack('>HHHH', 40000, port, 8 + len(payload), 0) + payload
    ip = struct.pack('>BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0, bytes([198, 18, 9, 1]), bytes([198, 18, 9, 2]))
    s.send(bytes.fromhex('020000000902020000000901') + b'\x08\x00' + ip + udp)
    if gap:
        time.sleep(gap)
'''

RECEIVER = r'''
import socket, struct, sys, time, json
iface, count, wait = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((iface, 0))
s.settimeout(0.5)
print('ready', flush=True)
seen = []
deadline = time.time() + wait
while len(seen) < count and time.time() < deadline:
    try:
        data, addr = s.recvfrom(65535)
    except socket.timeout:
        continue
    if addr[2] == socket.PACKET_OUTGOING or len(data) < 54 or data[12:14] != b'\x08\x00' or data[23] != 17:
        continue
    now = time.monotonic()
    port = struct.unpack('>H', data[36:38])[0]
    seq, sent = struct.unpack('>Id', data[42:54])
    seen.append((seq, port, now - sent, now))
print(json.dumps(seen))
'''


@unittest.skipUnless(os.geteuid() == 0, 'needs root for network namespaces and raw sockets')
class DelayLineTests(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(DELAYLINE):
            self.skipTest('build first: swift build -c release')
        DelayLineTests.runs = getattr(DelayLineTests, 'runs', 0) + 1
        tag = f'dl{os.getpid() % 10000}{DelayLineTests.runs}'
        self.ns = [f'{tag}-a', f'{tag}-b']
        self.inner = [f'{tag}a0', f'{tag}b0']
        self.outer = [f'{tag}a1', f'{tag}b1']
        for ns, inner, outer in zip(self.ns, self.inner, self.outer):
            subprocess.run(['ip', 'netns', 'add', ns], check=True)
            self.addCleanup(subprocess.run, ['ip', 'netns', 'delete', ns], capture_output=True)
            subprocess.run(['ip', 'link', 'add', outer, 'type', 'veth', 'peer', 'name', inner, 'netns', ns], check=True)
            self.addCleanup(subprocess.run, ['ip', 'link', 'delete', outer], capture_output=True)
            subprocess.run(['sysctl', '-qw', f'net.ipv6.conf.{outer}.disable_ipv6=1'], check=True)
            subprocess.run(['ip', 'link', 'set', outer, 'up'], check=True)
            subprocess.run(['ip', 'netns', 'exec', ns, 'sysctl', '-qw', f'net.ipv6.conf.{inner}.disable_ipv6=1'], check=True)
            subprocess.run(['ip', 'netns', 'exec', ns, 'ip', 'link', 'set', inner, 'up'], check=True)

    def run_line(self, args, count, gap, size=100, ports='5000', wait=15):
        line = subprocess.Popen([DELAYLINE, '--a', self.outer[0], '--b', self.outer[1]] + args,
                                stdout=subprocess.PIPE, text=True)
        self.addCleanup(lambda: (line.send_signal(signal.SIGINT), line.wait(timeout=10), line.stdout.close()))
        self.assertIn('dist-delayline:', line.stdout.readline())
        receiver = subprocess.Popen(['ip', 'netns', 'exec', self.ns[1], sys.executable, '-c', RECEIVER, self.inner[1],
                                     str(count), str(wait)], stdout=subprocess.PIPE, text=True)
        self.assertEqual(receiver.stdout.readline().strip(), 'ready')
        subprocess.run(['ip', 'netns', 'exec', self.ns[0], sys.executable, '-c', SENDER, self.inner[0], str(count),
                        str(gap), str(size), ports], check=True, timeout=120)
        import json
        out, _ = receiver.communicate(timeout=wait + 30)
        return json.loads(out.strip().splitlines()[-1])

    def test_vlan_tagged_frames_cross_unchanged(self):
        """The kernel takes VLAN tags off before packet sockets see frames; the line puts them back."""
        line = subprocess.Popen([DELAYLINE, '--a', self.outer[0], '--b', self.outer[1], '--delay-ms', '0', '--rate-mbit', '0'],
                                stdout=subprocess.PIPE, text=True)
        self.addCleanup(lambda: (line.send_signal(signal.SIGINT), line.wait(timeout=10), line.stdout.close()))
        self.assertIn('dist-delayline:', line.stdout.readline())
        import tempfile
        capture = os.path.join(tempfile.mkdtemp(prefix='dl-vlan-'), 'b.pcap')
        dump = subprocess.Popen(['ip', 'netns', 'exec', self.ns[1], 'tcpdump', '-i', self.inner[1], '-Q', 'in', '-U', '-c', '2',
                                 '-w', capture, '-s', '0'], stderr=subprocess.PIPE, text=True)
        self.assertIn('listening', dump.stderr.readline())
        ip = bytes.fromhex('4500001c000100004011') + b'\0\0' + bytes([198, 18, 9, 1, 198, 18, 9, 2]) + bytes.fromhex('9c4013880008') + b'\0\0'
        tagged = bytes.fromhex('020000000902020000000901') + bytes.fromhex('8100a00c0800') + ip
        qinq = bytes.fromhex('020000000902020000000901') + bytes.fromhex('88a80064810000070800') + ip
        sender = 'import socket,sys; s=socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind((sys.argv[1], 0)); ' \
                 '[s.send(bytes.fromhex(h)) for h in sys.argv[2:]]'
        subprocess.run(['ip', 'netns', 'exec', self.ns[0], sys.executable, '-c', sender, self.inner[0], tagged.hex(), qinq.hex()],
                       check=True)
        dump.wait(timeout=10)
        dump.stderr.close()
        sys.path.insert(0, os.path.join(ROOT, 'deploy', 'tools'))
        import pcapcheck
        self.assertEqual(pcapcheck.read_pcap(capture), [tagged, qinq])

    def test_it_adds_its_delay_in_order(self):
        seen = self.run_line(['--delay-ms', '2', '--rate-mbit', '0'], count=200, gap=0.001)
        self.assertEqual([s[0] for s in seen], list(range(200)))
        latency = statistics.median(s[2] for s in seen) * 1000
        self.assertGreater(latency, 1.9, f'{latency:.2f} ms')
        self.assertLess(latency, 4.0, f'{latency:.2f} ms')

    def test_it_paces_at_its_rate(self):
        seen = self.run_line(['--delay-ms', '0', '--rate-mbit', '50'], count=1500, gap=0, size=1400)
        self.assertEqual(len(seen), 1500)
        span = seen[-1][3] - seen[0][3]
        # 1500 frames of 1400 bytes at 50 Mbit/s take 0.34 s.
        self.assertGreater(span, 0.30, f'{span:.3f} s')
        self.assertLess(span, 0.60, f'{span:.3f} s')

    def test_it_drops_a_share_of_one_udp_port_only(self):
        seen = self.run_line(['--delay-ms', '0', '--rate-mbit', '0', '--drop-percent', '10', '--drop-udp-port', '9999'],
                             count=2000, gap=0.0002, ports='9999,1234', wait=8)
        kept = sum(1 for s in seen if s[1] == 9999)
        self.assertEqual(sum(1 for s in seen if s[1] == 1234), 1000)
        self.assertEqual(kept, 900)

    DROP_10 = ['--delay-ms', '0', '--rate-mbit', '0', '--drop-percent', '10', '--drop-udp-port', '9999']

    def test_it_drops_nothing_that_comes_in_on_the_other_side(self):
        """--drop-from: on the test bed each line drops what its own VNF sends, so a frame from
        VNF to VNF, which crosses two lines, runs the chance once. (These frames come in on a.)"""
        seen = self.run_line(self.DROP_10 + ['--drop-from', 'b'], count=1000, gap=0.0002, ports='9999', wait=6)
        self.assertEqual(len(seen), 1000)

    def test_it_drops_a_share_of_what_comes_in_on_the_chosen_side(self):
        seen = self.run_line(self.DROP_10 + ['--drop-from', 'a'], count=1000, gap=0.0002, ports='9999', wait=6)
        self.assertEqual(len(seen), 900)

    def test_even_a_short_exchange_loses_its_share(self):
        """Ten frames at 10 %: one is dropped, whatever the seed (a Move's channel carries a
        dozen frames or so; by chance, one Move in three would have lost none)."""
        seen = self.run_line(self.DROP_10 + ['--seed', '38'], count=10, gap=0.001, ports='9999', wait=2)
        self.assertEqual(len(seen), 9)


TESTBED = os.path.join(ROOT, 'deploy', 'testbed.sh')


@unittest.skipUnless(os.geteuid() == 0, 'needs root for namespaces, Open vSwitch and raw sockets')
class TestBedTests(unittest.TestCase):
    """deploy/testbed.sh: up, a replay through the switch and vnf1 to the sink, down."""

    def run_testbed(self, *args, check=True):
        env = dict(os.environ, DIST_TESTBED_DIR=self.dir)
        return subprocess.run([TESTBED, *args], capture_output=True, text=True, env=env, check=check, timeout=300)

    def setUp(self):
        import tempfile
        self.dir = tempfile.mkdtemp(prefix='dist-testbed-')

    def test_frames_cross_the_test_bed_whole_and_down_leaves_nothing(self):
        import sys as _sys
        sys_path = os.path.join(ROOT, 'deploy', 'tools')
        if sys_path not in _sys.path:
            _sys.path.insert(0, sys_path)
        import pcapcheck
        from support import MIX_A, write_pcap
        trace = os.path.join(self.dir, 'part.pcap')
        frames = pcapcheck.read_pcap(MIX_A)[:3000]
        write_pcap(trace, frames)
        # What a machine restored from a disk image keeps of a namespace that was up: its file
        # in /run/netns, no longer a mount point. up takes its place.
        os.makedirs('/run/netns', exist_ok=True)
        open('/run/netns/dtb-src', 'w').close()
        try:
            self.assertIn('up: 2 VNFs', self.run_testbed('up').stdout)
            self.assertIn('already up', self.run_testbed('up', check=False).stderr)
            status = self.run_testbed('status').stdout
            self.assertIn('vnf1: running', status)
            self.assertIn('ovs-vswitchd: running', status)
            self.run_testbed('replay', trace, '2000')
            time.sleep(1)
        finally:
            self.run_testbed('down')
        result = pcapcheck.compare(frames, pcapcheck.read_pcap(os.path.join(self.dir, 'sink.pcap')))
        self.assertEqual((result['lost'], result['duplicated'], result['extra'], result['reordered_within_flows']),
                         (0, 0, 0, 0), result)
        left = subprocess.run(['ip', 'netns', 'list'], capture_output=True, text=True).stdout
        self.assertNotIn('dtb-', left)
        links = subprocess.run(['ip', '-o', 'link'], capture_output=True, text=True).stdout
        self.assertNotIn('dtb-', links)
        self.assertIn('down', self.run_testbed('status').stdout)

    def test_a_live_namespace_of_its_name_stops_up_and_stays(self):
        subprocess.run(['ip', 'netns', 'add', 'dtb-sink'], check=True)
        try:
            out = self.run_testbed('up', check=False)
            self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
            self.assertIn('namespaces dtb-sink belong to a test bed that is up', out.stderr)
            left = subprocess.run(['ip', 'netns', 'list'], capture_output=True, text=True).stdout.split()
            self.assertIn('dtb-sink', left)
            self.assertNotIn('dtb-src', left)
        finally:
            subprocess.run(['ip', 'netns', 'delete', 'dtb-sink'])

    def test_the_order_reference_is_taken_where_the_switch_sends(self):
        """With delay lines, what left the switch towards a VNF is captured before the line:
        frames reach the sink two lines (2 ms) later, not one."""
        import sys as _sys
        sys_path = os.path.join(ROOT, 'deploy', 'tools')
        if sys_path not in _sys.path:
            _sys.path.insert(0, sys_path)
        import pcapcheck
        from support import MIX_A, write_pcap
        trace = os.path.join(self.dir, 'part.pcap')
        write_pcap(trace, pcapcheck.read_pcap(MIX_A)[:500])
        try:
            self.assertIn('up: 2 VNFs', self.run_testbed('up', '--profile', 'paper').stdout)
            self.run_testbed('replay', trace, '1000')
            time.sleep(1)
        finally:
            self.run_testbed('down')
        sent = {}
        for t, f in pcapcheck.read_pcap_records(os.path.join(self.dir, 'to-vnf1.pcap')):
            sent.setdefault(f, t)
        gaps = [t - sent[f] for t, f in pcapcheck.read_pcap_records(os.path.join(self.dir, 'sink.pcap')) if f in sent]
        self.assertGreater(len(gaps), 400)
        self.assertGreater(min(gaps), 0.0019, f'{min(gaps) * 1000:.2f} ms')


class DPDKTestBedTests(unittest.TestCase):
    """deploy/testbed.sh up --switch dpdk: Open vSwitch's DPDK datapath, every VNF on a vhost-user
    port, dist-wire replaying and recording; a DiST Move across it; down."""

    def run_testbed(self, *args, check=True):
        env = dict(os.environ, DIST_TESTBED_DIR=self.dir)
        return subprocess.run([TESTBED, *args], capture_output=True, text=True, env=env, check=check, timeout=300)

    @staticmethod
    def hugepages():
        with open('/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages') as f:
            return int(f.read())

    def setUp(self):
        import tempfile
        if not os.path.exists('/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk'):
            self.fail('openvswitch-switch-dpdk is not installed (deploy/setup.sh installs it)')
        if not os.access('/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages', os.W_OK):
            self.skipTest('this kernel offers no 2 MB hugepages to reserve: the DPDK test bed cannot run here')
        self.dir = tempfile.mkdtemp(prefix='dist-testbed-dpdk-')

    def test_a_move_between_vnfs_of_four_workers_loses_nothing_and_down_leaves_nothing(self):
        # (Four workers at each VNF: their pools of 12 kB mbufs, with the handoff rings' share,
        # need the hugepages up reserves by the VNFs' worker counts.)
        from support import MIX_A
        pages = self.hugepages()
        try:
            self.assertIn('switch br0 (dpdk)', self.run_testbed('up', '--switch', 'dpdk', '--workers', '4').stdout)
            for vnf in ('vnf1', 'vnf2'):
                with open(os.path.join(self.dir, f'{vnf}.log')) as f:
                    self.assertIn('4 worker(s)', f.read())
            replay = threading.Thread(target=self.run_testbed, args=('replay', MIX_A, '20000'))
            replay.start()
            time.sleep(1.2)
            move = self.run_testbed('move', '--from', 'vnf1', '--to', 'vnf2', '--filter', 'nw_src=0.0.0.0/0',
                                    '--guarantee', 'lf', '--opt', 'pz,ll,er', '--mode', 'dist')
            replay.join()
            with open(os.path.join(self.dir, 'replay.log')) as f:
                self.assertIn('sent 54981 frames', f.read())
            # (Order is not judged: the switch regroups frames of one flow that fall in two megaflows,
            # IP fragments say, on their way from a VNF to the sink, where the checker has no
            # reference: docs/testbed-dpdk.md, Known limits. With or without a Move.)
            verdict = self.run_testbed('check', MIX_A, '--order', 'none', check=False).stdout
        finally:
            self.run_testbed('down')
        self.assertRegex(move.stdout, r'Outcome\s+\|\s+completed')
        self.assertIn('sent=54981 received=54981 lost=0 duplicated=0 extra=0', verdict)
        self.assertIn('verdict=PASS', verdict)
        # What up made is gone: namespaces, links, sockets, the switch, the hugepages it reserved.
        self.assertNotIn('dtb-', subprocess.run(['ip', 'netns', 'list'], capture_output=True, text=True).stdout)
        self.assertNotIn('dtb-', subprocess.run(['ip', '-o', 'link'], capture_output=True, text=True).stdout)
        self.assertEqual([f for f in os.listdir(self.dir) if f.endswith('.vhost')], [])
        self.assertEqual(self.hugepages(), pages)
        self.assertEqual(os.listdir('/dev/hugepages') if os.path.isdir('/dev/hugepages') else [], [])
        self.assertIn('down', self.run_testbed('status').stdout)
