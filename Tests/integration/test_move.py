"""Moves on the test bed, one worker per VNF: opennf and dist modes, each guarantee and
optimisation, a split Move, all-flows state, a lossy channel, 24 Moves back and forth (the
harness: movebed.py)."""
import json
import os
import subprocess
import sys
import threading
import time
import unittest

from movebed import FILTER, LF_MESSAGES, MOVE_AT, OP_MESSAGES, MoveCase
from support import MIX_A, ROOT, samples, text_string_to_metric_families


class MoveTests(MoveCase):
    def test_loss_free_with_every_optimization(self):
        report, result = self.moved('lf', 'pz,ll,er', 'none')
        self.assertGreater(report['packetsRedirected'], 0, report)
        self.assertEqual(report['packetsReleased'], report['packetsRedirected'])

    def test_loss_free_without_optimizations(self):
        # Every packet of the moved flows raised during the Move went through the controller to
        # the destination. (How many the controller had to buffer, waiting for the state, depends
        # on the machine's speed: on a fast one a whole Move took 6 ms and buffered none.)
        report, _ = self.moved('lf', 'none', 'none')
        self.assertGreater(report['packetsRedirected'], 0, report)
        self.assertEqual(report['packetsReleased'], report['packetsRedirected'], report)

    def test_dist_redirect_first(self):
        """The switch goes first: the destination holds its packets while the state comes after
        the IBC; the source processes what it got until then and redirects next to nothing."""
        report, result = self.dist_moved('lf', 'pz,er', extra=('--plan', 'redirect-first'))
        self.assertIn('redirect-first', report['move'])
        names = [p['name'] for p in report['phases']]
        self.assertLess(names.index('datapath-synced'), names.index('ibc-sent'), report['phases'])
        # The source had every packet before the switch update, the destination every one
        # after: the moved traffic keeps its order across flows too.
        self.assertEqual(result['moved_reordered'], 0, result)

    def test_dist_split_by_traffic(self):
        """One Move of 10.0.0.0/8 as a Move per /16 with flows, busiest first, then the rest."""
        report, result = self.moved('lf', 'pz,ll,er', 'flows', mode='dist',
                                    extra=('--split', '16', '--split-order', 'traffic'))
        parts = report['parts']
        self.assertGreater(len(parts), 2, report)
        self.assertEqual(parts[-1]['filter'], FILTER)   # the rest, last
        seen = [p['packets'] for p in parts[:-1]]
        self.assertEqual(seen, sorted(seen, reverse=True))
        for p in parts:
            self.assertEqual(p['outcome'], 'completed', p)
            self.assertLessEqual(p['messages'], LF_MESSAGES, p)
        self.assertEqual(sum(p['states'] for p in parts), report['perFlowStates'])
        self.assertEqual(result['reordered_within_flows'], 0, result)

    def test_dist_moves_the_counters_too(self):
        """All-flows state over the channel: the destination adds the source's counters as the
        Move began, the source takes them off and keeps what came since: nothing is counted
        twice or lost."""
        bed = self.session('dist-all-flows')
        try:
            replay = self.replay(bed)
            time.sleep(MOVE_AT)
            report, out = self.move(bed, '--guarantee', 'lf', '--opt', 'pz,ll,er', '--mode', 'dist', '--scope', 'per,multi,all')
            replay.join()
            time.sleep(0.5)
            views = [self.counter(bed.run('ctl', 'vnf', 'stats', v).stdout, 'packets') for v in ('vnf1', 'vnf2')]
        finally:
            bed.run('down')
        self.assertEqual(report['outcome'], 'completed', out.stdout + out.stderr)
        self.assertEqual(report['allFlowsStates'], 1, report)
        totals = []
        for v in ('vnf1', 'vnf2'):
            with open(os.path.join(bed.dir, f'{v}.log')) as f:
                final = json.loads([line for line in f if line.startswith('final-stats-json: ')][-1].split(': ', 1)[1])
            totals.append(final['rx_packets'])
        self.assertEqual(sum(views), sum(totals), (views, totals))
        self.assertGreater(views[1] - totals[1], 1000, (views, totals))   # what vnf1 had counted

    @staticmethod
    def counter(text, name):
        for line in text.splitlines():
            if line.startswith(name + ': '):
                return int(line.split(': ')[1])
        raise AssertionError(f'no {name} in {text!r}')

    def test_dist_order_preserving(self):
        """The two-phase switch update: the switch's copies before the in-band control packet
        are dropped at the destination, those after it wait for the source's last redirected
        packet. Without late locking the moved traffic keeps its order across flows too."""
        report, result = self.dist_moved('op', 'pz')
        self.assertEqual(result['moved_reordered'], 0, result)
        self.assertGreater(report['packetsRedirected'], 0, report)
        # The in-band control packet went once the switch's datapath had no flow cached from
        # before the copies, not on a guess after the flow table's BARRIER.
        names = [p['name'] for p in report['phases']]
        self.assertIn('datapath-synced', names, report['phases'])
        self.assertLess(names.index('datapath-synced'), names.index('ibc-sent'), report['phases'])

    def test_dist_order_preserving_while_the_datapath_lags(self):
        """Open vSwitch's revalidators paused through the Move: no flow the datapath cached
        before it takes the new rules on its own (on a loaded host that took 11 ms for one flow,
        and the source dropped 37 of its packets as copies the destination never had). The
        controller clears the cache before the in-band control packet: nothing lost."""
        bed = self.session('op-lagging-datapath')
        ctl = os.path.join(bed.dir, 'ovs', 'ovs-vswitchd.ctl')
        try:
            replay = self.replay(bed)
            time.sleep(MOVE_AT)
            subprocess.run(['ovs-appctl', '-t', ctl, 'revalidator/pause'], check=True, timeout=10)
            try:
                report, out = self.move(bed, '--guarantee', 'op', '--opt', 'pz', '--mode', 'dist')
            finally:
                subprocess.run(['ovs-appctl', '-t', ctl, 'revalidator/resume'], check=True, timeout=10)
            replay.join()
        finally:
            bed.run('down')
        self.assertEqual(report['outcome'], 'completed', out.stdout + out.stderr)
        result = self.verdict(bed, 'all')
        self.assertEqual((result['lost'], result['duplicated'], result['moved_reordered']), (0, 0, 0), result)
        self.assertIn('datapath-synced', [p['name'] for p in report['phases']], report['phases'])

    def test_dist_order_preserving_with_every_optimization(self):
        # Late locking and early release keep the order within flows only (the paper, 2.3).
        report, _ = self.dist_moved('op', 'pz,ll,er')
        self.assertGreater(report['packetsRedirected'], 0, report)

    def test_dist_loss_free_with_every_optimization(self):
        report, _ = self.dist_moved('lf', 'pz,ll,er')
        self.assertGreater(report['packetsRedirected'], 0, report)
        # Every process's metrics (testbed.sh metrics), read with Prometheus's parser: the Move
        # counted at the controller and at both ends, its redirected packets at the source.
        if text_string_to_metric_families:
            ctl, vnf1, vnf2 = (samples(self.scrapes[n]) for n in ('controller', 'vnf1', 'vnf2'))
            kind = (('guarantee', 'lf'), ('mode', 'dist'))  # (labels in sorted order)
            self.assertEqual(ctl.get(('dist_controller_moves_total', kind + (('outcome', 'completed'),))), 1, ctl)
            self.assertEqual(ctl.get(('dist_controller_move_seconds_count', kind)), 1)
            self.assertAlmostEqual(ctl.get(('dist_controller_move_seconds_sum', kind)), report['moveTime'], places=6)
            self.assertEqual(ctl.get(('dist_controller_switch_connected', ())), 1)
            self.assertEqual(vnf1.get(('dist_vnf_moves_total', (('direction', 'out'), ('outcome', 'completed')))), 1)
            self.assertEqual(vnf2.get(('dist_vnf_moves_total', (('direction', 'in'), ('outcome', 'completed')))), 1)
            # (The worker's count includes the in-band control packet, which it hands on too.)
            redirected = sum(v for (n, _), v in vnf1.items() if n == 'dist_vnf_redirected_packets_total')
            self.assertIn(redirected, (report['packetsRedirected'], report['packetsRedirected'] + 1))
        self.assertEqual(report['packetsReleased'], report['packetsRedirected'], report)
        # The in-band control packet went to the source once the switch's datapath had no flow
        # cached from before the update, not on a guess after the BARRIER.
        names = [p['name'] for p in report['phases']]
        self.assertIn('datapath-synced', names, report['phases'])
        self.assertLess(names.index('switch-updated'), names.index('datapath-synced'), report['phases'])
        self.assertLess(names.index('datapath-synced'), names.index('ibc-sent'), report['phases'])

    def test_dist_quiet_flows_wait_briefly_for_the_switch(self):
        """Without the switch's control socket, and no moved traffic for the destination to see,
        the IBC goes a short wait after the BARRIER reply (60 ms, then the settle), not a
        quarter of a second after the FLOW_MOD."""
        bed = self.session('dist-lf-quiet', DIST_SWITCH_SYNC='off')
        try:
            replay = self.replay(bed)
            time.sleep(MOVE_AT)
            out = bed.run('move', '--from', 'vnf1', '--to', 'vnf2', '--filter', 'nw_src=198.51.100.0/24', '--json',
                          '--guarantee', 'lf', '--opt', 'pz,ll,er', '--mode', 'dist', check=False)
            replay.join()
        finally:
            bed.run('down')
        report = json.loads(out.stdout[out.stdout.index('{'):])['report']
        self.assertEqual(report['outcome'], 'completed', report)
        at = {p['name']: p['at'] for p in report['phases']}
        self.assertIn('no-traffic-within-timeout', at, report['phases'])
        self.assertGreater(at['ibc-sent'] - at['switch-updated'], 0.06, report['phases'])
        self.assertLess(at['ibc-sent'] - at['switch-updated'], 0.15, report['phases'])

    def test_dist_loss_free_without_optimizations(self):
        report, _ = self.dist_moved('lf', 'none')
        # Without ER the destination holds redirected packets until every state is in (the
        # export takes one pass here, so often none has to wait).
        self.assertEqual(report['packetsReleased'], report['packetsRedirected'], report)

    def test_dist_no_guarantee(self):
        report, _ = self.dist_moved('ng', 'none')
        self.assertEqual(report['packetsRedirected'], 0, report)

    def test_dist_with_a_tenth_of_the_channel_dropped(self):
        report, _ = self.dist_moved('lf', 'pz,ll,er', up=('--profile', 'paper', '--channel-drop', '10'))
        self.assertGreater(report['retransmissions'], 0, report)

    def test_order_preserving(self):
        """Without late locking every packet of the moved flows goes through the controller from
        the moment events are on, so the moved traffic keeps its order across flows too."""
        report, result = self.moved('op', 'pz', 'all')
        self.assertEqual((result['reordered_within_flows'], result['moved_reordered']), (0, 0), result)
        # The IBC went once the switch's datapath had no flow cached from before phase 1.
        self.assertIn('datapath-synced-1', [p['name'] for p in report['phases']], report['phases'])

    def test_order_preserving_with_every_optimization(self):
        """Late locking: the source goes on processing a moved flow until its state is exported,
        while the packets of flows already exported wait at the controller, so the order holds
        within each flow (the paper, 2.3), not across them."""
        report, result = self.moved('op', 'pz,ll,er', 'flows')
        self.assertEqual(result['reordered_within_flows'], 0, result)
        self.assertIn('datapath-synced-1', [p['name'] for p in report['phases']], report['phases'])

    def test_every_guarantee_with_every_optimization(self):
        """NG, LF and OP with each of the eight combinations of PZ, LL and ER: 24 Moves back and
        forth between the VNFs during one replay. Each completes, and nothing is lost or
        duplicated in the whole run (NG keeps packets at the source, so it loses none either)."""
        reports = self.back_and_forth('opennf')
        self.assertTrue(any(r['packetsFromSwitch'] > 0 for g, _, r in reports if g == 'op'))

    def test_dist_every_guarantee_with_every_optimization(self):
        """The same 24 Moves back and forth in dist mode: each instance is in turn the source
        (its rule after an OP Move drops the switch's last copies) and the destination."""
        reports = self.back_and_forth('dist')
        for guarantee, opt, report in reports:
            limit = OP_MESSAGES if guarantee == 'op' else LF_MESSAGES
            self.assertLessEqual(report['messagesSent'] + report['messagesReceived'], limit, (guarantee, opt, report))

    def back_and_forth(self, mode):
        import itertools
        configs = [(g, ','.join(o) or 'none') for g in ('ng', 'lf', 'op')
                   for n in range(4) for o in itertools.combinations(('pz', 'll', 'er'), n)]
        self.assertEqual(len(configs), 24)
        trace = os.path.join(self.tmp, 'long.pcap')
        subprocess.run([sys.executable, os.path.join(ROOT, 'deploy', 'tools', 'pcapcheck.py'), 'cut', MIX_A, trace,
                        '--frames', '30000', '--no-fragments'], check=True, capture_output=True)
        bed = self.session(f'combinations-{mode}')
        reports = []
        try:
            replay = threading.Thread(target=bed.run, args=('replay', trace, '1000'), kwargs={'timeout': 120})
            replay.start()
            time.sleep(1)
            for i, (guarantee, opt) in enumerate(configs):
                src, dst = ('vnf1', 'vnf2') if i % 2 == 0 else ('vnf2', 'vnf1')
                out = bed.run('move', '--from', src, '--to', dst, '--filter', 'nw_src=192.168.0.0/16', '--json',
                              '--guarantee', guarantee, '--opt', opt, '--mode', mode, check=False)
                reports.append((guarantee, opt, json.loads(out.stdout[out.stdout.index('{'):])['report']))
                time.sleep(0.3)
            replay.join()
        finally:
            bed.run('down')
        for guarantee, opt, report in reports:
            self.assertEqual(report['outcome'], 'completed', (guarantee, opt, report))
            self.assertGreater(report['perFlowStates'], 0, (guarantee, opt))
            if guarantee == 'ng':
                self.assertEqual(report['packetsRedirected'], 0)
        self.assertTrue(any(r['packetsRedirected'] > 0 for g, _, r in reports if g != 'ng'))
        result = self.verdict_of(bed, trace)
        self.assertEqual((result['lost'], result['duplicated'], result['extra']), (0, 0, 0), result)
        return reports

    def verdict_of(self, bed, trace):
        out = bed.run('check', trace, '--order', 'none', '--json', check=False)
        return json.loads(out.stdout)


if __name__ == '__main__':
    unittest.main()
