"""The southbound API of a running dist-vnf: state read from one instance and written into
another while both run, and bad frames answered without harm."""
import base64
import json
import os
import socket
import struct
import tempfile
import time
import unittest

from support import MIX_A, VNF, control_args, control_context, pcapcheck, synthetic_frames, write_pcap

EAL = ['-l', '0-1', '--no-huge', '-m', '512', '--no-pci']


class Client:
    """A controller's southbound connection: mutual TLS with the run's certificates."""

    def __init__(self, port):
        self.s = control_context().wrap_socket(socket.create_connection(('127.0.0.1', port), timeout=20))

    def send_raw(self, data):
        self.s.sendall(data)

    def request(self, obj):
        body = json.dumps(obj).encode()
        self.s.sendall(struct.pack('>I', len(body)) + body)
        replies = [self.read()]
        while replies[-1].get('type', '').startswith('state') and not replies[-1].get('last'):
            replies.append(self.read())
        return replies

    def read(self):
        header = self.exactly(4)
        return json.loads(self.exactly(struct.unpack('>I', header)[0]))

    def exactly(self, n):
        data = b''
        while len(data) < n:
            chunk = self.s.recv(n - len(data))
            if not chunk:
                raise ConnectionError('closed by the VNF')
            data += chunk
        return data

    def close(self):
        self.s.close()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()


def start(trace, out):
    vnf = VNF(EAL + ['--vdev', f'net_pcap0,rx_pcap={trace},tx_pcap={out}'],
              ['--flows', '65536', '--mbuf-size', '9216', '--control', '127.0.0.1:0'] + control_args())
    try:
        return vnf, vnf.southbound_port()
    except AssertionError:
        vnf.kill()
        raise


def chunks(replies):
    return [c for r in replies for c in r.get('chunks', [])]


class SouthboundTests(unittest.TestCase):
    def setUp(self):
        d = tempfile.mkdtemp(prefix='dist-sb-')
        empty = os.path.join(d, 'empty.pcap')
        write_pcap(empty, [])
        self.source, self.source_port = start(MIX_A, os.path.join(d, 'a.pcap'))
        self.destination, self.destination_port = start(empty, os.path.join(d, 'b.pcap'))
        self.source.wait_rx(54981)

    def tearDown(self):
        self.assertEqual(self.source.stop(), 0, self.source.output())
        self.assertEqual(self.destination.stop(), 0, self.destination.output())

    def test_state_moves_from_one_running_instance_to_another(self):
        src, dst = Client(self.source_port), Client(self.destination_port)
        flows = chunks(src.request({'type': 'getPerFlow', 'id': 1, 'filter': 'nw_src=192.168.0.0/16'}))
        self.assertGreater(len(flows), 100)
        ack = dst.request({'type': 'putPerFlow', 'id': 2, 'chunks': flows})[0]
        self.assertEqual((ack['type'], ack['id'], ack['count']), ('ack', 2, len(flows)))
        self.assertEqual(sorted(chunks(dst.request({'type': 'getPerFlow', 'id': 3}))), sorted(flows))
        self.assertEqual(self.destination.request({'cmd': 'stats'})['flows']['active'], len(flows))

        assets = chunks(src.request({'type': 'getMultiFlow', 'id': 4, 'filter': 'nw_src=192.168.0.0/16'}))
        self.assertGreater(len(assets), 5)
        self.assertEqual(dst.request({'type': 'putMultiFlow', 'id': 5, 'chunks': assets})[0]['count'], len(assets))
        self.assertEqual(sorted(chunks(dst.request({'type': 'getMultiFlow', 'id': 6}))), sorted(assets))

        counters = chunks(src.request({'type': 'getAllFlows', 'id': 7}))
        self.assertEqual(len(counters), 1)
        self.assertEqual(dst.request({'type': 'putAllFlows', 'id': 8, 'chunks': counters})[0]['type'], 'ack')

        deleted = src.request({'type': 'delPerFlow', 'id': 9, 'filter': 'nw_src=192.168.0.0/16'})[0]
        self.assertEqual(deleted['count'], len(flows))
        self.assertEqual(self.source.request({'cmd': 'stats'})['flows']['active'], 5523 - len(flows))
        src.close()
        dst.close()

    def test_bad_frames_get_errors_and_the_vnf_keeps_its_state(self):
        c = Client(self.source_port)
        before = self.source.request({'cmd': 'stats'})['flows']['active']
        c.send_raw(struct.pack('>I', 8) + b'not json')
        self.assertEqual(c.read()['type'], 'error')
        self.assertIn('unknown request type', c.request({'type': 'teleport', 'id': 1})[0]['reason'])
        corrupt = chunks(c.request({'type': 'getPerFlow', 'id': 2, 'filter': 'nw_src=10.0.0.0/8'}))
        raw = bytearray(base64.b64decode(corrupt[0]))
        raw[-2] ^= 0x01
        corrupt[0] = base64.b64encode(bytes(raw)).decode()
        with Client(self.destination_port) as d:
            self.assertIn('checksum', d.request({'type': 'putPerFlow', 'id': 3, 'chunks': corrupt})[0]['reason'])
        self.assertEqual(self.destination.request({'cmd': 'stats'})['flows']['active'], 0)
        # An oversized frame: error, then the VNF closes that connection only.
        c.send_raw(struct.pack('>I', 64 << 20))
        self.assertEqual(c.read()['type'], 'error')
        with self.assertRaises((ConnectionError, OSError)):
            c.read()
        c.close()
        # A controller that vanishes mid-frame leaves nothing half-done.
        gone = Client(self.source_port)
        gone.send_raw(struct.pack('>I', 1000) + b'{"type":"delPerFlow","filter":"')
        gone.close()
        self.assertEqual(self.source.request({'cmd': 'stats'})['flows']['active'], before)
        with Client(self.source_port) as again:
            self.assertEqual(again.request({'type': 'getAllFlows', 'id': 4})[0]['type'], 'stateAllFlows')


class ControlSecurityTests(unittest.TestCase):
    """Who may do what through the southbound API of a running dist-vnf."""

    @staticmethod
    def channel_vnf(d, tx, peer='198.18.100.2:7400'):
        """A dist-vnf with a DiST channel and no traffic (net_pcap, `tx` its tx_pcap files)."""
        empty = os.path.join(d, 'empty.pcap')
        write_pcap(empty, [])
        key = os.path.join(d, 'channel.key')
        with open(key, 'wb') as f:
            f.write(os.urandom(32))
        os.chmod(key, 0o600)
        files = ','.join(f'tx_pcap={t}' for t in tx)
        return VNF(['--lcores', '0@0,1@1,2@0', '--no-huge', '-m', '512', '--no-pci',
                    '--vdev', f'net_pcap0,rx_pcap={empty},{files}'],
                   ['--control', ':0', '--channel', '198.18.100.1:7400', '--channel-key', key,
                    '--channel-peer', peer] + control_args())

    def test_a_move_goes_only_to_a_channel_peer_and_events_only_end_by_their_owner(self):
        d = tempfile.mkdtemp(prefix='dist-sb-sec-')
        vnf = self.channel_vnf(d, [os.path.join(d, 'out.pcap')])
        try:
            port = vnf.southbound_port()
        except AssertionError:
            vnf.kill()
            raise
        try:
            # A client without TLS gets nothing but the handshake's alert.
            plain = socket.create_connection(('127.0.0.1', port), timeout=5)
            plain.sendall(struct.pack('>I', 17) + b'{"type":"info"}  ')
            try:
                self.assertNotIn(b'"info"', plain.recv(4096))
            except OSError:
                pass
            plain.close()
            # ':0' listens on loopback only.
            outward = self.outward_address()
            if outward:
                with self.assertRaises(OSError):
                    socket.create_connection((outward, port), timeout=2).close()
            with Client(port) as a, Client(port) as b:
                move = {'type': 'movePerFlow', 'id': 1, 'moveID': 5, 'filter': 'tp_dst=80', 'guarantee': 'lf',
                        'dst': '203.0.113.7:7400@02:00:00:00:00:07'}
                reply = a.request(move)[0]
                self.assertEqual(reply['type'], 'error', reply)
                self.assertIn('not a channel peer', reply['reason'])
                self.assertEqual(a.request({'type': 'moves', 'id': 2})[0]['moves'], [])
                self.assertEqual(a.request({'type': 'enableEvents', 'id': 3, 'filter': 'tp_dst=80',
                                            'action': 'drop'})[0]['type'], 'ack')
                self.assertEqual(b.request({'type': 'disableEvents', 'id': 4})[0]['type'], 'error')
                self.assertIn('another controller connection',
                              b.request({'type': 'enableEvents', 'id': 5, 'action': 'process'})[0]['reason'])
                self.assertEqual(a.request({'type': 'disableEvents', 'id': 6})[0]['type'], 'ack')
        finally:
            self.assertEqual(vnf.stop(), 0, vnf.output())

    def test_the_transfer_lcore_sends_on_a_tx_queue_of_its_own(self):
        """A port with a TX queue more than the workers need gives the transfer lcore its own:
        the channel's frames leave by it (here a second pcap file), none by worker 0's."""
        d = tempfile.mkdtemp(prefix='dist-sb-txq-')
        out, chan = os.path.join(d, 'out.pcap'), os.path.join(d, 'chan.pcap')
        vnf = self.channel_vnf(d, [out, chan], peer='198.18.100.2:7400@02:00:00:00:00:02')
        try:
            port = vnf.southbound_port()
            with Client(port) as a:
                move = {'type': 'movePerFlow', 'id': 1, 'moveID': 9, 'filter': 'tp_dst=80', 'guarantee': 'ng',
                        'dst': '198.18.100.2:7400@02:00:00:00:00:02'}
                self.assertNotEqual(a.request(move)[0]['type'], 'error')
                time.sleep(0.5)
        finally:
            self.assertEqual(vnf.stop(), 0, vnf.output())
        self.assertIn('(its own TX queue 1)', vnf.output())
        frames = pcapcheck.read_pcap(chan)
        self.assertGreater(len(frames), 0, 'no channel frame left by the own queue')
        for f in frames:
            # Ethernet, IPv4 (20 bytes), UDP to the peer's port 7400, a DiST channel frame.
            self.assertEqual(f[12:14], b'\x08\x00')
            self.assertEqual(struct.unpack('>H', f[36:38])[0], 7400)
            self.assertEqual(f[42:44], b'DC')
        self.assertEqual(pcapcheck.read_pcap(out), [])
        # The final statistics count them, and the lcore's load: the time in rounds that did work.
        self.assertEqual(vnf.final_stats()['transfer']['channel_frames_sent'], len(frames))
        self.assertGreater(vnf.final_stats()['transfer']['busy_ns'], 0)

    @staticmethod
    def outward_address():
        """An address of this machine other than loopback (its default route's)."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.connect(('198.18.0.1', 9))
            address = s.getsockname()[0]
            return None if address.startswith('127.') else address
        except OSError:
            return None
        finally:
            s.close()


if __name__ == '__main__':
    unittest.main()
