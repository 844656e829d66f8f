/// Constants of the rasd retrieval protocol (`docs/protocol.md` is the specification).
///
/// Every message is a frame: a 12-byte little-endian header (payload length `u32`, message type
/// `u16`, flags `u16`, request id `u32`) followed by the payload. A reply echoes the request id
/// of the request it answers; replies come in request order on a connection.
public enum ServiceProtocol {
    /// Protocol major version: a server refuses clients of another major version.
    public static let majorVersion: UInt16 = 1
    /// Protocol minor version: additions that older peers of the same major version ignore.
    public static let minorVersion: UInt16 = 0
    /// Bytes of a frame header.
    public static let headerBytes = 12
    /// The four bytes every HELLO payload starts with ("RASD").
    public static let magic: [UInt8] = Array("RASD".utf8)
    /// Default largest payload a server accepts (4 MiB), settable with `--max-frame-bytes`.
    public static let defaultMaxFrameBytes = 4 << 20
    /// Smallest `maxFrameBytes` a server may be configured with (every fixed-size message fits).
    public static let minimumMaxFrameBytes = 4096
    /// Most contexts one RETRIEVE_BATCH request may carry.
    public static let maxBatchContexts = 65_536
    /// Most retrieval tries one TREE_FUSE request may carry.
    public static let maxFuseRetrievals = 64
}

/// The type of a frame. Requests have the high bit clear; the reply to request type `t` has type
/// `t | 0x8000`; an error reply has type ``error`` whatever the request was.
public struct MessageType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Handshake: magic, protocol version, client name. Must be the first frame.
    public static let hello = MessageType(rawValue: 0x0001)
    /// The open datastores (JSON reply).
    public static let list = MessageType(rawValue: 0x0002)
    /// Counters, latency percentiles, datastores, memory (JSON or Prometheus text reply).
    public static let stats = MessageType(rawValue: 0x0003)
    /// Reopen datastores whose files changed (JSON reply).
    public static let reload = MessageType(rawValue: 0x0004)
    /// One retrieval: datastore, parameters, context; the reply is the candidate trie.
    public static let retrieve = MessageType(rawValue: 0x0010)
    /// Many contexts against one datastore, answered in one reply.
    public static let retrieveBatch = MessageType(rawValue: 0x0011)
    /// Prune retrieval tries with the drafter's root top-k, fuse with a draft tree, lay out.
    public static let treeFuse = MessageType(rawValue: 0x0020)
    /// Greedy acceptance over a layout.
    public static let treeAcceptGreedy = MessageType(rawValue: 0x0021)
    /// Sampling acceptance (recursive rejection) over a layout, seeded.
    public static let treeAcceptSampling = MessageType(rawValue: 0x0022)
    /// An error reply: code and message.
    public static let error = MessageType(rawValue: 0xFFFF)

    /// Every request type this version defines.
    public static let requests: [MessageType] = [
        .hello, .list, .stats, .reload, .retrieve, .retrieveBatch, .treeFuse, .treeAcceptGreedy, .treeAcceptSampling,
    ]

    /// True for replies (high bit set).
    public var isReply: Bool { rawValue & 0x8000 != 0 }

    /// The reply type of this request type.
    public var reply: MessageType { MessageType(rawValue: rawValue | 0x8000) }

    /// The request type a reply answers.
    public var request: MessageType { MessageType(rawValue: rawValue & 0x7FFF) }

    /// A short lowercase name, used in stats and logs.
    public var name: String {
        switch self.request {
        case .hello: return "hello"
        case .list: return "list"
        case .stats: return "stats"
        case .reload: return "reload"
        case .retrieve: return "retrieve"
        case .retrieveBatch: return "retrieve_batch"
        case .treeFuse: return "tree_fuse"
        case .treeAcceptGreedy: return "tree_accept_greedy"
        case .treeAcceptSampling: return "tree_accept_sampling"
        default: return self == .error ? "error" : "unknown"
        }
    }

    public var description: String { "\(name) (0x\(String(rawValue, radix: 16)))" }
}

/// Frame flags.
public struct FrameFlags: OptionSet, Hashable, Sendable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// On a reply: the server closes the connection after this frame (a connection-fatal error).
    public static let closing = FrameFlags(rawValue: 1 << 0)
}

/// A frame header.
public struct FrameHeader: Hashable, Sendable {
    /// Payload bytes after the header.
    public var length: UInt32
    /// The message type.
    public var type: MessageType
    /// Flags.
    public var flags: FrameFlags
    /// Request id, echoed by the reply.
    public var requestID: UInt32

    public init(length: UInt32, type: MessageType, flags: FrameFlags = [], requestID: UInt32) {
        self.length = length
        self.type = type
        self.flags = flags
        self.requestID = requestID
    }

    /// Reads a header from the first 12 bytes of `bytes`.
    init(_ bytes: UnsafeRawBufferPointer) {
        length = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
        type = MessageType(rawValue: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 4, as: UInt16.self)))
        flags = FrameFlags(rawValue: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 6, as: UInt16.self)))
        requestID = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
    }
}
