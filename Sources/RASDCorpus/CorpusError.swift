/// An error reading a corpus, naming the input and what to do about it.
public struct CorpusError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong.
    public enum Kind: Sendable, Equatable {
        /// The path does not exist or cannot be listed.
        case notFound
        /// No named corpus has this name.
        case unknownCorpus
        /// The named corpus exists but its text has not been fetched.
        case notFetched
        /// A corpus manifest is missing, unreadable or invalid.
        case invalidManifest
        /// A file had to be skipped and strict mode forbids skipping.
        case strict
        /// A glob pattern is malformed.
        case invalidPattern
        /// Fetching a named corpus failed.
        case fetchFailed
    }

    /// What went wrong.
    public var kind: Kind
    /// The corpus, file or pattern concerned.
    public var subject: String
    /// Details, written for the person running the program.
    public var message: String

    /// Creates an error of `kind` about `subject`.
    public init(_ kind: Kind, _ subject: String, _ message: String) {
        self.kind = kind
        self.subject = subject
        self.message = message
    }

    public var description: String {
        let hint: String
        switch kind {
        case .notFound: hint = "check the path"
        case .unknownCorpus: hint = "pass a directory or file, or one of the named corpora under corpora/"
        case .notFetched: hint = "run the corpus's fetch script (rasd-index corpus fetch NAME does)"
        case .invalidManifest: hint = "fix the manifest (see corpora/README.md)"
        case .strict: hint = "fix or exclude the file, or run without --strict to skip it with a warning"
        case .invalidPattern: hint = "use * ? [..] and **/ in --include/--exclude patterns"
        case .fetchFailed: hint = "see the fetch script's messages above; it is safe to run again"
        }
        return "\(subject): \(message) (\(hint))"
    }
}
