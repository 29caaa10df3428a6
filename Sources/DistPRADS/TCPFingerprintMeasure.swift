import DistPacket

extension TCPFingerprint {
    /// The packet's fingerprint (p0f's measurements), or nil where PRADS gives up on the packet.
    static func measure(_ p: inout DetectionPacket, kind: FingerprintKind) -> TCPFingerprint? {
        let f = p.frame
        var e = TCPFingerprint()
        var end = p.end
        if p.v6 {
            let ipEnd = p.l3 + 40 + Int(BigEndian.uint16(f, at: p.l3 + 4))
            if end > ipEnd { end = ipEnd }
            guard p.l3 + 40 <= end else { return nil }
            let flowLabel = BigEndian.uint32(f, at: p.l3) & 0x000F_FFFF
            e.quirks.insert(flowLabel != 0 ? .flowLabel : .zeroID)
            e.ttl = f[p.l3 + 7]
            e.size = kind == .ack ? 0 : BigEndian.uint16(f, at: p.l3 + 4)
            e.dontFragment = true
        } else {
            let ipEnd = p.l3 + Int(BigEndian.uint16(f, at: p.l3 + 2))
            if end > ipEnd { end = ipEnd }
            guard p.l3 + 20 <= end else { return nil }
            let ihl = Int(f[p.l3] & 0x0F)
            guard ihl >= 5 else { return nil }
            if ihl > 5 { e.quirks.insert(.ipOptions) }
            e.ttl = f[p.l3 + 8]
            e.size = kind == .ack ? 0 : BigEndian.uint16(f, at: p.l3 + 2)
            e.dontFragment = BigEndian.uint16(f, at: p.l3 + 6) & 0x4000 != 0
            if BigEndian.uint16(f, at: p.l3 + 4) == 0 { e.quirks.insert(.zeroID) }
        }
        let t = p.l4
        let flags = f[t + 13]
        let seq = BigEndian.uint32(f, at: t + 4)
        let ack = BigEndian.uint32(f, at: t + 8)
        if kind == .rst && flags & 0x10 != 0 { e.quirks.insert(.rstAck) }
        if kind == .fin && flags & 0x10 != 0 { e.quirks.insert(.finAck) }
        if seq == ack { e.quirks.insert(.seqEqualsAck) }
        if seq == 0 { e.quirks.insert(.seqZero) }
        let allowed: UInt8 = 0x02 | 0x10 | 0x04 | 0x40 | 0x80 | (kind == .ack ? 0x08 : 0)
        if flags & ~allowed != 0 { e.quirks.insert(.flags) }
        if ack != 0 { e.quirks.insert(.ack) }
        if BigEndian.uint16(f, at: t + 18) != 0 { e.quirks.insert(.urgent) }
        if f[t + 12] & 0x0F != 0 { e.quirks.insert(.x2) }
        let optionLength = Int(f[t + 12] >> 4) * 4 - 20
        let optionStart = t + 20
        if optionStart + optionLength < end && kind != .ack { e.quirks.insert(.data) }
        e.timestamp = parseOptions(f, start: optionStart, length: optionLength, end: p.end, into: &e)
        e.windowSize = BigEndian.uint16(f, at: t + 14)
        return e
    }

    /// p0f's option walk; returns the sender's timestamp.
    static func parseOptions(
        _ f: UnsafeRawBufferPointer, start: Int, length: Int, end: Int, into e: inout TCPFingerprint
    ) -> UInt32 {
        var remaining = length
        var at = start
        var timestamp: UInt32 = 0
        let limit = min(end, f.count)
        func byte(_ i: Int) -> UInt8 { i < f.count ? f[i] : 0 }
        // Whether the option's `n` bytes after its kind are within the packet (else it is broken).
        func fits(_ n: Int) -> Bool {
            if at + n <= limit { return true }
            e.quirks.insert(.broken)
            return false
        }
        parsing: while remaining > 0 {
            remaining -= 1
            guard at < f.count else {
                e.quirks.insert(.broken)
                break
            }
            let kind = f[at]
            at += 1
            switch kind {
            case TCPOption.eol:
                e.options.append(TCPOption.eol)
                if remaining != 0 { e.quirks.insert(.past) }
            case TCPOption.nop:
                e.options.append(TCPOption.nop)
            case TCPOption.sackOK:
                e.options.append(TCPOption.sackOK)
                remaining -= 1
                at += 1
            case TCPOption.mss:
                guard fits(3) else { break parsing }
                e.options.append(TCPOption.mss)
                e.mss = UInt16(byte(at + 1)) << 8 | UInt16(byte(at + 2))
                remaining -= 3
                at += 3
            case TCPOption.windowScale:
                guard fits(2) else { break parsing }
                e.options.append(TCPOption.windowScale)
                e.windowScale = byte(at + 1)
                remaining -= 2
                at += 2
            case TCPOption.timestamp:
                guard fits(9) else { break parsing }
                e.options.append(TCPOption.timestamp)
                if byte(at + 5) | byte(at + 6) | byte(at + 7) | byte(at + 8) != 0 { e.quirks.insert(.t2) }
                timestamp =
                    UInt32(byte(at + 1)) << 24 | UInt32(byte(at + 2)) << 16 | UInt32(byte(at + 3)) << 8
                    | UInt32(byte(at + 4))
                remaining -= 9
                at += 9
            default:
                guard fits(1) else { break parsing }
                let optionLength = Int(byte(at)) - 1
                // An option whose length byte is 0 or past 33 is broken and not listed (p0f
                // writes its kind in the next place but does not count it).
                guard optionLength <= 32, optionLength >= 0 else {
                    e.quirks.insert(.broken)
                    break parsing
                }
                e.options.append(kind)
                remaining -= optionLength
                at += optionLength
            }
            if e.options.count >= 15 {
                e.quirks.insert(.broken)
                break
            }
            if remaining > 0 && at >= limit {
                e.quirks.insert(.broken)
                break
            }
        }
        return timestamp
    }
}
