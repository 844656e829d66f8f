#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory mapping of a whole file.
///
/// The mapping lives as long as the object; tensors and metadata read from a ``GGUFFile`` point
/// into it, so the file is never copied into the heap.
public final class MappedFile: @unchecked Sendable {
    // @unchecked: the mapping is read-only (PROT_READ) and immutable after init, so sharing the
    // pointer between threads is safe.

    /// Path the file was opened from.
    public let path: String
    /// The mapped bytes.
    public let bytes: UnsafeRawBufferPointer

    /// Maps `path` read-only.
    /// - Throws: ``GGUFError`` with kind `.io` when the file cannot be opened, sized or mapped.
    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw GGUFError(.io, path: path, "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw GGUFError(.io, path: path, "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw GGUFError(.io, path: path, "not a regular file")
        }
        let size = Int(info.st_size)
        guard size > 0 else {
            self.bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw GGUFError(.io, path: path, "cannot map \(size) bytes: \(String(cString: strerror(errno)))")
        }
        self.bytes = UnsafeRawBufferPointer(start: base, count: size)
    }

    /// Asks the kernel to read the whole mapping ahead (useful before the first forward pass).
    public func adviseWillNeed() {
        guard let base = bytes.baseAddress else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base), bytes.count, MADV_WILLNEED)
    }

    deinit {
        if let base = bytes.baseAddress {
            munmap(UnsafeMutableRawPointer(mutating: base), bytes.count)
        }
    }
}
