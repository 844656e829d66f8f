/// A GGUF model file (versions 2 and 3): metadata, tensor table and memory-mapped tensor data.
///
/// Opening parses the header, every metadata entry and the tensor table, and checks that every
/// tensor lies inside the file, so a truncated download fails here with a clear error rather
/// than later with garbage. Tensor data is not copied: ``tensorData(_:)`` points into the map.
public struct GGUFFile: Sendable {
    /// The mapped file.
    public let file: MappedFile
    /// GGUF format version (2 or 3).
    public let version: UInt32
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    /// Metadata by key.
    public let metadata: [String: GGUFValue]
    /// Tensor table in file order.
    public let tensors: [GGUFTensorInfo]
    /// Alignment of the tensor data section (`general.alignment`, default 32).
    public let alignment: Int
    /// Byte offset of the tensor data section in the file.
    public let dataOffset: Int

    private let tensorIndex: [String: Int]

    /// Path of the file.
    public var path: String { file.path }

    /// Opens and parses the GGUF file at `path`.
    /// - Throws: ``GGUFError`` naming the file and the problem.
    public init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    /// Parses an already mapped file.
    public init(file: MappedFile) throws {
        self.file = file
        var reader = Reader(bytes: file.bytes, path: file.path)
        guard file.bytes.count >= 4, try reader.readUInt32() == 0x4655_4747 else {  // "GGUF"
            throw GGUFError(.notGGUF, path: file.path, "not a GGUF file (bad magic)")
        }
        let version = try reader.readUInt32()
        guard version == 2 || version == 3 else {
            throw GGUFError(.unsupportedVersion, path: file.path, "GGUF version \(version) is not supported (2 and 3 are)")
        }
        self.version = version
        let tensorCount = try reader.readCount(minimumBytesEach: 24, what: "tensor")
        let kvCount = try reader.readCount(minimumBytesEach: 12, what: "metadata entry")

        var keys: [String] = []
        var metadata: [String: GGUFValue] = [:]
        keys.reserveCapacity(kvCount)
        for _ in 0..<kvCount {
            let key = try reader.readString()
            let type = try reader.readUInt32()
            let value = try reader.readValue(type: type, depth: 0)
            if metadata.updateValue(value, forKey: key) == nil { keys.append(key) }
        }
        self.metadataKeys = keys
        self.metadata = metadata

        var alignment = 32
        if let a = metadata["general.alignment"] {
            guard let v = a.integer, v > 0, v & (v - 1) == 0 else {
                throw GGUFError(.malformed, path: file.path, "general.alignment \(a) is not a power of two")
            }
            alignment = v
        }
        self.alignment = alignment

        var infos: [GGUFTensorInfo] = []
        infos.reserveCapacity(tensorCount)
        var index: [String: Int] = [:]
        for _ in 0..<tensorCount {
            let name = try reader.readString()
            let nDims = Int(try reader.readUInt32())
            guard nDims >= 1, nDims <= 4 else {
                throw GGUFError(.malformed, path: file.path, "tensor \(name) has \(nDims) dimensions")
            }
            var dims: [Int] = []
            var elements = 1
            for _ in 0..<nDims {
                let d = try reader.readUInt64()
                guard d > 0, d < (1 << 40) else {
                    throw GGUFError(.malformed, path: file.path, "tensor \(name) has dimension \(d)")
                }
                dims.append(Int(d))
                let (product, overflow) = elements.multipliedReportingOverflow(by: Int(d))
                guard !overflow, product < (1 << 48) else {
                    throw GGUFError(.malformed, path: file.path, "tensor \(name) is impossibly large")
                }
                elements = product
            }
            let type = GGMLType(rawValue: try reader.readUInt32())
            let offset = try reader.readUInt64()
            var byteCount = 0
            if let geometry = type.blockGeometry {
                guard elements % geometry.elements == 0 else {
                    throw GGUFError(.malformed, path: file.path, "tensor \(name): \(elements) elements is not a whole number of \(type) blocks")
                }
                byteCount = elements / geometry.elements * geometry.bytes
            }
            guard offset < (1 << 48), Int(offset) % alignment == 0 else {
                throw GGUFError(.malformed, path: file.path, "tensor \(name) has misaligned offset \(offset)")
            }
            if index.updateValue(infos.count, forKey: name) != nil {
                throw GGUFError(.malformed, path: file.path, "tensor \(name) appears twice")
            }
            infos.append(GGUFTensorInfo(name: name, dimensions: dims, type: type, offset: Int(offset), byteCount: byteCount))
        }
        let dataOffset = (reader.offset + alignment - 1) / alignment * alignment
        for info in infos {
            let end = dataOffset + info.offset + info.byteCount
            guard end <= file.bytes.count else {
                throw GGUFError(
                    .truncated, path: file.path,
                    "tensor \(info.name) ends at byte \(end) but the file has \(file.bytes.count) bytes")
            }
        }
        self.tensors = infos
        self.tensorIndex = index
        self.dataOffset = dataOffset
    }

    /// The tensor table entry called `name`, if present.
    public func tensor(named name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The bytes of `tensor`, pointing into the mapping.
    /// - Throws: ``GGUFError`` `.unsupportedTensorType` when the type's size is unknown.
    public func tensorData(_ tensor: GGUFTensorInfo) throws -> UnsafeRawBufferPointer {
        guard tensor.type.blockGeometry != nil else {
            throw GGUFError(.unsupportedTensorType, path: path, "tensor \(tensor.name) has unknown type \(tensor.type)")
        }
        let start = dataOffset + tensor.offset
        return UnsafeRawBufferPointer(rebasing: file.bytes[start..<(start + tensor.byteCount)])
    }

    // MARK: Typed metadata access

    /// The string stored under `key`.
    /// - Throws: ``GGUFError`` `.missingMetadata` when absent or not a string.
    public func string(_ key: String) throws -> String {
        guard let v = metadata[key]?.string else { throw missing(key, "a string") }
        return v
    }

    /// The integer stored under `key`.
    public func integer(_ key: String) throws -> Int {
        guard let v = metadata[key]?.integer else { throw missing(key, "an integer") }
        return v
    }

    /// The number stored under `key`.
    public func double(_ key: String) throws -> Double {
        guard let v = metadata[key]?.double else { throw missing(key, "a number") }
        return v
    }

    /// The array of strings stored under `key`.
    public func stringArray(_ key: String) throws -> [String] {
        guard let a = metadata[key]?.array else { throw missing(key, "an array of strings") }
        var out: [String] = []
        out.reserveCapacity(a.count)
        for v in a {
            guard let s = v.string else { throw missing(key, "an array of strings") }
            out.append(s)
        }
        return out
    }

    /// The array of integers stored under `key`.
    public func integerArray(_ key: String) throws -> [Int] {
        guard let a = metadata[key]?.array else { throw missing(key, "an array of integers") }
        var out: [Int] = []
        out.reserveCapacity(a.count)
        for v in a {
            guard let i = v.integer else { throw missing(key, "an array of integers") }
            out.append(i)
        }
        return out
    }

    private func missing(_ key: String, _ what: String) -> GGUFError {
        if metadata[key] == nil {
            return GGUFError(.missingMetadata, path: path, "metadata key \(key) is missing")
        }
        return GGUFError(.missingMetadata, path: path, "metadata key \(key) is not \(what)")
    }
}

/// Bounds-checked little-endian reader over the mapped bytes.
private struct Reader {
    let bytes: UnsafeRawBufferPointer
    let path: String
    var offset = 0

    init(bytes: UnsafeRawBufferPointer, path: String) {
        self.bytes = bytes
        self.path = path
    }

    private mutating func take(_ n: Int) throws -> Int {
        guard n >= 0, n <= bytes.count - offset else {
            throw GGUFError(.truncated, path: path, "file ends at byte \(bytes.count) inside the header (needed \(n) bytes at \(offset))")
        }
        defer { offset += n }
        return offset
    }

    private mutating func load<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let at = try take(MemoryLayout<T>.size)
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: T.self))
    }

    mutating func readUInt32() throws -> UInt32 { try load(UInt32.self) }
    mutating func readUInt64() throws -> UInt64 { try load(UInt64.self) }

    /// A count that must be coverable by the rest of the file at `minimumBytesEach` per item.
    mutating func readCount(minimumBytesEach: Int, what: String) throws -> Int {
        let n = try readUInt64()
        guard n <= UInt64((bytes.count - offset) / max(1, minimumBytesEach)) else {
            throw GGUFError(.truncated, path: path, "header announces \(n) \(what)s, more than the file can hold")
        }
        return Int(n)
    }

    mutating func readString() throws -> String {
        let n = try readUInt64()
        guard n <= UInt64(bytes.count - offset) else {
            throw GGUFError(.truncated, path: path, "string of \(n) bytes runs past the end of the file at \(offset)")
        }
        let at = try take(Int(n))
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[at..<(at + Int(n))]), as: UTF8.self)
    }

    mutating func readValue(type: UInt32, depth: Int) throws -> GGUFValue {
        switch type {
        case 0: return .uint8(try load(UInt8.self))
        case 1: return .int8(try load(Int8.self))
        case 2: return .uint16(try load(UInt16.self))
        case 3: return .int16(try load(Int16.self))
        case 4: return .uint32(try load(UInt32.self))
        case 5: return .int32(try load(Int32.self))
        case 6: return .float32(Float(bitPattern: try load(UInt32.self)))
        case 7:
            let b = try load(UInt8.self)
            guard b <= 1 else { throw GGUFError(.malformed, path: path, "boolean value \(b) at byte \(offset - 1)") }
            return .bool(b == 1)
        case 8: return .string(try readString())
        case 9:
            guard depth < 4 else { throw GGUFError(.malformed, path: path, "arrays nested too deeply at byte \(offset)") }
            let elementType = try readUInt32()
            let count = try readCount(minimumBytesEach: 1, what: "array element")
            var values: [GGUFValue] = []
            values.reserveCapacity(count)
            for _ in 0..<count { values.append(try readValue(type: elementType, depth: depth + 1)) }
            return .array(values)
        case 10: return .uint64(try load(UInt64.self))
        case 11: return .int64(try load(Int64.self))
        case 12: return .float64(Double(bitPattern: try load(UInt64.self)))
        default:
            throw GGUFError(.malformed, path: path, "unknown metadata value type \(type) at byte \(offset - 4)")
        }
    }
}
