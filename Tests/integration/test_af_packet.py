"""dist-vnf on veth through DPDK's net_af_packet, the way the test bed runs it: frames sent
from another network namespace come back out of the same port, whole and in order; with two
queues, both directions of every flow are tracked by one worker.

Needs root and iproute2 (network namespaces); skipped, saying why, where they are missing."""
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from support import VNF, eth, ipv4, pcapcheck, tcp, udp

PREFIX = f'dist-t{os.getpid() % 100000}'


def sh(*args, ns=None):
    command = (['ip', 'netns', 'exec', ns] if ns else []) + list(args)
    return subprocess.run(command, check=True, capture_output=True, text=True)


def test_frames(flows=40, per_flow=12):
    """Both directions of `flows` TCP and UDP flows, interleaved, with distinct payloads."""
    frames = []
    for n in range(per_flow):
        for f in range(flows):
            a, b = [198, 18, 1, f], [198, 18, 2, 200 - f]
            payload = f'{f}:{n}'.encode()
            if f % 2:
                frames.append(eth(0x0800) + ipv4(6, a, b, tcp(20000 + f, 80, 0x18, payload)))
                frames.append(eth(0x0800) + ipv4(6, b, a, tcp(80, 20000 + f, 0x10, payload)))
            else:
                frames.append(eth(0x0800) + ipv4(17, a, b, udp(30000 + f, 53, payload)))
                frames.append(eth(0x0800) + ipv4(17, b, a, udp(53, 30000 + f, payload)))
    return [f + bytes(max(0, 60 - len(f))) for f in frames]


@unittest.skipUnless(os.geteuid() == 0 and shutil.which('ip'), 'needs root and iproute2 for network namespaces')
class AfPacketTests(unittest.TestCase):
    def setUp(self):
        self.vnf_ns, self.src_ns = f'{PREFIX}-vnf', f'{PREFIX}-src'
        self.vnf_if, self.src_if = f'{PREFIX[:8]}v', f'{PREFIX[:8]}s'
        for ns in (self.vnf_ns, self.src_ns):
            sh('ip', 'netns', 'add', ns)
        self.addCleanup(self.teardown_namespaces)
        sh('ip', 'link', 'add', self.vnf_if, 'netns', self.vnf_ns, 'type', 'veth', 'peer', 'name', self.src_if,
           'netns', self.src_ns)
        for ns, ifname in ((self.vnf_ns, self.vnf_if), (self.src_ns, self.src_if)):
            # No IPv6 on test links: the kernel's neighbour discovery would add frames nobody sent.
            sh('sysctl', '-qw', f'net.ipv6.conf.{ifname}.disable_ipv6=1', ns=ns)
            sh('ip', 'link', 'set', ifname, 'mtu', '9000', 'up', ns=ns)

    def teardown_namespaces(self):
        for ns in (self.vnf_ns, self.src_ns):
            subprocess.run(['ip', 'netns', 'delete', ns], capture_output=True)

    def send_and_capture(self, frames):
        """Sends frames from the source namespace and returns what comes back, in order."""
        script = f'''
import socket, sys, time, pickle
frames = pickle.load(sys.stdin.buffer)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(("{self.src_if}", 0))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.settimeout(0.2)
back = []
def drain():
    while True:
        try:
            data, addr = s.recvfrom(65535)
        except socket.timeout:
            return
        if addr[2] != socket.PACKET_OUTGOING:
            back.append(data)
for i in range(0, len(frames), 50):
    for f in frames[i:i + 50]:
        s.send(f)
    time.sleep(0.01)
deadline = time.time() + 10
while len(back) < len(frames) and time.time() < deadline:
    drain()
pickle.dump(back, sys.stdout.buffer)
'''
        import pickle
        out = subprocess.run(['ip', 'netns', 'exec', self.src_ns, 'python3', '-c', script],
                             input=pickle.dumps(frames), capture_output=True, check=True, timeout=120)
        return pickle.loads(out.stdout)

    def run_vnf(self, queues):
        eal = ['--no-huge', '-m', '512', '--no-pci', '--vdev', f'net_af_packet0,iface={self.vnf_if},qpairs={queues}']
        eal = (['-l', '0-1'] if queues == 1 else ['--lcores', '0@0,1@1,2@1']) + eal
        return VNF(eal, ['--flows', '4096'], netns=self.vnf_ns)

    def forward(self, frames, queues):
        """Sends frames through a dist-vnf with `queues` workers; returns what came back and its stats."""
        vnf = self.run_vnf(queues)
        try:
            back = self.send_and_capture(frames)
            stats = vnf.request({'cmd': 'stats'})
        finally:
            self.assertEqual(vnf.stop(), 0, vnf.output())
        return pcapcheck.compare(frames, back), stats

    def test_one_armed_forwarding_on_veth_is_whole_and_in_order(self):
        frames = test_frames()
        result, stats = self.forward(frames, 1)
        self.assertEqual((result['lost'], result['duplicated'], result['extra'], result['reordered']),
                         (0, 0, 0, 0), result)
        self.assertEqual(stats['rx_packets'], len(frames))
        self.assertEqual(stats['flows']['created'], 40)

    def test_two_queues_keep_both_directions_of_a_flow_on_one_worker(self):
        frames = test_frames()
        result, stats = self.forward(frames, 2)
        self.assertEqual((result['lost'], result['duplicated'], result['reordered_within_flows']), (0, 0, 0), result)
        # Were a flow split across workers, each would create it: 40 flows would count more.
        self.assertEqual(stats['flows']['created'], 40, stats)
        per_worker = [w['rx_packets'] for w in stats['workers']]
        self.assertEqual(sum(per_worker), len(frames))
        # The kernel's fanout spreads the 40 flows over both queues (else the test proves nothing).
        self.assertTrue(all(n > 0 for n in per_worker), per_worker)
        per_worker_flows = [w['flows']['created'] for w in stats['workers']]
        self.assertEqual(sum(per_worker_flows), 40, per_worker_flows)


if __name__ == '__main__':
    unittest.main()
