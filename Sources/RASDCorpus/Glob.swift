#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A path pattern for `--include` / `--exclude`, matched against paths relative to the corpus
/// root. `*`, `?` and `[...]` match within one path component (POSIX `fnmatch`); a `**`
/// component matches any number of directories. A pattern without `/` matches the file name at
/// any depth (`*.py` is `**/*.py`), as in `.gitignore`.
public struct Glob: Sendable, Hashable, CustomStringConvertible {
    /// The pattern as written.
    public let pattern: String
    private let components: [String]

    /// Compiles `pattern`.
    /// - Throws: ``CorpusError`` `.invalidPattern` for an empty pattern or an absolute one.
    public init(_ pattern: String) throws {
        guard !pattern.isEmpty else { throw CorpusError(.invalidPattern, "''", "empty pattern") }
        guard !pattern.hasPrefix("/") else {
            throw CorpusError(.invalidPattern, pattern, "patterns are relative to the corpus root; drop the leading /")
        }
        self.pattern = pattern
        let parts = pattern.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        components = parts.count == 1 ? ["**", parts[0]] : parts
    }

    public var description: String { pattern }

    /// Whether `path` (relative, `/`-separated) matches.
    public func matches(_ path: String) -> Bool {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        return Self.match(components[...], parts[...])
    }

    private static func match(_ pattern: ArraySlice<String>, _ path: ArraySlice<String>) -> Bool {
        guard let head = pattern.first else { return path.isEmpty }
        if head == "**" {
            let rest = pattern.dropFirst()
            var p = path
            while true {
                if match(rest, p) { return true }
                guard !p.isEmpty else { return false }
                p = p.dropFirst()
            }
        }
        guard let first = path.first, fnmatch(head, first, 0) == 0 else { return false }
        return match(pattern.dropFirst(), path.dropFirst())
    }
}
