#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A growable buffer of trivial values backed by `realloc`.
///
/// A Swift array doubles by copying, so appending 100 M tokens would briefly need twice their
/// memory; `realloc` of a large block remaps pages instead, which keeps the build's peak memory
/// at the buffer itself.
struct GrowableBuffer<Element: BitwiseCopyable> {
    private(set) var base: UnsafeMutablePointer<Element>?
    private(set) var count = 0
    private(set) var capacity = 0

    init() {}

    mutating func reserve(_ minimum: Int) {
        guard minimum > capacity else { return }
        let newCapacity = max(minimum, capacity + capacity / 2, 1024)
        guard let raw = realloc(base, newCapacity * MemoryLayout<Element>.stride) else {
            fatalError("out of memory growing a buffer to \(newCapacity) elements")
        }
        base = raw.assumingMemoryBound(to: Element.self)
        capacity = newCapacity
    }

    @inline(__always)
    mutating func append(_ value: Element) {
        if count == capacity { reserve(count + 1) }
        base.unsafelyUnwrapped[count] = value
        count += 1
    }

    /// Appends `n` elements written by `body` into uninitialized space.
    @inline(__always)
    mutating func extend(by n: Int, _ body: (UnsafeMutablePointer<Element>) -> Void) {
        reserve(count + n)
        body(base.unsafelyUnwrapped + count)
        count += n
    }

    /// Gives back the capacity beyond `count`.
    mutating func shrinkToFit() {
        guard capacity > count, count > 0, let raw = realloc(base, count * MemoryLayout<Element>.stride) else { return }
        base = raw.assumingMemoryBound(to: Element.self)
        capacity = count
    }

    /// The elements; valid until the next mutation.
    var buffer: UnsafeMutableBufferPointer<Element> { UnsafeMutableBufferPointer(start: base, count: count) }

    /// Frees the storage.
    mutating func release() {
        free(base)
        base = nil
        count = 0
        capacity = 0
    }
}
