import Foundation
import RASDCorpus
import RASDGGUF
import RASDTokenizer
import Testing

let tokenizer: Tokenizer = {
    do { return try Tokenizer(contentsOf: try ReferenceModel.existingPath()) } catch { fatalError("tests need the reference model: \(error)") }
}()

/// A small corpus with every kind of bad file, written fresh for each test.
struct Fixture {
    let root: String
    let texts: [String: String]  // relative path -> text of the good files

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("rasd-corpus-\(UUID().uuidString)").path
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/b/deep", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: root + "/.git", withIntermediateDirectories: true)
        texts = [
            "a.py": "def f(x):\n    return x + 1\n",
            "b/c.py": "# café ☕ 12345\nclass C: pass\n",
            "b/deep/z.py": String(repeating: "print('hello world')\n", count: 200),
            "Ä.py": "ünïcödé = 'name'\n",
        ]
        for (path, text) in texts { try Data(text.utf8).write(to: URL(fileURLWithPath: "\(root)/\(path)")) }
        try Data("notes\n".utf8).write(to: URL(fileURLWithPath: root + "/b/d.txt"))
        try Data("hidden = 1\n".utf8).write(to: URL(fileURLWithPath: root + "/.git/x.py"))
        try Data().write(to: URL(fileURLWithPath: root + "/empty.py"))
        try Data([0x7F, 0x45, 0x4C, 0x46, 0, 0, 1, 2]).write(to: URL(fileURLWithPath: root + "/binary.py"))
        try Data([0x78, 0x20, 0x3D, 0x20, 0x27, 0xE9, 0x27, 0x0A]).write(to: URL(fileURLWithPath: root + "/latin1.py"))  // x = 'é' in Latin-1
        try fm.createSymbolicLink(atPath: root + "/broken.py", withDestinationPath: root + "/nowhere.py")
        try fm.createSymbolicLink(atPath: root + "/loop", withDestinationPath: root)  // a directory link: not followed
    }

    func remove() { try? FileManager.default.removeItem(atPath: root) }

    func source(include: [String] = ["*.py"], exclude: [String] = []) throws -> CorpusSource {
        CorpusSource(root: root, include: try include.map(Glob.init), exclude: try exclude.map(Glob.init))
    }
}

func sha256sum(_ path: String) throws -> String {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
    p.arguments = [path]
    let pipe = Pipe()
    p.standardOutput = pipe
    try p.run()
    let out = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return String(decoding: out, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
}

@Suite struct CorpusReaderTests {
    @Test func goodFilesBecomeDocumentsInSortedOrderWithManifestEntries() throws {
        let fx = try Fixture()
        defer { fx.remove() }
        var docs: [CorpusDocument] = []
        var warnings: [CorpusWarning] = []
        let summary = try CorpusReader(source: try fx.source(), tokenizer: tokenizer)
            .read(warning: { warnings.append($0) }, document: { docs.append($0) })
        // Byte order of the UTF-8 paths: "Ä" (C3 84) sorts after ASCII.
        #expect(docs.map(\.entry.path) == ["a.py", "b/c.py", "b/deep/z.py", "Ä.py"])
        #expect(docs.map(\.index) == [0, 1, 2, 3])
        for d in docs {
            let text = try #require(fx.texts[d.entry.path])
            #expect(d.tokens == tokenizer.encode(text))
            #expect(d.entry.tokenCount == d.tokens.count && d.entry.byteCount == text.utf8.count)
            #expect(d.entry.sha256 == (try sha256sum("\(fx.root)/\(d.entry.path)")))
        }
        #expect(summary.documents == 4 && summary.tokens == docs.reduce(0) { $0 + $1.tokens.count })
        #expect(summary.skipped == [.empty: 1, .binary: 1, .invalidUTF8: 1, .unreadable: 1])
        #expect(warnings.map(\.path) == ["binary.py", "broken.py", "empty.py", "latin1.py"])
        #expect(warnings.first { $0.path == "latin1.py" }?.detail.contains("byte 5") == true)
    }

    @Test func strictModeFailsOnTheFirstBadFileButNotOnEmptyOnes() throws {
        let fx = try Fixture()
        defer { fx.remove() }
        var options = CorpusReader.Options()
        options.strict = true
        let error = try #require(throws: CorpusError.self) {
            try CorpusReader(source: try fx.source(), tokenizer: tokenizer, options: options).read { _ in }
        }
        #expect(error.kind == .strict && error.subject == "binary.py" && error.description.contains("--strict"))
        // Only empty files left: strict passes.
        let onlyGood = try fx.source(exclude: ["binary.py", "broken.py", "latin1.py"])
        let summary = try CorpusReader(source: onlyGood, tokenizer: tokenizer, options: options).read { _ in }
        #expect(summary.documents == 4 && summary.skipped == [.empty: 1])
    }

    @Test func orderAndContentDoNotDependOnWorkersOrMemoryBudget() throws {
        let fx = try Fixture()
        defer { fx.remove() }
        func run(_ workers: Int, _ budget: Int) throws -> [CorpusManifestEntry] {
            var options = CorpusReader.Options()
            options.parallelism = workers
            options.maxInFlightBytes = budget
            var entries: [CorpusManifestEntry] = []
            try CorpusReader(source: try fx.source(include: []), tokenizer: tokenizer, options: options).read { entries.append($0.entry) }
            return entries
        }
        let reference = try run(1, 1 << 30)
        #expect(reference.map(\.path).contains("b/d.txt") && !reference.map(\.path).contains(".git/x.py"))
        for (w, b) in [(2, 1), (3, 10), (8, 1 << 30)] { #expect(try run(w, b) == reference) }
    }

    @Test func anErrorFromTheConsumerStopsTheRead() throws {
        let fx = try Fixture()
        defer { fx.remove() }
        struct Stop: Error {}
        var seen = 0
        #expect(throws: Stop.self) {
            try CorpusReader(source: try fx.source(), tokenizer: tokenizer).read { _ in
                seen += 1
                throw Stop()
            }
        }
        #expect(seen == 1)
    }

    @Test func tooLargeFilesAreSkippedAndProgressAddsUp() throws {
        let fx = try Fixture()
        defer { fx.remove() }
        var options = CorpusReader.Options()
        options.maxDocumentBytes = 1000
        var last: CorpusProgress?
        let summary = try CorpusReader(source: try fx.source(), tokenizer: tokenizer, options: options)
            .read(progress: { last = $0 }, document: { _ in })
        #expect(summary.skipped[.tooLarge] == 1 && summary.documents == 3)
        let p = try #require(last)
        #expect(p.filesDone == p.filesTotal && p.filesTotal == 8 && p.tokens == summary.tokens && p.fraction == 1)
    }

    @Test func missingRootIsAnError() throws {
        let error = try #require(throws: CorpusError.self) {
            try CorpusReader(source: CorpusSource(root: "/nonexistent/corpus"), tokenizer: tokenizer).read { _ in }
        }
        #expect(error.kind == .notFound && error.description.contains("/nonexistent/corpus"))
    }

    @Test func unreadableFileWithoutPermission() throws {
        guard getuid() != 0 else { return }  // root reads everything; the dangling link covers it
        let fx = try Fixture()
        defer { fx.remove() }
        chmod(fx.root + "/a.py", 0)
        var warnings: [CorpusWarning] = []
        try CorpusReader(source: try fx.source(), tokenizer: tokenizer).read(warning: { warnings.append($0) }, document: { _ in })
        #expect(warnings.contains { $0.path == "a.py" && $0.reason == .unreadable })
    }

    @Test func jsonLinesRecordsWithAField() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rasd-jsonl-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let lines = [
            #"{"id": 1, "text": "First paper.\nWith two lines."}"#,
            #"{"id": 2, "body": "no text field"}"#,
            "not json at all",
            "",
            #"{"id": 3, "text": ""}"#,
            #"["an", "array"]"#,
            #"{"id": 4, "text": "Ünïcode \u00e9 and escapes \"quoted\""}"#,
        ]
        try Data(lines.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: dir + "/papers.jsonl"))
        var docs: [CorpusDocument] = []
        var warnings: [CorpusWarning] = []
        let source = CorpusSource(root: dir, format: .jsonLines(field: "text"))
        let summary = try CorpusReader(source: source, tokenizer: tokenizer).read(warning: { warnings.append($0) }, document: { docs.append($0) })
        #expect(docs.map(\.entry.path) == ["papers.jsonl:1", "papers.jsonl:7"])
        #expect(docs[0].tokens == tokenizer.encode("First paper.\nWith two lines."))
        #expect(docs[1].tokens == tokenizer.encode("Ünïcode é and escapes \"quoted\""))
        #expect(warnings.map(\.path) == ["papers.jsonl:2", "papers.jsonl:3", "papers.jsonl:5", "papers.jsonl:6"])
        #expect(summary.skipped == [.missingField: 1, .invalidJSON: 2, .empty: 1])
    }
}

@Suite struct GlobTests {
    @Test func patternsMatchLikeGitignore() throws {
        let py = try Glob("*.py")
        #expect(py.matches("a.py") && py.matches("x/y/a.py") && !py.matches("a.pyc") && !py.matches("a.py/x"))
        let sub = try Glob("b/*.py")
        #expect(sub.matches("b/c.py") && !sub.matches("b/x/c.py") && !sub.matches("c.py"))
        let deep = try Glob("**/*.rst.txt")
        #expect(deep.matches("faq/general.rst.txt") && deep.matches("index.rst.txt") && !deep.matches("index.rst"))
        let tree = try Glob("test/**")
        #expect(tree.matches("test/a.py") && tree.matches("test/x/y.py") && !tree.matches("lib/test.py"))
        let set = try Glob("[ab]?.txt")
        #expect(set.matches("a1.txt") && !set.matches("c1.txt"))
        #expect(throws: CorpusError.self) { try Glob("") }
        #expect(throws: CorpusError.self) { try Glob("/abs/*.py") }
    }
}

@Suite struct CorpusCatalogTests {
    static let repositoryCorpora = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("corpora").path

    @Test func theRepositoryManifestsParse() throws {
        let catalog = CorpusCatalog(directory: Self.repositoryCorpora)
        #expect(catalog.names() == ["code", "docs", "papers"])
        for name in catalog.names() {
            let m = try catalog.manifest(name)
            #expect(m.name == name && !m.licence.isEmpty && !m.sources.isEmpty)
            #expect(FileManager.default.isExecutableFile(atPath: try catalog.fetchScript(name)))
            for pattern in m.include + m.exclude { _ = try Glob(pattern) }
        }
        #expect(try catalog.manifest("papers").field == "text")
    }

    @Test func namedCorporaResolveOnlyWhenFetched() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("rasd-catalog-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: base) }
        try FileManager.default.createDirectory(atPath: base + "/corpora/tiny", withIntermediateDirectories: true)
        let manifest = """
            {"name": "tiny", "description": "test", "sources": [{"kind": "test", "package": "none", "version": "1"}],
             "licence": "CC0", "fetch": "fetch", "root": "data", "include": ["*.txt"], "exclude": [], "format": "files"}
            """
        try Data(manifest.utf8).write(to: URL(fileURLWithPath: base + "/corpora/tiny/manifest.json"))
        let catalog = CorpusCatalog(directory: base + "/corpora", cacheDirectory: base + "/cache")
        let notFetched = try #require(throws: CorpusError.self) { try catalog.resolve("tiny", fetchIfMissing: false) }
        #expect(notFetched.kind == .notFetched)
        let unknown = try #require(throws: CorpusError.self) { try catalog.resolve("nosuch") }
        #expect(unknown.kind == .unknownCorpus && unknown.description.contains("tiny"))

        try FileManager.default.createDirectory(atPath: base + "/cache/tiny/data", withIntermediateDirectories: true)
        try Data("hello\n".utf8).write(to: URL(fileURLWithPath: base + "/cache/tiny/data/a.txt"))
        try Data("skip me\n".utf8).write(to: URL(fileURLWithPath: base + "/cache/tiny/data/b.md"))
        try Data().write(to: URL(fileURLWithPath: base + "/cache/tiny/FETCHED"))
        var paths: [String] = []
        try CorpusReader(source: try catalog.resolve("tiny"), tokenizer: tokenizer).read { paths.append($0.entry.path) }
        #expect(paths == ["a.txt"])
    }
}
