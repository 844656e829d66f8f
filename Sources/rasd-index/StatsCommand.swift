import ArgumentParser
import Foundation
import RASDService

/// `rasd-index stats --socket S`: a running daemon's counters, latencies, datastores and memory.
struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a running daemon's uptime, requests, errors, latency percentiles, datastores and memory.")

    @Option(name: .long, help: "The daemon's socket.")
    var socket: String

    @Flag(name: .long, help: "Print the JSON the daemon returns.")
    var json = false

    @Flag(name: .long, help: "Print Prometheus text exposition format.")
    var prometheus = false

    func validate() throws {
        if json && prometheus { throw ValidationError("choose one of --json and --prometheus") }
    }

    func run() throws {
        do {
            let client = try RetrievalClient(socketPath: socket, clientName: "rasd-index stats")
            if prometheus {
                print(try client.statsText(format: .prometheus), terminator: "")
                return
            }
            if json {
                print(try client.statsText(format: .json))
                return
            }
            print(Self.table(try client.stats()))
        } catch let error as ServiceError {
            throw InputError(error.description)
        }
    }

    static func table(_ s: ServiceStats) -> String {
        var lines: [String] = []
        lines.append("server       \(s.server), protocol \(s.protocolVersion), pid \(s.pid), socket \(s.socket)")
        lines.append(String(format: "uptime       %.1f s (since %@)", s.uptimeSeconds, s.startedAt))
        let c = s.connections
        lines.append("connections  \(c.open) open (max \(c.max)), \(c.accepted) accepted, \(c.rejected) refused")
        lines.append("retrievals   \(s.retrievals) contexts answered")
        lines.append("reloads      \(s.reloads.requests) requests, \(s.reloads.reopened) datastores reopened, \(s.reloads.failures) failed")
        let m = s.memory
        lines.append("memory       resident \(Formatting.bytes(m.residentBytes)) = \(Formatting.bytes(m.residentFileBytes)) file-backed + \(Formatting.bytes(m.residentAnonymousBytes)) anonymous; datastores map \(Formatting.bytes(m.mappedDatastoreBytes))")
        lines.append("")
        lines.append("request                 count   errors     p50 µs     p90 µs     p99 µs    p999 µs     max µs")
        for (name, r) in s.requests.sorted(by: { $0.key < $1.key }) {
            let l = r.latencyMicroseconds
            lines.append(name.padding(toLength: 20, withPad: " ", startingAt: 0)
                + String(format: "%9d %8d %10.1f %10.1f %10.1f %10.1f %10.1f", r.count, r.errors, l.p50, l.p90, l.p99, l.p999, l.max))
        }
        if !s.errors.isEmpty {
            lines.append("")
            lines.append("errors       " + s.errors.sorted(by: { $0.key < $1.key }).map { "\($0.key) \($0.value)" }.joined(separator: ", "))
        }
        lines.append("")
        lines.append("datastore        generation       tokens    documents    vocabulary        size  path")
        for d in s.datastores {
            lines.append(d.name.padding(toLength: 16, withPad: " ", startingAt: 0)
                + String(format: " %10d %12d %12d %13d", d.generation, d.tokens, d.documents, d.vocabularySize)
                + "  " + Formatting.bytes(d.bytesOnDisk).padding(toLength: 10, withPad: " ", startingAt: 0) + "  " + d.path)
        }
        return lines.joined(separator: "\n")
    }
}
