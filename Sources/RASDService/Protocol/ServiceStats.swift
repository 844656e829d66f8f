/// What a STATS request returns as JSON (and `rasd-index stats --json` prints).
public struct ServiceStats: Codable, Sendable, Equatable {
    /// Server name and version.
    public var server: String
    /// Protocol version, "major.minor".
    public var protocolVersion: String
    /// The daemon's process id.
    public var pid: Int
    /// The socket it listens on.
    public var socket: String
    /// When it started (ISO 8601).
    public var startedAt: String
    /// Seconds since it started.
    public var uptimeSeconds: Double
    /// Connection counters.
    public var connections: Connections
    /// Requests by message type name (`retrieve`, `retrieve_batch`, ...).
    public var requests: [String: RequestStats]
    /// Contexts answered by RETRIEVE and RETRIEVE_BATCH (a batch counts each context).
    public var retrievals: Int
    /// Error replies by code name (`unknown_datastore`, ...), plus `timeouts` for connections
    /// dropped because a client stalled mid-frame or stopped reading.
    public var errors: [String: Int]
    /// Open datastores, by name.
    public var datastores: [DatastoreDescription]
    /// Reload counters.
    public var reloads: Reloads
    /// The daemon's memory.
    public var memory: Memory

    public struct Connections: Codable, Sendable, Equatable {
        /// Open now.
        public var open: Int
        /// Accepted since start.
        public var accepted: Int
        /// Refused because `maxConnections` were open.
        public var rejected: Int
        /// The limit.
        public var max: Int
    }

    public struct RequestStats: Codable, Sendable, Equatable {
        /// Requests of this type answered (successfully or with an error).
        public var count: Int
        /// Of those, answered with an error.
        public var errors: Int
        /// Server-side handling time (from the full request to the encoded reply), microseconds.
        public var latencyMicroseconds: Percentiles
    }

    /// Latency percentiles from a log-linear histogram (within about 3% of the true value).
    public struct Percentiles: Codable, Sendable, Equatable {
        public var p50: Double
        public var p90: Double
        public var p99: Double
        public var p999: Double
        public var max: Double
        public var mean: Double
    }

    public struct Reloads: Codable, Sendable, Equatable {
        /// Reload requests and SIGHUPs handled.
        public var requests: Int
        /// Datastores reopened because their files changed.
        public var reopened: Int
        /// Datastores that failed to reopen (and kept serving their previous version).
        public var failures: Int
    }

    public struct Memory: Codable, Sendable, Equatable {
        /// Resident set size.
        public var residentBytes: Int
        /// Resident anonymous memory (heap, stacks): the daemon's own overhead.
        public var residentAnonymousBytes: Int
        /// Resident file-backed memory (mostly the datastores' mapped pages).
        public var residentFileBytes: Int
        /// Sum of the open datastores' file sizes (what mapping them can make resident).
        public var mappedDatastoreBytes: Int
    }
}

/// An open datastore, as LIST and STATS describe it.
public struct DatastoreDescription: Codable, Sendable, Equatable {
    /// The name requests use.
    public var name: String
    /// Its directory.
    public var path: String
    /// Token ids must be below this.
    public var vocabularySize: Int
    /// Tokens indexed.
    public var tokens: Int
    /// Documents indexed.
    public var documents: Int
    /// Bytes of its files (the mapped size).
    public var bytesOnDisk: Int
    /// The tokenizer it was built with (name and fingerprint), when recorded.
    public var tokenizer: String?
    /// 1 when first opened, +1 for every reload that reopened it.
    public var generation: Int
    /// When this generation was opened (ISO 8601).
    public var openedAt: String
}

/// What a reload did to one datastore.
public struct ReloadOutcome: Codable, Sendable, Equatable {
    /// What happened.
    public enum Status: String, Codable, Sendable {
        /// Its files changed and the new version was opened; new requests use it.
        case reloaded
        /// Its files are the ones already open.
        case unchanged
        /// Reopening failed; the previous version keeps serving.
        case failed
    }

    public var name: String
    public var path: String
    public var status: Status
    /// The generation serving after the reload.
    public var generation: Int
    /// Why it failed (for `failed`).
    public var error: String?
}

/// The JSON of a LIST reply.
public struct DatastoreList: Codable, Sendable, Equatable {
    public var datastores: [DatastoreDescription]
}

/// The JSON of a RELOAD reply.
public struct ReloadReport: Codable, Sendable, Equatable {
    public var datastores: [ReloadOutcome]
}
