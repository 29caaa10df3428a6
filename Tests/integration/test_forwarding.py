"""dist-vnf end to end on net_pcap: every frame out once, in order, flows counted right.

Set DIST_EXTRA_PCAPS=/a.pcap:/b.pcap to run the same checks on your own captures."""
import os
import re
import signal
import tempfile
import unittest

from support import (MIX_A, VNF, eth, flow_owner, frame_owner, ipv4, pcapcheck, split_by_flow, synthetic_frames, udp,
                     write_pcap)

EAL = ['-l', '0-1', '--no-huge', '-m', '512', '--no-pci']


def forward(testcase, trace, workers=1, sig=signal.SIGINT, eal=EAL):
    """Runs the trace through dist-vnf and checks the output against it. Returns the final stats.

    With several workers, the trace's flows are spread over as many RX queues (one net_pcap
    file each) as a kernel's fanout would spread them; each frame must leave, in its flow's
    order, by the TX queue of the worker that owns its flow (handed there when another worker
    received it), and each flow be counted once."""
    frames = pcapcheck.read_pcap(trace)
    out_dir = tempfile.mkdtemp(prefix='dist-fwd-')
    if workers == 1:
        out = os.path.join(out_dir, 'out.pcap')
        vdev = f'net_pcap0,rx_pcap={trace},tx_pcap={out}'
        outs = [out]
        expected = [frames]
    else:
        queues = split_by_flow(frames, workers)
        ins = [os.path.join(out_dir, f'in{q}.pcap') for q in range(workers)]
        for path, part in zip(ins, queues):
            write_pcap(path, part)
        outs = [os.path.join(out_dir, f'out{q}.pcap') for q in range(workers)]
        vdev = 'net_pcap0,' + ','.join(f'rx_pcap={i}' for i in ins) + ',' + ','.join(f'tx_pcap={o}' for o in outs)
        eal = ['--lcores', '0@0,' + ','.join(f'{w + 1}@{1 + w % 1}' for w in range(workers)),
               '--no-huge', '-m', '512', '--no-pci']
        placed = {}
        for q, part in enumerate(queues):
            for f in part:
                placed.setdefault(f, []).append(frame_owner(f, workers, receiver=q))
        expected = [[] for _ in range(workers)]
        for f in frames:
            # (A frame the trace repeats byte for byte: each copy where its queue put it.)
            w = placed[f].pop(0)
            expected[w].append(f)
        handed = sum(1 for q, part in enumerate(queues) for f in part if frame_owner(f, workers, receiver=q) != q)
    largest = max((len(f) for f in frames), default=60)
    vnf = VNF(eal + ['--vdev', vdev], ['--flows', '65536', '--mbuf-size', str(max(2048, largest))])
    try:
        stats = vnf.wait_rx(len(frames))
        testcase.assertEqual(stats['rx_packets'], len(frames), vnf.output())
    finally:
        code = vnf.stop(sig)
    testcase.assertEqual(code, 0, vnf.output())
    final = vnf.final_stats()
    testcase.assertIsNotNone(final, vnf.output())
    for want, out in zip(expected, outs):
        result = pcapcheck.compare(want, pcapcheck.read_pcap(out))
        got = (result['lost'], result['duplicated'], result['extra'], result['reordered_within_flows'])
        testcase.assertEqual(got, (0, 0, 0, 0), f'{trace} -> {out}: {result}')
        if workers == 1:
            testcase.assertEqual(result['reordered'], 0, f'{trace} -> {out}: {result}')
    if workers > 1:
        testcase.assertEqual(final['handoff']['handed_off'], handed)
        testcase.assertEqual(final['handoff']['received'], handed)
        testcase.assertEqual(final['handoff']['ring_full'], 0)
        testcase.assertEqual([w['handoff']['handed_off'] > 0 for w in final['workers']], [True] * workers)
    # Every frame accounted for: parse outcomes and layer counters add up to what was received.
    testcase.assertEqual(sum(final['parse'].values()), final['rx_packets'])
    testcase.assertEqual(sum(final['l3'].values()), final['rx_packets'])
    testcase.assertEqual(final['tx_packets'], final['rx_packets'])
    testcase.assertEqual(final['tx_dropped'], 0)
    # The flow table saw as many flows as an independent count of the trace's 5-tuples, each at
    # one worker.
    distinct = {pcapcheck.flow_of(f) for f in frames} - {None}
    testcase.assertEqual(final['flows']['created'], len(distinct))
    testcase.assertEqual(final['flows']['active'], len(distinct))
    testcase.assertEqual(final['flows']['table_full'], 0)
    return final, vnf


class ForwardingTests(unittest.TestCase):
    def test_mix_a_comes_out_whole_in_order_with_every_flow_counted(self):
        final, vnf = forward(self, MIX_A)
        self.assertEqual(final['rx_packets'], 54981)
        # One worker frees what it received: EAL's own handler.
        self.assertIn('(mempool handler ring_mp_mc)', vnf.output())
        self.assertEqual(final['flows']['created'], 5523)

    def test_synthetic_edge_cases_are_forwarded_and_counted_by_reason(self):
        path = os.path.join(tempfile.mkdtemp(), 'synthetic.pcap')
        frames = synthetic_frames()
        write_pcap(path, frames)
        final, _ = forward(self, path, sig=signal.SIGTERM)
        parse = final['parse']
        self.assertEqual(parse.get('truncated_ethernet'), 20)
        self.assertEqual(parse.get('truncated_ipv4'), 20)
        self.assertEqual(parse.get('too_many_vlan_tags'), 20)
        self.assertEqual(parse.get('unknown_ethertype'), 20)
        self.assertEqual(final['l4']['fragment'], 400)

    def test_two_workers_send_each_flow_from_its_owner_in_order(self):
        path = os.path.join(tempfile.mkdtemp(), 'synthetic.pcap')
        write_pcap(path, synthetic_frames())
        final, vnf = forward(self, path, workers=2)
        self.assertIn('worker 1 on lcore 2', vnf.output())
        # Mbufs received on one core and freed on another: the pool's free ones in a stack.
        self.assertIn('(mempool handler stack)', vnf.output())

    def test_the_pool_keeps_the_mempool_handler_the_user_gave(self):
        vnf = VNF(['--lcores', '0@0,1@1,2@1', '--no-huge', '-m', '512', '--no-pci', '--mbuf-pool-ops-name',
                   'ring_mp_mc', '--vdev', 'net_null0'], ['--flows', '4096'])
        code = vnf.stop()
        self.assertEqual(code, 0, vnf.output())
        self.assertIn('2 worker(s)', vnf.output())
        self.assertIn('(mempool handler ring_mp_mc)', vnf.output())

    def test_the_handoff_rings_cannot_empty_the_pool(self):
        """Four workers on two ports (the README's `-l 0-4`), default pool: every ring between
        workers full at once still leaves the ports' descriptors, the rings to the transfer
        lcore and the lcores' caches their mbufs, so a late worker cannot stop the others'
        queues from receiving."""
        vnf = VNF(['--lcores', '0@0,1@1,2@1,3@0,4@1', '--no-huge', '-m', '512', '--no-pci',
                   '--vdev', 'net_null0,no-rx=1', '--vdev', 'net_null1,no-rx=1'], ['--flows', '4096'])
        code = vnf.stop()
        self.assertEqual(code, 0, vnf.output())
        m = re.search(r'4 worker\(s\), pool (\d+) mbufs .*, handoff rings of (\d+) packets', vnf.output())
        self.assertIsNotNone(m, vnf.output())
        pool, ring = int(m.group(1)), int(m.group(2))
        in_port_rings = 2 * 4 * (1024 + 1024)
        transfer = 4 * 512
        caches = 6 * (384 + 32)
        self.assertGreaterEqual(ring, 256)
        self.assertLessEqual(12 * ring, pool - in_port_rings - transfer - caches)

    def test_what_was_handed_off_is_sent_when_the_vnf_stops(self):
        """Worker 0 receives frames of flows worker 1 owns, without pause, until a stop: every
        frame it received is sent by worker 1 or counted dropped (a full ring), none is left in
        a ring. The workers share a core, so that the ring holds frames when the stop comes."""
        d = tempfile.mkdtemp()
        frames = []
        for port in range(5000, 5400):
            if flow_owner('198.18.0.1', '198.18.0.2', port, 53, 17, 2) == 1:
                frames.append(eth(0x0800) + ipv4(17, [198, 18, 0, 1], [198, 18, 0, 2], udp(port, 53, b'q' * 20)))
        self.assertGreater(len(frames), 100)
        q0, q1 = os.path.join(d, 'q0.pcap'), os.path.join(d, 'q1.pcap')
        write_pcap(q0, frames)
        write_pcap(q1, frames[:1])
        vnf = VNF(['--lcores', '0@0,1@1,2@1', '--no-huge', '-m', '512', '--no-pci',
                   '--vdev', f'net_pcap0,rx_pcap={q0},rx_pcap={q1},infinite_rx=1', '--vdev', 'net_null0,no-rx=1'],
                  ['--flows', '4096'])
        try:
            vnf.wait_rx(200_000)
        finally:
            code = vnf.stop()
        self.assertEqual(code, 0, vnf.output())
        final = vnf.final_stats()
        self.assertIsNotNone(final, vnf.output())
        self.assertGreater(final['handoff']['handed_off'], 1000, final)
        self.assertEqual(final['handoff']['received'], final['handoff']['handed_off'], final)
        self.assertEqual(final['tx_packets'] + final['tx_dropped'] + final['handoff']['ring_full'],
                         final['rx_packets'], final)

    def test_two_ports_forward_to_each_other(self):
        d = tempfile.mkdtemp()
        a_in, b_in = os.path.join(d, 'a.pcap'), os.path.join(d, 'b.pcap')
        a_out, b_out = os.path.join(d, 'a-out.pcap'), os.path.join(d, 'b-out.pcap')
        synthetic = synthetic_frames()
        write_pcap(a_in, synthetic[:900])
        write_pcap(b_in, synthetic[900:])
        vnf = VNF(EAL + ['--vdev', f'net_pcap0,rx_pcap={a_in},tx_pcap={a_out}',
                         '--vdev', f'net_pcap1,rx_pcap={b_in},tx_pcap={b_out}'], ['--flows', '4096'])
        try:
            vnf.wait_rx(len(synthetic))
        finally:
            self.assertEqual(vnf.stop(), 0)
        # Port 0's frames leave by port 1 and the other way round (l2fwd pairing).
        self.assertEqual(pcapcheck.compare(synthetic[:900], pcapcheck.read_pcap(b_out))['lost'], 0)
        self.assertEqual(pcapcheck.read_pcap(b_out), synthetic[:900])
        self.assertEqual(pcapcheck.read_pcap(a_out), synthetic[900:])

    def test_runs_on_hugepages_when_the_host_has_them(self):
        free_path = '/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages'
        def free_pages():
            if not os.path.exists(free_path):
                return 0
            with open(free_path) as f:
                return int(f.read())
        free = free_pages()
        if free < 160:
            self.skipTest(f'{free} free 2 MB hugepages (run hugepage-setup.sh): covered by --no-huge runs')
        # --in-memory: no hugepage files are left behind when the process ends.
        forward(self, MIX_A, eal=['-l', '0-1', '--in-memory', '-m', '256', '--no-pci'])
        self.assertGreaterEqual(free_pages(), free)

    def test_user_captures(self):
        paths = [p for p in os.environ.get('DIST_EXTRA_PCAPS', '').split(':') if p]
        if not paths:
            self.skipTest('no captures of your own: set DIST_EXTRA_PCAPS=/a.pcap:/b.pcap')
        for path in paths:
            with self.subTest(capture=path):
                forward(self, path)

    def test_admin_socket_serves_stats_flows_and_ports(self):
        path = os.path.join(tempfile.mkdtemp(), 'synthetic.pcap')
        frames = synthetic_frames()
        write_pcap(path, frames)
        out = os.path.join(tempfile.mkdtemp(), 'out.pcap')
        vnf = VNF(EAL + ['--vdev', f'net_pcap0,rx_pcap={path},tx_pcap={out}'], ['--flows', '1024', '--id', 'vnf7'])
        try:
            vnf.wait_rx(len(frames))
            self.assertEqual(oct(os.stat(vnf.admin).st_mode & 0o777), '0o600')
            stats = vnf.request({'cmd': 'stats'})
            self.assertTrue(stats['ok'])
            self.assertEqual(stats['id'], 'vnf7')
            flows = vnf.request({'cmd': 'flows', 'limit': 3})
            self.assertTrue(flows['ok'] and flows['complete'])
            self.assertEqual(flows['count'], 3)
            self.assertEqual({'client', 'server', 'proto', 'packets_to_server', 'tcp_state', 'mark'} -
                             set(flows['flows'][0]), set())
            everything = vnf.request({'cmd': 'flows', 'limit': 100000})
            self.assertEqual(everything['count'], stats['flows']['active'])
            ports = vnf.request({'cmd': 'ports'})
            self.assertEqual(ports['ports'][0]['driver'], 'net_pcap')
            self.assertEqual(ports['ports'][0]['stats']['rx_packets'], len(frames))
            self.assertFalse(vnf.request({'cmd': 'nonsense'})['ok'])
            self.assertFalse(vnf.request({'cmd': 'flows', 'limit': 'x'})['ok'])
        finally:
            self.assertEqual(vnf.stop(), 0)


if __name__ == '__main__':
    unittest.main()
