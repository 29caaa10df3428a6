#!/usr/bin/env python3
"""pcapcheck: loss, duplication and order of frames through a VNF, and flow counts.

    pcapcheck.py compare SENT.pcap RECEIVED.pcap [--strict] [--json] [--detail N]
    pcapcheck.py flows TRACE.pcap [--json]
    pcapcheck.py cut TRACE.pcap OUT.pcap [--frames N] [--no-fragments]
    pcapcheck.py testbed SENT.pcap SINK.pcap TO_VNF.pcap... [--moved PREFIX] [--order none|directions|flows|all]
                         [--reference OUT.pcap] [--json]

compare  matches every received frame to a sent frame with the same bytes (the earliest one
         not matched yet) and reports, as one line (or JSON):
           sent, received, lost (sent, never received), duplicated (received more often than
           sent), extra (never sent), reordered (received after a frame sent later had
           already arrived), reordered_within_flows (the same, per bidirectional flow).
         Exit 0 when nothing is lost or duplicated and no flow is reordered; --strict also
         fails on extra frames and on reordering across flows. Exit 1 on a failed check,
         2 on unreadable input.
testbed  judges a run of the test bed (a Move included): loss, duplication and extra frames
         against SENT (what the source replayed); order against what left the switch towards
         the VNFs (the TO_VNF captures, merged by time), because the userspace switch itself
         reorders frames around flow set-up, within flows too. Frames a VNF received twice
         (raised at the source, sent again to the destination) count where they first left the
         switch; Move's in-band control packets are left out. Exit 0 when nothing is lost or
         duplicated and no flow is reordered. --moved PREFIX: the frames with an address in
         PREFIX (a Move's flows) are also judged across flows among themselves (moved_reordered);
         --order all makes that part of the verdict (an order-preserving Move); --order none
         judges order within each direction of a flow only (VNFs with several workers on a port
         that spreads a flow's two directions over two queues: nothing orders one direction
         against the other); --order none
         judges loss and duplication only (a loss-free Move in OpenNF's way may reorder a flow's
         packets that were in flight at the switch update; they are still counted). Frames of
         different VNFs interleave at the sink as the VNFs run, so order across all flows is
         reported (reordered) but never judged.
         --reference writes the merged switch order as a pcap (for other checkers).
cut      writes the first N frames of TRACE (all by default) to OUT; --no-fragments leaves IP
         fragments out (the test bed's net_af_packet reassembles them: DPDK 22.11's packet
         socket fanout asks the kernel to defragment, so they cannot cross it unchanged).
flows    counts the distinct bidirectional flows of a trace the way dist-vnf keys them:
         IP protocol, the two (address, port) endpoints in either order, and up to two VLAN
         ids. Ports come from whole TCP/UDP headers only; later fragments have none.

Written for the DiST test bed; it reads only the files it is given and knows nothing of
dist-vnf's code, so it can judge it.
"""
import json
import struct
import sys
import ipaddress
from collections import defaultdict, deque

VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)


def read_pcap(path):
    """Frames (bytes) of a classic pcap file, either byte order, us or ns resolution."""
    return [frame for _, frame in read_pcap_records(path)]


def read_pcap_records(path):
    """(timestamp in seconds, frame) of a classic pcap file, µs or ns resolution."""
    return [(t, frame) for t, frame, _ in read_pcap_file(path)[1]]


# A classic pcap file's magic: byte order and the unit of its sub-second stamps.
PCAP_MAGICS = {b'\xd4\xc3\xb2\xa1': ('<', 1e-6), b'\x4d\x3c\xb2\xa1': ('<', 1e-9),
               b'\xa1\xb2\xc3\xd4': ('>', 1e-6), b'\xa1\xb2\x3c\x4d': ('>', 1e-9)}


def read_pcap_file(path, whole=True):
    """(link type, [(timestamp in seconds, frame, length on the wire)]) of a classic pcap file,
    either byte order, µs or ns resolution. A record that runs past the end of the file is an
    error, or (whole=False) where reading stops."""
    with open(path, 'rb') as f:
        data = f.read()
    if len(data) < 24:
        raise ValueError(f'{path}: shorter than a pcap header')
    if data[:4] not in PCAP_MAGICS:
        raise ValueError(f'{path}: not a classic pcap file (pcapng is not read)')
    order, scale = PCAP_MAGICS[data[:4]]
    link = struct.unpack_from(order + 'I', data, 20)[0] & 0xFFFF
    record = struct.Struct(order + 'IIII')
    out = []
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, caplen, wire = record.unpack_from(data, pos)
        pos += 16
        if pos + caplen > len(data):
            if not whole:
                break
            raise ValueError(f'{path}: record {len(out)} runs past the end of the file')
        out.append((sec + frac * scale, data[pos:pos + caplen], wire))
        pos += caplen
    return link, out


IBC_MARK = b'DiST-IBC'


COPY_WINDOW = 0.002


def switch_order(sent, captures):
    """Frames in the order the switch sent them towards the VNFs: the captures merged by
    time; in-band control packets out; a frame seen more often than it was sent (a redirected
    packet delivered again) kept only where it was first seen."""
    merged = sorted((t, n, i, f) for n, records in enumerate(captures) for i, (t, f) in enumerate(records))
    allowed = defaultdict(int)
    for f in sent:
        allowed[f] += 1
    out = []
    # One packet the switch sent to two VNFs at once (an order-preserving Move's first phase)
    # is seen once in each capture: it left the switch once. The later sighting is dropped when
    # the same bytes were seen, unpaired, in another capture within COPY_WINDOW seconds (a
    # trace that repeats a frame would otherwise spend its repeats' allowance on the copies,
    # and place the later repeats too early).
    recent = defaultdict(list)          # frame -> [(time, capture)] kept and not yet paired
    kept = []
    for t, n, _, f in merged:
        candidates = recent[f]
        while candidates and t - candidates[0][0] > COPY_WINDOW:
            candidates.pop(0)
        partner = next((c for c in candidates if c[1] != n), None)
        if partner is not None:
            candidates.remove(partner)
            continue
        candidates.append((t, n))
        kept.append(f)
    for f in kept:
        if IBC_MARK in f:
            continue
        if allowed.get(f, 0) > 0:
            allowed[f] -= 1
            out.append(f)
        elif f not in allowed:
            out.append(f)       # never sent: the comparison counts it as extra
    return out


def write_pcap(path, frames, start=0, per_second=1000000):
    """Frame i at `start` + i / `per_second` seconds (a microsecond apart by default, from 0)."""
    with open(path, 'wb') as f:
        f.write(struct.pack('<IHHiIII', 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, frame in enumerate(frames):
            at = start * 1000000 + i * (1000000 // per_second)
            f.write(struct.pack('<IIII', at // 1000000, at % 1000000, len(frame), len(frame)))
            f.write(frame)


def network_layer(frame):
    """(EtherType, offset of the network header) of a frame, after up to two VLAN tags."""
    pos = 12
    etype = int.from_bytes(frame[12:14], 'big') if len(frame) >= 14 else 0
    for _ in range(2):
        if etype in VLAN_TPIDS and len(frame) >= pos + 6:
            pos += 4
            etype = int.from_bytes(frame[pos:pos + 2], 'big')
    return etype, pos + 2


def ip_addresses(frame):
    """The IPv4/IPv6 source and destination of a frame (after up to two VLAN tags), or ()."""
    etype, l3 = network_layer(frame)
    if etype == 0x0800 and len(frame) >= l3 + 20:
        return (ipaddress.IPv4Address(frame[l3 + 12:l3 + 16]), ipaddress.IPv4Address(frame[l3 + 16:l3 + 20]))
    if etype == 0x86DD and len(frame) >= l3 + 40:
        return (ipaddress.IPv6Address(frame[l3 + 8:l3 + 24]), ipaddress.IPv6Address(frame[l3 + 24:l3 + 40]))
    return ()


def judge_testbed(sent, sink, captures, moved=None):
    # Without captures of the switch's output (a DPDK switch, whose ports have no interface to
    # capture on), the trace is the reference: one PMD thread keeps each port's frames in order.
    reference = switch_order(sent, captures) if captures else list(sent)
    delivery = compare(sent, sink)
    order = compare(reference, sink)
    switch = compare(sent, reference)
    moved_reordered = 0
    if moved is not None:
        def of_move(frames):
            return [f for f in frames if any(a.version == moved.version and a in moved for a in ip_addresses(f))]
        moved_reordered = compare(of_move(reference), of_move(sink))['reordered']
    return reference, {
        'moved_reordered': moved_reordered,
        'sent': delivery['sent'], 'received': delivery['received'], 'lost': delivery['lost'],
        'duplicated': delivery['duplicated'], 'extra': delivery['extra'],
        'reordered': order['reordered'], 'reordered_within_flows': order['reordered_within_flows'],
        'reordered_within_directions': order['reordered_within_directions'],
        'switch_reordered': switch['reordered'], 'switch_reordered_within_flows': switch['reordered_within_flows'],
    }


def is_fragment(frame):
    """Whether a frame is an IPv4 fragment or carries an IPv6 fragment header (first one)."""
    pos = 12
    etype = int.from_bytes(frame[12:14], 'big') if len(frame) >= 14 else 0
    while etype in VLAN_TPIDS and len(frame) >= pos + 6:
        pos += 4
        etype = int.from_bytes(frame[pos:pos + 2], 'big')
    l3 = pos + 2
    if etype == 0x0800 and len(frame) >= l3 + 20:
        return int.from_bytes(frame[l3 + 6:l3 + 8], 'big') & 0x3FFF != 0
    if etype == 0x86DD and len(frame) >= l3 + 40:
        return frame[l3 + 6] == 44
    return False


def flow_of(frame):
    """The bidirectional flow key of a frame, or None for frames outside any IP flow."""
    n = len(frame)
    if n < 14:
        return None
    pos = 12
    etype = int.from_bytes(frame[12:14], 'big')
    vlans = []
    while etype in VLAN_TPIDS:
        if len(vlans) == 2 or n < pos + 6:
            return None
        vlans.append(int.from_bytes(frame[pos + 2:pos + 4], 'big') & 0xFFF)
        pos += 4
        etype = int.from_bytes(frame[pos:pos + 2], 'big')
    l3 = pos + 2
    sport = dport = 0
    if etype == 0x0800:
        if n < l3 + 20 or frame[l3] >> 4 != 4:
            return None
        ihl = (frame[l3] & 15) * 4
        if ihl < 20 or n < l3 + ihl:
            return None
        proto = frame[l3 + 9]
        src, dst = frame[l3 + 12:l3 + 16], frame[l3 + 16:l3 + 20]
        total = int.from_bytes(frame[l3 + 2:l3 + 4], 'big')
        end = l3 + total
        if total < ihl or end > n:
            end = n
        later_fragment = int.from_bytes(frame[l3 + 6:l3 + 8], 'big') & 0x1FFF != 0
        l4 = l3 + ihl
    elif etype == 0x86DD:
        if n < l3 + 40 or frame[l3] >> 4 != 6:
            return None
        src, dst = frame[l3 + 8:l3 + 24], frame[l3 + 24:l3 + 40]
        plen = int.from_bytes(frame[l3 + 4:l3 + 6], 'big')
        end = l3 + 40 + plen
        if end > n or plen == 0:
            end = n
        proto = frame[l3 + 6]
        l4 = l3 + 40
        later_fragment = False
        hops = 0
        while proto in (0, 43, 60, 135, 139, 140, 51, 44):
            if end < l4 + 8:
                l4 = None
                break
            if proto == 44:
                later_fragment = int.from_bytes(frame[l4 + 2:l4 + 4], 'big') & 0xFFF8 != 0
                proto, l4 = frame[l4], l4 + 8
                if later_fragment:
                    break
            elif proto == 51:
                proto, l4 = frame[l4], l4 + (frame[l4 + 1] + 2) * 4
            else:
                proto, l4 = frame[l4], l4 + (frame[l4 + 1] + 1) * 8
            hops += 1
            if hops > 8:
                l4 = None
                break
        if l4 is not None and l4 > end:
            l4 = None
    else:
        return None
    if l4 is not None and not later_fragment:
        room = end - l4
        if proto == 6 and room >= 20:
            offset = (frame[l4 + 12] >> 4) * 4
            if 20 <= offset <= room:
                sport, dport = frame[l4:l4 + 2], frame[l4 + 2:l4 + 4]
        elif proto == 17 and room >= 8:
            sport, dport = frame[l4:l4 + 2], frame[l4 + 2:l4 + 4]
    a, b = (bytes(src), sport), (bytes(dst), dport)
    return (proto, tuple(vlans)) + ((a, b) if a <= b else (b, a))


def compare(sent, received):
    pending = defaultdict(deque)            # frame bytes -> sent positions not matched yet
    for i, frame in enumerate(sent):
        pending[frame].append(i)
    sent_set = set(pending)
    last_copy = {}
    matched = 0
    duplicated = extra = 0
    reordered = 0
    newest = -1
    newest_in_flow = {}
    reordered_in_flow = defaultdict(int)
    newest_in_direction = {}
    reordered_in_direction = 0
    for frame in received:
        queue = pending.get(frame)
        if queue:
            position = queue.popleft()
            last_copy[frame] = position
            matched += 1
        elif frame in sent_set:
            # A copy beyond those sent: counted, and placed (for order) where its last copy was sent.
            duplicated += 1
            position = last_copy[frame]
        else:
            extra += 1
            continue
        if position < newest:
            reordered += 1
        newest = max(newest, position)
        key = flow_of(frame) or ('non-ip', frame[12:14])
        last = newest_in_flow.get(key, -1)
        if position < last:
            reordered_in_flow[key] += 1
        newest_in_flow[key] = max(last, position)
        addresses = ip_addresses(frame)
        direction = (key, addresses[0] if addresses else None)
        last = newest_in_direction.get(direction, -1)
        if position < last:
            reordered_in_direction += 1
        newest_in_direction[direction] = max(last, position)
    lost = len(sent) - matched
    return {
        'sent': len(sent), 'received': len(received), 'lost': lost, 'duplicated': duplicated,
        'extra': extra, 'reordered': reordered,
        'reordered_within_flows': sum(reordered_in_flow.values()),
        'flows_reordered': len(reordered_in_flow),
        # Each direction of a flow on its own (a host sees one): where a port spreads a flow's
        # two directions over two queues, nothing orders one direction against the other.
        'reordered_within_directions': reordered_in_direction,
    }


def main(argv):
    argv = list(argv)
    options = {}
    for name in ('--order', '--reference', '--moved', '--frames'):
        while name in argv:
            i = argv.index(name)
            if i + 1 >= len(argv):
                print(f'pcapcheck: {name} needs a value', file=sys.stderr)
                return 2
            options[name] = argv[i + 1]
            del argv[i:i + 2]
    args = [a for a in argv if not a.startswith('--')]
    flags = [a for a in argv if a.startswith('--')]
    as_json = '--json' in flags
    try:
        if len(args) == 3 and args[0] == 'compare':
            result = compare(read_pcap(args[1]), read_pcap(args[2]))
            strict = '--strict' in flags
            ok = (result['lost'] == 0 and result['duplicated'] == 0 and result['reordered_within_flows'] == 0
                  and (not strict or (result['extra'] == 0 and result['reordered'] == 0)))
            result['verdict'] = 'PASS' if ok else 'FAIL'
            result['strict'] = strict
            if as_json:
                print(json.dumps(result, sort_keys=True))
            else:
                print(' '.join(f'{k}={result[k]}' for k in (
                    'sent', 'received', 'lost', 'duplicated', 'extra', 'reordered',
                    'reordered_within_flows', 'verdict')))
            return 0 if ok else 1
        if len(args) >= 3 and args[0] == 'testbed':
            sink = read_pcap(args[2])
            sent = read_pcap(args[1])
            captures = [read_pcap_records(p) for p in args[3:]]
            moved = ipaddress.ip_network(options['--moved'], strict=False) if '--moved' in options else None
            reference, result = judge_testbed(sent, [f for f in sink if IBC_MARK not in f], captures, moved)
            every = options.get('--order', 'flows') == 'all'
            if '--reference' in options:
                write_pcap(options['--reference'], reference)
            judged = options.get('--order', 'flows')
            if judged not in ('none', 'directions', 'flows', 'all'):
                print('pcapcheck: --order is none, directions, flows or all', file=sys.stderr)
                return 2
            within = 'reordered_within_directions' if judged == 'directions' else 'reordered_within_flows'
            ok = (result['lost'] == 0 and result['duplicated'] == 0
                  and (judged == 'none' or result[within] == 0)
                  and (not every or result['moved_reordered'] == 0))
            result['verdict'] = 'PASS' if ok else 'FAIL'
            result['order'] = judged
            if as_json:
                print(json.dumps(result, sort_keys=True))
            else:
                print(' '.join(f'{k}={result[k]}' for k in (
                    'sent', 'received', 'lost', 'duplicated', 'extra', 'reordered', 'reordered_within_flows',
                    'moved_reordered', 'switch_reordered', 'switch_reordered_within_flows', 'order', 'verdict')))
            return 0 if ok else 1
        if len(args) == 3 and args[0] == 'cut':
            frames = read_pcap(args[1])
            if '--frames' in options:
                frames = frames[:int(options['--frames'])]
            kept = [f for f in frames if not ('--no-fragments' in flags and is_fragment(f))]
            write_pcap(args[2], kept)
            print(f'cut: {len(kept)} frames to {args[2]} ({len(frames) - len(kept)} IP fragments left out)')
            return 0
        if len(args) == 2 and args[0] == 'flows':
            frames = read_pcap(args[1])
            keys = {flow_of(f) for f in frames}
            keys.discard(None)
            ip_frames = sum(1 for f in frames if flow_of(f) is not None)
            result = {'frames': len(frames), 'ip_frames': ip_frames, 'flows': len(keys)}
            print(json.dumps(result, sort_keys=True) if as_json else
                  ' '.join(f'{k}={v}' for k, v in result.items()))
            return 0
    except (OSError, ValueError) as error:
        print(f'pcapcheck: {error}', file=sys.stderr)
        return 2
    print(__doc__.strip().split('\n\n')[0], file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
