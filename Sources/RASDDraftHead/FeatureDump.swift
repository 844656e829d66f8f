import Foundation
import RASDDecoding
import RASDModel
import RASDTokenizer

/// One record of a draft head's training set (a line of `prepared.jsonl`, written by
/// `scripts/draft-head/prepare.py`): a corpus text the target reads, or a prompt the target
/// answers greedily (its own answer is then part of the training sequence).
public struct TrainingRecord: Codable, Sendable {
    /// Where it came from ("code", "docs", "answers/qa", ...), for the data summary.
    public var source: String
    /// Corpus text (the target reads it; teacher forcing).
    public var text: String?
    /// A prompt the target answers greedily.
    public var prompt: String?
    /// Whether `prompt` is a user turn of the chat template.
    public var chat: Bool?
    /// Most answer tokens to generate for `prompt`.
    public var maxTokens: Int?
}

/// A training sequence in the feature files: `length` tokens from token `offset` on, the
/// first `promptLength` of them the prompt (0 for corpus text).
public struct FeatureSequence: Codable, Sendable, Equatable {
    public var record: Int
    public var source: String
    public var offset: Int
    public var length: Int
    public var promptLength: Int
}

/// Dumps the target's features for a training set: every token of every sequence with the
/// target's final hidden state after it (normalized: the output head's input), computed by the
/// rasd engine itself, so the head learns the features it will be given at decode time.
///
/// Files in the output directory: `tokens.u32` (little-endian UInt32 per token),
/// `features.f16` (`embeddingLength` Float16 per token), `sequences.jsonl` (one
/// ``FeatureSequence`` per line, written after the sequence's data, so a killed dump resumes
/// after the last complete sequence) and `features.json` (a summary).
public struct FeatureDump {
    public let model: LlamaModel
    public let renderer: PromptRenderer
    /// Most tokens of a corpus text (longer texts are cut); prompts are cut from the front.
    public var sequenceLength: Int
    public var threads: Int

    public init(model: LlamaModel, tokenizer: Tokenizer, sequenceLength: Int = 512, threads: Int = 2) {
        self.model = model
        renderer = PromptRenderer(tokenizer: tokenizer)
        self.sequenceLength = sequenceLength
        self.threads = threads
    }

    /// A summary of the dump.
    public struct Summary: Codable, Sendable {
        /// Sequences in the dump (resumed ones included).
        public var sequences = 0
        /// Tokens in the dump, each with its feature row.
        public var tokens = 0
        /// Of those, tokens the target generated (its greedy answers to prompts).
        public var generatedTokens = 0
        /// Tokens by the record's source (`code`, `answers/qa`, ...).
        public var tokensBySource: [String: Int] = [:]
        /// Seconds this run spent dumping (near 0 when a resumed dump was already complete).
        public var seconds = 0.0
    }

    /// Dumps the features of `records` into `directory`, resuming after the sequences already
    /// there. `log` hears progress now and then.
    /// - Throws: ``DraftHeadError`` for unreadable records or files, ``EngineError`` from the engine.
    @discardableResult
    public func run(records: [TrainingRecord], directory: String, log: (String) -> Void = { _ in }) throws -> Summary {
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let tokensPath = directory + "/tokens.u32", featuresPath = directory + "/features.f16"
        let sequencesPath = directory + "/sequences.jsonl"
        let d = model.config.embeddingLength

        // Resume: keep the complete sequences, cut the data files back to them.
        var done: [FeatureSequence] = []
        if let text = try? String(contentsOfFile: sequencesPath, encoding: .utf8) {
            for line in text.split(separator: "\n") {
                guard let s = try? JSONDecoder().decode(FeatureSequence.self, from: Data(line.utf8)) else { break }
                done.append(s)
            }
        }
        let kept = done.last.map { $0.offset + $0.length } ?? 0
        for (path, bytes) in [(tokensPath, 4), (featuresPath, 2 * d)] {
            if !fm.fileExists(atPath: path) { try? Data().write(to: URL(fileURLWithPath: path)) }  // a failure shows below
            guard let h = FileHandle(forUpdatingAtPath: path) else { throw DraftHeadError("cannot write \(path)") }
            let size = try h.seekToEnd()
            guard size >= UInt64(kept * bytes) else {
                throw DraftHeadError("\(path) is shorter than its sequences.jsonl says; delete \(directory) and dump again")
            }
            try h.truncate(atOffset: UInt64(kept * bytes))
            try h.close()
        }
        let sequenceLines = try Self.truncated(sequencesPath, lines: done.count)
        guard let tokenFile = FileHandle(forWritingAtPath: tokensPath), let featureFile = FileHandle(forWritingAtPath: featuresPath)
        else { throw DraftHeadError("cannot write the feature files in \(directory)") }
        defer {
            try? tokenFile.close()
            try? featureFile.close()
            try? sequenceLines.close()
        }
        try tokenFile.seekToEnd()
        try featureFile.seekToEnd()
        if !done.isEmpty { log("resuming after \(done.count) sequences (\(kept) tokens)") }

        let session = try InferenceSession(model: model, capacity: min(model.config.contextLength, sequenceLength + 1024), threads: threads)
        let stop = renderer.stopTokens
        var summary = Summary()
        for s in done {
            summary.sequences += 1
            summary.tokens += s.length
            summary.tokensBySource[s.source, default: 0] += s.length
            if s.promptLength > 0 { summary.generatedTokens += s.length - s.promptLength }
        }
        var offset = kept
        let start = Date()
        var lastLog = Date()
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        for (index, record) in records.enumerated() where index >= (done.last.map { $0.record + 1 } ?? 0) {
            var tokens: [UInt32]
            var promptLength = 0
            var features: [Float16] = []
            session.reset()
            func capture(_ first: Int, _ states: UnsafeBufferPointer<Float>) {
                features.reserveCapacity(features.count + states.count)
                for v in states { features.append(Float16(v)) }
            }
            if let text = record.text {
                tokens = Array(renderer.tokenizer.encode(text).prefix(sequenceLength))
                guard tokens.count >= 2 else { continue }
                try session.prefill(tokens, hiddenStates: capture)
            } else if let prompt = record.prompt {
                tokens = try renderer.tokens(prompt, chat: record.chat ?? false).suffix(sequenceLength)
                guard !tokens.isEmpty else { continue }
                promptLength = tokens.count
                var next = try session.prefill(tokens, hiddenStates: capture)
                // The target's own greedy answer, each token with the hidden state after it.
                for _ in 0..<(record.maxTokens ?? 128) where !stop.contains(next) && session.committedLength < session.capacity {
                    tokens.append(next)
                    next = try session.decodeStep(next)
                    for v in try session.hiddenState(node: 0, normalized: true) { features.append(Float16(v)) }
                }
                summary.generatedTokens += tokens.count - promptLength
            } else {
                throw DraftHeadError("training record \(index + 1) has neither \"text\" nor \"prompt\"")
            }
            precondition(features.count == tokens.count * d, "one feature row per token")
            tokenFile.write(tokens.withUnsafeBytes { Data($0) })
            featureFile.write(features.withUnsafeBytes { Data($0) })
            let sequence = FeatureSequence(record: index, source: record.source, offset: offset, length: tokens.count, promptLength: promptLength)
            sequenceLines.write(try encoder.encode(sequence) + Data("\n".utf8))
            offset += tokens.count
            summary.sequences += 1
            summary.tokens += tokens.count
            summary.tokensBySource[record.source, default: 0] += tokens.count
            if Date().timeIntervalSince(lastLog) > 30 {
                lastLog = Date()
                let rate = Double(offset - kept) / max(1e-9, Date().timeIntervalSince(start))
                log(String(format: "%d/%d records, %d tokens (%.0f tokens/s)", index + 1, records.count, offset, rate))
            }
        }
        summary.seconds = Date().timeIntervalSince(start)
        let out = JSONEncoder()
        out.outputFormatting = [.prettyPrinted, .sortedKeys]
        try out.encode(summary).write(to: URL(fileURLWithPath: directory + "/features.json"))
        return summary
    }

    /// Reads the training records of a `prepared.jsonl`.
    public static func records(at path: String) throws -> [TrainingRecord] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw DraftHeadError("\(path): cannot read the training records (made by scripts/draft-head/prepare.py)")
        }
        let decoder = JSONDecoder()
        return try text.split(separator: "\n").enumerated().map { i, line in
            guard let r = try? decoder.decode(TrainingRecord.self, from: Data(line.utf8)) else {
                throw DraftHeadError("\(path): line \(i + 1) is not a training record")
            }
            return r
        }
    }

    /// Opens `path` for appending after its first `lines` lines (dropping a torn last line).
    private static func truncated(_ path: String, lines: Int) throws -> FileHandle {
        let fm = FileManager.default
        var keep = 0
        if let data = fm.contents(atPath: path) {
            var seen = 0
            for (i, byte) in data.enumerated() where byte == UInt8(ascii: "\n") && seen < lines {
                seen += 1
                keep = i + 1
            }
        } else {
            try? Data().write(to: URL(fileURLWithPath: path))  // a failure shows below
        }
        guard let h = FileHandle(forUpdatingAtPath: path) else { throw DraftHeadError("cannot write \(path)") }
        try h.truncate(atOffset: UInt64(keep))
        try h.seekToEnd()
        return h
    }
}

/// An error of the draft head's training or loading, with what to do about it.
public struct DraftHeadError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
