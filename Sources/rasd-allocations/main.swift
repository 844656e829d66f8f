// rasd-allocations: counts the heap allocations of RASD's per-step tree work in steady state.
//
// A separate executable so that malloc interposition (ordo-one/malloc-interposer), which every
// allocation of a process pays for, stays out of `rasd-index` itself. `rasd-index bench trees`
// runs it with its own workload parameters and prints the counts beside its timings.
//
// Usage: rasd-allocations WORKLOADS SEED VOCABULARY DRAFT_NODES RETRIEVAL_NODES TOP_K BUDGET
// Prints one JSON object: {"steps", "core": [allocations, bytes], "full": [allocations, bytes]}.

import Foundation
import MallocInterposerSwift
import RASDTrees

let arguments = CommandLine.arguments.dropFirst().compactMap { Int($0) }
guard arguments.count == 7, arguments.allSatisfy({ $0 >= 0 }) else {
    FileHandle.standardError.write(Data("usage: rasd-allocations WORKLOADS SEED VOCABULARY DRAFT_NODES RETRIEVAL_NODES TOP_K BUDGET\n".utf8))
    exit(2)
}
do {
    let workloads = max(1, arguments[0])
    var steps = try SyntheticDecodeSteps(
        count: workloads, seed: UInt64(arguments[1]), vocabularySize: arguments[2], draftNodes: arguments[3],
        retrievalNodes: arguments[4], topK: arguments[5], budget: arguments[6])
    // A probe that must count, so that a 0 below means something.
    MallocInterposerSwift.reset()
    MallocInterposerSwift.hook()
    let probe = [Int](repeating: workloads, count: 1000)
    MallocInterposerSwift.unhook()
    guard MallocInterposerSwift.getStatistics().mallocCount >= 1, probe.count == 1000 else {
        FileHandle.standardError.write(Data("rasd-allocations: malloc-interposer did not interpose; no counts\n".utf8))
        exit(1)
    }
    let count = 10 * workloads
    MallocInterposerSwift.reset()
    MallocInterposerSwift.hook()
    for step in 0..<count { try steps.coreStep(step % workloads) }
    MallocInterposerSwift.unhook()
    let core = MallocInterposerSwift.getStatistics()
    MallocInterposerSwift.reset()
    MallocInterposerSwift.hook()
    for step in 0..<count { try steps.fullStep(step % workloads) }
    MallocInterposerSwift.unhook()
    let full = MallocInterposerSwift.getStatistics()
    print("{\"steps\": \(count), \"core\": [\(core.mallocCount), \(core.mallocBytesCount)], \"full\": [\(full.mallocCount), \(full.mallocBytesCount)]}")
} catch {
    FileHandle.standardError.write(Data("rasd-allocations: \(error)\n".utf8))
    exit(1)
}
