import ArgumentParser
import Foundation
import RASDGGUF
import RASDModel

/// `rasd-index bench engine`: decode and prompt speed, the verify-cost curve and resident
/// memory of the engine, with llama.cpp on the same prompts and threads in the same run.
struct BenchEngine: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "engine",
        abstract: "Engine speed (decode, prompt, tree verification) and memory, beside llama.cpp in the same run.")

    @Option(help: "GGUF model file (default: the reference model in the rasd cache).")
    var model: String?

    @Option(help: "Threads, for rasd and llama.cpp alike.")
    var threads = 2

    @Option(help: "Greedy decode steps per sample.")
    var decodeTokens = 128

    @Option(help: "Prompt length for the prompt-speed figure.")
    var promptTokens = 512

    @Option(help: "Samples per figure (medians are reported); rasd and llama.cpp alternate.")
    var repeats = 5

    @Option(help: "Largest tree of the verify-cost curve (sizes 1 through this).")
    var maxTree = 64

    @Option(help: "Committed context before the verify-cost trees.")
    var context = 64

    @Option(help: "Kernel path: portable, avx2 or avx512vnni (default: the fastest this CPU runs).")
    var kernels: String?

    @Flag(help: "Skip llama.cpp.")
    var noPeer = false

    @Option(help: "Also write the figures as JSON to this file.")
    var json: String?

    func run() async throws {
        guard repeats > 0, decodeTokens > 0, promptTokens > 0, maxTree > 0, context >= 0 else {
            throw ValidationError("--repeats, --decode-tokens, --prompt-tokens and --max-tree must be positive")
        }
        let modelPath = try model ?? ReferenceModel.existingPath()
        let model = try LlamaModel(path: modelPath)
        let vocabulary = model.config.vocabularySize
        // The same ids go to both engines: a chat-shaped prompt for decoding, pseudo-random ids
        // for prompt speed (speed does not depend on the ids).
        let decodePrompt: [UInt32] = [
            1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407, 19712, 8182, 2,
            198, 1, 4093, 198, 2683, 359, 253, 2156, 282, 4649, 30, 2, 198, 1, 520, 9531, 198,
        ].filter { Int($0) < vocabulary }
        let prompt = (0..<promptTokens).map { UInt32(($0 * 7919 + 101) % vocabulary) }
        let capacity = min(model.config.contextLength, max(promptTokens, decodePrompt.count + decodeTokens, context + maxTree) + 1)
        let session = try InferenceSession(model: model, capacity: capacity, threads: threads, kernels: try kernels.map(KernelPath.named))

        var peer: LlamaCppPeer?
        var peerNote = "skipped (--no-peer)"
        if !noPeer {
            switch LlamaCppPeer.locate(scriptDirectory: "scripts/reference", cacheDirectory: ReferenceModel.cacheDirectory) {
            case .success(let p): peer = p
            case .failure(let e): peerNote = "not run: \(e)"
            }
        }

        let machine = Self.machineDescription()
        print("rasd-index bench engine: \(modelPath)")
        print("machine: \(machine); \(threads) threads; rasd kernels: \(session.kernelPath) (available: \(KernelPath.available.map(\.rawValue).joined(separator: ", ")))")
        print("date: \(ISO8601DateFormatter().string(from: Date())); load average at start: \(Self.loadAverage())")

        _ = try EngineBenchmark.decodeTokensPerSecond(session: session, prompt: decodePrompt, count: 8)  // warm-up
        var ours: (decode: [Double], prompt: [Double]) = ([], [])
        var theirs: (decode: [Double], prompt: [Double]) = ([], [])
        var peerVersion = ""
        var agreement = ""
        for round in 0..<repeats {
            ours.decode.append(try EngineBenchmark.decodeTokensPerSecond(session: session, prompt: decodePrompt, count: decodeTokens))
            let oursTokens = Array(session.committedTokens.dropFirst(decodePrompt.count))
            ours.prompt.append(try EngineBenchmark.promptTokensPerSecond(session: session, prompt: prompt))
            if let current = peer {
                do {
                    let f = try current.run(model: modelPath, threads: threads, decodePrompt: decodePrompt, decodeTokens: decodeTokens, prompt: prompt)
                    theirs.decode.append(f.decodeTokensPerSecond)
                    theirs.prompt.append(f.promptTokensPerSecond)
                    peerVersion = f.version
                    if round == 0 {
                        let same = zip(f.decodedTokens, oursTokens).prefix { $0 == $1 }.count
                        agreement = "greedy decode: first \(same) of \(oursTokens.count) tokens identical to llama.cpp's"
                    }
                } catch {
                    peerNote = "failed: \(error)"
                    peer = nil
                }
            }
        }
        let residentAfterDecoding = EngineBenchmark.residentBytes()
        let kvAfterDecoding = session.kvCacheBytesTouched
        let curve = try VerifyCostCurve.measure(
            session: session, context: Array(prompt.prefix(context)), sizes: Array(1...maxTree), repeats: repeats)
        // Measured before the sessions below exist, so it counts this engine's memory only.
        let resident = EngineBenchmark.residentBytes()
        let kvBytes = session.kvCacheBytesTouched
        let roofline = session.measureMatrixRoofline(batch: 16, repeats: repeats)
        // Every kernel path on the same prompts: the measurement behind the C kernels.
        var pathRows: [(KernelPath, Double, Double)] = []
        for path in KernelPath.available {
            let other = try InferenceSession(model: model, capacity: capacity, threads: threads, kernels: path)
            var decode: [Double] = [], promptRates: [Double] = []
            for _ in 0..<min(repeats, 3) {
                decode.append(try EngineBenchmark.decodeTokensPerSecond(session: other, prompt: decodePrompt, count: 32))
                promptRates.append(try EngineBenchmark.promptTokensPerSecond(session: other, prompt: Array(prompt.prefix(64))))
            }
            pathRows.append((path, median(decode), median(promptRates)))
        }

        print("load average at end: \(Self.loadAverage()) (the machine is shared: compare ratios within this run)")
        func ratio(_ a: Double, _ b: Double) -> String { b > 0 ? String(format: "%.2f×", a / b) : "—" }
        func rate(_ v: Double) -> String { v > 0 ? String(format: "%.1f", v) : "—" }
        let oursDecode = median(ours.decode), oursPrompt = median(ours.prompt)
        let theirDecode = median(theirs.decode), theirPrompt = median(theirs.prompt)
        print("")
        print("| figure (median of \(repeats)) | rasd | llama.cpp\(peerVersion.isEmpty ? "" : " " + peerVersion) | rasd / llama.cpp |")
        print("|---|---|---|---|")
        print("| decode tok/s (\(decodeTokens) greedy steps after \(decodePrompt.count) tokens) | \(rate(oursDecode)) | \(rate(theirDecode)) | \(ratio(oursDecode, theirDecode)) |")
        print("| prompt tok/s (\(promptTokens) tokens) | \(rate(oursPrompt)) | \(rate(theirPrompt)) | \(ratio(oursPrompt, theirPrompt)) |")
        if theirs.decode.isEmpty { print("llama.cpp: \(peerNote)") }
        if !agreement.isEmpty { print(agreement) }
        print("")
        print("kernel paths (median of \(min(repeats, 3)); 32 decode steps, 64-token prompt):")
        print("| kernels | decode tok/s | prompt tok/s |")
        print("|---|---|---|")
        for (path, decode, promptRate) in pathRows { print("| \(path) | \(rate(decode)) | \(rate(promptRate)) |") }
        print("")
        print("verify cost after \(context) committed tokens (one single-token step = \(String(format: "%.2f", curve.singleStepSeconds * 1000)) ms):")
        print("| tree size | ms | × single step |")
        print("|---|---|---|")
        for (n, (s, r)) in zip(curve.sizes, zip(curve.seconds, curve.relative)) {
            print("| \(n) | \(String(format: "%.2f", s * 1000)) | \(String(format: "%.2f", r)) |")
        }
        let floors = [4, 16, 64].filter { $0 <= maxTree }.map { String(format: "%d → %.2f×", $0, roofline.floor(tokens: $0)) }
        print(String(
            format: "matrix roofline (%d threads, same kernels): %d-token products run at %.0f GMAC/s with the weights in cache; a one-token pass streams the weights (%.1f MiB) at %.1f GB/s. Least verify cost from the matrix work alone: %@ one step.",
            threads, roofline.batch, roofline.multiplyAddsPerSecond / 1e9, roofline.weightBytes / 1_048_576,
            roofline.bytesPerSecond / 1e9, floors.joined(separator: ", ")))
        let mib = { (b: Int) in String(format: "%.1f MiB", Double(b) / 1_048_576) }
        func memoryLine(_ label: String, _ resident: Int?, kv: Int) {
            guard let resident else { return }
            let limit = Double(model.fileSize) * 1.5 + Double(kv)
            let verdict = Double(resident) <= limit ? "within" : "OVER"
            print("\(label): \(mib(resident)) resident; limit 1.5 × GGUF (\(mib(model.fileSize))) + KV cache touched (\(mib(kv))) = \(mib(Int(limit))): \(verdict)")
        }
        print("")
        print("memory (repacked weights \(mib(model.weightBytes))):")
        memoryLine("after decode and prompt runs", residentAfterDecoding, kv: kvAfterDecoding)
        memoryLine("after the verify curve (scratch for \(maxTree)-node trees, logits included)", resident, kv: kvBytes)
        if let json {
            let report = Report(
                model: modelPath, machine: machine, threads: threads, kernels: session.kernelPath.rawValue,
                decodeTokensPerSecond: oursDecode, promptTokensPerSecond: oursPrompt,
                llamaCppDecodeTokensPerSecond: theirs.decode.isEmpty ? nil : theirDecode,
                llamaCppPromptTokensPerSecond: theirs.prompt.isEmpty ? nil : theirPrompt,
                verifyCost: curve, matrixRoofline: roofline, residentBytes: resident, kvCacheBytes: kvBytes,
                fileBytes: model.fileSize)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: json))
        }
    }

    struct Report: Encodable {
        var model: String
        var machine: String
        var threads: Int
        var kernels: String
        var decodeTokensPerSecond: Double
        var promptTokensPerSecond: Double
        var llamaCppDecodeTokensPerSecond: Double?
        var llamaCppPromptTokensPerSecond: Double?
        var verifyCost: VerifyCostCurve
        var matrixRoofline: MatrixRoofline
        var residentBytes: Int?
        var kvCacheBytes: Int
        var fileBytes: Int
    }

    /// The 1/5/15-minute load averages, where the OS reports them.
    static func loadAverage() -> String {
        let text = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? ""
        return text.split(separator: " ").prefix(3).joined(separator: " ")
    }

    static func machineDescription() -> String {
        let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let line = info.split(separator: "\n").first { $0.hasPrefix("model name") }
        let cpu = line?.split(separator: ":", maxSplits: 1).last?.trimmingCharacters(in: .whitespaces) ?? "unknown CPU"
        return "\(cpu), \(ProcessInfo.processInfo.activeProcessorCount) cores"
    }
}
