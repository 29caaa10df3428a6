#!/usr/bin/env python3
"""flowtrace.py: a capture of N concurrent TCP flows over many hosts, for Moves of many states.

    flowtrace.py --flows N --out FILE [--data K]

Each flow opens with a handshake (SYN with options, SYN+ACK, ACK), the client sends an HTTP
request and the server answers with an Apache banner, so PRADS's detection does real work (OS
fingerprints, a client and a server signature) and every flow ends established, none closed.
All N handshakes and exchanges come first; then K rounds (default 1) in which every flow sends
one more data packet, in the same flow order: traffic during a Move of all of them.
Clients are 198.18.0.0/16 (one per flow, wrapping at 65,534), servers 198.19.128.0/17 (one per
64 flows); ports vary with the flow. Prints how many frames the setup part has.
"""
import argparse
import struct
import sys

MAC_CLIENT = bytes.fromhex('02d1570000aa')
MAC_SERVER = bytes.fromhex('02d1570000bb')
SYN_OPTIONS = bytes.fromhex('020405b40402080a000000010000000001030307')  # MSS, SACK, TS, NOP, WS 7
REQUEST = b'GET /index.html HTTP/1.1\r\nHost: example.test\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n\r\n'
RESPONSE = b'HTTP/1.1 200 OK\r\nServer: Apache/2.4.57 (Debian)\r\nContent-Length: 0\r\n\r\n'


def checksum(data):
    if len(data) % 2:
        data += b'\0'
    s = sum(struct.unpack(f'!{len(data) // 2}H', data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frame(src, dst, sport, dport, seq, ack, flags, payload=b'', options=b'', ttl=64, window=64240):
    offset = (20 + len(options)) // 4
    tcp = struct.pack('!HHIIBBHHH', sport, dport, seq, ack, offset << 4, flags, window, 0, 0) + options + payload
    pseudo = struct.pack('!4s4sBBH', src, dst, 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack('!H', checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(tcp), 0, 0x4000, ttl, 6, 0, src, dst)
    ip = ip[:10] + struct.pack('!H', checksum(ip)) + ip[12:]
    to_server = dst[:2] == bytes([198, 19])
    macs = (MAC_SERVER + MAC_CLIENT) if to_server else (MAC_CLIENT + MAC_SERVER)
    return macs + b'\x08\x00' + ip + tcp


def flow(i):
    client = bytes([198, 18, (i % 65534 + 1) >> 8, (i % 65534 + 1) & 0xFF])
    server = bytes([198, 19, 128 + (i // 64 // 256) % 128, (i // 64) % 256])
    return client, server, 1024 + i % 60000, 80 + (i // 60000) % 8


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--flows', type=int, required=True)
    parser.add_argument('--out', required=True)
    parser.add_argument('--data', type=int, default=1, help='rounds of one data packet per flow after the set-up')
    options = parser.parse_args(argv)
    if options.flows < 1 or options.flows > 4_000_000 or options.data < 0:
        parser.error('--flows must be 1 to 4,000,000 and --data 0 or more')
    frames = 0
    with open(options.out, 'wb') as f:
        f.write(struct.pack('<IHHiIII', 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))

        def put(data):
            nonlocal frames
            f.write(struct.pack('<IIII', frames // 1_000_000, frames % 1_000_000, len(data), len(data)))
            f.write(data)
            frames += 1

        for i in range(options.flows):
            c, s, cp, sp = flow(i)
            put(frame(c, s, cp, sp, 1000, 0, 0x02, options=SYN_OPTIONS))
            put(frame(s, c, sp, cp, 5000, 1001, 0x12, options=SYN_OPTIONS, ttl=63))
            put(frame(c, s, cp, sp, 1001, 5001, 0x10))
            put(frame(c, s, cp, sp, 1001, 5001, 0x18, REQUEST))
            put(frame(s, c, sp, cp, 5001, 1001 + len(REQUEST), 0x18, RESPONSE, ttl=63))
        setup = frames
        for r in range(options.data):
            for i in range(options.flows):
                c, s, cp, sp = flow(i)
                put(frame(c, s, cp, sp, 1001 + len(REQUEST) + r * 16, 5001 + len(RESPONSE), 0x18, b'keepalive %6d' % r))
    print(f'flowtrace: {options.flows} flows, {frames} frames ({setup} of set-up) in {options.out}')


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
