import ArgumentParser
import Foundation
import RASDTrees

/// Output helpers shared by the subcommands.
enum Formatting {
    static func bytes(_ n: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n)
        var u = 0
        while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
        return u == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[u])
    }

    static func json<T: Encodable>(_ value: T) throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return String(decoding: try e.encode(value), as: UTF8.self)
    }

    /// The stable JSON form of a retrieval answer (other programs read these names).
    static func json(_ t: CandidateTrie) -> String {
        func list<T>(_ a: [T]) -> String { "[" + a.map { "\($0)" }.joined(separator: ",") + "]" }
        return "{\"matchLength\":\(t.matchLength),\"occurrences\":\(t.occurrences),\"sampled\":\(t.sampled),"
            + "\"tokens\":\(list(t.tokens)),\"parents\":\(list(t.parents)),\"counts\":\(list(t.counts))}"
    }

    /// An indented tree, children under their parent.
    static func tree(_ t: CandidateTrie) -> String {
        var children = [[Int]](repeating: [], count: t.count + 1)
        for i in 0..<t.count { children[Int(t.parents[i]) + 1].append(i) }
        var lines: [String] = []
        func walk(_ node: Int, _ indent: Int) {
            for c in children[node + 1] {
                lines.append(String(repeating: "  ", count: indent) + "\(t.tokens[c])  ×\(t.counts[c])")
                walk(c, indent + 1)
            }
        }
        walk(-1, 0)
        return lines.joined(separator: "\n")
    }
}

/// Parsing of comma-separated token id lists.
enum TokenList {
    static func parse(_ text: String, option: String) throws -> [UInt32] {
        let parts = text.split(whereSeparator: { $0 == "," || $0 == " " })
        var ids: [UInt32] = []
        for p in parts {
            guard let v = UInt32(p) else { throw ValidationError("\(option): \"\(p)\" is not a token id (a non-negative integer)") }
            ids.append(v)
        }
        return ids
    }
}
