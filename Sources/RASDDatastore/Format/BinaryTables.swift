import Crypto

/// Little-endian encodings of the small binary tables of a datastore.
enum BinaryTables {
    /// Hex SHA-256 of each `chunk`-byte piece of `bytes`.
    static func chunkDigests(_ bytes: UnsafeRawBufferPointer, chunk: Int) -> [String] {
        var out: [String] = []
        var offset = 0
        repeat {
            let end = min(bytes.count, offset + chunk)
            out.append(hex(SHA256.hash(data: UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))))
            offset = end
        } while offset < bytes.count
        return out
    }

    static func sha256(_ bytes: UnsafeRawBufferPointer) -> String { hex(SHA256.hash(data: bytes)) }

    static func hex(_ digest: SHA256.Digest) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var s = [UInt8]()
        s.reserveCapacity(64)
        for b in digest { s.append(digits[Int(b >> 4)]); s.append(digits[Int(b & 15)]) }
        return String(decoding: s, as: UTF8.self)
    }

    static func bytes<T: FixedWidthInteger>(of values: [T]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(values.count * MemoryLayout<T>.size)
        for v in values { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        return out
    }

    static func values<T: FixedWidthInteger>(_ type: T.Type, from bytes: UnsafeRawBufferPointer, offset: Int = 0, count: Int) -> [T] {
        (0..<count).map { T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + $0 * MemoryLayout<T>.size, as: T.self)) }
    }

    // MARK: The code tree (`rasd/tree`)

    /// `u32 nodeCount, u32 symbolCount, i32 children[nodeCount*16], u32 minSymbol[nodeCount], u8 depth[nodeCount]`.
    static func encode(_ code: SymbolCode) -> [UInt8] {
        bytes(of: [UInt32(code.nodeCount), UInt32(code.symbolCount)]) + bytes(of: code.children)
            + bytes(of: code.minSymbol) + code.depth
    }

    static func decodeCode(_ b: UnsafeRawBufferPointer, path: String) throws -> SymbolCode {
        guard b.count >= 8 else { throw DatastoreError(.corrupt, path: path, "the code tree is truncated") }
        let header = values(UInt32.self, from: b, count: 2)
        let nodes = Int(header[0]), symbols = Int(header[1])
        guard nodes > 0, nodes < 1 << 24, symbols >= 2, symbols < 1 << 32, b.count == 8 + nodes * (64 + 4 + 1) else {
            throw DatastoreError(.corrupt, path: path, "the code tree has an impossible size")
        }
        let code = SymbolCode(
            symbolCount: symbols,
            children: values(Int32.self, from: b, offset: 8, count: nodes * 16),
            depth: Array(UnsafeRawBufferPointer(rebasing: b[(8 + nodes * 68)...])),
            minSymbol: values(UInt32.self, from: b, offset: 8 + nodes * 64, count: nodes))
        if let problem = code.validationError() {
            throw DatastoreError(.corrupt, path: path, "the code tree is invalid: \(problem)")
        }
        return code
    }
}

/// SHA-256 over data arriving in pieces.
struct SHA256Stream {
    private var hasher = SHA256()
    mutating func update(_ bytes: UnsafeRawBufferPointer) { hasher.update(bufferPointer: bytes) }
    func finish() -> String { BinaryTables.hex(hasher.finalize()) }
}
