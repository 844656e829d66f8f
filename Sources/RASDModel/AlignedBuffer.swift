/// An owned, 64-byte aligned, uninitialised block of memory for weights and scratch.
///
/// Pages are touched only when written, so a large buffer (a KV cache sized for the whole
/// context) costs resident memory only for the part in use.
final class AlignedBuffer: @unchecked Sendable {
    // @unchecked: the owner decides who writes where; kernels write disjoint ranges.
    let raw: UnsafeMutableRawPointer
    let byteCount: Int

    init(byteCount: Int) {
        self.byteCount = max(byteCount, 64)
        raw = UnsafeMutableRawPointer.allocate(byteCount: self.byteCount, alignment: 64)
    }

    /// The buffer as `count` values of `T` (the caller keeps within `byteCount`).
    func pointer<T>(_: T.Type = T.self) -> UnsafeMutablePointer<T> {
        raw.assumingMemoryBound(to: T.self)
    }

    deinit { raw.deallocate() }
}
