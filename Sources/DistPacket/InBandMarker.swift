/// How an in-band control packet (a Move's IBC) is told from traffic: it is sent to a
/// locally administered Ethernet address no host has, and carries "DiST-IBC", the Move id and a
/// phase number (big-endian) after its headers. Building it is ``DistMove``'s; recognising it is
/// here, so the fast path can do it on the frame in place.
public enum InBandMarker {
    public static let magic: [UInt8] = Array("DiST-IBC".utf8)
    public static let destinationMAC: [UInt8] = [0x02, 0xD1, 0x57, 0x1B, 0xC0, 0x02]
    /// The Ethernet source of an IBC the switch sends the VNFs.
    public static let sourceMAC: [UInt8] = [0x02, 0xD1, 0x57, 0x1B, 0xC0, 0x01]
    /// The Ethernet source of a request to reflect an IBC: an order-preserving Move's source
    /// sends it back to the switch unprocessed, and the switch sends it on to both VNFs at once
    /// through its datapath, with ``sourceMAC`` (see `InBandControl.reflectRequest`).
    public static let reflectMAC: [UInt8] = [0x02, 0xD1, 0x57, 0x1B, 0xC0, 0x03]

    /// Whether a frame is a request to reflect an IBC (its Ethernet addresses say so; the
    /// marker is checked by whoever acts on it).
    @inlinable
    public static func isReflectRequest(_ frame: UnsafeRawBufferPointer) -> Bool {
        guard frame.count >= 14 else { return false }
        for i in 0..<6 where frame[i] != destinationMAC[i] || frame[6 + i] != reflectMAC[i] { return false }
        return true
    }

    /// The Move id, phase and token a frame carries, or nil for any other frame (one comparison
    /// of the Ethernet destination for almost all of them). The token is the Move's: its source
    /// draws it (a keyed hash of the Move's channel nonce) and tells only its controller and,
    /// over the channel, its destination; an IBC without it is a forgery (or another Move's).
    public static func find(in frame: UnsafeRawBufferPointer) -> (moveID: UInt64, phase: UInt32, token: UInt64)? {
        let need = magic.count + 20
        guard frame.count >= 14 + need else { return nil }
        for i in 0..<6 where frame[i] != destinationMAC[i] { return nil }
        var i = 14
        while i <= frame.count - need {
            if frame[i] == magic[0], (1..<magic.count).allSatisfy({ frame[i + $0] == magic[$0] }) {
                let at = i + magic.count
                var id: UInt64 = 0
                for k in 0..<8 { id = id << 8 | UInt64(frame[at + k]) }
                var phase: UInt32 = 0
                for k in 8..<12 { phase = phase << 8 | UInt32(frame[at + k]) }
                var token: UInt64 = 0
                for k in 12..<20 { token = token << 8 | UInt64(frame[at + k]) }
                return (id, phase, token)
            }
            i += 1
        }
        return nil
    }
}
