"""Moves between VNFs of several workers: each flow lives at its owner at both ends, a moved
flow's state goes on at the destination, and what the moved hosts teach detection agrees with
one worker's (the harness: movebed.py)."""
import collections
import unittest

from movebed import FILTER, MoveCase, pcapcheck
from support import flow_owner


class MoveWorkersTests(MoveCase):
    def test_dist_with_two_workers_per_vnf(self):
        """Two workers per VNF (the kernel's fanout spreads the flows over two queues; a packet
        its receiver does not own goes to its owner). Each flow lives at its owner at both ends,
        the moved flows' state goes on at the destination (their counters continue: every
        packet the trace has of them is counted there), and the moved hosts are learnt as one
        worker learns them."""
        report, _ = self.dist_moved('lf', 'pz,ll,er', up=('--workers', '2'), parity='workers')
        self.assert_flows_at_their_owners(2)
        self.assert_moved_state_continues()

    def assert_moved_state_continues(self):
        import ipaddress
        prefix = ipaddress.ip_network(FILTER.split('=')[1])
        sent = collections.Counter()
        for frame in self.frames:
            key = pcapcheck.flow_of(frame)
            if key:
                proto, _, a, b = key
                a, b = [(str(ipaddress.ip_address(e[0])), int.from_bytes(e[1], 'big') if isinstance(e[1], bytes) else e[1])
                        for e in (a, b)]
                sent[(proto,) + (a + b if a <= b else b + a)] += 1
        continued = 0
        for f in self.destination_flows:
            if ipaddress.ip_address(f['client']) not in prefix and ipaddress.ip_address(f['server']) not in prefix:
                continue
            a, b = (f['client'], f['client_port']), (f['server'], f['server_port'])
            key = (f['proto'],) + (a + b if a <= b else b + a)
            seen = f['packets_to_server'] + f['packets_to_client']
            # (Flows that expired and started again at the destination count less.)
            if seen == sent.get(key):
                continued += 1
            self.assertLessEqual(seen, sent.get(key, 0), f)
        # Most moved flows carry on with the state they had at the source.
        self.assertGreater(continued, 20)

    def test_dist_order_preserving_with_two_workers_per_vnf(self):
        """OP on two workers at each end: the switch's reflector makes copies of the in-band
        control packet so that every receiving queue has one, and each queue is cut at its own."""
        report, result = self.dist_moved('op', 'pz', up=('--workers', '2'), parity='workers')
        self.assertGreater(report['ibcCopies'], 16, report)
        self.assertGreater(report['packetsRedirected'], 0, report)
        self.assert_flows_at_their_owners(2)

    def test_dist_from_two_workers_to_one(self):
        self.dist_moved('lf', 'pz,ll,er', up=('--workers', '2,1'), parity='workers')
        self.assert_flows_at_their_owners(1)

    def test_dist_order_preserving_from_two_workers_to_one(self):
        self.dist_moved('op', 'pz,ll,er', up=('--workers', '2,1'), parity='workers')
        self.assert_flows_at_their_owners(1)

    def test_dist_no_guarantee_with_two_workers_per_vnf(self):
        self.dist_moved('ng', 'none', up=('--workers', '2'), parity='workers')
        self.assert_flows_at_their_owners(2)

    def test_loss_free_with_two_workers_per_vnf(self):
        self.moved('lf', 'pz,ll,er', 'none', up=('--workers', '2'), parity='workers')
        self.assert_flows_at_their_owners(2)

    def assert_flows_at_their_owners(self, workers):
        """Every flow at the destination sits at the worker the owner function names."""
        flows = self.destination_flows
        self.assertGreater(len(flows), 10)
        for f in flows:
            owner = flow_owner(f['client'], f['server'], f['client_port'], f['server_port'], f['proto'], workers)
            self.assertEqual(f['worker'], owner, f)


if __name__ == '__main__':
    unittest.main()
