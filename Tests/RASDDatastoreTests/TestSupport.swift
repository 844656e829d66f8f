import Foundation
import RASDDatastore

/// A seeded generator so that every random corpus is reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A fresh directory under the system temporary directory, removed by `cleanup()`.
struct TemporaryDirectory {
    let path: String
    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("rasd-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func cleanup() { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { path + "/" + name }
}

/// Random documents that share phrases, so that long matches, many occurrences and ties all happen.
func phraseCorpus(seed: UInt64, documents: Int, vocabulary: Int, phrases: Int = 40) -> [[UInt32]] {
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
func buildDatastore(
    _ documents: [[UInt32]], at path: String, vocabulary: Int, shardTokens: Int = 1 << 20, force: Bool = false
) throws -> DatastoreHeader {
    let builder = try DatastoreBuilder(
        options: BuildOptions(output: path, vocabularySize: vocabulary, shardTokens: shardTokens, threads: 2, force: force))
    for d in documents { try builder.add(document: d) }
    return try builder.finish()
}

/// Writes documents as a uint32 token file and a uint64 starts file.
func writeTokenFiles(_ documents: [[UInt32]], tokens: String, starts: String, closingOffset: Bool) throws {
    var t = Data(), s = Data()
    var offset: UInt64 = 0
    for d in documents {
        withUnsafeBytes(of: offset.littleEndian) { s.append(contentsOf: $0) }
        for id in d { withUnsafeBytes(of: id.littleEndian) { t.append(contentsOf: $0) } }
        offset += UInt64(d.count)
    }
    if closingOffset { withUnsafeBytes(of: offset.littleEndian) { s.append(contentsOf: $0) } }
    try t.write(to: URL(fileURLWithPath: tokens))
    try s.write(to: URL(fileURLWithPath: starts))
}

/// The `rasd-index` executable built next to the test bundle.
func rasdIndexExecutable() -> String {
    let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    var dir = exe.deletingLastPathComponent()
    // The test bundle may sit inside a `.xctest` directory.
    while dir.path != "/" {
        let candidate = dir.appendingPathComponent("rasd-index").path
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    return "rasd-index"
}

/// Runs a shell command line; returns exit status, stdout and stderr.
@discardableResult
func shell(_ command: String) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/sh")
    p.arguments = ["-c", command]
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// Starts `executable` with `arguments`, its output going to files in `dir` (no pipes to drain).
func launch(_ executable: String, _ arguments: [String], output: String? = nil) throws -> Process {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if let output {
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
    } else {
        p.standardOutput = FileHandle.nullDevice
    }
    p.standardError = FileHandle.nullDevice
    try p.run()
    return p
}
