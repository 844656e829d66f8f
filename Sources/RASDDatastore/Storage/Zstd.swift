import CZstd

/// zstd frames for the parts of a datastore that are read whole: the token text kept for
/// verification, document tables and the corpus manifest. (The index itself is not
/// zstd-compressed: it must be read at random, in place, from the map.)
enum Zstd {
    /// Compresses `input` into one frame that records its content size.
    static func compress(_ input: UnsafeRawBufferPointer, level: Int32 = 3) throws -> [UInt8] {
        let bound = ZSTD_compressBound(input.count)
        var out = [UInt8](repeating: 0, count: bound)
        let written = out.withUnsafeMutableBytes { dst in
            ZSTD_compress(dst.baseAddress, bound, input.baseAddress, input.count, level)
        }
        if ZSTD_isError(written) != 0 {
            throw DatastoreError(.zstd, path: "zstd", String(cString: ZSTD_getErrorName(written)))
        }
        // A copy of the exact size: the bound-sized buffer would keep its whole capacity.
        return Array(out[..<written])
    }

    static func compress(_ bytes: [UInt8], level: Int32 = 3) throws -> [UInt8] {
        try bytes.withUnsafeBytes { try compress($0, level: level) }
    }

    /// Decompresses one frame of at most `limit` bytes; `what` names it in errors.
    static func decompress(_ frame: UnsafeRawBufferPointer, limit: Int, what: String) throws -> [UInt8] {
        let size = ZSTD_getFrameContentSize(frame.baseAddress, frame.count)
        // ZSTD_CONTENTSIZE_UNKNOWN / _ERROR are the two largest values.
        guard size < UInt64.max - 1, size <= UInt64(limit) else {
            throw DatastoreError(.corrupt, path: what, "not a valid zstd frame (or larger than \(limit) bytes)")
        }
        var out = [UInt8](repeating: 0, count: Int(size))
        let n = out.withUnsafeMutableBytes { dst in
            ZSTD_decompress(dst.baseAddress, dst.count, frame.baseAddress, frame.count)
        }
        if ZSTD_isError(n) != 0 || n != Int(size) {
            let reason = ZSTD_isError(n) != 0 ? String(cString: ZSTD_getErrorName(n)) : "short frame"
            throw DatastoreError(.corrupt, path: what, "cannot decompress: \(reason)")
        }
        return out
    }
}
