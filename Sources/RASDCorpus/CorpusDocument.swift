import Foundation

/// One tokenized document of a corpus, delivered in corpus order.
public struct CorpusDocument: Sendable {
    /// Position among the delivered documents (0, 1, 2, … without gaps).
    public var index: Int
    /// What the datastore manifest records about it.
    public var entry: CorpusManifestEntry
    /// The token ids (no BOS).
    public var tokens: [UInt32]
}

/// Manifest information of one document: enough to check later that the datastore was built
/// from exactly these bytes.
public struct CorpusManifestEntry: Codable, Sendable, Equatable {
    /// Path relative to the corpus root; for JSON lines, `file.jsonl:LINE` (1-based).
    public var path: String
    /// Bytes of the document's UTF-8 text.
    public var byteCount: Int
    /// Lowercase hex SHA-256 of those bytes.
    public var sha256: String
    /// Number of tokens.
    public var tokenCount: Int
}

/// Why a file or record was not made into a document.
public enum SkipReason: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    /// The bytes are not valid UTF-8.
    case invalidUTF8 = "invalid-utf8"
    /// The file looks binary (a NUL byte in its first 8 KiB).
    case binary
    /// The file or text is empty.
    case empty
    /// The file could not be read (permissions, a dangling link, vanished).
    case unreadable
    /// The file is larger than the per-document limit.
    case tooLarge = "too-large"
    /// A JSON-lines record is not a JSON object.
    case invalidJSON = "invalid-json"
    /// A JSON-lines record has no string under the field.
    case missingField = "missing-field"

    public var description: String { rawValue }

    /// Whether strict mode turns this skip into an error (an empty file never is one).
    public var failsStrictMode: Bool { self != .empty }
}

/// A file or record skipped, with the reason.
public struct CorpusWarning: Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var reason: SkipReason
    public var detail: String

    public var description: String { "\(path): skipped (\(reason)): \(detail)" }
}

/// Counters of a corpus read in progress, for progress bars and logs.
public struct CorpusProgress: Sendable {
    /// Files in the corpus and files finished.
    public var filesTotal: Int
    public var filesDone: Int
    /// Bytes in the corpus and bytes finished (the basis of the ETA).
    public var bytesTotal: Int
    public var bytesDone: Int
    public var documents: Int
    public var tokens: Int
    public var skipped: Int
    /// Seconds since the read started.
    public var elapsed: Double

    public var tokensPerSecond: Double { elapsed > 0 ? Double(tokens) / elapsed : 0 }
    public var bytesPerSecond: Double { elapsed > 0 ? Double(bytesDone) / elapsed : 0 }
    /// Fraction of the bytes done, 0…1.
    public var fraction: Double { bytesTotal > 0 ? min(1, Double(bytesDone) / Double(bytesTotal)) : 1 }
    /// Estimated seconds left, from the byte rate so far.
    public var eta: Double? {
        guard bytesDone > 0, bytesPerSecond > 0 else { return nil }
        return Double(max(0, bytesTotal - bytesDone)) / bytesPerSecond
    }
}

/// What a whole corpus read produced.
public struct CorpusSummary: Sendable {
    public var documents = 0
    public var tokens = 0
    /// Bytes of the documents' text.
    public var bytes = 0
    public var files = 0
    /// Skips by reason.
    public var skipped: [SkipReason: Int] = [:]
    /// Bytes without a token of their own, dropped by the tokenizer.
    public var droppedBytes = 0
    public var seconds: Double = 0

    public var skippedTotal: Int { skipped.values.reduce(0, +) }
}
