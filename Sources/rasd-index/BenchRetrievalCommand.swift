import ArgumentParser
import Foundation
import RASDDatastore
import RASDTrees

#if canImport(Glibc)
import Glibc
#endif

/// `rasd-index bench retrieval`: build time and memory, size, query latency and oracle acceptance.
struct BenchRetrieval: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retrieval",
        abstract: "Time retrieval (and optionally the build) on a query file; print a table.",
        discussion: """
            The query file has one JSON object per line: {"context": [ids], "next": [ids], "domain": "code"}. \
            With --build-tokens the datastore is first built by a child `rasd-index build` whose wall time and \
            peak resident memory are reported. Latency is per query, single thread, the median of --runs passes.
            """)

    @Option(name: .long, help: "The datastore to query (built first when --build-tokens is given).")
    var datastore: String

    @Option(name: .long, help: "Query file (JSON lines).")
    var queries: String

    @Option(name: .long, help: "Passes over the query set; each query's latency is its median.")
    var runs = 5

    @Option(name: .long, help: "Build the datastore first from this uint32 token file.")
    var buildTokens: String?

    @Option(name: .long, help: "Document starts for --build-tokens.")
    var buildDocuments: String?

    @Option(name: .long, help: "Vocabulary size for --build-tokens.")
    var vocabSize: Int?

    @OptionGroup var parameters: RetrievalOptions

    @Flag(name: .long, help: "Print one JSON object instead of a table.")
    var json = false

    func run() async throws {
        var build: ChildProcess.Measurement?
        if let tokens = buildTokens {
            guard let vocabSize else { throw ValidationError("--build-tokens needs --vocab-size") }
            var arguments = ["build", "corpus", tokens, "--vocab-size", "\(vocabSize)", "--output", datastore, "--force"]
            if let d = buildDocuments { arguments += ["--documents", d] }
            build = try ChildProcess.measure(executable: CommandLine.arguments[0], arguments: arguments)
        }
        let store = try Datastore(path: datastore)
        let info = store.info
        let set = try BenchmarkQuery.load(path: queries)
        guard !set.isEmpty else { throw ValidationError("\(queries) has no queries") }
        let result = try store.benchmark(queries: set, parameters: parameters.value, runs: runs)

        if json {
            struct Output: Encodable {
                var machine: String, date: String, datastore: String, tokens: Int, bytesPerToken: Double
                var buildSeconds: Double?, buildCPUSeconds: Double?, buildPeakBytes: Int?, queries: Int, runs: Int
                var result: RetrievalBenchmarkResult
            }
            print(try Formatting.json(Output(
                machine: Machine.description, date: Machine.date, datastore: datastore, tokens: info.header.tokens,
                bytesPerToken: info.bytesPerToken, buildSeconds: build?.seconds,
                buildCPUSeconds: build?.cpuSeconds, buildPeakBytes: build?.peakBytes,
                queries: set.count, runs: runs, result: result)))
            return
        }
        print("machine     \(Machine.description)")
        print("date        \(Machine.date)")
        print("datastore   \(datastore): \(info.header.tokens) tokens, \(info.header.documents) documents, \(info.header.shards) shard(s)")
        print("size        \(Formatting.bytes(info.bytesOnDisk)), \(String(format: "%.2f", info.bytesPerToken)) bytes/token")
        if let build {
            print(String(format: "build       %.1f s wall, %.1f s CPU, peak RSS %@ (%.1f bytes/token)", build.seconds, build.cpuSeconds,
                Formatting.bytes(build.peakBytes), Double(build.peakBytes) / Double(max(1, info.header.tokens))))
        }
        let l = result.latency
        print("queries     \(set.count) from \(queries), \(runs) runs each, single thread")
        print(String(format: "latency µs  p50 %.1f  p90 %.1f  p99 %.1f  mean %.1f  max %.1f", l.p50, l.p90, l.p99, l.mean, l.max))
        print(String(format: "answers     mean match length %.2f, mean trie nodes %.1f", result.meanMatchLength, result.meanNodes))
        for (domain, a) in result.acceptance.sorted(by: { $0.key < $1.key }) {
            print(String(format: "acceptance  %@ %.3f (oracle, %d-node trie)", domain.padding(toLength: 8, withPad: " ", startingAt: 0), a, parameters.maxNodes))
        }
    }
}

/// Facts about the machine for benchmark tables.
enum Machine {
    static var description: String {
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "" } ?? "unknown CPU"
        return "\(cpu), \(ProcessInfo.processInfo.activeProcessorCount) cores, "
            + Formatting.bytes(Int(ProcessInfo.processInfo.physicalMemory)) + " RAM"
    }

    static var date: String { ISO8601DateFormatter().string(from: Date()) }
}

/// Runs a child process and measures its wall time, CPU time and peak resident memory.
enum ChildProcess {
    struct Measurement {
        /// Wall time.
        var seconds: Double
        /// User plus system CPU time: on a shared machine, less sensitive to other load than wall time.
        var cpuSeconds: Double
        /// Peak resident memory.
        var peakBytes: Int
    }

    /// The child's standard output goes to standard error, so that the caller's own output
    /// (the `--json` object) stays the only thing on standard output.
    static func measure(executable: String, arguments: [String]) throws -> Measurement {
        let path = executable.contains("/") ? executable : "/proc/self/exe"
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO)
        let start = Date()
        let rc = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard rc == 0 else { throw ValidationError("cannot start \(path): \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
        let elapsed = Date().timeIntervalSince(start)
        guard status & 0x7f == 0, (status >> 8) & 0xff == 0 else {
            throw ValidationError("the build failed (status \(status))")
        }
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return Measurement(
            seconds: elapsed, cpuSeconds: seconds(usage.ru_utime) + seconds(usage.ru_stime), peakBytes: Int(usage.ru_maxrss) * 1024)
    }
}
