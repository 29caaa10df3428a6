"""Shared helpers for the integration tests: paths, the dist-vnf process, pcap writing."""
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


_tls_dir = None


def control_tls():
    """This run's control-plane certificates (made once): a CA, `vnf` and `controller`."""
    global _tls_dir
    if _tls_dir is None:
        d = tempfile.mkdtemp(prefix='dist-tls-')
        subprocess.run([os.path.join(ROOT, 'deploy', 'make-certs.sh'), d, 'vnf', 'controller'], check=True)
        _tls_dir = d
    return _tls_dir


def control_args():
    """dist-vnf's southbound TLS options, with the run's `vnf` certificate."""
    d = control_tls()
    return ['--control-cert', f'{d}/vnf.pem', '--control-key', f'{d}/vnf.key', '--control-ca', f'{d}/ca.pem']


def control_context():
    """A TLS client context with the run's `controller` certificate (as dist-controller's)."""
    d = control_tls()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_verify_locations(f'{d}/ca.pem')
    context.load_cert_chain(f'{d}/controller.pem', f'{d}/controller.key')
    return context
sys.path.insert(0, os.path.join(ROOT, 'deploy', 'tools'))
import pcapcheck  # noqa: E402  (the project's own checker)

MIX_A = os.path.join(ROOT, 'traces', 'mix-a.pcap')
SHARED_PCAPCMP = os.path.join(os.path.dirname(ROOT), 'shared', 'tools', 'pcapcmp.py')


def admin_request(path, obj):
    """One request to a dist-vnf admin socket (a JSON line), and its reply."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall((json.dumps(obj) + '\n').encode())
        data = b''
        while not data.endswith(b'\n'):
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


def binary():
    path = os.environ.get('DIST_VNF') or os.path.join(ROOT, '.build', 'release', 'dist-vnf')
    if not os.path.exists(path):
        raise RuntimeError(f'{path} is missing: run swift build -c release first')
    return path


# One pcap writer: the checker's (frame i stamped i µs).
write_pcap = pcapcheck.write_pcap


_prefix_counter = [0]


def file_prefix():
    _prefix_counter[0] += 1
    return f'distit{os.getpid()}_{_prefix_counter[0]}'


class VNF:
    """A dist-vnf process started for a test, stopped by PID, with its admin socket."""

    def __init__(self, eal, app=(), admin=True, timeout=60, netns=None):
        self.dir = tempfile.mkdtemp(prefix='dist-it-')
        self.admin = os.path.join(self.dir, 'admin.sock') if admin else None
        args = [binary()] + list(eal) + ['--file-prefix', file_prefix(), '--'] + list(app)
        if self.admin:
            args += ['--admin', self.admin]
        if netns:
            args = ['ip', 'netns', 'exec', netns] + args
        self.log_path = os.path.join(self.dir, 'vnf.log')
        self.log = open(self.log_path, 'w')
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        self.timeout = timeout
        if self.admin:
            deadline = time.time() + timeout
            while not os.path.exists(self.admin):
                if self.process.poll() is not None:
                    raise RuntimeError(f'dist-vnf exited early ({self.process.returncode}):\n{self.output()}')
                if time.time() > deadline:
                    self.kill()
                    raise RuntimeError('dist-vnf did not open its admin socket')
                time.sleep(0.05)

    def request(self, obj):
        return admin_request(self.admin, obj)

    def wait_rx(self, count):
        """Waits until the VNF has received `count` frames; returns the stats reply."""
        deadline = time.time() + self.timeout
        while True:
            stats = self.request({'cmd': 'stats'})
            if stats['rx_packets'] >= count or time.time() > deadline:
                return stats
            time.sleep(0.1)

    def stop(self, sig=signal.SIGINT):
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self.log.close()
        return code

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def southbound_port(self, timeout=10):
        """The southbound API's port, once the VNF has said it (the line comes just after the
        admin socket appears)."""
        import re
        deadline = time.time() + timeout
        while True:
            match = re.search(r'southbound API on .* \(port (\d+)', self.output())
            if match:
                return int(match.group(1))
            if time.time() > deadline or self.process.poll() is not None:
                raise AssertionError('no southbound port in:\n' + self.output())
            time.sleep(0.05)

    def output(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def final_stats(self):
        for line in self.output().splitlines():
            if line.startswith('final-stats-json: '):
                return json.loads(line[len('final-stats-json: '):])
        return None


# ---- frame builders (independent of the Swift code) --------------------------------------

def eth(etype, vlans=(), tpid_outer=0x8100):
    f = bytes.fromhex('020000000001020000000002')
    for i, v in enumerate(vlans):
        tpid = tpid_outer if (i == 0 and len(vlans) > 1) else 0x8100
        f += struct.pack('>HH', tpid, v)
    return f + struct.pack('>H', etype)


def ipv4(proto, src, dst, payload, frag=0, options=b''):
    ihl = 20 + len(options)
    return struct.pack('>BBHHHBBH4s4s', 0x40 | ihl // 4, 0, ihl + len(payload), 1, frag, 64, proto, 0,
                       bytes(src), bytes(dst)) + options + payload


def ipv6(nxt, src, dst, payload):
    return struct.pack('>IHBB16s16s', 0x60000000, len(payload), nxt, 64, bytes(src), bytes(dst)) + payload


def tcp(sport, dport, flags, payload=b''):
    return struct.pack('>HHIIBBHHH', sport, dport, 1, 0, 0x50, flags, 65535, 0, 0) + payload


def udp(sport, dport, payload=b''):
    return struct.pack('>HHHH', sport, dport, 8 + len(payload), 0) + payload


def synthetic_frames():
    """Frames exercising every parser path, in several interleaved flows, plus malformed ones."""
    a, b, c = [198, 18, 0, 1], [198, 18, 0, 2], [198, 19, 7, 9]
    v6a = [0x20, 0x01, 0x0d, 0xb8] + [0] * 11 + [1]
    v6b = [0x20, 0x01, 0x0d, 0xb8] + [0] * 11 + [2]
    frames = []
    for i in range(200):
        frames.append(eth(0x0800) + ipv4(6, a, b, tcp(40000 + i % 7, 80, 0x18, b'x' * (i % 50))))
        frames.append(eth(0x0800) + ipv4(6, b, a, tcp(80, 40000 + i % 7, 0x10)))
        frames.append(eth(0x0800, [100]) + ipv4(17, a, c, udp(5000 + i % 3, 53, b'q' * 20)))
        frames.append(eth(0x0800, [10, 20], 0x88A8) + ipv4(17, c, a, udp(53, 5000 + i % 3, b'r' * 30)))
        frames.append(eth(0x86DD) + ipv6(0, v6a, v6b, bytes([6, 0, 1, 4, 0, 0, 0, 0]) + tcp(1234, 443, 0x02)))
        frames.append(eth(0x86DD) + ipv6(44, v6b, v6a, bytes([17, 0, 0, 0x18, 0, 0, 0, i]) + b'frag' * 4))
        frames.append(eth(0x0800) + ipv4(17, a, b, b'later-fragment', frag=0x0010 + i % 4))
        frames.append(eth(0x0800) + ipv4(1, a, b, bytes([8, 0, 0, 0, 0, 1, 0, i % 256])))
        frames.append(eth(0x0806) + bytes([0, 1, 8, 0, 6, 4, 0, 1]) + bytes(20))
        if i % 10 == 0:
            frames.append(eth(0x0800)[:10])                                  # truncated Ethernet
            frames.append((eth(0x0800) + ipv4(6, a, b, tcp(1, 2, 2)))[:30])    # truncated IPv4 header
            frames.append(eth(0x0800, [1, 2, 3]) + ipv4(6, a, b, tcp(1, 2, 2)))  # three VLAN tags
            frames.append(eth(0x9999) + b'unknown ethertype payload')
    return frames


SYMMETRIC_RSS_KEY = bytes([0x6d, 0x5a] * 20)


def toeplitz(data, key=SYMMETRIC_RSS_KEY):
    """The Toeplitz hash of `data` under `key`, bit by bit (Microsoft's RSS specification)."""
    k = int.from_bytes(key, 'big')
    width = len(key) * 8
    h = 0
    for i, byte in enumerate(data):
        for bit in range(8):
            if byte & (0x80 >> bit):
                h ^= (k >> (width - 32 - (8 * i + bit))) & 0xFFFFFFFF
    return h


def flow_owner(src, dst, sport, dport, proto, workers):
    """The worker of `workers` that owns a flow (dist-vnf's FlowOwnership, computed apart):
    Toeplitz under the symmetric key over the addresses and, for TCP and UDP, the ports; entry
    hash % 64 of a table whose entry i is worker i % workers."""
    import ipaddress
    data = ipaddress.ip_address(src).packed + ipaddress.ip_address(dst).packed
    if proto in (6, 17):
        data += sport.to_bytes(2, 'big') + dport.to_bytes(2, 'big')
    return (toeplitz(data) % 64) % workers


def canonical_flow(frame):
    """(proto, (address, port), (address, port)) of a frame's flow, lower end first, addresses as
    text; None outside any IP flow (pcapcheck's parse)."""
    import ipaddress
    import pcapcheck
    key = pcapcheck.flow_of(frame)
    if not key:
        return None
    proto, _, a, b = key
    a, b = [(str(ipaddress.ip_address(e[0])), int.from_bytes(e[1], 'big') if isinstance(e[1], bytes) else e[1])
            for e in (a, b)]
    return (proto, a, b) if a <= b else (proto, b, a)


def frame_owner(frame, workers, receiver=0):
    """The worker that processes and sends a frame: its flow's owner, or for frames outside any
    flow the worker that received it."""
    flow = canonical_flow(frame)
    if flow is None:
        return receiver
    proto, (a, pa), (b, pb) = flow
    return flow_owner(a, b, pa, pb, proto, workers)


def split_by_flow(frames, queues):
    """The frames spread over `queues` as a kernel's fanout spreads them: each flow (both
    directions) to one queue by a hash of its own (not dist-vnf's owner), frames outside any
    flow to queue 0; each queue in the trace's order."""
    import zlib
    out = [[] for _ in range(queues)]
    for frame in frames:
        flow = canonical_flow(frame)
        out[zlib.crc32(repr(flow).encode()) % queues if flow else 0].append(frame)
    return out


FINGERPRINT_KINDS = ('SYN', 'SYNACK', 'FIN', 'RST', 'ACK')


def asset_facts(lines):
    """What an asset log says, without what depends on the order flows were seen in: for an OS
    fingerprint, the host, its kind and the OS it matched ('unknown' when none), not which
    flow's port showed it first or which unmatched fingerprint came first; services as they are.
    PRADS records a host's first sighting of each; with several workers the first one is any
    worker's first."""
    out = set()
    for line in lines:
        line = line.strip()
        if not line or line.startswith('asset,') or ',[' not in line:
            continue
        host, vlan, port, proto, kind = line.split(',')[:5]
        info = line[line.index(',[') + 2:line.rindex(']')]
        if kind in FINGERPRINT_KINDS:
            fields = info.split(':')
            out.add((host, vlan, kind, ':'.join(fields[7:9]) if len(fields) > 8 else 'unknown'))
        else:
            out.add((host, vlan, port, proto, kind, info))
    return out


def facts_agreement(reference, candidate):
    """(precision, recall) of a candidate's asset facts against a reference's."""
    common = len(reference & candidate)
    return common / max(1, len(candidate)), common / max(1, len(reference))


# ---- Prometheus scrapes (prometheus_client's parser, from PyPI: deploy/setup.sh installs it) ----

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    text_string_to_metric_families = None


def samples(text):
    """{(name, labels as a sorted tuple): value} of every sample in a scrape."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def scrapes(text):
    """`testbed.sh metrics`'s output: {process name: its scrape}."""
    out, name = {}, None
    for line in text.splitlines(keepends=True):
        if line.startswith('# scrape '):
            name = line.split()[2]
            out[name] = ''
        elif name:
            out[name] += line
    return out
