/// An owned, 64-byte aligned, uninitialised block of memory for weights and scratch.
///
/// Pages are touched only when written, so a large buffer (a KV cache sized for the whole
/// context) costs resident memory only for the part in use.
final class AlignedBuffer: @unchecked Sendable {
    // @unchecked: the owner decides who writes where; kernels write disjoint ranges.
    let raw: UnsafeMutableRawPointer
    let byteCount: Int
    /// The arena the block was carved from (kept alive by it), or nil for a heap block.
    private let arena: WeightArena?

    /// A block from `arena` when it has room, otherwise from the heap.
    init(byteCount: Int, arena: WeightArena? = nil) {
        self.byteCount = max(byteCount, 64)
        if let arena, let block = arena.allocate(byteCount: self.byteCount) {
            raw = block
            self.arena = arena
        } else {
            raw = UnsafeMutableRawPointer.allocate(byteCount: self.byteCount, alignment: 64)
            self.arena = nil
        }
    }

    /// The buffer as `count` values of `T` (the caller keeps within `byteCount`).
    func pointer<T>(_: T.Type = T.self) -> UnsafeMutablePointer<T> {
        raw.assumingMemoryBound(to: T.self)
    }

    deinit {
        if arena == nil { raw.deallocate() }
    }
}
