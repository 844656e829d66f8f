/// Growable scratch memory of plain numbers for ``TreeWorkspace``.
///
/// The per-step loops index it through a raw pointer: no bounds or uniqueness checks, which
/// fusion measurably paid for with arrays (about half its time on the benchmark's workloads).
/// Growing keeps the contents; new memory is zeroed.
final class ScratchArray<Element: BitwiseCopyable & ExpressibleByIntegerLiteral> {
    private(set) var base: UnsafeMutablePointer<Element>
    private(set) var capacity: Int

    init(capacity: Int = 64) {
        self.capacity = max(capacity, 1)
        base = .allocate(capacity: self.capacity)
        base.initialize(repeating: 0, count: self.capacity)
    }

    deinit {
        base.deallocate()
    }

    /// Makes room for `count` elements, keeping the current contents.
    @inline(__always)
    func reserve(_ count: Int) {
        if count > capacity { grow(count) }
    }

    private func grow(_ count: Int) {
        var newCapacity = capacity
        while newCapacity < count { newCapacity *= 2 }
        let newBase = UnsafeMutablePointer<Element>.allocate(capacity: newCapacity)
        newBase.initialize(from: base, count: capacity)
        (newBase + capacity).initialize(repeating: 0, count: newCapacity - capacity)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    /// Sets the first `count` elements to `value` (reserving them first).
    @inline(__always)
    func fill(_ count: Int, with value: Element) {
        reserve(count)
        base.update(repeating: value, count: count)
    }

    /// A copy with its own memory.
    func copy() -> ScratchArray {
        let other = ScratchArray(capacity: capacity)
        other.base.update(from: base, count: capacity)
        return other
    }
}
