import CDPDKShim

/// Sending: a burst goes to the TX queue, and what the queue has no room for waits in the
/// backlog (see ``TransmitBacklog``).
extension Worker {
    /// Sends a burst on `port`, after what waits in ``backlog``; what the queue does not take
    /// waits there (dropped, counted, only past its room).
    @inline(__always)
    func transmit(_ packets: UnsafeMutablePointer<OpaquePointer?>, count: UInt16, port: UInt16) {
        if backlog.isEmpty {
            let sent = dist_tx_burst(port, queue, packets, count)
            statsSlot.pointee.txPackets &+= UInt64(sent)
            if sent == count { return }
            keepBack(packets + Int(sent), count: Int(count - sent), port: port)
        } else {
            keepBack(packets, count: Int(count), port: port)
        }
    }

    func keepBack(_ packets: UnsafeMutablePointer<OpaquePointer?>, count: Int, port: UInt16) {
        let result = backlog.send(packets, count: count, port: port, txSend)
        statsSlot.pointee.txPackets &+= UInt64(result.sent)
        if result.dropped > 0 {
            dist_mbuf_free_bulk(packets + (count - result.dropped), UInt32(result.dropped))
            statsSlot.pointee.txDropped &+= UInt64(result.dropped)
        }
        statsSlot.pointee.txBacklogHigh = UInt64(backlog.highWater)
    }

    func flushBacklog() {
        statsSlot.pointee.txPackets &+= UInt64(backlog.flush(txSend))
    }

    /// Stopping: what still waits is dropped, counted.
    func dropBacklog() {
        let freed = backlog.flush { _, waiting, count in
            dist_mbuf_free_bulk(waiting, UInt32(count))
            return count
        }
        statsSlot.pointee.txDropped &+= UInt64(freed)
    }
}
