import Foundation

/// Speed measurements of the engine, for `rasd-index bench engine` and the decoder.
public enum EngineBenchmark {
    /// Greedy-decodes `count` tokens after `prompt` (the session is reset first) and returns
    /// the decode tokens per second (the prompt is not timed).
    public static func decodeTokensPerSecond(session: InferenceSession, prompt: [UInt32], count: Int) throws -> Double {
        session.reset()
        var next = try session.prefill(prompt)
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<count { next = try session.decodeStep(next) }
        return Double(count) / (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }

    /// Prefills `prompt` into a reset session and returns prompt tokens per second.
    public static func promptTokensPerSecond(session: InferenceSession, prompt: [UInt32]) throws -> Double {
        session.reset()
        let start = DispatchTime.now().uptimeNanoseconds
        try session.prefill(prompt)
        return Double(prompt.count) / (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }

    /// Resident memory of this process in bytes (`VmRSS`), where the OS reports it.
    public static func residentBytes() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let fields = line.split(separator: " ")
            if fields.count >= 2, let kb = Int(fields[1]) { return kb * 1024 }
        }
        return nil
    }
}

extension InferenceSession {
    /// Bytes of KV cache holding the committed tokens (keys and values, all layers, F16).
    public var kvCacheBytesInUse: Int { kvBytes(positions: committedLength) }

    /// Bytes of KV cache this session has touched (its high-water mark), which stay resident.
    public var kvCacheBytesTouched: Int { kvBytes(positions: kvHighWater) }

    private func kvBytes(positions: Int) -> Int {
        positions * model.config.layerCount * 2 * model.config.kvWidth * MemoryLayout<UInt16>.size
    }
}

/// llama.cpp run through `llama-cpp-python` (`scripts/reference/llama_cpp_bench.py`), the peer
/// that `rasd-index bench engine` measures in the same run.
public struct LlamaCppPeer: Sendable {
    /// The Python interpreter that imports `llama_cpp`.
    public var python: String
    /// The benchmark script.
    public var script: String

    /// Figures from one run of the script.
    public struct Figures: Sendable, Decodable {
        /// `llama_cpp.__version__`.
        public var version: String
        /// Decode tokens per second (greedy, one token per call).
        public var decodeTokensPerSecond: Double
        /// Prompt tokens per second (the whole prompt in one batch).
        public var promptTokensPerSecond: Double
        /// The greedy tokens it decoded.
        public var decodedTokens: [UInt32]

        enum CodingKeys: String, CodingKey {
            case version
            case decodeTokensPerSecond = "decode_tokens_per_second"
            case promptTokensPerSecond = "prompt_tokens_per_second"
            case decodedTokens = "decoded_tokens"
        }
    }

    /// Finds a Python that imports `llama_cpp` (`$RASD_LLAMA_PYTHON`, the venv that
    /// `scripts/reference/setup-llama-cpp` makes under the rasd cache, then `python3`) and the
    /// script under `scriptDirectory`.
    /// - Returns: the peer, or why it cannot run.
    public static func locate(scriptDirectory: String, cacheDirectory: String) -> Result<LlamaCppPeer, EngineError> {
        let script = scriptDirectory + "/llama_cpp_bench.py"
        guard FileManager.default.fileExists(atPath: script) else {
            return .failure(.invalidArgument("\(script) not found; run from the rasd repository root"))
        }
        var candidates = [cacheDirectory + "/llama-venv/bin/python", "/usr/bin/python3"]
        if let p = ProcessInfo.processInfo.environment["RASD_LLAMA_PYTHON"], !p.isEmpty { candidates.insert(p, at: 0) }
        for python in candidates where FileManager.default.isExecutableFile(atPath: python) {
            if (try? Self.execute(python, ["-c", "import llama_cpp"]))?.status == 0 {
                return .success(LlamaCppPeer(python: python, script: script))
            }
        }
        return .failure(.invalidArgument(
            "llama-cpp-python is not installed (tried \(candidates.joined(separator: ", "))); scripts/reference/setup-llama-cpp installs it (about 16 minutes)"))
    }

    /// Runs the script once: greedy decode of `decodeTokens` after `decodePrompt`, and one
    /// prefill of `prompt`, on `threads` threads.
    public func run(model: String, threads: Int, decodePrompt: [UInt32], decodeTokens: Int, prompt: [UInt32]) throws -> Figures {
        let ids = { (t: [UInt32]) in t.map(String.init).joined(separator: ",") }
        let result = try Self.execute(python, [
            script, "--model", model, "--threads", String(threads), "--decode-prompt", ids(decodePrompt),
            "--decode-tokens", String(decodeTokens), "--prompt", ids(prompt),
        ])
        guard result.status == 0 else {
            throw EngineError.invalidArgument("llama.cpp benchmark failed (exit \(result.status)): \(result.stderr.suffix(500))")
        }
        do {
            return try JSONDecoder().decode(Figures.self, from: Data(result.stdout.utf8))
        } catch {
            throw EngineError.invalidArgument("llama.cpp benchmark printed no figures: \(result.stdout.suffix(300))")
        }
    }

    private static func execute(_ executable: String, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        // stderr goes to a file, so a chatty child cannot block on a full pipe while we read stdout.
        let errPath = FileManager.default.temporaryDirectory.appendingPathComponent("rasd-peer-\(UUID().uuidString).err").path
        try? Data().write(to: URL(fileURLWithPath: errPath))
        defer { try? FileManager.default.removeItem(atPath: errPath) }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle(forWritingAtPath: errPath)
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let stderr = FileManager.default.contents(atPath: errPath) ?? Data()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }
}
