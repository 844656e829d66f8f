/// An error from the retrieval service: sent by the server as an error reply, or raised by the
/// client when it cannot reach the server or the server's reply makes no sense.
///
/// `description` says what happened and what to do, and is meant to be printed as is.
public struct ServiceError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What went wrong. Codes below 256 travel on the wire (`docs/protocol.md` lists them);
    /// codes from 256 up are raised by the client only. Unknown codes from a newer server are
    /// kept as they are.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }

        // Connection-fatal: the server replies, then closes the connection.

        /// A frame could not be read: a reserved field is set or a reply type was sent.
        public static let malformedFrame = Code(rawValue: 1)
        /// A frame's payload is larger than the server's limit.
        public static let frameTooLarge = Code(rawValue: 2)
        /// The client's protocol major version differs from the server's.
        public static let unsupportedVersion = Code(rawValue: 3)
        /// The first frame was not a HELLO, or the HELLO was malformed.
        public static let handshakeRequired = Code(rawValue: 4)
        /// The server already serves its maximum number of connections.
        public static let tooManyConnections = Code(rawValue: 5)

        // Request-level: the connection stays open.

        /// The message type is not one this server knows.
        public static let unknownMessageType = Code(rawValue: 16)
        /// The payload does not parse as the message type says (truncated, trailing bytes,
        /// counts that do not fit).
        public static let malformedRequest = Code(rawValue: 17)
        /// No datastore of that name is open.
        public static let unknownDatastore = Code(rawValue: 18)
        /// A context token id is not below the datastore's vocabulary size.
        public static let tokenOutOfRange = Code(rawValue: 19)
        /// Retrieval parameters or other numeric arguments are out of range.
        public static let invalidParameters = Code(rawValue: 20)
        /// A tree operation's input is invalid (parents out of order, bad probabilities, a
        /// layout not produced by TREE_FUSE, predictions that do not fit the layout).
        public static let invalidTree = Code(rawValue: 21)
        /// Reopening one or more datastores failed; they keep serving their previous version.
        public static let reloadFailed = Code(rawValue: 22)
        /// The server failed to answer (a damaged datastore, an unexpected internal error).
        public static let serverFailure = Code(rawValue: 23)

        // Client-side only.

        /// The client could not connect to the socket.
        public static let cannotConnect = Code(rawValue: 256)
        /// The connection closed before the reply arrived.
        public static let disconnected = Code(rawValue: 257)
        /// The server did not answer within the client's timeout.
        public static let timedOut = Code(rawValue: 258)
        /// The server's reply does not follow the protocol.
        public static let invalidReply = Code(rawValue: 259)
        /// The request is larger than the server accepts (checked before sending).
        public static let requestTooLarge = Code(rawValue: 260)

        /// Every code this version defines.
        public static let all: [Code] = [
            .malformedFrame, .frameTooLarge, .unsupportedVersion, .handshakeRequired, .tooManyConnections,
            .unknownMessageType, .malformedRequest, .unknownDatastore, .tokenOutOfRange, .invalidParameters,
            .invalidTree, .reloadFailed, .serverFailure,
            .cannotConnect, .disconnected, .timedOut, .invalidReply, .requestTooLarge,
        ]

        /// True when the server closes the connection after sending this error.
        public var closesConnection: Bool { rawValue >= 1 && rawValue < 16 }

        /// The snake-case name used in stats, metrics and the protocol document.
        public var name: String {
            switch self {
            case .malformedFrame: return "malformed_frame"
            case .frameTooLarge: return "frame_too_large"
            case .unsupportedVersion: return "unsupported_version"
            case .handshakeRequired: return "handshake_required"
            case .tooManyConnections: return "too_many_connections"
            case .unknownMessageType: return "unknown_message_type"
            case .malformedRequest: return "malformed_request"
            case .unknownDatastore: return "unknown_datastore"
            case .tokenOutOfRange: return "token_out_of_range"
            case .invalidParameters: return "invalid_parameters"
            case .invalidTree: return "invalid_tree"
            case .reloadFailed: return "reload_failed"
            case .serverFailure: return "server_failure"
            case .cannotConnect: return "cannot_connect"
            case .disconnected: return "disconnected"
            case .timedOut: return "timed_out"
            case .invalidReply: return "invalid_reply"
            case .requestTooLarge: return "request_too_large"
            default: return "code_\(rawValue)"
            }
        }

        public var description: String { name }
    }

    /// What went wrong.
    public var code: Code
    /// What happened, naming the input at fault.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// True when the server closes the connection after this error (the client must reconnect).
    public var closesConnection: Bool { code.closesConnection }

    /// What the user can do about it.
    public var hint: String {
        switch code {
        case .malformedFrame, .malformedRequest, .invalidReply:
            return "the client and server disagree on the wire format; use a client of the server's protocol version (docs/protocol.md)"
        case .frameTooLarge, .requestTooLarge:
            return "send smaller requests (split the batch), or start the server with a larger --max-frame-bytes"
        case .unsupportedVersion: return "use a client and server of the same protocol major version"
        case .handshakeRequired: return "send HELLO first (docs/protocol.md, \"Handshake\")"
        case .tooManyConnections: return "close idle connections, or start the server with a larger --max-connections"
        case .unknownMessageType: return "this server is older than the client; upgrade the server"
        case .unknownDatastore: return "list the open datastores with `rasd-index stats --socket ...`, or start the server with --datastore NAME=PATH"
        case .tokenOutOfRange: return "token ids must be below the datastore's vocabulary size; check that the client uses the datastore's tokenizer"
        case .invalidParameters: return "see the limits in docs/protocol.md"
        case .invalidTree: return "pass parents before children, probabilities in [0, 1], and a layout exactly as TREE_FUSE returned it"
        case .reloadFailed: return "the previous version keeps serving; fix or rebuild the datastore and reload again"
        case .serverFailure: return "the server's log has details; `rasd-index verify` checks a datastore"
        case .cannotConnect: return "start the daemon with `rasd-index serve --socket ...`, and check the path and its permissions"
        case .disconnected: return "the server closed the connection (it stopped, restarted or dropped a slow client); reconnect"
        case .timedOut: return "the server is overloaded or stuck; retry, or raise the client's timeout"
        default: return "see docs/protocol.md"
        }
    }

    public var description: String { "\(message) (\(hint))" }
}
