import Foundation
import Logging

/// The state every connection shares: configuration, datastores, counters.
final class ServerCore: Sendable {
    let configuration: ServerConfiguration
    let registry: DatastoreRegistry
    let metrics = ServiceMetrics()
    let logger: Logger
    let startedAt = Date()
    let startedUptime = DispatchTime.now().uptimeNanoseconds
    let hello: ServerHello

    /// The server's name and version in HELLO and STATS.
    static let serverName = "rasd 0.1.0"

    init(configuration: ServerConfiguration) throws {
        try configuration.validate()
        self.configuration = configuration
        logger = configuration.logger
        registry = try DatastoreRegistry(
            specs: configuration.datastores, verification: configuration.openVerification, logger: configuration.logger)
        hello = ServerHello(
            majorVersion: ServiceProtocol.majorVersion, minorVersion: ServiceProtocol.minorVersion,
            maxFrameBytes: configuration.maxFrameBytes, maxBatchContexts: configuration.maxBatchContexts,
            server: Self.serverName)
    }

    /// Reopens changed datastores and counts the outcome.
    func reload(name: String?) throws -> [ReloadOutcome] {
        metrics.reloads.withLock { $0.requests += 1 }
        let outcomes = try registry.reload(name: name)
        metrics.reloads.withLock { r in
            r.reopened += outcomes.filter { $0.status == .reloaded }.count
            r.failures += outcomes.filter { $0.status == .failed }.count
        }
        return outcomes
    }

    /// Everything STATS reports.
    func stats() -> ServiceStats {
        let snapshot = metrics.snapshot()
        var requests: [String: ServiceStats.RequestStats] = [:]
        for (slot, perType) in snapshot.perType.enumerated() where perType.count > 0 {
            requests[MetricsSnapshot.name(ofSlot: slot)] = ServiceStats.RequestStats(
                count: perType.count, errors: perType.errors, latencyMicroseconds: perType.latency.percentiles)
        }
        var errors: [String: Int] = [:]
        for (code, n) in snapshot.errors { errors[ServiceError.Code(rawValue: code).name] = n }
        if snapshot.timeouts > 0 { errors["timeouts"] = snapshot.timeouts }
        let connections = metrics.connections.withLock { $0 }
        let entries = registry.all()
        // Datastores opened under two names share one mapping; count each file once.
        var mappedFiles = Set<ObjectIdentifier>()
        var mapped = 0
        for e in entries where mappedFiles.insert(ObjectIdentifier(e.datastore)).inserted { mapped += e.bytesOnDisk }
        let memory = ProcessMemory.current()
        return ServiceStats(
            server: Self.serverName,
            protocolVersion: "\(ServiceProtocol.majorVersion).\(ServiceProtocol.minorVersion)",
            pid: Int(ProcessInfo.processInfo.processIdentifier),
            socket: configuration.socketPath,
            startedAt: ISO8601DateFormatter().string(from: startedAt),
            uptimeSeconds: Double(DispatchTime.now().uptimeNanoseconds - startedUptime) / 1e9,
            connections: ServiceStats.Connections(
                open: connections.open, accepted: connections.accepted, rejected: connections.rejected,
                max: configuration.maxConnections),
            requests: requests,
            retrievals: snapshot.retrievals,
            errors: errors,
            datastores: entries.map(\.description),
            reloads: metrics.reloads.withLock { $0 },
            memory: ServiceStats.Memory(
                residentBytes: memory.resident, residentAnonymousBytes: memory.anonymous, residentFileBytes: memory.file,
                mappedDatastoreBytes: mapped))
    }
}

/// The resident memory of this process, from `/proc/self/status`.
enum ProcessMemory {
    struct Usage {
        var resident = 0
        var anonymous = 0
        var file = 0
    }

    static func current() -> Usage { read(pid: nil) }

    /// The usage of process `pid` (this process when nil); zeros where it cannot be read.
    static func read(pid: Int32?) -> Usage {
        let path = pid.map { "/proc/\($0)/status" } ?? "/proc/self/status"
        var usage = Usage()
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return usage }
        for line in text.split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard parts.count >= 2, let kib = Int(parts[1]) else { continue }
            switch parts[0] {
            case "VmRSS:": usage.resident = kib * 1024
            case "RssAnon:": usage.anonymous = kib * 1024
            case "RssFile:": usage.file = kib * 1024
            default: break
            }
        }
        return usage
    }
}
