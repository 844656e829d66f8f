import CRASDKernels
import Foundation
import Synchronization

/// A fixed set of threads that run one parallel section at a time.
///
/// A forward pass has about five parallel sections per layer (150 per token for SmolLM2), so
/// the hand-off must cost about a microsecond: workers spin briefly on a generation counter and
/// only then sleep on a condition. The calling thread is worker 0, so a pool of `n` threads
/// starts `n - 1`; with `n == 1` nothing is started and sections run inline. The number of
/// threads is fixed for the pool's life, so the machine is never oversubscribed by the engine
/// itself: pick `threads` to leave room for whatever else runs beside it.
///
/// Every section splits its work statically (``share(_:worker:of:)``), so which thread
/// computes an output never changes what is computed.
final class WorkerPool: @unchecked Sendable {
    // @unchecked: all shared state lives in `State`, see there.

    /// Threads working in each section, the caller included.
    let threadCount: Int
    private let state: State

    /// Busy-wait iterations (each a `pause`) before a worker goes to sleep: on the order of
    /// 100 µs, longer than the gap between sections of a forward pass.
    private static let spinLimit = 20_000

    init(threads: Int) {
        threadCount = max(1, threads)
        state = State()
        for index in 1..<threadCount {
            let thread = Thread { [state, threadCount] in state.workerLoop(index: index, threadCount: threadCount) }
            thread.name = "rasd-worker-\(index)"
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    deinit {
        // Threads hold the state, not the pool: they see `stopping` and leave on their own.
        state.stopping.store(true, ordering: .sequentiallyConsistent)
        state.generation.add(1, ordering: .sequentiallyConsistent)
        state.condition.lock()
        state.condition.broadcast()
        state.condition.unlock()
    }

    /// Runs `body(worker, threadCount)` on every thread of the pool and returns when all are done.
    func run(_ body: (Int, Int) -> Void) {
        guard threadCount > 1 else {
            body(0, 1)
            return
        }
        withoutActuallyEscaping(body) { body in
            state.job = body
            state.remaining.store(threadCount - 1, ordering: .sequentiallyConsistent)
            state.generation.add(1, ordering: .sequentiallyConsistent)
            if state.sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                state.condition.lock()
                state.condition.broadcast()
                state.condition.unlock()
            }
            body(0, threadCount)
            while state.remaining.load(ordering: .acquiring) > 0 { rasd_cpu_relax() }
            state.job = nil
        }
    }

    private final class State: @unchecked Sendable {
        // @unchecked: `job` is written by the calling thread only while no section runs, and
        // read by workers only between the generation increment (release) and their
        // `remaining` decrement (release), which the caller waits for.
        let generation = Atomic<Int>(0)
        let remaining = Atomic<Int>(0)
        let sleepers = Atomic<Int>(0)
        let stopping = Atomic<Bool>(false)
        let condition = NSCondition()
        nonisolated(unsafe) var job: ((Int, Int) -> Void)?

        func workerLoop(index: Int, threadCount: Int) {
            var seen = 0
            while true {
                var spins = 0
                while generation.load(ordering: .acquiring) == seen {
                    spins += 1
                    if spins < WorkerPool.spinLimit {
                        rasd_cpu_relax()
                        continue
                    }
                    // Sleep; the caller checks `sleepers` after bumping the generation, and
                    // both sides use sequentially consistent order, so no wake-up is lost.
                    condition.lock()
                    sleepers.add(1, ordering: .sequentiallyConsistent)
                    while generation.load(ordering: .sequentiallyConsistent) == seen { condition.wait() }
                    sleepers.subtract(1, ordering: .sequentiallyConsistent)
                    condition.unlock()
                }
                seen = generation.load(ordering: .acquiring)
                if stopping.load(ordering: .acquiring) { return }
                job?(index, threadCount)
                remaining.subtract(1, ordering: .releasing)
            }
        }
    }
}

/// The contiguous share of `0..<count` that `worker` of `workers` computes.
@inline(__always)
func share(_ count: Int, worker: Int, of workers: Int) -> Range<Int> {
    (count * worker / workers)..<(count * (worker + 1) / workers)
}
