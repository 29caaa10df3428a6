"""Asset detection in dist-vnf against Debian's prads on the same captures.

Set DIST_EXTRA_PCAPS=/a.pcap:/b.pcap to hold your own captures to the same parity."""
import os
import shutil
import signal
import subprocess
import struct
import sys
import tempfile
import time
import unittest

from support import MIX_A, ROOT, VNF, asset_facts, eth, facts_agreement, ipv4, ipv6, pcapcheck, split_by_flow, tcp, udp, write_pcap

ASSETCHECK = os.path.join(ROOT, 'deploy', 'tools', 'assetcheck.py')
SHARED_ASSETCMP = os.path.join(os.path.dirname(ROOT), 'shared', 'tools', 'assetcmp.py')
EAL = ['-l', '0-1', '--no-huge', '-m', '512', '--no-pci']


def prads_log(trace, directory, arp=False):
    log = os.path.join(directory, 'prads.log')
    command = ['prads', '-r', trace, '-l', log]
    if arp:
        # prads's own switch for ARP discovery: arp=1 in its configuration file.
        conf = os.path.join(directory, 'prads.conf')
        with open('/etc/prads/prads.conf') as source, open(conf, 'w') as target:
            target.write(source.read() + '\narp=1\n')
        command += ['-c', conf]
    subprocess.run(command, capture_output=True, check=True, timeout=300)
    return log


def dist_log(testcase, trace, directory, app=()):
    """Runs the trace through dist-vnf with detection; returns (asset log, final stats, output)."""
    frames = pcapcheck.read_pcap(trace)
    out = os.path.join(directory, 'out.pcap')
    log = os.path.join(directory, 'dist.log')
    vnf = VNF(EAL + ['--vdev', f'net_pcap0,rx_pcap={trace},tx_pcap={out}'],
              ['--flows', '65536', '--mbuf-size', '9216', '--asset-log', log] + list(app))
    try:
        vnf.wait_rx(len(frames))
    finally:
        testcase.assertEqual(vnf.stop(), 0, vnf.output())
    result = pcapcheck.compare(frames, pcapcheck.read_pcap(out))
    testcase.assertEqual((result['lost'], result['duplicated'], result['reordered']), (0, 0, 0), result)
    return log, vnf.final_stats(), vnf.output()


def check(reference, candidate, minimum='0.99'):
    out = subprocess.run([sys.executable, ASSETCHECK, reference, candidate, '--min', minimum, '--show', '20'],
                         capture_output=True, text=True)
    return out.returncode, out.stdout


def tcp_with_options(sport, dport, flags, options, payload=b''):
    header = tcp(sport, dport, flags, b'')
    offset = (20 + len(options)) // 4
    return header[:12] + bytes([offset << 4]) + header[13:] + options + payload


def service_packets(c, s, ip, ports=40000):
    """Banners and handshakes PRADS has signatures and fingerprints for, between client c and
    server s: (from the client, IP packet) pairs, `ip(proto, src, dst, payload)` building each."""
    syn_options = bytes([2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 1, 0, 0, 0, 0, 0, 1, 3, 3, 7])
    tcp_opts = tcp_with_options
    banners = [(22, b'SSH-2.0-OpenSSH_8.4p1 Debian-5\r\n'), (80, b'HTTP/1.1 200 OK\r\nServer: Apache/2.4.54 (Debian)\r\n\r\n'),
               (25, b'220 mail.example.org ESMTP Postfix (Debian/GNU)\r\n'), (21, b'220 (vsFTPd 3.0.3)\r\n'),
               (443, b'\x16\x03\x01\x00\x2a\x02\x00\x00\x26\x03\x01' + bytes(40))]
    out = []
    def up(proto, payload): out.append((True, ip(proto, c, s, payload)))
    def down(proto, payload): out.append((False, ip(proto, s, c, payload)))
    for i, (port, banner) in enumerate(banners):
        cport = ports + i
        up(6, tcp_opts(cport, port, 0x02, syn_options))
        down(6, tcp_opts(port, cport, 0x12, syn_options))
        up(6, tcp(cport, port, 0x10))
        down(6, tcp(port, cport, 0x18, banner))
        up(6, tcp(cport, port, 0x18, b'GET / HTTP/1.1\r\nUser-Agent: curl/7.88.1\r\n\r\n'))
        up(6, tcp(cport, port, 0x11))
        down(6, tcp(port, cport, 0x14))
    question = b'\x07example\x03org\x00\x00\x01\x00\x01'
    up(17, udp(ports + 5353 % 1000, 53, bytes.fromhex('abcd01000001000000000000') + question))
    down(17, udp(53, ports + 5353 % 1000, bytes.fromhex('abcd81800001000100000000') + question))
    up(17, udp(ports + 33000 % 1000, 123, bytes(48)))
    down(17, udp(123, ports + 33000 % 1000, bytes(48)))
    return out


def service_frames():
    """A capture of our own: banners and handshakes PRADS has signatures and fingerprints for."""
    return [eth(0x0800) + p for _, p in service_packets([198, 18, 0, 10], [198, 18, 0, 20], ipv4)]


def broken_options_frame():
    """A SYN whose options an EOL and an option of length 0 break (tcpdump's test captures have
    such): PRADS lists `E.`, not the broken option, with the quirks P and !."""
    options = bytes([0, 16, 0, 1, 1, 1, 1, 1])
    return eth(0x0800) + ipv4(6, [198, 18, 0, 11], [198, 18, 0, 20], tcp_with_options(40007, 80, 0x02, options))


def late_banner_frames(before=10):
    """An SSH server that sends `before` packets of payload no signature matches before its
    banner: its 12th packet, SYN+ACK first, past PRADS's MAX_PKT_CHECK of 10."""
    c, s = [198, 18, 0, 30], [198, 18, 0, 40]
    frames = [ipv4(6, c, s, tcp(40000, 22, 0x02)), ipv4(6, s, c, tcp(22, 40000, 0x12)), ipv4(6, c, s, tcp(40000, 22, 0x10))]
    frames += [ipv4(6, s, c, tcp(22, 40000, 0x18, b'x' * 40)) for _ in range(before)]
    frames.append(ipv4(6, s, c, tcp(22, 40000, 0x18, b'SSH-2.0-OpenSSH_8.4p1 Debian-5\r\n')))
    return [eth(0x0800) + f for f in frames]


def tunnel_frames():
    """Service exchanges of many clients and servers, each kind inside its own tunnel: IPv4 by
    protocol 94 and IPv6 by 41, inside IPv4 and inside IPv6; IPv4 by protocol 4 and GRE
    carrying IPv4 and IPv6, which PRADS does not read into. Each tunnel carries several hosts'
    connections, more than PRADS's inspection limits would let one flow show."""
    v6 = lambda *tail: [0x20, 0x01, 0x0d, 0xb8] + [0] * (12 - len(tail)) + list(tail)
    ends4 = ([198, 18, 0, 1], [198, 18, 0, 2])
    ends6 = (v6(0xfe, 0, 0, 1), v6(0xfe, 0, 0, 2))
    inner6 = lambda proto, a, b, payload: ipv6(proto, a, b, payload)
    carriers = [  # (outer, outer's protocol for the inner packet, inner IP builder, inner hosts)
        ('4', 94, ipv4, lambda n: [10, 1, 0, n]), ('4', 41, inner6, lambda n: v6(0x0a, 1, 0, n)),
        ('6', 94, ipv4, lambda n: [10, 2, 0, n]), ('6', 41, inner6, lambda n: v6(0x0a, 2, 0, n)),
        ('4', 4, ipv4, lambda n: [10, 3, 0, n]), ('4', 47, ipv4, lambda n: [10, 4, 0, n]),
        ('4', 47, inner6, lambda n: v6(0x0a, 4, 0, n)),
    ]
    frames = []
    for outer, proto, ip, host in carriers:
        for k in range(4):
            packets = service_packets(host(10 + k), host(100 + k), ip, ports=41000 + 100 * k)
            for from_client, packet in packets:
                a, b = ends4 if outer == '4' else ends6
                src, dst = (a, b) if from_client else (b, a)
                payload = packet
                if proto == 47:
                    payload = struct.pack('>BBH', 0x20, 0, 0x0800 if ip is ipv4 else 0x86DD) + struct.pack('>I', 7) + packet
                if outer == '4':
                    frames.append(eth(0x0800) + ipv4(proto, src, dst, payload))
                else:
                    frames.append(eth(0x86DD) + ipv6(proto, src, dst, payload))
    return frames


@unittest.skipUnless(shutil.which('prads'), "Debian's prads is the reference: apt-get install -y prads")
class DetectionParityTests(unittest.TestCase):
    def parity(self, trace):
        d = tempfile.mkdtemp(prefix='dist-detect-')
        reference = prads_log(trace, d)
        candidate, final, _ = dist_log(self, trace, d)
        self.last_candidate = candidate
        code, report = check(reference, candidate)
        self.assertEqual(code, 0, report)
        if os.path.exists(SHARED_ASSETCMP):
            # The independent comparer must see the same figures.
            shared = subprocess.run([sys.executable, SHARED_ASSETCMP, reference, candidate], capture_output=True, text=True)
            ours = report.splitlines()[0].split(' verdict=')[0]
            self.assertEqual(shared.stdout.strip(), ours)
        return report, final

    def test_mix_a_matches_prads(self):
        report, final = self.parity(MIX_A)
        print('\n  mix-a: ' + report.splitlines()[0], file=sys.stderr)
        self.assertEqual(final['dropped_records'], 0)
        self.assertGreater(final['detection']['records'], 1200)

    def test_arp_discovery_matches_prads_arp_mode(self):
        d = tempfile.mkdtemp(prefix='dist-detect-arp-')
        reference = prads_log(MIX_A, d, arp=True)
        candidate, _, _ = dist_log(self, MIX_A, d, ['--arp'])
        code, report = check(reference, candidate)
        self.assertEqual(code, 0, report)
        def arp(path):
            with open(path) as f:
                return sorted(l.rsplit(',', 1)[0] for l in f if ',ARP,' in l)
        self.assertEqual(arp(candidate), arp(reference))
        self.assertEqual(len(arp(candidate)), 20)

    def test_a_capture_of_our_own_matches_prads(self):
        path = os.path.join(tempfile.mkdtemp(), 'services.pcap')
        write_pcap(path, service_frames() + [broken_options_frame()])
        report, _ = self.parity(path)
        self.assertIn('precision=1.0000', report)
        self.assertIn('recall=1.0000', report)

    def test_with_no_inspection_limit_a_late_banner_is_learnt_as_prads_learns_it(self):
        # prads 0.3.3 counts MAX_PKT_CHECK and ignores it; dist-vnf applies it unless told
        # --inspect-packets 0.
        path = os.path.join(tempfile.mkdtemp(), 'late.pcap')
        write_pcap(path, late_banner_frames())
        for app, complete in (((), False), (('--inspect-packets', '0'), True)):
            d = tempfile.mkdtemp(prefix='dist-detect-')
            reference = prads_log(path, d)
            candidate, _, _ = dist_log(self, path, d, app)
            code, report = check(reference, candidate)
            self.assertEqual(code == 0, complete, report)
            self.assertEqual('OpenSSH 8.4p1' in open(candidate).read(), complete, report)

    def test_tunnelled_hosts_match_prads(self):
        # dist-vnf tracks and inspects each flow inside a tunnel; PRADS fingerprints the hosts
        # inside protocols 94 and 41, over IPv4 and IPv6, and nothing inside protocol 4 or GRE.
        path = os.path.join(tempfile.mkdtemp(), 'tunnels.pcap')
        write_pcap(path, tunnel_frames())
        report, final = self.parity(path)
        self.assertIn('precision=1.0000', report)
        self.assertIn('recall=1.0000', report)
        # Every inner flow is a flow of its own: 7 tunnels, 4 client-server pairs each, 5 TCP
        # connections and 2 UDP exchanges a pair.
        self.assertEqual(final['flows']['created'], 7 * 4 * 7)
        with open(self.last_candidate) as f:
            learnt = f.read()
        for inner in ('10.1.0.', '10.2.0.', '2001:db8::a01:', '2001:db8::a02:'):
            self.assertIn(inner, learnt)
        for unread in ('10.3.0.', '10.4.0.', '2001:db8::a04:'):
            self.assertNotIn(unread, learnt)

    def test_prads_asset_report_reads_our_log_as_prads_s(self):
        # Debian's prads-asset-report on dist-vnf's log gives prads's report: with --capture-time
        # the records are dated by the capture, as prads -r dates them (the report's OS guess
        # weighs records by their dates, and skips those not dated by ten digits).
        for name, frames in (('services', service_frames()), ('tunnels', tunnel_frames())):
            with self.subTest(capture=name):
                d = tempfile.mkdtemp(prefix=f'dist-report-{name}-')
                path = os.path.join(d, f'{name}.pcap')
                write_pcap(path, frames, start=1_700_000_000, per_second=10)
                reference = prads_log(path, d)
                candidate, _, _ = dist_log(self, path, d, ['--capture-time'])
                reports = [subprocess.run(['prads-asset-report', '-n', '-r', log], capture_output=True, text=True,
                                          check=True).stdout for log in (reference, candidate)]
                self.assertEqual(reports[1], reports[0])
                self.assertGreaterEqual(reports[0].count('IP:'), 2)
                with open(candidate) as f:
                    self.assertIn(',17000000', f.read())
        # On mix-a every record both logs hold carries the same date.
        d = tempfile.mkdtemp(prefix='dist-report-mix-a-')
        reference = prads_log(MIX_A, d)
        candidate, _, _ = dist_log(self, MIX_A, d, ['--capture-time'])
        dated = []
        for log in (reference, candidate):
            with open(log) as f:
                dated.append(set(l.strip() for l in f if not l.startswith('asset,')))
        self.assertGreaterEqual(len(dated[0] & dated[1]), 0.99 * len(dated[0]))

    def test_user_captures(self):
        paths = [p for p in os.environ.get('DIST_EXTRA_PCAPS', '').split(':') if p]
        if not paths:
            self.skipTest('no captures of your own: set DIST_EXTRA_PCAPS=/a.pcap:/b.pcap')
        for path in paths:
            with self.subTest(capture=path):
                report, _ = self.parity(path)
                print(f'\n  {os.path.basename(path)}: ' + report.splitlines()[0], file=sys.stderr)

    def test_two_workers_log_each_thing_learnt_once(self):
        # mix-a's flows spread over two queues as a kernel's fanout would; each flow is
        # processed by its owner (handed there when the other worker received it). Each worker
        # learns the hosts its flows touch; the log writer keeps one line per thing learnt.
        # PRADS logs a host's first sighting of each thing (the first flow's port, the first
        # unmatched fingerprint of a kind); two workers reading at their own pace see a host's
        # flows in another order than the trace's, so the log agrees with PRADS's on what was
        # learnt (asset_facts), not record for record.
        d = tempfile.mkdtemp(prefix='dist-detect2-')
        reference = prads_log(MIX_A, d)
        log = os.path.join(d, 'dist.log')
        ins = [os.path.join(d, f'in{q}.pcap') for q in range(2)]
        for path, part in zip(ins, split_by_flow(pcapcheck.read_pcap(MIX_A), 2)):
            write_pcap(path, part)
        outs = [os.path.join(d, f'out{q}.pcap') for q in range(2)]
        vdev = f'net_pcap0,rx_pcap={ins[0]},rx_pcap={ins[1]},tx_pcap={outs[0]},tx_pcap={outs[1]}'
        vnf = VNF(['--lcores', '0@0,1@1,2@1', '--no-huge', '-m', '1024', '--no-pci', '--vdev', vdev],
                  ['--flows', '65536', '--mbuf-size', '9216', '--asset-log', log])
        try:
            vnf.wait_rx(54981)
        finally:
            self.assertEqual(vnf.stop(), 0, vnf.output())
        with open(log) as f:
            lines = [l.split(',[')[0] + l[l.index(',['):l.rindex('],')] for l in f.read().splitlines()[1:]]
        self.assertEqual(len(lines), len(set(lines)), 'a record was logged twice')
        with open(reference) as a, open(log) as b:
            precision, recall = facts_agreement(asset_facts(a), asset_facts(b))
        self.assertGreaterEqual(min(precision, recall), 0.99, (precision, recall))

    @unittest.skipUnless(shutil.which('prads-asset-report'), 'prads-asset-report comes with Debian\'s prads')
    def test_prads_asset_report_reads_our_log(self):
        path = os.path.join(tempfile.mkdtemp(), 'services.pcap')
        write_pcap(path, service_frames())
        log, _, _ = dist_log(self, path, tempfile.mkdtemp())
        report = subprocess.run(['prads-asset-report', '-r', log], capture_output=True, text=True, timeout=60)
        self.assertEqual(report.returncode, 0, report.stderr)
        self.assertIn('IP:   198.18.0.20', report.stdout)
        self.assertIn('OpenSSH 8.4p1', report.stdout)


@unittest.skipUnless(os.path.isdir('/etc/prads'), "Debian's prads signature files: apt-get install -y prads")
class DetectionBehaviourTests(unittest.TestCase):
    def test_assets_are_served_by_prefix(self):
        path = os.path.join(tempfile.mkdtemp(), 'services.pcap')
        frames = service_frames()
        write_pcap(path, frames)
        out = os.path.join(tempfile.mkdtemp(), 'out.pcap')
        vnf = VNF(EAL + ['--vdev', f'net_pcap0,rx_pcap={path},tx_pcap={out}'], ['--flows', '1024'])
        try:
            vnf.wait_rx(len(frames))
            every = vnf.request({'cmd': 'assets'})
            some = vnf.request({'cmd': 'assets', 'prefix': '198.18.0.20/32'})
            none = vnf.request({'cmd': 'assets', 'prefix': '10.0.0.0/8'})
            bad = vnf.request({'cmd': 'assets', 'prefix': 'not-a-prefix'})
        finally:
            self.assertEqual(vnf.stop(), 0)
        self.assertEqual(every['count'], 2)
        self.assertEqual([a['asset'] for a in some['assets']], ['198.18.0.20'])
        self.assertTrue(any('SERVER,[ssh:OpenSSH 8.4p1' in r for r in some['assets'][0]['records']), some)
        self.assertEqual(none['count'], 0)
        self.assertFalse(bad['ok'])

    def test_a_missing_signature_directory_is_one_line(self):
        from test_cli import run
        result = run(['-l', '0-1', '--no-huge', '--', '--signatures', '/nonexistent/prads'])
        self.assertEqual(result.returncode, 2)
        self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)
        self.assertIn('--signatures', result.stderr)

    def test_malformed_signature_lines_are_named_and_the_rest_loads(self):
        d = tempfile.mkdtemp()
        signatures = os.path.join(d, 'prads')
        shutil.copytree('/etc/prads', signatures)
        with open(os.path.join(signatures, 'tcp-service.sig'), 'a') as f:
            f.write('this line is not a signature\nhttp,v/Broken///,Server: (unclosed\n')
        path = os.path.join(d, 'services.pcap')
        frames = service_frames()
        write_pcap(path, frames)
        log, final, output = dist_log(self, path, d, ['--signatures', signatures])
        warnings = [l for l in output.splitlines() if 'signature line skipped' in l]
        self.assertEqual(len(warnings), 2, output)
        self.assertIn('tcp-service.sig:', warnings[0])
        self.assertGreater(final['detection']['records'], 5)

    def test_payloads_built_to_be_slow_are_cut_at_the_match_limit_and_still_forwarded(self):
        d = tempfile.mkdtemp()
        signatures = os.path.join(d, 'prads')
        shutil.copytree('/etc/prads', signatures)
        with open(os.path.join(signatures, 'tcp-service.sig'), 'r+') as f:
            rest = f.read()
            f.seek(0)
            # First in the list, so every server payload meets it; Hyperscan does not take \R, so
            # the prefilter cannot rule it out and PCRE2 backtracks.
            f.write('evil,v/Evil///,^(a+)+\\R?$\n' + rest)
        c, s = [198, 18, 0, 1], [198, 18, 0, 2]
        frames = [eth(0x0800) + ipv4(6, c, s, tcp(50000, 8080, 0x02))]
        for i in range(8):
            frames.append(eth(0x0800) + ipv4(6, s, c, tcp(8080, 50000, 0x18, b'a' * 500 + b'!')))
            frames.append(eth(0x0800) + ipv4(6, c, s, tcp(50000, 8080, 0x10, b'x' * (i + 1))))
        path = os.path.join(d, 'slow.pcap')
        write_pcap(path, frames)
        _, final, _ = dist_log(self, path, d, ['--signatures', signatures])
        self.assertGreater(final['detection']['match_limit_hits'], 0)
        self.assertEqual(final['tx_packets'], len(frames))

    def test_detection_can_be_turned_off(self):
        path = os.path.join(tempfile.mkdtemp(), 'services.pcap')
        frames = service_frames()
        write_pcap(path, frames)
        out = os.path.join(tempfile.mkdtemp(), 'out.pcap')
        vnf = VNF(EAL + ['--vdev', f'net_pcap0,rx_pcap={path},tx_pcap={out}'], ['--flows', '1024', '--no-detection'])
        try:
            vnf.wait_rx(len(frames))
        finally:
            self.assertEqual(vnf.stop(), 0)
        self.assertEqual(vnf.final_stats()['detection']['records'], 0)
        self.assertIn('detection: off', vnf.output())

    def test_the_asset_log_is_appended_to_and_reopened_on_sighup(self):
        """A restart appends to the log; after logrotate moves it, SIGHUP starts a new file at
        its path, with the header, and the moved file keeps what was written before."""
        d = tempfile.mkdtemp()
        path, out = os.path.join(d, 'services.pcap'), os.path.join(d, 'out.pcap')
        frames = service_frames()
        write_pcap(path, frames)
        log = os.path.join(d, 'assets.log')

        def run(between=None):
            vnf = VNF(EAL + ['--vdev', f'net_pcap0,rx_pcap={path},tx_pcap={out}'],
                      ['--flows', '1024', '--asset-log', log])
            try:
                vnf.wait_rx(len(frames))
                deadline = time.time() + 10
                while vnf.request({'cmd': 'stats'})['detection']['records'] == 0 and time.time() < deadline:
                    time.sleep(0.05)
                if between:
                    between(vnf)
            finally:
                self.assertEqual(vnf.stop(), 0, vnf.output())
            return vnf

        def records(text):
            return [line for line in text.splitlines() if not line.startswith('asset,')]

        def logged():
            with open(log) as f:
                return records(f.read())

        run()
        with open(log) as f:
            first = f.read()
        self.assertTrue(first.startswith('asset,'), first)
        self.assertGreater(len(records(first)), 0)

        def rotate(vnf):
            # (Records reach the log from the main lcore's next round: wait for them.)
            deadline = time.time() + 10
            while len(logged()) < 2 * len(records(first)) and time.time() < deadline:
                time.sleep(0.05)
            os.rename(log, log + '.1')
            vnf.process.send_signal(signal.SIGHUP)
            deadline = time.time() + 10
            while 'reopened' not in vnf.output() and time.time() < deadline:
                time.sleep(0.05)

        vnf = run(rotate)
        self.assertIn('asset log', vnf.output())
        self.assertIn('reopened', vnf.output())
        with open(log + '.1') as f:
            moved = f.read()
        # The header once, the first run's records, then the second's.
        self.assertEqual(moved.count('asset,'), 1, moved)
        self.assertTrue(moved.startswith(first), moved)
        self.assertEqual(len(records(moved)), 2 * len(records(first)))
        with open(log) as f:
            self.assertEqual(f.read().splitlines()[0][:6], 'asset,')


if __name__ == '__main__':
    unittest.main()
