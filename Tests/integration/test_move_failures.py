"""A Move's destination that stops answering or dies mid-Move: the Move aborts, the source
keeps its flows, and nothing is lost beyond what the controller says it sent back (the
harness: movebed.py)."""
import os
import signal
import threading
import time
import unittest

from movebed import FILTER, MOVE_AT, MoveCase


class MoveFailureTests(MoveCase):
    def stalled_move(self, bed, *args):
        """A Move with the destination stopped (SIGSTOP) throughout, during the replay: the
        source's flows before and after it, the report and the controller's output."""
        replay = self.replay(bed)
        time.sleep(MOVE_AT)
        before = bed.run('ctl', 'flows', 'vnf1', '--filter', FILTER).stdout
        os.kill(bed.pid('vnf2'), signal.SIGSTOP)
        try:
            report, out = self.move(bed, *args)
        finally:
            os.kill(bed.pid('vnf2'), signal.SIGCONT)
        replay.join()
        after = bed.run('ctl', 'flows', 'vnf1', '--filter', FILTER).stdout
        return before, report, out, after

    def test_a_destination_that_stops_answering_aborts_the_move(self):
        bed = self.session('stalled', DIST_REQUEST_TIMEOUT='1')
        try:
            before, report, out, after = self.stalled_move(bed, '--guarantee', 'lf', '--opt', 'pz')
            listed = bed.run('ctl', 'vnf', 'list').stdout
        finally:
            bed.run('down')
        self.assertEqual(out.returncode, 3, out.stdout)
        self.assertEqual(report['outcome'], 'aborted')
        self.assertIn('vnf2 did not answer', report['reason'])
        # The source kept its flows (and goes on learning), and nothing was lost on the way.
        self.assertGreaterEqual(int(after.split()[0]), int(before.split()[0]))
        self.assertIn('vnf1', listed)
        self.assertNoLossBeyondReturned(bed, report)

    def assertNoLossBeyondReturned(self, bed, report):
        """Nothing is lost but (some of) the packets the controller held and sent back to the
        source through the switch: Open vSwitch's userspace datapath drops part of a large
        re-injection (its main thread executes PACKET_OUTs and reads the ports)."""
        returned = 0
        for warning in report['warnings']:
            if 'held packets sent back' in warning:
                returned = int(warning.split()[0])
        result = self.verdict(bed, 'none')
        self.assertEqual(result['duplicated'], 0, result)
        self.assertLessEqual(result['lost'], returned, (result, report['warnings']))

    def test_a_destination_that_dies_mid_move_aborts_it(self):
        bed = self.session('died', DIST_REQUEST_TIMEOUT='5')
        try:
            replay = self.replay(bed)
            time.sleep(MOVE_AT)
            os.kill(bed.pid('vnf2'), signal.SIGSTOP)
            killer = threading.Timer(0.5, lambda: os.kill(bed.pid('vnf2'), signal.SIGKILL))
            killer.start()
            report, out = self.move(bed, '--guarantee', 'lf', '--opt', 'pz,ll,er')
            killer.join()
            replay.join()
            after = bed.run('ctl', 'flows', 'vnf1', '--filter', FILTER).stdout
        finally:
            bed.run('down')
        self.assertEqual(report['outcome'], 'aborted', out.stdout)
        self.assertIn('vnf2 went away', report['reason'])
        self.assertGreater(int(after.split()[0]), 10)
        # The switch was never pointed at vnf2: no frame went down with it.
        self.assertNoLossBeyondReturned(bed, report)

    def test_dist_a_destination_that_stops_answering_aborts_the_move(self):
        """DiST: the destination stops mid-Move; the channel gets no acknowledgement, the
        source gives the Move up by itself and keeps its flows; the packets it had redirected
        stay the destination's (in doubt), which processes them once it runs again, so nothing
        is lost or duplicated; the controller reports why."""
        bed = self.session('dist-stalled')
        try:
            before, report, out, after = self.stalled_move(bed, '--guarantee', 'lf', '--opt', 'pz,ll,er', '--mode', 'dist')
        finally:
            bed.run('down')
        self.assertEqual(out.returncode, 3, out.stdout)
        self.assertEqual(report['outcome'], 'aborted', report)
        self.assertIn('channel', report['reason'])
        self.assertGreater(report['retransmissions'], 0, report)
        if report['packetsRedirected']:
            self.assertTrue(any('not acknowledged' in w for w in report['warnings']), report)
        self.assertGreaterEqual(int(after.split()[0]), int(before.split()[0]))
        result = self.verdict(bed, 'none')
        self.assertEqual((result['lost'], result['duplicated']), (0, 0), result)


if __name__ == '__main__':
    unittest.main()
