import ArgumentParser
import Foundation
import RASDCorpus
import RASDGGUF
import RASDTokenizer

/// `rasd-index bench tokenizer`: encoding throughput on one thread against the Hugging Face
/// `tokenizers` library (the peer) on the same files in the same run, plus rasd's parallel
/// corpus reader on all cores.
struct BenchTokenizer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer",
        abstract: "Tokenizer throughput (MB/s) on one thread, side by side with HF tokenizers.",
        discussion: """
            The peer runs scripts/reference/tokenizer_reference.py bench in the reference \
            virtualenv (scripts/reference/setup creates it). Both sides encode the same files \
            from memory after one warm-up pass (both keep a word cache); medians of --runs passes.
            """)

    @Option(help: "A GGUF model or tokenizer.json (default: the reference model).")
    var model: String = ReferenceModel.path

    @Option(name: .customLong("corpus"), help: "Named corpora or directories to take files from (repeatable; default: code and docs).")
    var corpora: [String] = []

    @Option(help: "Use at most this many files (spread evenly over the sorted list).")
    var maxFiles: Int?

    @Option(help: "Timed passes per implementation (the median is reported).")
    var runs = 5

    @Option(help: "Python of the reference virtualenv.")
    var peerPython: String = ReferenceModel.cacheDirectory + "/venv-reference/bin/python"

    @Option(help: "The reference script.")
    var peerScript = "scripts/reference/tokenizer_reference.py"

    @Flag(help: "Skip the peer.")
    var noPeer = false

    func run() throws {
        let tokenizer = try Tokenizer(contentsOf: model)
        let catalog = CorpusCatalog()
        var paths: [String] = []
        var texts: [[UInt8]] = []
        for name in corpora.isEmpty ? ["code", "docs"] : corpora {
            let source = try catalog.resolve(name)
            for file in try source.listFiles() where file.problem == nil {
                guard let data = FileManager.default.contents(atPath: file.path), !data.isEmpty,
                      String(validating: data, as: UTF8.self) != nil else { continue }
                paths.append(file.path)
                texts.append(Array(data))
            }
        }
        if let maxFiles, maxFiles < paths.count, maxFiles > 0 {
            let keep = (0..<maxFiles).map { $0 * paths.count / maxFiles }
            paths = keep.map { paths[$0] }
            texts = keep.map { texts[$0] }
        }
        guard !paths.isEmpty else { throw InputError("no UTF-8 text files found") }
        let bytes = texts.reduce(0) { $0 + $1.count }

        // rasd, one thread.
        let encoder = tokenizer.makeEncoder()
        var times: [Double] = []
        var tokenCount = 0
        var ids: [UInt32] = []
        for pass in 0...max(1, runs) {
            let start = DispatchTime.now().uptimeNanoseconds
            var n = 0
            for text in texts {
                ids.removeAll(keepingCapacity: true)
                text.withUnsafeBufferPointer { encoder.encode(utf8: $0, into: &ids) }
                n += ids.count
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if pass > 0 { times.append(seconds) }
            tokenCount = n
        }
        let ours = Self.median(times)

        // rasd's corpus reader on all cores (read + UTF-8 check + tokenize + SHA-256).
        var parallel: (Double, Int)?
        let names = corpora.isEmpty ? ["code", "docs"] : corpora
        if names.allSatisfy({ catalog.names().contains($0) }) {
            var seconds: [Double] = []
            var workers = 0
            for _ in 0..<max(1, min(runs, 3)) {
                var total = 0.0
                for name in names {
                    let reader = CorpusReader(source: try catalog.resolve(name), tokenizer: tokenizer)
                    workers = reader.options.parallelism
                    total += try reader.read(document: { _ in }).seconds
                }
                seconds.append(total)
            }
            parallel = (Self.median(seconds), workers)
        }

        // The peer, same files, same run.
        var peer: (median: Double, tokens: Int)?
        var peerNote = ""
        if noPeer {
            peerNote = "peer skipped (--no-peer)"
        } else if !FileManager.default.isExecutableFile(atPath: peerPython) {
            peerNote = "peer not run: \(peerPython) missing (scripts/reference/setup creates it)"
        } else {
            let list = FileManager.default.temporaryDirectory.appendingPathComponent("rasd-bench-files-\(getpid()).txt")
            try (paths.joined(separator: "\n") + "\n").write(to: list, atomically: false, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: list) }
            let p = Process()
            p.executableURL = URL(fileURLWithPath: peerPython)
            p.arguments = [peerScript, "--model", model, "bench", "--files-from", list.path, "--runs", String(max(1, runs))]
            let pipe = Pipe()
            p.standardOutput = pipe
            try p.run()
            let out = pipe.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            if p.terminationStatus == 0, let json = try? JSONSerialization.jsonObject(with: out) as? [String: Any],
               let median = json["median"] as? Double, let tokens = json["tokens"] as? Int {
                peer = (median, tokens)
            } else {
                peerNote = "peer failed (status \(p.terminationStatus))"
            }
        }

        let mb = Double(bytes) / 1e6
        print("Tokenizer throughput: \(tokenizer.name) (\(tokenizer.vocabularySize) tokens), \(paths.count) files, \(String(format: "%.1f", mb)) MB, \(tokenCount) tokens")
        print("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores, \(Self.cpuName()); medians of \(max(1, runs)) passes after a warm-up pass")
        print("")
        print("| implementation | threads | median s | MB/s | M tokens/s | vs tokenizers |")
        print("|---|---|---|---|---|---|")
        let peerRate = peer.map { mb / $0.median }
        func row(_ name: String, _ threads: String, _ seconds: Double) {
            let rate = mb / seconds
            let ratio = peerRate.map { String(format: "%.2fx", rate / $0) } ?? "-"
            print(String(format: "| %@ | %@ | %.3f | %.2f | %.3f | %@ |", name, threads, seconds, rate, Double(tokenCount) / seconds / 1e6, ratio))
        }
        row("rasd TokenEncoder", "1", ours)
        if let peer { row("HF tokenizers 0.23 (peer)", "1", peer.median) }
        if let (seconds, workers) = parallel { row("rasd CorpusReader (read+check+tokenize+sha256)", "\(workers)", seconds) }
        if !peerNote.isEmpty { print("\n\(peerNote)") }
        if let peer, peer.tokens != tokenCount {
            print("\nWARNING: the peer produced \(peer.tokens) tokens, rasd \(tokenCount): the tokenizers disagree")
        }
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        guard !s.isEmpty else { return 0 }
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    static func cpuName() -> String {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
              let name = line.split(separator: ":", maxSplits: 1).last
        else { return "unknown CPU" }
        return name.trimmingCharacters(in: .whitespaces)
    }
}
