/// The HELLO a client sends first: magic "RASD", `u16` major, `u16` minor, client name.
public struct ClientHello: Sendable, Hashable {
    public var majorVersion: UInt16
    public var minorVersion: UInt16
    /// Free text naming the client (for the server's debug log), at most 255 bytes.
    public var clientName: String

    public init(
        majorVersion: UInt16 = ServiceProtocol.majorVersion, minorVersion: UInt16 = ServiceProtocol.minorVersion,
        clientName: String
    ) {
        self.majorVersion = majorVersion
        self.minorVersion = minorVersion
        self.clientName = clientName
    }

    public func encode(into w: inout WireWriter) {
        for b in ServiceProtocol.magic { w.append(b) }
        w.append(majorVersion)
        w.append(minorVersion)
        var name = clientName
        while name.utf8.count > 255 { name.removeLast() }
        w.appendShortString(name)
    }

    /// Decodes a HELLO; a wrong magic is a handshake error (the peer is not a rasd client).
    public static func decode(_ r: inout WireReader) throws -> ClientHello {
        guard r.remaining >= 4, Array(try r.readBytes(4, "magic")) == ServiceProtocol.magic else {
            throw ServiceError(.handshakeRequired, "HELLO does not start with the magic \"RASD\": the peer is not a rasd client")
        }
        let major = try r.read(UInt16.self, "major version")
        let minor = try r.read(UInt16.self, "minor version")
        let name = try r.readShortString("client name")
        return ClientHello(majorVersion: major, minorVersion: minor, clientName: name)
    }
}

/// The server's HELLO reply: its protocol version and limits.
public struct ServerHello: Sendable, Hashable {
    /// The server's protocol major version (equal to the client's, or the handshake failed).
    public var majorVersion: UInt16
    /// The server's protocol minor version.
    public var minorVersion: UInt16
    /// Largest payload the server accepts.
    public var maxFrameBytes: Int
    /// Most contexts in one RETRIEVE_BATCH.
    public var maxBatchContexts: Int
    /// The server's name and version, such as "rasd 0.1.0".
    public var server: String

    public init(majorVersion: UInt16, minorVersion: UInt16, maxFrameBytes: Int, maxBatchContexts: Int, server: String) {
        self.majorVersion = majorVersion
        self.minorVersion = minorVersion
        self.maxFrameBytes = maxFrameBytes
        self.maxBatchContexts = maxBatchContexts
        self.server = server
    }

    public func encode(into w: inout WireWriter) {
        w.append(majorVersion)
        w.append(minorVersion)
        w.append(UInt32(clamping: maxFrameBytes))
        w.append(UInt32(clamping: maxBatchContexts))
        w.appendShortString(server)
    }

    public static func decode(_ r: inout WireReader) throws -> ServerHello {
        ServerHello(
            majorVersion: try r.read(UInt16.self, "major version"),
            minorVersion: try r.read(UInt16.self, "minor version"),
            maxFrameBytes: Int(try r.read(UInt32.self, "maxFrameBytes")),
            maxBatchContexts: Int(try r.read(UInt32.self, "maxBatchContexts")),
            server: try r.readShortString("server name"))
    }
}

/// The text format of a STATS reply.
public enum StatsFormat: UInt8, Sendable {
    /// One JSON object (``ServiceStats``).
    case json = 0
    /// Prometheus text exposition format 0.0.4.
    case prometheus = 1
}
