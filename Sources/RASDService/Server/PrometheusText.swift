import Foundation

/// ``ServiceStats`` in the Prometheus text exposition format (version 0.0.4).
///
/// Latencies are summaries (quantiles 0.5, 0.9, 0.99, 0.999 since start, in seconds) because the
/// daemon keeps a fine log-linear histogram whose bucket edges are not Prometheus-friendly.
public enum PrometheusText {
    public static func render(_ s: ServiceStats) -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        func sample(_ name: String, _ labels: [(String, String)] = [], _ value: Double) {
            let rendered = labels.isEmpty ? "" : "{" + labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",") + "}"
            out += "\(name)\(rendered) \(format(value))\n"
        }

        family("rasd_uptime_seconds", "gauge", "Seconds since the daemon started.")
        sample("rasd_uptime_seconds", [], s.uptimeSeconds)

        family("rasd_connections_open", "gauge", "Connections open now.")
        sample("rasd_connections_open", [], Double(s.connections.open))
        family("rasd_connections_accepted_total", "counter", "Connections accepted.")
        sample("rasd_connections_accepted_total", [], Double(s.connections.accepted))
        family("rasd_connections_rejected_total", "counter", "Connections refused at the connection limit.")
        sample("rasd_connections_rejected_total", [], Double(s.connections.rejected))
        family("rasd_connections_max", "gauge", "The connection limit.")
        sample("rasd_connections_max", [], Double(s.connections.max))

        let types = s.requests.keys.sorted()
        family("rasd_requests_total", "counter", "Requests answered, by message type.")
        for t in types { sample("rasd_requests_total", [("type", t)], Double(s.requests[t]?.count ?? 0)) }
        family("rasd_request_errors_total", "counter", "Requests answered with an error, by message type.")
        for t in types { sample("rasd_request_errors_total", [("type", t)], Double(s.requests[t]?.errors ?? 0)) }
        family("rasd_request_duration_seconds", "summary", "Server-side handling time by message type.")
        for t in types {
            guard let r = s.requests[t] else { continue }
            let l = r.latencyMicroseconds
            for (q, v) in [("0.5", l.p50), ("0.9", l.p90), ("0.99", l.p99), ("0.999", l.p999)] {
                sample("rasd_request_duration_seconds", [("type", t), ("quantile", q)], v / 1e6)
            }
            sample("rasd_request_duration_seconds_sum", [("type", t)], l.mean * Double(r.count) / 1e6)
            sample("rasd_request_duration_seconds_count", [("type", t)], Double(r.count))
        }

        family("rasd_retrievals_total", "counter", "Contexts answered (a batch counts each context).")
        sample("rasd_retrievals_total", [], Double(s.retrievals))

        family("rasd_errors_total", "counter", "Errors by code (timeouts: connections dropped for stalling).")
        for code in s.errors.keys.sorted() { sample("rasd_errors_total", [("code", code)], Double(s.errors[code] ?? 0)) }

        family("rasd_reloads_total", "counter", "Reload requests and SIGHUPs handled.")
        sample("rasd_reloads_total", [], Double(s.reloads.requests))
        family("rasd_reload_reopened_total", "counter", "Datastores reopened by reloads.")
        sample("rasd_reload_reopened_total", [], Double(s.reloads.reopened))
        family("rasd_reload_failures_total", "counter", "Datastores that failed to reopen.")
        sample("rasd_reload_failures_total", [], Double(s.reloads.failures))

        family("rasd_datastore_tokens", "gauge", "Tokens in each open datastore.")
        for d in s.datastores { sample("rasd_datastore_tokens", [("datastore", d.name)], Double(d.tokens)) }
        family("rasd_datastore_bytes", "gauge", "Bytes of each open datastore's files.")
        for d in s.datastores { sample("rasd_datastore_bytes", [("datastore", d.name)], Double(d.bytesOnDisk)) }
        family("rasd_datastore_generation", "gauge", "Reload generation of each datastore (1 when first opened).")
        for d in s.datastores { sample("rasd_datastore_generation", [("datastore", d.name)], Double(d.generation)) }

        family("rasd_resident_memory_bytes", "gauge", "Resident memory of the daemon, by kind.")
        sample("rasd_resident_memory_bytes", [("kind", "total")], Double(s.memory.residentBytes))
        sample("rasd_resident_memory_bytes", [("kind", "anonymous")], Double(s.memory.residentAnonymousBytes))
        sample("rasd_resident_memory_bytes", [("kind", "file")], Double(s.memory.residentFileBytes))
        family("rasd_mapped_datastore_bytes", "gauge", "Bytes of the open datastores' mapped files.")
        sample("rasd_mapped_datastore_bytes", [], Double(s.memory.mappedDatastoreBytes))
        return out
    }

    private static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }

    private static func format(_ v: Double) -> String {
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return String(v)
    }
}
