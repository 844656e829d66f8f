import ArgumentParser
import Foundation
import RASDDatastore
import RASDService
import RASDTrees

#if canImport(Glibc)
import Glibc
#endif

/// `rasd-index bench service`: the daemon against in-process retrieval, in one run.
struct BenchService: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service",
        abstract: "Round trip through the retrieval daemon vs in-process retrieval; throughput with concurrent clients; memory.",
        discussion: """
            Starts `rasd-index serve` on the datastore as a child process, then in one run: per-query latency \
            in process and through one Swift client (interleaved query by query, medians of --runs passes), \
            the Python client's latency (clients/python, if python3 is there), closed-loop throughput of \
            --clients concurrent clients (one request in flight each, then --depth in flight each) beside \
            the same number of in-process threads, and the daemon's resident memory against the \
            datastore's mapped size. Every daemon answer is checked against the in-process answer.
            """)

    @Option(name: .long, help: "The datastore directory.")
    var datastore: String

    @Option(name: .long, help: "Query file (JSON lines with \"context\").")
    var queries: String

    @Option(name: .long, help: "Use at most this many queries.")
    var limit = 2000

    @Option(name: .long, help: "Passes over the queries for the latency figures.")
    var runs = 5

    @Option(name: .long, help: "Concurrent clients for the throughput figures.")
    var clients = 8

    @Option(name: .long, help: "Seconds per throughput measurement.")
    var seconds = 5.0

    @Option(name: .long, help: "Requests in flight per client in the pipelined throughput measurement.")
    var depth = 8

    @Option(name: .long, help: "The Python interpreter for the Python client's figure (empty: skip it).")
    var python = "python3"

    @Option(name: .long, help: "Where the Python client's package lives.")
    var pythonClient = "clients/python/src"

    @OptionGroup var parameters: RetrievalOptions

    @Flag(name: .long, help: "Print one JSON object instead of a table.")
    var json = false

    func validate() throws {
        guard limit > 0, runs > 0, clients > 0, seconds > 0, depth > 0 else {
            throw ValidationError("--limit, --runs, --clients, --seconds and --depth must be positive")
        }
    }

    func run() throws {
        let loadBefore = Self.loadAverage()
        let store = try Datastore(path: datastore)
        let info = store.info
        let contexts = Array(try BenchmarkQuery.load(path: queries).prefix(limit).map(\.context))
        guard !contexts.isEmpty else { throw ValidationError("\(queries) has no queries") }
        let parameters = self.parameters.value
        let expected = try contexts.map { try store.retrieve(context: $0, parameters: parameters) }

        let socketPath = "/tmp/rasd-bench-\(getpid()).sock"
        let daemon = try Self.startDaemon(socketPath: socketPath, datastore: datastore)
        defer {
            kill(daemon.processIdentifier, SIGTERM)
            daemon.waitUntilExit()
        }
        let client = try RetrievalClient(socketPath: socketPath, clientName: "rasd-index bench service")
        let memoryAtStart = try client.stats().memory

        let latency = try ServiceBenchmark.compareLatency(
            datastore: store, client: client, name: "bench", queries: contexts, parameters: parameters, runs: runs)
        let pythonLatency = try pythonFigure(socketPath: socketPath)
        let serverSide = try client.stats().requests["retrieve"]?.latencyMicroseconds
        let cores = ProcessInfo.processInfo.activeProcessorCount
        // CPU time per retrieval, which other tenants of the machine do not change (wall-clock
        // throughput on a shared machine mostly measures the share of the cores a run gets).
        func measured(_ body: () throws -> ServiceBenchmark.Throughput) rethrows -> Measured {
            let own = CPUTime.process(), server = CPUTime.process(pid: daemon.processIdentifier)
            let result = try body()
            let n = Double(max(result.requests, 1))
            return Measured(
                result: result, clientCPUMicroseconds: (CPUTime.process() - own) / n * 1e6,
                serverCPUMicroseconds: (CPUTime.process(pid: daemon.processIdentifier) - server) / n * 1e6)
        }
        let local = try measured {
            try ServiceBenchmark.inProcessThroughput(
                datastore: store, queries: contexts, parameters: parameters, threads: clients, seconds: seconds)
        }
        let localPerCore = try measured {
            try ServiceBenchmark.inProcessThroughput(
                datastore: store, queries: contexts, parameters: parameters, threads: cores, seconds: seconds)
        }
        let single = try measured {
            try ServiceBenchmark.throughput(
                socketPath: socketPath, name: "bench", queries: contexts, expected: expected, parameters: parameters,
                clients: clients, depth: 1, seconds: seconds)
        }
        let pipelined = try measured {
            try ServiceBenchmark.throughput(
                socketPath: socketPath, name: "bench", queries: contexts, expected: expected, parameters: parameters,
                clients: clients, depth: depth, seconds: seconds)
        }
        let stats = try client.stats()
        let loadAfter = Self.loadAverage()

        let report = Report(
            machine: Machine.description, date: Machine.date, loadAverageBefore: loadBefore, loadAverageAfter: loadAfter,
            datastore: datastore, tokens: info.header.tokens, bytesOnDisk: info.bytesOnDisk, queries: contexts.count, runs: runs,
            latency: latency, python: pythonLatency, cores: cores, inProcessThroughput: local,
            inProcessPerCoreThroughput: localPerCore, throughput: single, pipelinedThroughput: pipelined,
            memoryAtStart: memoryAtStart, memoryAtEnd: stats.memory, serverRetrieveLatency: serverSide)
        if json {
            print(try Formatting.json(report))
        } else {
            print(report.table(parameters: parameters, clients: clients, depth: depth, seconds: seconds))
        }
    }

    /// Everything the benchmark measured.
    struct Report: Encodable {
        var machine: String, date: String, loadAverageBefore: String, loadAverageAfter: String
        var datastore: String, tokens: Int, bytesOnDisk: Int, queries: Int, runs: Int
        var latency: ServiceBenchmark.LatencyComparison
        var python: PythonLatency?
        var cores: Int
        var inProcessThroughput: Measured
        var inProcessPerCoreThroughput: Measured
        var throughput: Measured
        var pipelinedThroughput: Measured
        var memoryAtStart: ServiceStats.Memory
        var memoryAtEnd: ServiceStats.Memory
        var serverRetrieveLatency: ServiceStats.Percentiles?

        func table(parameters: RetrievalParameters, clients: Int, depth: Int, seconds: Double) -> String {
            var lines: [String] = []
            func row(_ name: String, _ values: [String]) {
                lines.append(name.padding(toLength: 38, withPad: " ", startingAt: 0) + values.map { $0.leftPadded(11) }.joined())
            }
            func f(_ v: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", v) }
            func verdict(_ ok: Bool) -> String { ok ? "met" : "MISSED" }
            lines.append("machine     \(machine)")
            lines.append("date        \(date)")
            lines.append("load avg    \(loadAverageBefore) before, \(loadAverageAfter) after")
            lines.append("datastore   \(datastore): \(tokens) tokens, \(Formatting.bytes(bytesOnDisk)) mapped")
            lines.append("queries     \(queries), \(runs) runs each (per-query medians); maxMatch \(parameters.maxMatch), minMatch \(parameters.minMatch), continuation \(parameters.continuationLength), maxNodes \(parameters.maxNodes)")
            lines.append("")
            row("round trip, one client (µs)", ["p50", "p90", "p99", "mean"])
            let l = latency.inProcess, d = latency.daemon
            row("in process", [f(l.p50), f(l.p90), f(l.p99), f(l.mean)])
            row("daemon, Swift client", [f(d.p50), f(d.p90), f(d.p99), f(d.mean)])
            row("  difference", ["+" + f(d.p50 - l.p50), "+" + f(d.p90 - l.p90), "+" + f(d.p99 - l.p99), "+" + f(d.mean - l.mean)])
            if let p = python {
                row("daemon, Python client", [f(p.p50), f(p.p90), f(p.p99), f(p.mean)])
            } else {
                row("daemon, Python client", ["(not run)"])
            }
            if let s = serverRetrieveLatency {
                row("  server-side handling of those", [f(s.p50), f(s.p90), f(s.p99), f(s.mean)])
            }
            lines.append("target p50 ≤ in process + 30 µs: \(verdict(d.p50 <= l.p50 + 30)) (+\(f(d.p50 - l.p50)) µs); "
                + "p99 ≤ in process p99 + 200 µs: \(verdict(d.p99 <= l.p99 + 200)) (+\(f(d.p99 - l.p99)) µs)")
            lines.append("")
            row("throughput, \(clients) clients, \(f(seconds, 0)) s", ["per second", "p50 µs", "p99 µs", "CPU µs", "capacity"])
            for (name, m) in [("in process, \(clients) threads", inProcessThroughput),
                              ("in process, \(inProcessPerCoreThroughput.result.clients) threads (one per core)", inProcessPerCoreThroughput),
                              ("daemon, 1 in flight per client", throughput),
                              ("daemon, \(depth) in flight per client", pipelinedThroughput)] {
                let t = m.result
                row(name, [String(Int(t.perSecond.rounded())), f(t.latency.p50), f(t.latency.p99),
                           f(m.cpuMicroseconds), String(Int(m.capacity(cores: cores).rounded()))])
            }
            lines.append("  CPU µs: CPU time per retrieval, client and daemon processes together (daemon \(f(throughput.serverCPUMicroseconds)) + clients \(f(throughput.clientCPUMicroseconds)) one in flight);")
            lines.append("  capacity: \(cores) cores / CPU µs, the rate with the cores to itself (derived; other tenants share this machine)")
            lines.append("target ≥ 20,000 retrievals/s with \(clients) clients: \(verdict(throughput.result.perSecond >= 20_000)) "
                + "(\(Int(throughput.result.perSecond)) /s one in flight, \(Int(pipelinedThroughput.result.perSecond)) /s pipelined, measured)")
            lines.append("")
            let checked = latency.queries * (latency.runs + 1) + throughput.result.requests + pipelinedThroughput.result.requests
            let wrong = latency.mismatches + throughput.result.mismatches + pipelinedThroughput.result.mismatches
            lines.append("answers     \(checked) daemon answers checked against in-process retrieval, \(wrong) differ")
            for (name, m) in [("at start", memoryAtStart), ("at end", memoryAtEnd)] {
                lines.append("memory      daemon \(name): resident \(Formatting.bytes(m.residentBytes)) = \(Formatting.bytes(m.residentFileBytes)) of the \(Formatting.bytes(m.mappedDatastoreBytes)) mapped datastore (file-backed) + \(Formatting.bytes(m.residentAnonymousBytes)) anonymous")
            }
            return lines.joined(separator: "\n")
        }
    }

    /// A throughput run with the CPU time it cost.
    struct Measured: Encodable {
        var result: ServiceBenchmark.Throughput
        /// CPU time of this process (the clients, or the in-process threads) per retrieval.
        var clientCPUMicroseconds: Double
        /// CPU time of the daemon per retrieval (0 for in-process runs).
        var serverCPUMicroseconds: Double

        var cpuMicroseconds: Double { clientCPUMicroseconds + serverCPUMicroseconds }

        /// Retrievals per second if the run had `cores` cores to itself.
        func capacity(cores: Int) -> Double { cpuMicroseconds > 0 ? Double(cores) * 1e6 / cpuMicroseconds : 0 }
    }

    struct PythonLatency: Codable {
        var queries: Int, runs: Int, p50: Double, p90: Double, p99: Double, mean: Double, max: Double
    }

    /// Runs the Python client's benchmark module; nil (with a note) when it cannot run.
    private func pythonFigure(socketPath: String) throws -> PythonLatency? {
        guard !python.isEmpty else { return nil }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [python, "-m", "rasd_client.benchmark", "--socket", socketPath, "--datastore", "bench",
                       "--queries", queries, "--runs", "\(runs)", "--limit", "\(limit)"]
        var environment = ProcessInfo.processInfo.environment
        let path = URL(fileURLWithPath: pythonClient).standardizedFileURL.path
        environment["PYTHONPATH"] = path + (environment["PYTHONPATH"].map { ":" + $0 } ?? "")
        p.environment = environment
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.standardError
        do { try p.run() } catch {
            FileHandle.standardError.write(Data("bench: cannot run \(python): \(error); skipping the Python figure\n".utf8))
            return nil
        }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0, let figure = try? JSONDecoder().decode(PythonLatency.self, from: data) else {
            FileHandle.standardError.write(Data("bench: the Python client benchmark failed (is \(path) the client?); skipping it\n".utf8))
            return nil
        }
        return figure
    }

    /// `rasd-index serve` as a child, ready when a client can connect.
    private static func startDaemon(socketPath: String, datastore: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        p.arguments = ["serve", "--socket", socketPath, "--datastore", "bench=\(datastore)", "--log-level", "warning"]
        try p.run()
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline && p.isRunning {
            if (try? RetrievalClient(socketPath: socketPath)) != nil { return p }
            usleep(50_000)
        }
        p.terminate()
        throw InputError("the daemon did not start on \(socketPath)")
    }

    static func loadAverage() -> String {
        ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "").split(separator: " ").prefix(3).joined(separator: " ")
    }
}

/// User plus system CPU time of a process, in seconds.
enum CPUTime {
    /// This process (`getrusage`), or another one (`/proc/<pid>/stat`, clock ticks).
    static func process(pid: Int32? = nil) -> Double {
        guard let pid else {
            var usage = rusage()
            getrusage(RUSAGE_SELF.rawValue, &usage)
            func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
            return seconds(usage.ru_utime) + seconds(usage.ru_stime)
        }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return 0 }
        // Fields after the command name: state is field 3, utime 14 and stime 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

extension String {
    fileprivate func leftPadded(_ width: Int) -> String {
        count >= width ? " " + self : String(repeating: " ", count: width - count) + self
    }
}
