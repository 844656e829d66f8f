import Crypto
import Foundation

/// Pre-tokenized corpus files, the build input that needs no tokenizer.
///
/// Two forms: a file of little-endian `uint32` token ids with a file of little-endian `uint64`
/// document start offsets (optionally ending with the total token count), or JSON lines with one
/// document per line as an array of ids (`[12, 99, 7]`).
public enum PretokenizedCorpus {
    /// Feeds every document of a token file and its document starts to `builder`, recording
    /// both files in the manifest.
    /// - Throws: ``DatastoreError`` `.badInput` for truncated or inconsistent files.
    public static func addTokenFile(tokens tokensPath: String, documents startsPath: String?, to builder: DatastoreBuilder) throws {
        let file = try InputFile(path: tokensPath)
        guard file.size % 4 == 0 else {
            throw DatastoreError(.badInput, path: tokensPath, "\(file.size) bytes is not a whole number of uint32 token ids (truncated?)")
        }
        let tokenCount = file.size / 4
        var starts: [Int] = [0]
        var startsEntry: ManifestEntry?
        if let startsPath {
            let (loaded, entry) = try withMappedFile(startsPath) { startBytes -> ([Int], ManifestEntry) in
                guard startBytes.count % 8 == 0 else {
                    throw DatastoreError(.badInput, path: startsPath, "\(startBytes.count) bytes is not a whole number of uint64 offsets (truncated?)")
                }
                let values = (0..<(startBytes.count / 8)).map {
                    Int(clamping: UInt64(littleEndian: startBytes.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)))
                }
                return (values, ManifestEntry(path: startsPath, bytes: startBytes.count, sha256: BinaryTables.sha256(startBytes), documents: 0, tokens: 0))
            }
            starts = loaded
            startsEntry = entry
            guard let first = starts.first, first == 0 else {
                throw DatastoreError(.badInput, path: startsPath, "the first document must start at offset 0")
            }
            for i in 1..<starts.count where starts[i] < starts[i - 1] {
                throw DatastoreError(.badInput, path: startsPath, "offset \(i) (\(starts[i])) is smaller than the one before it")
            }
            if let last = starts.last, last > tokenCount {
                throw DatastoreError(
                    .badInput, path: startsPath,
                    "offset \(last) is past the end of \(tokensPath), which has \(tokenCount) tokens (truncated token file?)")
            }
        }
        // A final offset equal to the token count only closes the last document.
        if starts.count > 1, starts.last == tokenCount { starts.removeLast() }
        // Documents are read one at a time into a reused buffer: the build's memory holds the
        // index under construction, not a second copy of the input.
        var buffer: [UInt32] = []
        var hasher = SHA256Stream()
        for (i, start) in starts.enumerated() {
            let end = i + 1 < starts.count ? starts[i + 1] : tokenCount
            buffer.removeAll(keepingCapacity: true)
            try file.read(tokens: start..<end, into: &buffer, hashing: &hasher)
            try builder.add(document: buffer)
        }
        builder.addManifestEntry(
            ManifestEntry(path: tokensPath, bytes: file.size, sha256: hasher.finish(), documents: starts.count, tokens: tokenCount))
        if let startsEntry { builder.addManifestEntry(startsEntry) }
    }

    /// Feeds every line of a JSON-lines file (`[id, id, ...]` per line; blank lines skipped).
    /// - Throws: ``DatastoreError`` `.badInput` naming the line of the first malformed document.
    public static func addJSONLines(path: String, to builder: DatastoreBuilder) throws {
        try withMappedFile(path) { bytes in
        var documents = 0, tokens = 0
        var ids: [UInt32] = []
        var line = 1
        var i = 0
        let n = bytes.count
        while i < n {
            // Skip blank lines and leading spaces.
            while i < n, bytes[i] == UInt8(ascii: " ") || bytes[i] == UInt8(ascii: "\t") || bytes[i] == UInt8(ascii: "\r") { i += 1 }
            if i < n, bytes[i] == UInt8(ascii: "\n") { i += 1; line += 1; continue }
            if i >= n { break }
            guard bytes[i] == UInt8(ascii: "[") else {
                throw DatastoreError(.badInput, path: path, "line \(line): expected a JSON array of token ids")
            }
            i += 1
            ids.removeAll(keepingCapacity: true)
            var expectValue = true
            var closed = false
            while i < n {
                let c = bytes[i]
                if c == UInt8(ascii: " ") || c == UInt8(ascii: "\t") || c == UInt8(ascii: "\r") { i += 1; continue }
                if c == UInt8(ascii: "]") { closed = true; i += 1; break }
                if c == UInt8(ascii: ",") && !expectValue { expectValue = true; i += 1; continue }
                guard expectValue, c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else {
                    throw DatastoreError(.badInput, path: path, "line \(line): token ids must be non-negative integers")
                }
                var v: UInt64 = 0
                while i < n, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") {
                    v = v * 10 + UInt64(bytes[i] - UInt8(ascii: "0"))
                    guard v <= UInt64(UInt32.max) else {
                        throw DatastoreError(.tokenOutOfRange, path: path, "line \(line): token id too large")
                    }
                    i += 1
                }
                ids.append(UInt32(v))
                expectValue = false
            }
            guard closed, !expectValue || ids.isEmpty else {
                throw DatastoreError(.badInput, path: path, "line \(line): unterminated array (truncated file?)")
            }
            while i < n, bytes[i] != UInt8(ascii: "\n") {
                guard bytes[i] == UInt8(ascii: " ") || bytes[i] == UInt8(ascii: "\t") || bytes[i] == UInt8(ascii: "\r") else {
                    throw DatastoreError(.badInput, path: path, "line \(line): unexpected text after the array")
                }
                i += 1
            }
            do {
                try builder.add(document: ids)
            } catch let error as DatastoreError where error.kind == .tokenOutOfRange {
                throw DatastoreError(.tokenOutOfRange, path: path, "line \(line): \(error.message)")
            }
            documents += 1
            tokens += ids.count
        }
        builder.addManifestEntry(ManifestEntry(path: path, bytes: n, sha256: BinaryTables.sha256(bytes), documents: documents, tokens: tokens))
        }
    }
}

/// Calls `body` with the bytes of the file at `path`, mapped read-only.
func withMappedFile<R>(_ path: String, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw DatastoreError(.notFound, path: path, "no such file")
    }
    guard !isDirectory.boolValue else { throw DatastoreError(.badInput, path: path, "is a directory, not a file") }
    let data: Data
    do {
        data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
    } catch {
        throw DatastoreError(.io, path: path, "cannot read: \(error.localizedDescription)")
    }
    return try data.withUnsafeBytes(body)
}

/// Little-endian uint32 token ids `start..<end` of a mapped token file, as a collection.
struct TokenFileSlice: RandomAccessCollection {
    let bytes: UnsafeRawBufferPointer
    let start: Int
    let end: Int
    var startIndex: Int { start }
    var endIndex: Int { end }
    subscript(i: Int) -> UInt32 { UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: i &* 4, as: UInt32.self)) }
}

/// An input file read with `pread`, so that its pages do not stay in the process's memory.
final class InputFile {
    let path: String
    let size: Int
    private let fd: Int32

    init(path: String) throws {
        self.path = path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DatastoreError(.notFound, path: path, "no such file")
        }
        guard !isDirectory.boolValue else { throw DatastoreError(.badInput, path: path, "is a directory, not a file") }
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw DatastoreError.system("cannot open", path: path) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            close(fd)
            throw DatastoreError.system("cannot stat", path: path)
        }
        size = Int(info.st_size)
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL)
    }

    deinit { close(fd) }

    /// Appends the little-endian uint32 values `range` to `out`; `hasher` sees the bytes in order.
    func read(tokens range: Range<Int>, into out: inout [UInt32], hashing hasher: inout SHA256Stream) throws {
        let count = range.count
        guard count > 0 else { return }
        let old = out.count
        out.append(contentsOf: repeatElement(0, count: count))
        try out.withUnsafeMutableBytes { raw in
            let dst = UnsafeMutableRawBufferPointer(rebasing: raw[(old * 4)...])
            var done = 0
            while done < dst.count {
                let n = pread(fd, dst.baseAddress.unsafelyUnwrapped + done, dst.count - done, off_t(range.lowerBound * 4 + done))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    throw n == 0
                        ? DatastoreError(.badInput, path: path, "file ended early (was it truncated while reading?)")
                        : DatastoreError.system("cannot read", path: path)
                }
                done += n
            }
            hasher.update(UnsafeRawBufferPointer(dst))
        }
        for i in old..<out.count { out[i] = UInt32(littleEndian: out[i]) }
    }
}
