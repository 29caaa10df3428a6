"""A DPDK process a benchmark starts (dist-vnf, dist-wire): its output read as it comes, without
blocking, and a clean stop (SIGINT, then a kill after a timeout)."""
import select
import signal
import subprocess
import time


class Process:
    def __init__(self, name, command):
        self.name = name
        self.lines = []
        self.ended = False
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, text=True, bufsize=1)

    def read(self, seconds):
        """Takes the lines it prints for `seconds` (all of them, however long, once it ended)."""
        deadline = time.time() + seconds
        while time.time() < deadline and not self.ended:
            ready, _, _ = select.select([self.process.stdout], [], [], max(0.0, deadline - time.time()))
            if ready:
                line = self.process.stdout.readline()
                if not line:
                    self.ended = True
                    break
                self.lines.append(line)
        if self.ended:
            time.sleep(max(0.0, deadline - time.time()))

    def wait_for(self, text, seconds=30):
        deadline = time.time() + seconds
        while not any(text in line for line in self.lines):
            if time.time() > deadline or self.ended:
                raise SystemExit(f'{self.name}: no "{text}" within {seconds} s:\n' + ''.join(self.lines[-30:]))
            self.read(0.2)

    def stop(self, timeout=15):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        rest = self.process.stdout.read()
        if rest:
            self.lines.extend(rest.splitlines(keepends=True))
