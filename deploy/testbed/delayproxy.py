#!/usr/bin/env python3
"""delayproxy: a TCP proxy that adds one-way delay and a rate limit, per direction.

    delayproxy.py LISTEN_HOST:PORT TARGET_HOST:PORT [--delay-ms 10] [--rate-mbit 10] [--pid-file F]

Models a control-plane link of the test bed (the paper's: 10 ms one way, 10 Mbit/s), where
this kernel has no netem: every byte is forwarded no sooner than DELAY after it arrived, and
no faster than RATE, in order. Each accepted connection gets its own connection to TARGET.
Stops on SIGINT/SIGTERM.
"""
import argparse
import asyncio
import os
import signal
import sys
import time


def endpoint(text):
    host, _, port = text.rpartition(':')
    return host.strip('[]') or '0.0.0.0', int(port)


class Link:
    """One direction: delays each chunk, then paces it at the rate."""

    def __init__(self, delay, rate_bytes):
        self.delay = delay
        self.rate = rate_bytes
        self.next_free = 0.0

    async def pump(self, reader, writer):
        queue = asyncio.Queue()

        async def sender():
            while True:
                item = await queue.get()
                if item is None:
                    break
                arrived, data = item
                wait = arrived + self.delay - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if self.rate:
                    start = max(time.monotonic(), self.next_free)
                    self.next_free = start + len(data) / self.rate
                    wait = self.next_free - time.monotonic()
                    # Small debts are paid later: a sleep per small chunk would cap the
                    # throughput at the event loop's wake-up rate, not at the link's.
                    if wait > 0.002:
                        await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
            writer.close()

        task = asyncio.create_task(sender())
        try:
            while True:
                data = await reader.read(16384)
                if not data:
                    break
                queue.put_nowait((time.monotonic(), data))
        except (ConnectionError, OSError):
            pass
        queue.put_nowait(None)
        try:
            await task
        except (ConnectionError, OSError):
            pass


async def serve(options):
    target_host, target_port = endpoint(options.target)
    rate = options.rate_mbit * 1e6 / 8 if options.rate_mbit > 0 else 0

    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(target_host, target_port)
        except OSError:
            client_writer.close()
            return
        delay = options.delay_ms / 1000
        try:
            await asyncio.gather(Link(delay, rate).pump(client_reader, server_writer),
                                 Link(delay, rate).pump(server_reader, client_writer))
        except asyncio.CancelledError:
            pass  # shutting down

    host, port = endpoint(options.listen)
    server = await asyncio.start_server(handle, host, port)
    bound = server.sockets[0].getsockname()[1]
    print(f'delayproxy: {host}:{bound} -> {target_host}:{target_port}, {options.delay_ms} ms one way, '
          f'{options.rate_mbit or "unlimited"} Mbit/s', flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(s, stop.set)
    async with server:
        await stop.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('listen')
    parser.add_argument('target')
    parser.add_argument('--delay-ms', type=float, default=10)
    parser.add_argument('--rate-mbit', type=float, default=10)
    parser.add_argument('--pid-file')
    options = parser.parse_args()
    if options.delay_ms < 0 or options.rate_mbit < 0:
        parser.error('delay and rate must not be negative')
    if options.pid_file:
        with open(options.pid_file, 'w') as f:
            f.write(f'{os.getpid()}\n')
    asyncio.run(serve(options))


if __name__ == '__main__':
    sys.exit(main())
