"""dist-vnf's Prometheus metrics (--metrics), scraped while it runs and read with a real
Prometheus text parser (prometheus_client's, from PyPI)."""
import os
import re
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from support import MIX_A, VNF, pcapcheck, samples, text_string_to_metric_families

EAL = ['-l', '0-1', '--no-huge', '-m', '512', '--no-pci']


def scrape(url):
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.headers.get('Content-Type'), reply.read().decode()


def total(found, name, **labels):
    return sum(v for (n, l), v in found.items() if n == name and all(dict(l).get(k) == w for k, w in labels.items()))


@unittest.skipUnless(text_string_to_metric_families, 'pip install prometheus_client (deploy/setup.sh does)')
class MetricsTests(unittest.TestCase):
    def test_a_scrape_agrees_with_the_instances_own_counters(self):
        frames = len(pcapcheck.read_pcap(MIX_A))
        out = os.path.join(tempfile.mkdtemp(), 'out.pcap')
        vnf = VNF(EAL + ['--vdev', f'net_pcap0,rx_pcap={MIX_A},tx_pcap={out}'],
                  ['--flows', '65536', '--mbuf-size', '9216', '--metrics', '127.0.0.1:0'])
        try:
            stats = vnf.wait_rx(frames)
            match = re.search(r'metrics on (http://\S+/metrics)', vnf.output())
            self.assertIsNotNone(match, vnf.output())
            url = match.group(1)
            time.sleep(1.2)  # published every half second
            stats = vnf.request({'cmd': 'stats'})
            kind, text = scrape(url)
            self.assertTrue(kind.startswith('text/plain; version=0.0.4'), kind)
            found = samples(text)
            self.assertEqual(total(found, 'dist_vnf_received_packets_total'), frames)
            self.assertEqual(total(found, 'dist_vnf_received_packets_total'), stats['rx_packets'])
            self.assertEqual(total(found, 'dist_vnf_port_received_packets_total', port='net_pcap0'), frames)
            self.assertEqual(total(found, 'dist_vnf_sent_packets_total'), stats['tx_packets'])
            self.assertEqual(total(found, 'dist_vnf_flows'), stats['flows']['active'])
            self.assertEqual(total(found, 'dist_vnf_flows_created_total'), stats['flows']['created'])
            self.assertEqual(total(found, 'dist_vnf_asset_records_total'), stats['detection']['records'])
            self.assertGreater(total(found, 'dist_vnf_hosts'), 500)
            self.assertEqual(total(found, 'dist_vnf_handoff_packets_total', direction='out'), stats['handoff']['handed_off'])
            for reason, n in stats['parse'].items():
                if reason != 'ok':
                    self.assertEqual(total(found, 'dist_vnf_parse_errors_total', reason=reason), n, reason)
            # Anything but the metrics: refused, and the server goes on.
            with self.assertRaises(urllib.error.HTTPError) as refused:
                scrape(url.replace('/metrics', '/admin'))
            self.assertEqual(refused.exception.code, 404)
            self.assertEqual(scrape(url)[0], kind)
        finally:
            self.assertEqual(vnf.stop(), 0, vnf.output())
