/// Who proposed a node's token. A node proposed by several sources (a retrieval path that runs
/// along the draft tree) carries all of them.
public struct TokenSources: OptionSet, Sendable, Hashable, CustomStringConvertible {
    /// One bit per source.
    public let rawValue: UInt8

    /// Creates a set of sources from its bits.
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The draft model's tree.
    public static let draft = TokenSources(rawValue: 1 << 0)
    /// Retrieval from a datastore (REST-style).
    public static let datastore = TokenSources(rawValue: 1 << 1)
    /// Retrieval from the decoder's own context (prompt lookup).
    public static let context = TokenSources(rawValue: 1 << 2)

    public var description: String {
        var names: [String] = []
        if contains(.draft) { names.append("draft") }
        if contains(.datastore) { names.append("datastore") }
        if contains(.context) { names.append("context") }
        return names.isEmpty ? "none" : names.joined(separator: "+")
    }
}
