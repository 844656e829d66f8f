import CRASDKernels
import Foundation
import Synchronization

/// A fixed set of threads that run one parallel section at a time.
///
/// A forward pass has about five parallel sections per layer (150 per token for SmolLM2), so
/// the hand-off must cost about a microsecond: workers spin briefly on a ticket and only then
/// sleep on a condition. The calling thread works too, so a pool of `n` threads starts `n - 1`;
/// with `n == 1` nothing is started and sections run inline. The thread count is fixed for the
/// pool's life, so the engine never oversubscribes the machine by itself: choose it to leave
/// room for whatever else runs beside it.
///
/// A section is cut into chunks that threads take from a shared ticket, so a worker that the
/// OS has descheduled (the machine is busy) delays nobody: the others take its chunks. Which
/// thread computes a chunk never changes what is computed.
package final class WorkerPool: @unchecked Sendable {
    // @unchecked: all shared state lives in `State`, see there.

    /// Threads working in each section, the caller included.
    let threadCount: Int
    private let state: State
    private var generation: UInt64 = 0

    /// Busy-wait iterations (each a `pause`) before a worker sleeps or a waiting caller yields:
    /// on the order of 100 µs, longer than the gap between sections of a forward pass.
    private static let spinLimit = 20_000

    /// Starts `threads - 1` worker threads (the caller is the last one); `threads` below 1
    /// counts as 1.
    package init(threads: Int) {
        threadCount = max(1, threads)
        state = State()
        for _ in 1..<threadCount {
            let thread = Thread { [state] in state.workerLoop() }
            thread.name = "rasd-worker"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    deinit {
        // Threads hold the state, not the pool: they see `stopping` and leave on their own.
        state.stopping.store(true, ordering: .sequentiallyConsistent)
        state.wakeSleepers()
    }

    /// Runs `body(chunk)` for every chunk in `0..<chunks`, spread over the pool's threads, and
    /// returns when all are done.
    package func run(chunks: Int, _ body: (Int) -> Void) {
        guard chunks > 0 else { return }
        guard threadCount > 1, chunks > 1 else {
            for c in 0..<chunks { body(c) }
            return
        }
        // A section's chunk count has 16 bits of the ticket; more chunks run as several sections.
        for first in stride(from: 0, to: chunks, by: Ticket.maximumChunks) {
            let count = min(Ticket.maximumChunks, chunks - first)
            generation &+= 1
            let ticket = Ticket(generation: generation, chunks: count)
            withoutActuallyEscaping(body) { body in
                state.job = first == 0 ? body : { body(first + $0) }
                state.completed.store(0, ordering: .relaxed)
                state.ticket.store(ticket.value, ordering: .sequentiallyConsistent)
                if state.sleepers.load(ordering: .sequentiallyConsistent) > 0 { state.wakeSleepers() }
                state.work(generation: ticket.generation)
                var spins = 0
                while state.completed.load(ordering: .acquiring) < count {
                    spins += 1
                    if spins < Self.spinLimit { rasd_cpu_relax() } else { sched_yield() }
                }
                state.job = nil
            }
        }
    }

    /// A section's state in one atomic word: generation (bits 32-63), chunk count (bits 16-31)
    /// and next chunk to take (bits 0-15).
    ///
    /// One word, so that a thread always sees a section's count with that section's next
    /// chunk. With the count in a separate atomic, a worker just leaving section n could read
    /// section n + 1's larger count beside section n's exhausted ticket, take a chunk that did
    /// not exist, and count it as completed in the next section: its caller then moved on
    /// while a chunk was still being computed (and the closure was still referenced).
    fileprivate struct Ticket {
        static let maximumChunks = 0xFFFF
        var value: UInt64

        init(value: UInt64) { self.value = value }
        init(generation: UInt64, chunks: Int) {
            value = (generation & 0xFFFF_FFFF) << 32 | UInt64(chunks) << 16
        }
        var generation: UInt32 { UInt32(truncatingIfNeeded: value >> 32) }
        var chunks: Int { Int((value >> 16) & 0xFFFF) }
        var next: Int { Int(value & 0xFFFF) }
    }

    private final class State: @unchecked Sendable {
        // @unchecked: `job` is written by the caller before it publishes a section's ticket
        // (sequentially consistent store) and cleared after every chunk has completed; a thread
        // reads it only after winning a chunk of that section on the ticket (CAS), while the
        // caller still waits for that chunk.

        /// The current section (see ``Ticket``).
        let ticket = Atomic<UInt64>(0)
        let completed = Atomic<Int>(0)
        let sleepers = Atomic<Int>(0)
        let stopping = Atomic<Bool>(false)
        let condition = NSCondition()
        nonisolated(unsafe) var job: ((Int) -> Void)?

        /// Takes and runs chunks of section `generation` until none is left.
        func work(generation: UInt32) {
            while true {
                let value = ticket.load(ordering: .acquiring)
                let current = Ticket(value: value)
                guard current.generation == generation, current.next < current.chunks else { return }
                guard ticket.compareExchange(expected: value, desired: value + 1, ordering: .acquiringAndReleasing).exchanged
                else { continue }
                runChunk(current.next)
                completed.add(1, ordering: .releasing)
            }
        }

        /// Not inlined, so that this thread's reference to `job` is gone before the chunk
        /// counts as completed (the caller clears `job` as soon as the count is full).
        @inline(never)
        private func runChunk(_ chunk: Int) {
            job?(chunk)
        }

        func wakeSleepers() {
            condition.lock()
            condition.broadcast()
            condition.unlock()
        }

        func workerLoop() {
            var seen: UInt32 = 0
            while true {
                var spins = 0
                while Ticket(value: ticket.load(ordering: .acquiring)).generation == seen,
                    !stopping.load(ordering: .relaxed)
                {
                    spins += 1
                    if spins < WorkerPool.spinLimit {
                        rasd_cpu_relax()
                        continue
                    }
                    // Sleep; the caller checks `sleepers` after publishing the ticket, and both
                    // sides use sequentially consistent order, so no wake-up is lost.
                    condition.lock()
                    sleepers.add(1, ordering: .sequentiallyConsistent)
                    while Ticket(value: ticket.load(ordering: .sequentiallyConsistent)).generation == seen,
                        !stopping.load(ordering: .sequentiallyConsistent)
                    {
                        condition.wait()
                    }
                    sleepers.subtract(1, ordering: .sequentiallyConsistent)
                    condition.unlock()
                }
                if stopping.load(ordering: .acquiring) { return }
                seen = Ticket(value: ticket.load(ordering: .acquiring)).generation
                work(generation: seen)
            }
        }
    }
}

extension WorkerPool {
    /// Chunks for a section of `count` work items: a few per thread, so that a thread the OS
    /// delays leaves its share to the others.
    func chunks(for count: Int) -> Int {
        min(count, threadCount == 1 ? 1 : 4 * threadCount)
    }

    /// Runs `body` over `0..<count` in contiguous chunks (``chunks(for:)``) spread over the pool.
    func runShares(_ count: Int, _ body: (Range<Int>) -> Void) {
        let chunks = chunks(for: count)
        run(chunks: chunks) { c in body(share(count, worker: c, of: chunks)) }
    }

    /// Several matrix products of one input (`tokens` rows at `input`, row stride
    /// `inputStride`, quantized in `quantized`), their row groups split across the pool as one
    /// list. Each product writes its outputs at its pointer with its row stride.
    func multiply(
        _ products: [(WeightMatrix, UnsafeMutablePointer<Float>, Int)], input: UnsafeMutablePointer<Float>,
        inputStride: Int, quantized: QuantizedActivations, tokens: Int, path: KernelPath
    ) {
        let total = products.reduce(0) { $0 + $1.0.groups }
        runShares(total) { range in
            var offset = 0
            for (m, out, stride) in products {
                let lower = max(range.lowerBound - offset, 0), upper = min(range.upperBound - offset, m.groups)
                if lower < upper {
                    m.multiply(
                        x: input, xStride: inputStride, quantized: quantized, tokens: tokens, output: out, outputStride: stride,
                        groups: lower..<upper, path: path)
                }
                offset += m.groups
            }
        }
    }
}

/// The contiguous share of `0..<count` that `worker` of `workers` computes.
@inline(__always)
func share(_ count: Int, worker: Int, of workers: Int) -> Range<Int> {
    (count * worker / workers)..<(count * (worker + 1) / workers)
}
