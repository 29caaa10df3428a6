"""Test-bed elements, each measured for what it adds: the TCP delay proxy of control links."""
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import unittest

from support import ROOT

PROXY = os.path.join(ROOT, 'deploy', 'testbed', 'delayproxy.py')


def echo_server():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    s.listen(4)

    def serve():
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            def loop(c=c):
                with c:
                    while True:
                        data = c.recv(65536)
                        if not data:
                            return
                        c.sendall(data)
            threading.Thread(target=loop, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return s


class DelayProxyTests(unittest.TestCase):
    def start(self, target, delay_ms, rate_mbit):
        p = subprocess.Popen([sys.executable, PROXY, '127.0.0.1:0', f'127.0.0.1:{target}', '--delay-ms', str(delay_ms),
                              '--rate-mbit', str(rate_mbit)], stdout=subprocess.PIPE, text=True)
        line = p.stdout.readline()
        port = int(re.search(r'127\.0\.0\.1:(\d+) ->', line).group(1))
        self.addCleanup(lambda: (p.send_signal(signal.SIGINT), p.wait(timeout=10)))
        return port

    @staticmethod
    def round_trips(port, n=30):
        with socket.create_connection(('127.0.0.1', port)) as c:
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            times = []
            for _ in range(n):
                t = time.monotonic()
                c.sendall(b'x' * 64)
                got = b''
                while len(got) < 64:
                    got += c.recv(64 - len(got))
                times.append(time.monotonic() - t)
            return statistics.median(times)

    def test_it_adds_its_delay_each_way(self):
        server = echo_server()
        self.addCleanup(server.close)
        target = server.getsockname()[1]
        direct = self.round_trips(target)
        delayed = self.round_trips(self.start(target, delay_ms=10, rate_mbit=0))
        added = (delayed - direct) * 1000
        self.assertGreater(added, 19, f'{added:.1f} ms added to a round trip')
        self.assertLess(added, 30, f'{added:.1f} ms added to a round trip')

    def test_it_limits_the_rate(self):
        server = echo_server()
        self.addCleanup(server.close)
        port = self.start(server.getsockname()[1], delay_ms=0, rate_mbit=10)
        payload = b'y' * 500_000
        with socket.create_connection(('127.0.0.1', port)) as c:
            t = time.monotonic()
            threading.Thread(target=lambda: c.sendall(payload), daemon=True).start()
            got = 0
            while got < len(payload):
                got += len(c.recv(65536))
            elapsed = time.monotonic() - t
        # 500 kB at 10 Mbit/s is 0.4 s each way; the two ways overlap.
        self.assertGreater(elapsed, 0.35)
        self.assertLess(elapsed, 1.2)


if __name__ == '__main__':
    unittest.main()
