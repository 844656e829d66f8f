import RASDTrees

/// Wire forms of RETRIEVE and RETRIEVE_BATCH (`docs/protocol.md`, "Retrieval").
public enum RetrievalCodec {
    /// Parameters: `u16` maxMatch, minMatch, continuationLength, maxNodes. Values beyond 16 bits
    /// are clamped, which the server then rejects as out of range.
    public static func encode(_ p: RetrievalParameters, into w: inout WireWriter) {
        w.append(UInt16(clamping: p.maxMatch))
        w.append(UInt16(clamping: p.minMatch))
        w.append(UInt16(clamping: p.continuationLength))
        w.append(UInt16(clamping: p.maxNodes))
    }

    public static func decodeParameters(_ r: inout WireReader) throws -> RetrievalParameters {
        RetrievalParameters(
            maxMatch: Int(try r.read(UInt16.self, "maxMatch")),
            minMatch: Int(try r.read(UInt16.self, "minMatch")),
            continuationLength: Int(try r.read(UInt16.self, "continuationLength")),
            maxNodes: Int(try r.read(UInt16.self, "maxNodes")))
    }

    /// A RETRIEVE payload: datastore name, parameters, context.
    public static func encodeRequest(
        datastore: String, context: [UInt32], parameters: RetrievalParameters, into w: inout WireWriter
    ) {
        w.appendShortString(datastore)
        encode(parameters, into: &w)
        w.append(UInt32(truncatingIfNeeded: context.count))
        w.append(contentsOf: context)
    }

    /// A RETRIEVE_BATCH payload: datastore name, parameters, contexts.
    public static func encodeBatchRequest(
        datastore: String, contexts: [[UInt32]], parameters: RetrievalParameters, into w: inout WireWriter
    ) {
        w.appendShortString(datastore)
        encode(parameters, into: &w)
        w.append(UInt32(truncatingIfNeeded: contexts.count))
        for context in contexts {
            w.append(UInt32(truncatingIfNeeded: context.count))
            w.append(contentsOf: context)
        }
    }

    /// A context: `u32` count and the token ids, into `context` (storage reused).
    public static func decodeContext(_ r: inout WireReader, into context: inout [UInt32], _ field: String = "context") throws {
        let n = try r.readCount(field, elementBytes: 4)
        try r.read(n, into: &context, field)
    }

    /// A candidate trie: `u32` nodes, `u32` matchLength, `u64` occurrences, `u32` flags (bit 0:
    /// sampled), then tokens `u32[n]`, parents `i32[n]`, counts `u32[n]`.
    public static func encode(_ t: CandidateTrie, into w: inout WireWriter) {
        w.append(UInt32(truncatingIfNeeded: t.count))
        w.append(UInt32(clamping: t.matchLength))
        w.append(UInt64(clamping: t.occurrences))
        w.append(UInt32(t.sampled ? 1 : 0))
        w.append(contentsOf: t.tokens)
        w.append(contentsOf: t.parents)
        w.append(contentsOf: t.counts)
    }

    /// Decodes a trie into `t` (storage reused). Checks the shape (parents before children),
    /// not the counts.
    public static func decode(_ r: inout WireReader, into t: inout CandidateTrie) throws {
        let n = try r.readCount("trie nodes", elementBytes: 12)
        t.matchLength = Int(try r.read(UInt32.self, "matchLength"))
        t.occurrences = Int(clamping: try r.read(UInt64.self, "occurrences"))
        let flags = try r.read(UInt32.self, "trie flags")
        t.sampled = flags & 1 != 0
        try r.read(n, into: &t.tokens, "trie tokens")
        try r.read(n, into: &t.parents, "trie parents")
        try r.read(n, into: &t.counts, "trie counts")
        for i in 0..<n where t.parents[i] < -1 || t.parents[i] >= Int32(i) {
            throw r.malformed("trie node \(i) has parent \(t.parents[i]), not an earlier node or -1")
        }
    }
}
