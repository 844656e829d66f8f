#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An error from building, opening, querying or verifying a datastore.
///
/// Every error names the file or datastore concerned and says what to do; `description` is
/// meant to be printed as is.
public struct DatastoreError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong.
    public enum Kind: Sendable, Equatable {
        /// The path does not exist.
        case notFound
        /// The path exists but is not a rasd datastore (no header, another program's LMDB).
        case notADatastore
        /// The datastore was written by a newer rasd with a format this build cannot read.
        case newerFormat
        /// Stored bytes fail their checksum or are inconsistent.
        case corrupt
        /// The datastore was built with a different tokenizer than the caller expects.
        case tokenizerMismatch
        /// A token id is not below the vocabulary size.
        case tokenOutOfRange
        /// The corpus has no tokens.
        case emptyCorpus
        /// An input file is shorter than its structure says, or malformed.
        case badInput
        /// The output exists and `force` was not given.
        case alreadyExists
        /// An invalid argument (parameters, options).
        case invalidArgument
        /// The disk is full or a file size limit was hit.
        case diskFull
        /// A system call failed (permissions, I/O).
        case io
        /// LMDB returned an error.
        case lmdb
        /// zstd returned an error.
        case zstd
    }

    /// What went wrong.
    public var kind: Kind
    /// The file or datastore concerned.
    public var path: String
    /// What happened, for the person running the program.
    public var message: String
    /// The system or library error code, when there is one (errno, an LMDB or zstd code).
    public var code: Int32?

    /// Creates an error.
    public init(_ kind: Kind, path: String, _ message: String, code: Int32? = nil) {
        self.kind = kind
        self.path = path
        self.message = message
        self.code = code
    }

    /// An error from a failed system call, classified by `errno`.
    static func system(_ what: String, path: String, errno e: Int32 = errno) -> DatastoreError {
        let text = String(cString: strerror(e))
        switch e {
        case ENOSPC, EDQUOT, EFBIG:
            return DatastoreError(.diskFull, path: path, "\(what): \(text)", code: e)
        case ENOENT:
            return DatastoreError(.notFound, path: path, "\(what): \(text)", code: e)
        default:
            return DatastoreError(.io, path: path, "\(what): \(text)", code: e)
        }
    }

    public var description: String {
        let hint: String
        switch kind {
        case .notFound: hint = "check the path; build a datastore with `rasd-index build corpus ... --output <dir>`"
        case .notADatastore: hint = "point at a directory written by `rasd-index build`"
        case .newerFormat: hint = "upgrade rasd, or rebuild the datastore with this version"
        case .corrupt: hint = "the datastore is damaged; rebuild it (`rasd-index verify` lists what is wrong)"
        case .tokenizerMismatch: hint = "use the tokenizer the datastore was built with, or rebuild it with this one"
        case .tokenOutOfRange: hint = "token ids must be below the vocabulary size; check the tokenizer and --vocab-size"
        case .emptyCorpus: hint = "give a corpus with at least one non-empty document"
        case .badInput: hint = "check the input files"
        case .alreadyExists: hint = "pass --force to replace it (the old datastore stays intact until the new one is complete)"
        case .invalidArgument: hint = "see --help"
        case .diskFull: hint = "free disk space or raise the file size limit; nothing was left behind"
        case .io: hint = "check permissions and the disk"
        case .lmdb, .zstd: hint = "this is unexpected; please report it with the command that caused it"
        }
        return "\(path): \(message) (\(hint))"
    }
}
