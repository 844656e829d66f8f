import ArgumentParser
import Foundation
import RASDDatastore

/// `rasd-index info <datastore>`: what a datastore holds and how it was built.
struct Info: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a datastore's header, sizes and build parameters.")

    @Argument(help: "The datastore directory.")
    var datastore: String

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    @Flag(name: .long, help: "Also list the size of every part of the datastore.")
    var parts = false

    func run() async throws {
        let store = try Datastore(path: datastore)
        let info = store.info
        if json {
            print(try Formatting.json(info))
            return
        }
        let h = info.header
        let rows: [(String, String)] = [
            ("datastore", datastore),
            ("format version", "\(h.formatVersion)"),
            ("token width", "\(h.tokenWidth) bits"),
            ("vocabulary size", "\(h.vocabularySize)"),
            ("tokenizer", h.tokenizer.map { "\($0.name), fingerprint \($0.fingerprint)" } ?? "(not recorded)"),
            ("tokens", "\(h.tokens)"),
            ("documents", "\(h.documents)"),
            ("shards", "\(h.shards)"),
            ("bytes on disk", "\(info.bytesOnDisk) (\(Formatting.bytes(info.bytesOnDisk)))"),
            ("bytes per token", String(format: "%.3f", info.bytesPerToken)),
            ("index", h.build.index),
            ("built", "\(h.build.createdAt) by \(h.build.createdBy) in \(String(format: "%.1f", h.build.seconds)) s"),
            ("build parameters", "shard tokens \(h.build.shardTokens), threads \(h.build.threads)"),
            ("source", h.build.source),
            ("manifest", "\(h.manifest.entries) entries, sha256 \(h.manifest.sha256)"),
        ]
        let width = rows.map(\.0.count).max() ?? 0
        for (k, v) in rows { print(k.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + v) }
        if parts {
            // Group per-chunk keys (text/000001, ...) under their prefix.
            var groups: [(String, Int, Int)] = []
            for (key, bytes) in try store.storedValues() {
                let group = key.contains("/text/") ? String(key[..<key.range(of: "/text/")!.upperBound]) + "*" : key
                if let last = groups.last, last.0 == group {
                    groups[groups.count - 1] = (group, last.1 + bytes, last.2 + 1)
                } else {
                    groups.append((group, bytes, 1))
                }
            }
            print("")
            for (group, bytes, n) in groups {
                let perToken = Double(bytes) / Double(max(1, h.tokens))
                print("  \(group.padding(toLength: 32, withPad: " ", startingAt: 0)) \(Formatting.bytes(bytes).padding(toLength: 11, withPad: " ", startingAt: 0)) \(String(format: "%.3f", perToken)) B/token\(n > 1 ? "  (\(n) values)" : "")")
            }
        }
    }
}
