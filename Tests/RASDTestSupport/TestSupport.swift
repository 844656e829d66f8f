import Foundation
import RASDDatastore

// Helpers shared by the test targets that build small datastores (datastore and service tests).

/// A seeded generator so that every random corpus is reproducible.
public struct SplitMix64: RandomNumberGenerator {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A fresh directory under /tmp (short, so that socket paths inside it fit), removed by
/// `cleanup()`.
public struct TemporaryDirectory {
    public let path: String
    public init() throws {
        path = "/tmp/rasd-test-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    public func cleanup() { try? FileManager.default.removeItem(atPath: path) }
    public func file(_ name: String) -> String { path + "/" + name }
}

/// Random documents that share phrases, so that long matches, many occurrences and ties all happen.
public func phraseCorpus(seed: UInt64, documents: Int, vocabulary: Int, phrases: Int = 40) -> [[UInt32]] {
    var rng = SplitMix64(seed: seed)
    // Skewed token choice: small ids are frequent, like real BPE vocabularies.
    func token() -> UInt32 {
        let r = Double(rng.next() % 1_000_000) / 1_000_000
        return UInt32(Double(vocabulary - 1) * r * r * r)
    }
    let library = (0..<phrases).map { _ in (0..<Int(rng.next() % 12 + 2)).map { _ in token() } }
    return (0..<documents).map { _ in
        var doc: [UInt32] = []
        let length = Int(rng.next() % 120)
        while doc.count < length {
            if rng.next() % 3 == 0 { doc.append(token()) } else { doc += library[Int(rng.next() % UInt64(phrases))] }
        }
        return doc
    }
}

/// Builds a datastore from `documents` through the library API.
@discardableResult
public func buildDatastore(
    _ documents: [[UInt32]], at path: String, vocabulary: Int, shardTokens: Int = 1 << 20, force: Bool = false
) throws -> DatastoreHeader {
    let builder = try DatastoreBuilder(
        options: BuildOptions(output: path, vocabularySize: vocabulary, shardTokens: shardTokens, threads: 2, force: force))
    for d in documents { try builder.add(document: d) }
    return try builder.finish()
}

/// The `rasd-index` executable built next to the test bundle (which may sit inside a `.xctest`
/// directory); plain `rasd-index` from the PATH when there is none.
public func rasdIndexExecutable() -> String {
    var dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    while dir.path != "/" {
        let candidate = dir.appendingPathComponent("rasd-index").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return "rasd-index"
}
