import CZstd

/// Frames of states compressed with Zstandard (level 1), each frame on its own: a lost or
/// resent frame needs no other to be read. A host's state is mostly the text of its
/// fingerprints and services, the same strings host after host: a 100,000-flow Move's 19 MB of
/// states took about a quarter of that on the channel, whose window, not the CPUs, had set the
/// pace (``ChannelFrame/Kind/stateCompressed``).
public final class StateCompressor {
    let context: OpaquePointer

    public init() {
        // (Allocation failure of a few hundred kilobytes at a Move's start: nothing to go on with.)
        guard let context = ZSTD_createCCtx() else { fatalError("Zstandard: no memory for a compression context") }
        self.context = context
        ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, 1)
        // The reader bounds what it inflates by the size the frame declares.
        ZSTD_CCtx_setParameter(context, ZSTD_c_contentSizeFlag, 1)
        // The channel's tag already covers every byte.
        ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 0)
    }

    deinit { ZSTD_freeCCtx(context) }

    /// `source` compressed in at most `limit` bytes; nil when it does not fit.
    public func compress(_ source: [UInt8], limit: Int) -> [UInt8]? { compress(source[...], limit: limit) }

    /// `source` compressed in at most `limit` bytes; nil when it does not fit.
    public func compress(_ source: ArraySlice<UInt8>, limit: Int) -> [UInt8]? {
        var fits = true
        let out = [UInt8](unsafeUninitializedCapacity: limit) { buffer, count in
            let n = source.withUnsafeBytes { src in
                ZSTD_compress2(context, buffer.baseAddress, limit, src.baseAddress, src.count)
            }
            fits = ZSTD_isError(n) == 0
            count = fits ? n : 0
        }
        return fits ? out : nil
    }
}

/// Reads what ``StateCompressor`` wrote, within a bound on what it inflates to.
public final class StateDecompressor {
    let context: OpaquePointer

    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// Not one whole Zstandard frame that declares its size.
        case malformed
        /// It would inflate past the bound.
        case tooLarge(Int)
        /// The library refused it (its reason).
        case refused(String)

        public var description: String {
            switch self {
            case .malformed: "not one compressed frame of a declared size"
            case .tooLarge(let n): "it would inflate to \(n) bytes"
            case .refused(let why): "it does not inflate (\(why))"
            }
        }
    }

    public init() {
        guard let context = ZSTD_createDCtx() else { fatalError("Zstandard: no memory for a decompression context") }
        self.context = context
        // A writer of this build uses windows far below this; a forged frame asking more is refused.
        ZSTD_DCtx_setParameter(context, ZSTD_d_windowLogMax, 20)
    }

    deinit { ZSTD_freeDCtx(context) }

    /// The bytes `source` holds, at most `limit` of them.
    public func decompress(_ source: [UInt8], limit: Int) throws(Failure) -> [UInt8] {
        let size: UInt64 = source.withUnsafeBytes { src in
            // Exactly one frame, nothing before or after it.
            let frame = ZSTD_findFrameCompressedSize(src.baseAddress, src.count)
            guard ZSTD_isError(frame) == 0, frame == src.count else { return UInt64.max }
            return ZSTD_getFrameContentSize(src.baseAddress, src.count)
        }
        // (ZSTD_CONTENTSIZE_UNKNOWN and _ERROR are the two largest values.)
        guard size < UInt64.max - 1 else { throw .malformed }
        guard size <= UInt64(limit) else { throw .tooLarge(Int(clamping: size)) }
        let expected = Int(size)
        var result = 0
        let out = [UInt8](unsafeUninitializedCapacity: expected) { buffer, count in
            result = source.withUnsafeBytes { src in
                ZSTD_decompressDCtx(context, buffer.baseAddress, expected, src.baseAddress, src.count)
            }
            count = ZSTD_isError(result) == 0 && result == expected ? expected : 0
        }
        guard ZSTD_isError(result) == 0 else { throw .refused(String(cString: ZSTD_getErrorName(result))) }
        guard result == expected else { throw .malformed }
        return out
    }
}
