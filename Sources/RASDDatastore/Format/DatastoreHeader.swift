/// The header of a datastore, stored as JSON under the key `rasd/header` (see docs/format.md).
public struct DatastoreHeader: Codable, Sendable, Equatable {
    /// Always `"rasd-datastore"`.
    public var format: String
    /// Version of the on-disk format; this build writes and reads ``DatastoreHeader/currentFormatVersion``.
    public var formatVersion: Int
    /// Width in bits of stored token ids: 16 when the vocabulary fits, else 32.
    public var tokenWidth: Int
    /// Vocabulary size; every token id is below it.
    public var vocabularySize: Int
    /// The tokenizer the corpus was tokenized with, when known.
    public var tokenizer: TokenizerIdentity?
    /// Tokens in the datastore (document boundaries not counted).
    public var tokens: Int
    /// Documents in the datastore.
    public var documents: Int
    /// Number of shards.
    public var shards: Int
    /// How the datastore was built.
    public var build: BuildRecord
    /// Summary of the corpus manifest (stored in full, zstd-compressed, under `rasd/manifest`).
    public var manifest: ManifestSummary

    /// The format version this build writes.
    public static let currentFormatVersion = 1
    /// The value of ``format``.
    public static let formatName = "rasd-datastore"
}

/// Identity of a tokenizer: enough to refuse a datastore built with another one.
public struct TokenizerIdentity: Codable, Sendable, Hashable, CustomStringConvertible {
    /// A short human name, for messages.
    public var name: String
    /// Lowercase hex SHA-256 over the tokenizer's vocabulary, merges and pre-tokenizer.
    public var fingerprint: String

    /// Creates an identity.
    public init(name: String, fingerprint: String) {
        self.name = name
        self.fingerprint = fingerprint
    }

    public var description: String { "\(name) (fingerprint \(fingerprint.prefix(16)))" }
}

/// Parameters and provenance of a build.
public struct BuildRecord: Codable, Sendable, Equatable {
    /// rasd version that wrote the datastore.
    public var createdBy: String
    /// UTC time of the build, ISO 8601.
    public var createdAt: String
    /// Most tokens per shard.
    public var shardTokens: Int
    /// Threads used.
    public var threads: Int
    /// Wall-clock seconds of the build.
    public var seconds: Double
    /// What the corpus was read from.
    public var source: String
    /// Index layout.
    public var index: String
}

/// Summary of the corpus manifest.
public struct ManifestSummary: Codable, Sendable, Equatable {
    /// Number of source entries (files, or the pre-tokenized input).
    public var entries: Int
    /// SHA-256 of the stored manifest JSON.
    public var sha256: String
}

/// One source of a corpus: a file (or a pre-tokenized input) and what it contributed.
public struct ManifestEntry: Codable, Sendable, Equatable {
    /// Path, relative to the corpus root when there is one.
    public var path: String
    /// Size in bytes of the source.
    public var bytes: Int
    /// SHA-256 of the source bytes (lowercase hex).
    public var sha256: String
    /// Documents taken from it.
    public var documents: Int
    /// Tokens taken from it.
    public var tokens: Int

    /// Creates an entry.
    public init(path: String, bytes: Int, sha256: String, documents: Int, tokens: Int) {
        self.path = path
        self.bytes = bytes
        self.sha256 = sha256
        self.documents = documents
        self.tokens = tokens
    }
}

/// Per-shard metadata, JSON under `shard/<k>/meta`.
struct ShardMeta: Codable, Equatable {
    var rows: Int
    var tokens: Int
    var documents: Int
    /// Index of the shard's first document in the datastore.
    var firstDocument: Int
    /// Length of every wavelet-tree level.
    var levelLengths: [Int]
    /// Number of zstd text chunks.
    var textChunks: Int
}

/// Key names (docs/format.md lists them).
enum Keys {
    static let header = "rasd/header"
    static let tree = "rasd/tree"
    static let manifest = "rasd/manifest"
    static let checksums = "rasd/checksums"
    static func shard(_ k: Int) -> String { "shard/" + pad(k, 4) }
    static func meta(_ k: Int) -> String { shard(k) + "/meta" }
    static func firstRows(_ k: Int) -> String { shard(k) + "/first-rows" }
    static func nodes(_ k: Int) -> String { shard(k) + "/nodes" }
    static func levelBlocks(_ k: Int, _ d: Int) -> String { shard(k) + "/level/\(d)/blocks" }
    static func levelSupers(_ k: Int, _ d: Int) -> String { shard(k) + "/level/\(d)/supers" }
    static func documents(_ k: Int) -> String { shard(k) + "/documents" }
    static func anchors(_ k: Int) -> String { shard(k) + "/anchors" }
    static func text(_ k: Int, _ c: Int) -> String { shard(k) + "/text/" + pad(c, 6) }

    private static func pad(_ v: Int, _ width: Int) -> String {
        let s = String(v)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }
}

/// Checksums of every stored value, JSON under `rasd/checksums`.
struct ChecksumTable: Codable {
    /// Always "sha256".
    var algorithm: String
    /// Values are hashed in chunks of this many bytes, so damage can be located.
    var chunkBytes: Int
    /// Hex digests of each chunk, by key.
    var values: [String: [String]]
}
