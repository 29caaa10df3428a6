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


def make_frames(flows=40, per_flow=12):
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

    def send_and_capture(self, frames, expect=None, background=False):
        """Sends frames from the source namespace and returns what comes back, in order
        (waiting for `expect` frames, all of them by default). With `background`, returns the
        running process; `finish` collects it."""
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
while len(back) < {len(frames) if expect is None else expect} and time.time() < deadline:
    drain()
pickle.dump(back, sys.stdout.buffer)
'''
        import pickle
        with tempfile.TemporaryFile() as source:
            source.write(pickle.dumps(frames))
            source.seek(0)
            process = subprocess.Popen(['ip', 'netns', 'exec', self.src_ns, 'python3', '-c', script],
                                       stdin=source, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return process if background else self.finish(process)

    def finish(self, process):
        import pickle
        out, err = process.communicate(timeout=120)
        self.assertEqual(process.returncode, 0, err)
        return pickle.loads(out)

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
        frames = make_frames()
        result, stats = self.forward(frames, 1)
        self.assertEqual((result['lost'], result['duplicated'], result['extra'], result['reordered']),
                         (0, 0, 0, 0), result)
        self.assertEqual(stats['rx_packets'], len(frames))
        self.assertEqual(stats['flows']['created'], 40)

    def test_two_queues_keep_both_directions_of_a_flow_on_one_worker(self):
        frames = make_frames()
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


@unittest.skipUnless(os.geteuid() == 0 and shutil.which('ip'), 'needs root and iproute2 for network namespaces')
class EventTests(AfPacketTests):
    """OpenNF's events on a live port: the VNF's end of the veth is in this namespace, so the
    test talks to its southbound API on loopback."""

    def setUp(self):
        self.vnf_ns, self.src_ns = None, f'{PREFIX}-esrc'
        self.vnf_if, self.src_if = f'{PREFIX[:8]}e', f'{PREFIX[:8]}f'
        sh('ip', 'netns', 'add', self.src_ns)
        self.addCleanup(lambda: subprocess.run(['ip', 'netns', 'delete', self.src_ns], capture_output=True))
        sh('ip', 'link', 'add', self.vnf_if, 'type', 'veth', 'peer', 'name', self.src_if, 'netns', self.src_ns)
        sh('sysctl', '-qw', f'net.ipv6.conf.{self.vnf_if}.disable_ipv6=1')
        sh('ip', 'link', 'set', self.vnf_if, 'mtu', '9000', 'up')
        sh('sysctl', '-qw', f'net.ipv6.conf.{self.src_if}.disable_ipv6=1', ns=self.src_ns)
        sh('ip', 'link', 'set', self.src_if, 'mtu', '9000', 'up', ns=self.src_ns)

    def test_events_raise_drop_hold_and_release_in_order(self):
        from test_southbound import Client
        from support import control_args
        import base64
        frames = make_frames(flows=10, per_flow=6)
        tcp_frames = [f for f in frames if f[23] == 6]
        udp_frames = [f for f in frames if f[23] == 17]
        vnf = VNF(['-l', '0-1', '--no-huge', '-m', '512', '--no-pci', '--vdev', f'net_af_packet0,iface={self.vnf_if}'],
                  ['--flows', '4096', '--control', '127.0.0.1:0'] + control_args())
        try:
            port = vnf.southbound_port()
            controller = Client(port)
            # drop: TCP flows (tp_dst=80, either direction) go to the controller, in order.
            self.assertEqual(controller.request({'type': 'enableEvents', 'id': 1, 'filter': 'tp_dst=80', 'action': 'drop'})[0]['type'], 'ack')
            back = self.send_and_capture(frames, expect=len(udp_frames))
            self.assertEqual(back, udp_frames)
            events = [base64.b64decode(controller.read()['frame']) for _ in tcp_frames]
            self.assertEqual(events, tcp_frames)
            # buffer: held until events are disabled, then processed and sent on in order.
            self.assertEqual(controller.request({'type': 'enableEvents', 'id': 2, 'filter': 'tp_dst=80', 'action': 'buffer'})[0]['type'], 'ack')
            sender = self.send_and_capture(frames, background=True)
            events = [base64.b64decode(controller.read()['frame']) for _ in tcp_frames]
            self.assertEqual(events, tcp_frames)
            self.assertEqual(controller.request({'type': 'disableEvents', 'id': 3})[0]['type'], 'ack')
            back = self.finish(sender)
            self.assertEqual(back, udp_frames + tcp_frames)
            # A controller that vanishes with packets held: they are released, not lost.
            controller.request({'type': 'enableEvents', 'id': 4, 'filter': 'tp_dst=80', 'action': 'buffer'})
            sender = self.send_and_capture(frames, background=True)
            for _ in tcp_frames:
                controller.read()
            controller.close()
            back = self.finish(sender)
            self.assertEqual(sorted(back), sorted(frames))
            stats = vnf.request({'cmd': 'stats'})
        finally:
            self.assertEqual(vnf.stop(), 0, vnf.output())
        self.assertEqual(stats['events']['raised'], 3 * len(tcp_frames))
        self.assertEqual(stats['events']['hold_overflow'], 0)

    # The parent's tests need both ends in namespaces.
    test_one_armed_forwarding_on_veth_is_whole_and_in_order = None
    test_two_queues_keep_both_directions_of_a_flow_on_one_worker = None


if __name__ == '__main__':
    unittest.main()
