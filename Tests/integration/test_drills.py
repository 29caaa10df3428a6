"""Failure drills on the test bed: dist-controller killed in a phase of a DiST Move or of an
opennf-mode Move, then started again (the VNFs end the Move themselves; nothing the switch delivered is lost and the
next Move succeeds); a Move's source or destination killed mid-Move (the controller and the live VNF end
it; only what the switch sent the dead VNF is lost); Open vSwitch killed and restarted after a
Move and during one (it comes back with an empty flow table: the controller installs the Moves'
rules again; only what reached the switch while it was down is lost)."""
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from support import MIX_A, ROOT, admin_request, write_pcap
from movebed import FILTER, FRAMES, MOVE_AT, TestBed

sys.path.insert(0, os.path.join(ROOT, 'deploy', 'tools'))
import pcapcheck  # noqa: E402

# What a restarted controller says once the switch's datapath no longer sends a Move it undoes
# to the destination (it gives the Move up only then).
PURGED = ("move N out, left behind: the switch's datapath purged",)


class DrillTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix='dist-drill-')
        cls.trace = os.path.join(cls.tmp, 'part.pcap')
        write_pcap(cls.trace, pcapcheck.read_pcap(MIX_A)[:FRAMES])

    def vnf_said(self, bed, vnf, pattern, timeout):
        """The first line of the VNF's log that matches, waited for."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with open(os.path.join(bed.dir, f'{vnf}.log')) as f:
                for line in f:
                    if re.search(pattern, line):
                        return line
            time.sleep(0.1)
        return None

    def flows_at(self, bed, vnf):
        reply = admin_request(os.path.join(bed.dir, f'{vnf}.sock'), {'cmd': 'flows', 'limit': 100000})
        return [f for f in reply.get('flows', []) if f['client'].startswith('10.') or f['server'].startswith('10.')]

    def move_that_kills(self, bed, guarantee, plan=()):
        """Brings the test bed up, starts the replay and, 1.5 s into it, a dist Move from vnf1
        to vnf2 (its controller dies on the way). Returns the replay's thread."""
        out = bed.run('up')
        self.assertIn('up: 2 VNFs', out.stdout, out.stderr)
        replay = threading.Thread(target=bed.run, args=('replay', self.trace, '1000'), kwargs={'timeout': 60})
        replay.start()
        time.sleep(MOVE_AT)
        opt = 'pz' if guarantee == 'op' else 'pz,er' if plan else 'pz,ll,er'
        bed.run('move', '--from', 'vnf1', '--to', 'vnf2', '--filter', FILTER, '--guarantee', guarantee,
                '--opt', opt, '--mode', 'dist', *plan, check=False)
        return replay

    def drill(self, die_at, source_says, flows_end_at, plan=()):
        """A dist LF Move (state first, or as `plan` says) whose controller is killed at
        `die_at`: the source's log says `source_says` within the Move's patience (3 s) and 5 s
        of the start, the moved flows are at `flows_end_at` only, and once the controller is
        back a Move of them the other way completes; the checker finds nothing lost or
        duplicated."""
        directory = os.path.join(self.tmp, '-'.join([die_at, *plan[1:]]))
        bed = TestBed(directory, DIST_CONTROLLER_DIE_AT=die_at)
        calm = TestBed(directory)
        replay = self.move_that_kills(bed, 'lf', plan)
        try:
            with open(os.path.join(directory, 'controller.log')) as f:
                self.assertIn(f'DIST_CONTROLLER_DIE_AT={die_at}: killed', f.read())
            line = self.vnf_said(bed, 'vnf1', r'move \d+ out: (completed|aborted)', timeout=8)
            self.assertIsNotNone(line, 'the source never ended the Move')
            self.assertIn(source_says, line)
            elapsed = int(re.search(r'elapsedNs (\d+)', line).group(1))
            self.assertLess(elapsed, 5e9, line)
            self.assertIsNotNone(self.vnf_said(bed, 'vnf2', r'move \d+ in: ', timeout=8), 'the destination never ended it')
            other = 'vnf1' if flows_end_at == 'vnf2' else 'vnf2'
            self.assertGreater(len(self.flows_at(bed, flows_end_at)), 10)
            self.assertEqual(self.flows_at(bed, other), [])
            out = calm.run('restart-controller')
            self.assertIn('controller restarted', out.stdout, out.stderr)
            replay.join()
            out = calm.run('move', '--from', flows_end_at, '--to', other, '--filter', FILTER, '--json',
                           '--guarantee', 'lf', '--opt', 'pz,ll,er', '--mode', 'dist', check=False)
            reply = json.loads(out.stdout[out.stdout.index('{'):])
            self.assertIn('report', reply, out.stdout + out.stderr)
            report = reply['report']
            self.assertEqual(report['outcome'], 'completed', out.stdout + out.stderr)
            self.assertGreater(len(self.flows_at(bed, other)), 10)
        finally:
            calm.run('down')
        result = json.loads(calm.run('check', self.trace, '--moved', '10.0.0.0/8', '--order', 'flows', '--json',
                                     check=False).stdout)
        self.assertEqual((result['lost'], result['duplicated']), (0, 0), result)

    def restarted(self, die_at, guarantee, source_says, controller_says, flows_end_at, plan=(), rules=None,
                  controller_also_says=()):
        """A dist Move (as `plan` says) whose controller is killed at `die_at` and started again
        at once (the source's patience is 30 s): the new controller ends the Move it finds left
        behind, and the checker finds nothing lost or duplicated. `rules`, if given, is called
        with the switch's flow table once the Move has ended."""
        directory = os.path.join(self.tmp, '-'.join(['restart', die_at, *plan[1:]]))
        bed = TestBed(directory, DIST_CONTROLLER_DIE_AT=die_at, DIST_MOVE_PATIENCE='30')
        calm = TestBed(directory, DIST_MOVE_PATIENCE='30')
        replay = self.move_that_kills(bed, guarantee, plan)
        try:
            out = calm.run('restart-controller')
            self.assertIn('controller restarted', out.stdout, out.stderr)
            line = self.vnf_said(bed, 'vnf1', r'move \d+ out: (completed|aborted)', timeout=10)
            self.assertIsNotNone(line, 'the Move left behind never ended')
            self.assertIn(source_says, re.sub(r'move \d+ ', 'move N ', line))
            with open(os.path.join(directory, 'controller.log')) as f:
                # (Move ids start at random: `move N` stands for any.)
                said = re.sub(r'move \d+ ', 'move N ', f.read())
            for words in (controller_says, *controller_also_says):
                self.assertIn(words, said)
            if rules:
                rules(self.switch_flows(directory))
            replay.join()
            other = 'vnf1' if flows_end_at == 'vnf2' else 'vnf2'
            self.assertGreater(len(self.flows_at(bed, flows_end_at)), 10)
            self.assertEqual(self.flows_at(bed, other), [])
        finally:
            calm.run('down')
        result = json.loads(calm.run('check', self.trace, '--moved', '10.0.0.0/8', '--order', 'flows', '--json',
                                     check=False).stdout)
        self.assertEqual((result['lost'], result['duplicated']), (0, 0), result)

    def test_restarted_controller_finishes_a_switched_move(self):
        """LF left behind after the switch update: the restarted controller sends the in-band
        control packet the source waits for, and the Move completes."""
        self.restarted('switch-updated', 'lf', 'move N out: completed;',
                       'move N out, left behind after the switch update: sending its in-band control packet', 'vnf2')

    def test_restarted_controller_undoes_an_order_preserving_move(self):
        """OP left behind while the switch copies the traffic to both: the restarted controller
        sends it back to the source alone, and the source gives the Move up."""
        self.restarted('datapath-synced', 'op', 'aborted (the controller aborted it: left behind',
                       'move N out, left behind (duplicating)', 'vnf1', controller_also_says=PURGED)

    def test_restarted_controller_undoes_a_split_moves_part(self):
        """A split OP Move left behind while the switch copies its first part's traffic to both:
        the restarted controller finds that part's rules by the part's id under the split's
        tag, sends them back to the source alone, and the source gives the part up."""
        def sent_back(flows):
            parts = [f for f in flows if 'cookie=0x5b17' in f]
            self.assertTrue(parts, flows)
            # vnf1 is the switch's port 11, vnf2 its port 12.
            self.assertTrue(all('output:12' not in f and 'output:11' in f for f in parts), parts)
        self.restarted('datapath-synced', 'op', 'aborted (the controller aborted it: left behind',
                       'move N out, left behind (duplicating)', 'vnf1', plan=('--split', '16'), rules=sent_back,
                       controller_also_says=PURGED)

    def switch_flows(self, directory):
        """The switch's flow table, a line per rule."""
        out = subprocess.run(
            ['bash', '-c', f'eval "$({ROOT}/deploy/testbed/ovs.sh env {directory}/ovs)"; '
                           'ovs-ofctl -O OpenFlow13 dump-flows br0'],
            capture_output=True, text=True, check=True).stdout
        return [line.strip() for line in out.splitlines() if 'cookie=' in line]

    def test_controller_killed_after_the_switch_update(self):
        """LF: the switch sends the moved traffic to the destination, which holds it, but the
        in-band control packet never comes: the source ends the Move as if it had."""
        self.drill('switch-updated', 'completed (no in-band control packet within 3.0 s of the switch update', 'vnf2')

    def test_controller_killed_before_the_switch_update(self):
        """The state is at the destination, the switch never changes: the source asks the
        destination to give the Move up and takes its flows back."""
        self.drill('state-sent', 'aborted (the controller did not update the switch within 3.0 s', 'vnf1')

    def test_controller_killed_before_a_redirect_first_switch_update(self):
        """Redirect-first: the destination holds the switch's packets, the switch never changes:
        the source gives the Move up and keeps its flows."""
        self.drill('destination-holding', 'aborted (the controller did not update the switch within 3.0 s', 'vnf1',
                   plan=('--plan', 'redirect-first'))

    def test_controller_killed_after_a_redirect_first_switch_update(self):
        """Redirect-first: the switch sends the moved traffic to the destination, the in-band
        control packet never comes: the source ends the Move as if it had."""
        self.drill('switch-updated', 'completed (no in-band control packet within 3.0 s of the switch update', 'vnf2',
                   plan=('--plan', 'redirect-first'))

    def opennf_drill(self, die_at, flows_end_at, controller_says):
        """An opennf LF PZ|LL|ER Move whose controller is killed at `die_at`: the source at once
        processes what it raised that the controller had not sent on (its log says so), and
        keeps its flows; a controller started again finishes the Move, or undoes it, by the
        switch's rule of it: the moved flows end at `flows_end_at` only, the next Move
        completes, and the checker finds nothing lost or duplicated."""
        directory = os.path.join(self.tmp, 'opennf-' + die_at)
        bed = TestBed(directory, DIST_CONTROLLER_DIE_AT=die_at)
        calm = TestBed(directory)
        out = bed.run('up')
        self.assertIn('up: 2 VNFs', out.stdout, out.stderr)
        replay = threading.Thread(target=bed.run, args=('replay', self.trace, '1000'), kwargs={'timeout': 60})
        replay.start()
        try:
            time.sleep(MOVE_AT)
            bed.run('move', '--from', 'vnf1', '--to', 'vnf2', '--filter', FILTER, '--guarantee', 'lf',
                    '--opt', 'pz,ll,er', '--mode', 'opennf', check=False)
            with open(os.path.join(directory, 'controller.log')) as f:
                self.assertIn(f'DIST_CONTROLLER_DIE_AT={die_at}: killed', f.read())
            # (Within 5 s of the controller's death: nothing waits for a controller that is gone.)
            line = self.vnf_said(bed, 'vnf1', r'the controller that enabled events went away: \d+ packets', timeout=5)
            self.assertIsNotNone(line, 'the source did not process what the controller had not sent on')
            out = calm.run('restart-controller')
            self.assertIn('controller restarted', out.stdout, out.stderr)
            other = 'vnf1' if flows_end_at == 'vnf2' else 'vnf2'
            deadline = time.time() + 10
            while time.time() < deadline and self.flows_at(bed, other):
                time.sleep(0.2)
            if controller_says:
                with open(os.path.join(directory, 'controller.log')) as f:
                    self.assertIn(controller_says, re.sub(r'move \d+ ', 'move N ', f.read()))
            replay.join()
            self.assertGreater(len(self.flows_at(bed, flows_end_at)), 10)
            self.assertEqual(self.flows_at(bed, other), [])
            out = calm.run('move', '--from', flows_end_at, '--to', other, '--filter', FILTER, '--json',
                           '--guarantee', 'lf', '--opt', 'pz,ll,er', '--mode', 'dist', check=False)
            reply = json.loads(out.stdout[out.stdout.index('{'):])
            self.assertEqual(reply.get('report', {}).get('outcome'), 'completed', out.stdout + out.stderr)
        finally:
            replay.join()
            calm.run('down')
        result = json.loads(calm.run('check', self.trace, '--moved', '10.0.0.0/8', '--order', 'flows', '--json',
                                     check=False).stdout)
        self.assertEqual((result['lost'], result['duplicated']), (0, 0), result)

    def test_opennf_controller_killed_as_events_go_on(self):
        """opennf LF, events on at the source and no state out yet: the source ends them itself
        and keeps its flows; the destination has nothing of the Move."""
        self.opennf_drill('events-on', 'vnf1', None)

    def test_opennf_controller_killed_before_the_switch_update(self):
        """opennf LF, every state at the destination, the switch unchanged: the restarted
        controller undoes the Move (the destination's copy of the flows goes)."""
        self.opennf_drill('state-in', 'vnf1', 'vnf2: opennf move N in, left behind before the switch update: undone')

    def test_opennf_controller_killed_after_the_switch_update(self):
        """opennf LF, the switch sending the moved traffic to the destination: the restarted
        controller finishes the Move (the source's copy of the flows goes)."""
        self.opennf_drill('switch-updated', 'vnf2',
                          'vnf2: opennf move N in, left behind after the switch update: finished')

    def move_with_a_dying_vnf(self, bed):
        """Brings the test bed up, starts the replay and, 1.5 s into it, a dist LF Move from
        vnf1 to vnf2 (a VNF dies on the way: `DIST_VNF_DIE_AT`). Returns the replay's thread,
        the Move's report and how many flows vnf1 had before it."""
        out = bed.run('up')
        self.assertIn('up: 2 VNFs', out.stdout, out.stderr)
        replay = threading.Thread(target=bed.run, args=('replay', self.trace, '1000'), kwargs={'timeout': 60})
        replay.start()
        time.sleep(MOVE_AT)
        before = len(self.flows_at(bed, 'vnf1'))
        out = bed.run('move', '--from', 'vnf1', '--to', 'vnf2', '--filter', FILTER, '--json',
                      '--guarantee', 'lf', '--opt', 'pz,ll,er', '--mode', 'dist', check=False)
        return replay, json.loads(out.stdout[out.stdout.index('{'):])['report'], before

    def lost_positions(self, directory):
        """Where in the trace the frames the sink never got are. (A multiset: a frame the trace
        holds twice, an ARP request say, is received once per copy; the earlier copy takes the
        first.)"""
        received = collections.Counter(pcapcheck.read_pcap(os.path.join(directory, 'sink.pcap')))
        lost = []
        for i, frame in enumerate(pcapcheck.read_pcap(self.trace)):
            if received[frame] > 0:
                received[frame] -= 1
            else:
                lost.append(i)
        return lost

    def test_source_killed_before_it_says_the_state_was_sent(self):
        """dist LF: the source dies as its state reaches the destination, before the controller
        hears so (the switch never changes). The controller aborts the Move and tells the
        destination, which forgets what it imported at once; no flow of the filter is left at
        it. What the switch delivered before the source died is not lost; what it sent to the
        dead source after that is (the checker finds the losses after one point of the
        trace only), and nothing is duplicated."""
        directory = os.path.join(self.tmp, 'source-killed')
        bed = TestBed(directory, DIST_VNF_DIE_AT='moveStateSent')
        try:
            replay, report, _ = self.move_with_a_dying_vnf(bed)
            self.assertEqual(report['outcome'], 'aborted', report)
            self.assertIn('vnf1 went away', report['reason'])
            self.assertIsNotNone(self.vnf_said(bed, 'vnf1', r'DIST_VNF_DIE_AT=moveStateSent: killed', timeout=1))
            line = self.vnf_said(bed, 'vnf2', r'move \d+ in: ', timeout=3)
            self.assertIsNotNone(line, 'the destination never ended the Move')
            self.assertIn('the controller aborted it', line)
            self.assertEqual(self.flows_at(bed, 'vnf2'), [])
            replay.join()
        finally:
            bed.run('down')
        sent = pcapcheck.read_pcap(self.trace)
        lost = self.lost_positions(directory)
        self.assertTrue(lost, 'the source died: what the switch sent it after that is lost')
        # Every frame after the first lost one is lost too: the losses are what came after the
        # source died, not frames it had taken in before.
        self.assertEqual(lost, list(range(lost[0], len(sent))), f'{len(lost)} lost, from {lost[0]}')
        result = json.loads(bed.run('check', self.trace, '--json', check=False).stdout)
        self.assertEqual((result['duplicated'], result['extra']), (0, 0), result)

    def test_destination_killed_as_the_move_reaches_it(self):
        """dist LF: the destination dies as the Move's opening frame reaches it, before it
        acknowledges anything. The controller hears at once (its connection closes) and tells
        the source the destination is gone; the source ends the Move without waiting for the
        dead peer and processes every packet it had redirected itself. The switch never
        changed: nothing is lost and nothing is duplicated."""
        directory = os.path.join(self.tmp, 'destination-killed')
        bed = TestBed(directory, DIST_VNF_DIE_AT='incomingStarted')
        try:
            replay, report, before = self.move_with_a_dying_vnf(bed)
            self.assertIsNotNone(self.vnf_said(bed, 'vnf2', r'DIST_VNF_DIE_AT=incomingStarted: killed', timeout=1))
            self.assertEqual(report['outcome'], 'aborted', report)
            self.assertIn('vnf2 went away', report['reason'])
            self.assertNotIn('switch-updated', [p['name'] for p in report['phases']])
            line = self.vnf_said(bed, 'vnf1', r'move \d+ out: (completed|aborted)', timeout=2)
            self.assertIsNotNone(line, 'the source never ended the Move')
            self.assertIn('aborted (the controller aborted it: vnf2 went away', line)
            elapsed = int(re.search(r'elapsedNs (\d+)', line).group(1))
            self.assertLess(elapsed, 1e9, line)
            self.assertGreaterEqual(len(self.flows_at(bed, 'vnf1')), before)
            replay.join()
        finally:
            bed.run('down')
        result = json.loads(bed.run('check', self.trace, '--json', check=False).stdout)
        self.assertEqual((result['lost'], result['duplicated'], result['extra']), (0, 0, 0), result)


    def losses_in_one_window(self, directory, most):
        """What the checker finds lost is one stretch of the trace, at most `most` frames long
        (what reached the switch while it was down), and nothing is duplicated. Returns how
        many were lost."""
        lost = self.lost_positions(directory)
        if lost:
            self.assertLessEqual(lost[-1] - lost[0] + 1, most, f'{len(lost)} lost, from {lost[0]} to {lost[-1]}')
        result = json.loads(TestBed(directory).run('check', self.trace, '--json', check=False).stdout)
        self.assertEqual((result['duplicated'], result['extra']), (0, 0), result)
        return len(lost)

    def test_switch_restarted_after_a_move(self):
        """A dist LF Move completes; the controller is restarted (it takes the Move's rules
        over from the switch's table), then ovs-vswitchd is killed and started again, with an
        empty flow table. The controller installs the Move's rules again before the test bed's:
        the moved flows' traffic goes on reaching vnf2, which has their state (without them it
        went to vnf1, the default, which started the flows afresh)."""
        directory = os.path.join(self.tmp, 'switch-restarted-after')
        bed = TestBed(directory)
        try:
            replay, report, _ = self.move_with_a_dying_vnf(bed)
            self.assertEqual(report['outcome'], 'completed', report)
            out = bed.run('restart-controller')
            self.assertIn('controller restarted', out.stdout, out.stderr)
            out = bed.run('restart-switch')
            self.assertIn('switch restarted', out.stdout, out.stderr)
            replay.join()
            self.assertEqual(self.flows_at(bed, 'vnf1'), [], 'the moved traffic went back to vnf1')
            self.assertGreater(len(self.flows_at(bed, 'vnf2')), 10)
            with open(os.path.join(directory, 'controller.log')) as f:
                log = f.read()
            taken = re.search(r'switch: took over (\d+) rules of earlier Moves from its table', log)
            self.assertIsNotNone(taken, log)
            self.assertIn(f"switch: the Moves' rules installed again ({taken.group(1)})", log)
        finally:
            bed.run('down')
        self.losses_in_one_window(directory, 3000)

    def test_switch_restarted_as_a_move_updates_it(self):
        """dist LF: the controller stalls as the switch has applied the Move's rules, and
        ovs-vswitchd is killed and started again meanwhile (the in-band control packet cannot
        go through a switch that is not there). Once the switch is back with the Move's rules,
        the controller sends the in-band control packet (again) and the Move completes, within
        the source's patience. The flows are at vnf2 only, the next Move of them completes,
        and only what reached the switch while it was down is lost."""
        directory = os.path.join(self.tmp, 'switch-restarted-during')
        bed = TestBed(directory, DIST_CONTROLLER_STALL_AT='switch-updated')
        out = bed.run('up')
        self.assertIn('up: 2 VNFs', out.stdout, out.stderr)
        replay = threading.Thread(target=bed.run, args=('replay', self.trace, '1000'), kwargs={'timeout': 60})
        try:
            replay.start()
            time.sleep(MOVE_AT)
            outcome = {}
            move = threading.Thread(target=lambda: outcome.update(out=bed.run(
                'move', '--from', 'vnf1', '--to', 'vnf2', '--filter', FILTER, '--json', '--guarantee', 'lf',
                '--opt', 'pz,ll,er', '--mode', 'dist', check=False)))
            move.start()
            deadline = time.time() + 10
            stalled = False
            while not stalled and time.time() < deadline:
                with open(os.path.join(directory, 'controller.log')) as f:
                    stalled = 'DIST_CONTROLLER_STALL_AT=switch-updated: stalled' in f.read()
                time.sleep(0.05)
            self.assertTrue(stalled, 'the controller never reached the switch update')
            out = bed.run('restart-switch')
            self.assertIn('switch restarted', out.stdout, out.stderr)
            move.join()
            out = outcome['out']
            report = json.loads(out.stdout[out.stdout.index('{'):])['report']
            self.assertEqual((report['outcome'], report['warnings']), ('completed', []), report)
            # (The packet goes once the switch is back: again, if the first went to the dead
            # switch, or only then, if the controller's stall outlasted the restart.)
            line = self.vnf_said(bed, 'vnf1', r'move \d+ out: (completed|aborted)', timeout=8)
            self.assertIsNotNone(line, 'the source never ended the Move')
            self.assertIn('out: completed;', line, 'with its in-band control packet')
            elapsed = int(re.search(r'elapsedNs (\d+)', line).group(1))
            self.assertLess(elapsed, 5e9, line)
            self.assertIsNotNone(self.vnf_said(bed, 'vnf2', r'move \d+ in: ', timeout=8), 'the destination never ended it')
            replay.join()
            self.assertEqual(self.flows_at(bed, 'vnf1'), [])
            self.assertGreater(len(self.flows_at(bed, 'vnf2')), 10)
            out = TestBed(directory).run('move', '--from', 'vnf2', '--to', 'vnf1', '--filter', FILTER, '--json',
                                         '--guarantee', 'lf', '--opt', 'pz,ll,er', '--mode', 'dist', check=False)
            report = json.loads(out.stdout[out.stdout.index('{'):])['report']
            self.assertEqual(report['outcome'], 'completed', out.stdout + out.stderr)
        finally:
            bed.run('down')
        self.losses_in_one_window(directory, 3000)


if __name__ == '__main__':
    unittest.main()
