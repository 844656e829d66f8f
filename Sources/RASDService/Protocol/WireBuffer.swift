/// Appends little-endian protocol values to a growable byte buffer.
///
/// A connection keeps one writer and reuses its storage, so encoding a reply allocates nothing
/// once the buffer has grown to the working size.
public struct WireWriter: Sendable {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8] = []

    /// An empty writer.
    public init() {}

    /// Number of bytes written.
    public var count: Int { bytes.count }

    /// Forgets the contents, keeping the storage.
    public mutating func removeAll() { bytes.removeAll(keepingCapacity: true) }

    /// Removes the first `count` bytes (after a partial send).
    public mutating func removeFirst(_ count: Int) { bytes.removeFirst(count) }

    /// Starts a frame; returns its offset for ``endFrame(at:)``, which fills in the length.
    public mutating func beginFrame(type: MessageType, flags: FrameFlags = [], requestID: UInt32) -> Int {
        let start = bytes.count
        append(UInt32(0))
        append(type.rawValue)
        append(flags.rawValue)
        append(requestID)
        return start
    }

    /// Ends the frame started at `start`: writes its payload length into the header.
    public mutating func endFrame(at start: Int) {
        let length = UInt32(truncatingIfNeeded: bytes.count - start - ServiceProtocol.headerBytes)
        withUnsafeBytes(of: length.littleEndian) { raw in
            for i in 0..<4 { bytes[start + i] = raw[i] }
        }
    }

    /// Sets the flags of the frame started at `start`.
    mutating func setFlags(_ flags: FrameFlags, frameAt start: Int) {
        withUnsafeBytes(of: flags.rawValue.littleEndian) { raw in
            bytes[start + 6] = raw[0]
            bytes[start + 7] = raw[1]
        }
    }

    /// Discards everything from `start` on (a reply abandoned for an error reply).
    mutating func truncate(to start: Int) { bytes.removeLast(bytes.count - start) }

    @inline(__always)
    public mutating func append(_ value: UInt8) { bytes.append(value) }

    @inline(__always)
    public mutating func append<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    @inline(__always)
    public mutating func append(_ value: Float) { append(value.bitPattern) }

    /// Appends the values of `array` back to back (no count).
    public mutating func append<T: FixedWidthInteger>(contentsOf array: [T]) {
        #if _endian(little)
        array.withUnsafeBytes { bytes.append(contentsOf: $0) }
        #else
        for v in array { append(v) }
        #endif
    }

    /// Appends the bit patterns of `array` back to back (no count).
    public mutating func append(contentsOf array: [Float]) {
        #if _endian(little)
        array.withUnsafeBytes { bytes.append(contentsOf: $0) }
        #else
        for v in array { append(v.bitPattern) }
        #endif
    }

    /// A `u16` length and the UTF-8 bytes of `string` (truncated to 65,535 bytes).
    public mutating func appendShortString(_ string: String) {
        var s = string
        s.withUTF8 { utf8 in
            let n = min(utf8.count, Int(UInt16.max))
            append(UInt16(n))
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(utf8)[0..<n]))
        }
    }

    /// A `u32` length and the UTF-8 bytes of `string`.
    public mutating func appendLongString(_ string: String) {
        var s = string
        s.withUTF8 { utf8 in
            append(UInt32(utf8.count))
            bytes.append(contentsOf: UnsafeRawBufferPointer(utf8))
        }
    }
}

extension WireWriter {
    /// Appends an error reply frame: `u16` code, `u16` reserved, `str32` message; flagged
    /// `closing` when the error closes the connection.
    public mutating func appendErrorFrame(_ error: ServiceError, requestID: UInt32) {
        let start = beginFrame(type: .error, flags: error.closesConnection ? .closing : [], requestID: requestID)
        append(error.code.rawValue)
        append(UInt16(0))
        appendLongString(error.message)
        endFrame(at: start)
    }
}

/// Reads little-endian protocol values from a payload, checking every bound.
///
/// Every read names the field it reads, so a malformed payload is reported as "RETRIEVE: the
/// context needs 400 bytes, 12 are left" rather than a crash or a wrong answer.
public struct WireReader {
    let bytes: UnsafeRawBufferPointer
    /// Current read position.
    public private(set) var offset = 0
    /// The message being read, for error messages.
    let message: String

    /// A reader over `bytes`, which must outlive it; `message` names the payload in errors.
    public init(_ bytes: UnsafeRawBufferPointer, message: String) {
        self.bytes = bytes
        self.message = message
    }

    /// Bytes not read yet.
    public var remaining: Int { bytes.count - offset }

    /// Fails unless the whole payload has been read.
    public func finish() throws {
        guard remaining == 0 else {
            throw malformed("\(remaining) unexpected bytes after the end of the message")
        }
    }

    func malformed(_ what: String) -> ServiceError {
        ServiceError(.malformedRequest, "\(message): \(what)")
    }

    @inline(__always)
    mutating func need(_ n: Int, _ field: String) throws {
        guard n <= remaining else {
            throw malformed("\(field) needs \(n) bytes, \(remaining) are left")
        }
    }

    @inline(__always)
    public mutating func read<T: FixedWidthInteger>(_: T.Type, _ field: String) throws -> T {
        try need(MemoryLayout<T>.size, field)
        let v = T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += MemoryLayout<T>.size
        return v
    }

    @inline(__always)
    public mutating func readFloat(_ field: String) throws -> Float {
        Float(bitPattern: try read(UInt32.self, field))
    }

    /// A `u32` element count, checked against what is left (each element `elementBytes` long)
    /// and against `limit`, so that a huge count never makes the reader allocate.
    public mutating func readCount(_ field: String, elementBytes: Int, limit: Int = Int(UInt32.max)) throws -> Int {
        let n = Int(try read(UInt32.self, "the count of \(field)"))
        guard n <= limit else {
            throw ServiceError(.invalidParameters, "\(message): \(n) \(field), at most \(limit) allowed")
        }
        try need(n * elementBytes, "\(field) (\(n))")
        return n
    }

    /// Reads `count` values into `array`, replacing its contents (storage reused).
    public mutating func read<T: FixedWidthInteger>(_ count: Int, into array: inout [T], _ field: String) throws {
        let size = count * MemoryLayout<T>.size
        try need(size, field)
        array.removeAll(keepingCapacity: true)
        #if _endian(little)
        let source = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + size)])
        array.append(contentsOf: repeatElement(0, count: count))
        array.withUnsafeMutableBytes { $0.copyMemory(from: source) }
        #else
        for i in 0..<count {
            array.append(T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + i * MemoryLayout<T>.size, as: T.self)))
        }
        #endif
        offset += size
    }

    /// Reads `count` floats into `array`, replacing its contents (storage reused).
    public mutating func read(_ count: Int, into array: inout [Float], _ field: String) throws {
        try need(count * 4, field)
        array.removeAll(keepingCapacity: true)
        array.reserveCapacity(count)
        for i in 0..<count {
            array.append(Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset + 4 * i, as: UInt32.self))))
        }
        offset += count * 4
    }

    /// Reads `count` values as a new array.
    public mutating func readArray<T: FixedWidthInteger>(_ count: Int, of: T.Type, _ field: String) throws -> [T] {
        var a: [T] = []
        try read(count, into: &a, field)
        return a
    }

    /// A view of the next `count` bytes, without copying.
    public mutating func readBytes(_ count: Int, _ field: String) throws -> UnsafeRawBufferPointer {
        try need(count, field)
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
    }

    /// A `u16`-length UTF-8 string.
    public mutating func readShortString(_ field: String) throws -> String {
        let n = Int(try read(UInt16.self, "the length of \(field)"))
        return try decodeUTF8(try readBytes(n, field), field)
    }

    /// A `u32`-length UTF-8 string.
    public mutating func readLongString(_ field: String) throws -> String {
        let n = Int(try read(UInt32.self, "the length of \(field)"))
        return try decodeUTF8(try readBytes(n, field), field)
    }

    private func decodeUTF8(_ raw: UnsafeRawBufferPointer, _ field: String) throws -> String {
        // Validate first: `String(decoding:)` would silently replace bad bytes.
        var iterator = raw.makeIterator()
        var decoder = UTF8()
        loop: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue: continue
            case .emptyInput: break loop
            case .error: throw malformed("\(field) is not valid UTF-8")
            }
        }
        return String(decoding: raw, as: UTF8.self)
    }
}
