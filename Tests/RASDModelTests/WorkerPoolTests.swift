import RASDModel
import Testing

/// The pool that runs every parallel section of a forward pass: each chunk must run exactly
/// once, and all of them before `run` returns (a forward pass reads the outputs right after).
@Suite struct WorkerPoolTests {
    /// Sections alternate between few and many chunks, back to back, as a tree verification's
    /// per-node sections (one chunk per node) and its matrix sections (8 chunks) do. A worker
    /// leaving a small section must not take a chunk of the next one, or count one twice.
    @Test func everyChunkRunsOnceBeforeRunReturns() {
        let pool = WorkerPool(threads: 2)
        let slots = 8
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: slots)
        defer { counts.deallocate() }
        var failures = 0
        for section in 0..<2_000_000 {
            let chunks = section % 2 == 0 ? 3 : slots
            counts.initialize(repeating: 0, count: slots)
            pool.run(chunks: chunks) { counts[$0] += 1 }
            if (0..<slots).contains(where: { counts[$0] != ($0 < chunks ? 1 : 0) }) { failures += 1 }
        }
        #expect(failures == 0)
    }

    /// More chunks than one section's ticket holds still run, each once.
    @Test func manyChunks() {
        let pool = WorkerPool(threads: 2)
        let chunks = 70_000
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: chunks)
        defer { counts.deallocate() }
        counts.initialize(repeating: 0, count: chunks)
        pool.run(chunks: chunks) { counts[$0] += 1 }
        #expect((0..<chunks).allSatisfy { counts[$0] == 1 })
    }
}
