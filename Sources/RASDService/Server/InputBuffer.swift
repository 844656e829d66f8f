/// The bytes received on a connection and not yet handled: frames are parsed in place.
final class InputBuffer {
    private(set) var base: UnsafeMutableRawPointer
    private(set) var capacity: Int
    /// Unhandled bytes are `start ..< end`.
    private(set) var start = 0
    private(set) var end = 0
    private let initialCapacity: Int

    init(capacity: Int = 64 << 10) {
        initialCapacity = capacity
        self.capacity = capacity
        base = .allocate(byteCount: capacity, alignment: 16)
    }

    deinit { base.deallocate() }

    /// Bytes received and not handled.
    var available: Int { end - start }

    /// The unhandled bytes.
    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base + start, count: end - start) }

    /// Marks `n` bytes handled.
    func consume(_ n: Int) {
        start += n
        if start == end {
            start = 0
            end = 0
        }
    }

    /// Makes room to hold `total` unhandled bytes from `start`, moving or growing the storage.
    func reserve(_ total: Int) {
        if start + total <= capacity { return }
        if total <= capacity {
            (base + 0).copyMemory(from: base + start, byteCount: end - start)
        } else {
            var newCapacity = capacity
            while newCapacity < total { newCapacity *= 2 }
            let grown = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
            grown.copyMemory(from: base + start, byteCount: end - start)
            base.deallocate()
            base = grown
            capacity = newCapacity
        }
        end -= start
        start = 0
    }

    /// Gives back a large buffer once it is empty, so an idle connection holds little memory.
    func shrinkIfEmpty() {
        guard available == 0, capacity > 4 * initialCapacity else { return }
        base.deallocate()
        capacity = initialCapacity
        base = .allocate(byteCount: capacity, alignment: 16)
        start = 0
        end = 0
    }

    /// The free space after the unhandled bytes (at least `minimum` bytes).
    func freeSpace(minimum: Int = 4096) -> UnsafeMutableRawBufferPointer {
        if capacity - end < minimum { reserve(available + minimum) }
        return UnsafeMutableRawBufferPointer(start: base + end, count: capacity - end)
    }

    /// Records `n` bytes received into ``freeSpace(minimum:)``.
    func received(_ n: Int) { end += n }
}
