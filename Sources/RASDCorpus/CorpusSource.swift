import Foundation
import RASDGGUF

/// What a corpus is read from: a directory or a file, which files of it (include / exclude
/// globs), and how files become documents (whole files, or JSON-lines records with one field).
public struct CorpusSource: Sendable {
    /// How files become documents.
    public enum Format: Sendable, Equatable {
        /// Each file is one document.
        case files
        /// Each line of each file is a JSON object; the string under `field` is one document.
        case jsonLines(field: String)
    }

    /// Name shown in progress and manifests (the named corpus, or the path's last component).
    public var name: String
    /// A directory (read recursively) or a single file.
    public var root: String
    /// Files are taken when they match any of these (all files when empty).
    public var include: [Glob]
    /// Files matching any of these are left out.
    public var exclude: [Glob]
    /// How files become documents.
    public var format: Format

    /// A corpus read from `root`.
    public init(name: String? = nil, root: String, include: [Glob] = [], exclude: [Glob] = [], format: Format = .files) {
        self.name = name ?? (root as NSString).lastPathComponent
        self.root = root
        self.include = include
        self.exclude = exclude
        self.format = format
    }
}

/// The manifest of a named corpus, `corpora/<name>/manifest.json` (see corpora/README.md).
public struct CorpusManifest: Codable, Sendable, Equatable {
    /// One upstream source of the corpus.
    public struct Source: Codable, Sendable, Equatable {
        public var kind: String
        public var package: String
        public var version: String
        public var sha256: String?
    }

    public var name: String
    public var description: String
    public var sources: [Source]
    public var licence: String
    /// The fetch script, relative to the manifest's directory.
    public var fetch: String
    /// Root of the documents, relative to the corpus cache directory.
    public var root: String
    public var include: [String]
    public var exclude: [String]
    /// `files` or `jsonl`.
    public var format: String
    /// The JSON field holding the text, for `jsonl`.
    public var field: String?
    public var notes: String?
}

/// The named corpora of a checkout (`corpora/<name>/manifest.json`) and where their fetched
/// text lives (`<rasd cache>/corpora/<name>/`).
public struct CorpusCatalog: Sendable {
    /// The directory holding one subdirectory per named corpus.
    public let directory: String
    /// The directory holding fetched corpora.
    public let cacheDirectory: String

    /// The catalog in `directory`, by default `$RASD_CORPORA`, else `./corpora`.
    public init(directory: String? = nil, cacheDirectory: String? = nil) {
        let env = ProcessInfo.processInfo.environment
        self.directory = directory ?? env["RASD_CORPORA"].flatMap { $0.isEmpty ? nil : $0 } ?? "corpora"
        self.cacheDirectory = cacheDirectory ?? (ReferenceModel.cacheDirectory + "/corpora")
    }

    /// Names of the corpora with a manifest, sorted.
    public func names() -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return entries.filter { FileManager.default.fileExists(atPath: "\(directory)/\($0)/manifest.json") }.sorted()
    }

    /// The manifest of the corpus called `name`.
    public func manifest(_ name: String) throws -> CorpusManifest {
        let path = "\(directory)/\(name)/manifest.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            let known = names()
            throw CorpusError(
                .unknownCorpus, name,
                "no such directory or file, and no named corpus \(path)" + (known.isEmpty ? " (run from the repository root, or set RASD_CORPORA)" : "; named corpora: \(known.joined(separator: ", "))"))
        }
        do {
            let m = try JSONDecoder().decode(CorpusManifest.self, from: data)
            guard m.format == "files" || (m.format == "jsonl" && m.field != nil) else {
                throw CorpusError(.invalidManifest, path, "format must be \"files\", or \"jsonl\" with a field")
            }
            return m
        } catch let e as CorpusError {
            throw e
        } catch {
            throw CorpusError(.invalidManifest, path, "cannot parse: \(error)")
        }
    }

    /// Where the corpus called `name` is fetched to.
    public func fetchedDirectory(_ name: String) -> String { "\(cacheDirectory)/\(name)" }

    /// Whether the corpus's fetch has completed (its `FETCHED` marker exists).
    public func isFetched(_ name: String) -> Bool {
        FileManager.default.fileExists(atPath: "\(fetchedDirectory(name))/FETCHED")
    }

    /// Path of the corpus's fetch script.
    public func fetchScript(_ name: String) throws -> String {
        "\(directory)/\(name)/\(try manifest(name).fetch)"
    }

    /// Runs the corpus's fetch script (idempotent), its output going to this process's.
    /// - Throws: ``CorpusError`` `.fetchFailed` when the script fails.
    public func fetch(_ name: String) throws {
        let script = try fetchScript(name)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["bash", script]
        var env = ProcessInfo.processInfo.environment
        env["RASD_CACHE"] = (cacheDirectory as NSString).deletingLastPathComponent
        process.environment = env
        do {
            try process.run()
        } catch {
            throw CorpusError(.fetchFailed, script, "cannot run: \(error)")
        }
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CorpusError(.fetchFailed, script, "exited with status \(process.terminationStatus)")
        }
    }

    /// The source of the named corpus.
    /// - Throws: ``CorpusError`` `.notFetched` when its text is not there yet.
    public func source(_ name: String) throws -> CorpusSource {
        let m = try manifest(name)
        guard isFetched(name) else {
            throw CorpusError(.notFetched, name, "the corpus is not fetched yet (\(fetchedDirectory(name)))")
        }
        return CorpusSource(
            name: m.name,
            root: "\(fetchedDirectory(name))/\(m.root)",
            include: try m.include.map(Glob.init),
            exclude: try m.exclude.map(Glob.init),
            format: m.format == "jsonl" ? .jsonLines(field: m.field ?? "text") : .files)
    }
}

extension CorpusCatalog {
    /// The source a command-line argument names: a named corpus when the argument is a bare
    /// name with a manifest (fetched first when `fetchIfMissing`), else an existing file or
    /// directory (with the given globs, and JSON lines when `field` is set). Write `./docs`
    /// for a directory that shares a corpus's name.
    public func resolve(
        _ argument: String, include: [String] = [], exclude: [String] = [], field: String? = nil,
        fetchIfMissing: Bool = true
    ) throws -> CorpusSource {
        let named = !argument.contains("/") && names().contains(argument)
        if !named && FileManager.default.fileExists(atPath: argument) {
            return CorpusSource(
                root: argument, include: try include.map(Glob.init), exclude: try exclude.map(Glob.init),
                format: field.map { .jsonLines(field: $0) } ?? .files)
        }
        _ = try manifest(argument)
        if !isFetched(argument) && fetchIfMissing { try fetch(argument) }
        var source = try self.source(argument)
        if !include.isEmpty { source.include = try include.map(Glob.init) }
        source.exclude += try exclude.map(Glob.init)
        if let field { source.format = .jsonLines(field: field) }
        return source
    }
}
