import Foundation

/// Syntax tree of a chat template.
indirect enum TemplateNode: Sendable {
    case text(String)
    case output(TemplateExpr)
    case conditional([(TemplateExpr, [TemplateNode])], otherwise: [TemplateNode])
    case loop(names: [String], iterable: TemplateExpr, filter: TemplateExpr?, body: [TemplateNode], otherwise: [TemplateNode])
    case assign(name: String, attribute: String?, value: TemplateExpr)
}

indirect enum TemplateExpr: Sendable {
    case literal(TemplateValue)
    case name(String)
    case attribute(TemplateExpr, String)
    case item(TemplateExpr, TemplateExpr)
    case slice(TemplateExpr, TemplateExpr?, TemplateExpr?, TemplateExpr?)
    case call(TemplateExpr, [TemplateExpr], [(String, TemplateExpr)])
    case filter(TemplateExpr, String, [TemplateExpr])
    case test(TemplateExpr, String, negated: Bool)
    case not(TemplateExpr)
    case negate(TemplateExpr)
    case binary(String, TemplateExpr, TemplateExpr)
    case conditional(TemplateExpr, then: TemplateExpr, otherwise: TemplateExpr?)
    case list([TemplateExpr])
    case dictionary([(TemplateExpr, TemplateExpr)])
}

/// Template source cut into text and tags, with Jinja's whitespace rules applied
/// (`-` markers, `trim_blocks`, `lstrip_blocks`, trailing newline dropped).
private enum Segment {
    case text(String)
    case expression(String)
    case statement(String)
}

private func lex(_ source: String) throws -> [Segment] {
    var src = Substring(source)
    if src.hasSuffix("\n") { src = src.dropLast() }  // keep_trailing_newline=False
    var segments: [Segment] = []
    // Jinja's lexer state: strip the next text's leading whitespace ("-" on the previous tag),
    // trim its first newline (trim_blocks after a block or comment tag), and whether the
    // previous match ended a line (for lstrip_blocks when the text holds no newline).
    var stripLeading = false
    var trimNewline = false
    var lineStarting = true

    var i = src.startIndex
    var textStart = i
    while i < src.endIndex {
        let after = src.index(after: i)
        guard src[i] == "{", after < src.endIndex, "{%#".contains(src[after]) else {
            i = after
            continue
        }
        let kind = src[after]
        var text = Substring(src[textStart..<i])
        if stripLeading { text = text.drop(while: { $0.isWhitespace }) }
        if trimNewline, text.hasPrefix("\n") { text = text.dropFirst() }
        var contentStart = src.index(i, offsetBy: 2)
        let sign: Character? = contentStart < src.endIndex && "-+".contains(src[contentStart]) ? src[contentStart] : nil
        if sign != nil { contentStart = src.index(after: contentStart) }
        let isBlock = kind != "{"
        if sign == "-" {
            while let c = text.last, c.isWhitespace { text = text.dropLast() }
        } else if sign != "+" && isBlock {
            // lstrip_blocks: spaces and tabs between the line start and a block tag go.
            let lineStart = text.lastIndex(of: "\n").map { text.index(after: $0) }
            if lineStart != nil || lineStarting {
                let from = lineStart ?? text.startIndex
                if text[from...].allSatisfy({ $0.isWhitespace && $0 != "\n" }) { text = text[..<from] }
            }
        }
        if !text.isEmpty { segments.append(.text(String(text))) }

        let close = kind == "{" ? "}}" : (kind == "%" ? "%}" : "#}")
        guard let closeRange = findClose(src, from: contentStart, close: close, isComment: kind == "#") else {
            throw TokenizerError(.chatTemplate, source: "chat template", "a tag opened with {\(kind) is never closed")
        }
        var contentEnd = closeRange.lowerBound
        stripLeading = false
        if contentEnd > contentStart, src[src.index(before: contentEnd)] == "-" {
            stripLeading = true
            contentEnd = src.index(before: contentEnd)
        }
        let content = String(src[contentStart..<contentEnd])
        if kind == "{" { segments.append(.expression(content)) }
        if kind == "%" { segments.append(.statement(content)) }
        trimNewline = isBlock && !stripLeading
        i = closeRange.upperBound
        // The tag's match ends a line when trim_blocks takes the newline after it.
        lineStarting = trimNewline && src[i...].hasPrefix("\n")
        textStart = i
    }
    var tail = Substring(src[textStart...])
    if stripLeading { tail = tail.drop(while: { $0.isWhitespace }) }
    if trimNewline, tail.hasPrefix("\n") { tail = tail.dropFirst() }
    if !tail.isEmpty { segments.append(.text(String(tail))) }
    return segments
}

/// The closing delimiter of a tag, skipping string literals inside expressions and statements.
private func findClose(_ s: Substring, from: Substring.Index, close: String, isComment: Bool) -> Range<Substring.Index>? {
    var i = from
    var quote: Character?
    while i < s.endIndex {
        let c = s[i]
        if let q = quote {
            if c == "\\" {
                i = s.index(after: i)
                if i < s.endIndex { i = s.index(after: i) }
                continue
            }
            if c == q { quote = nil }
        } else if !isComment && (c == "'" || c == "\"") {
            quote = c
        } else if s[i...].hasPrefix(close) {
            return i..<s.index(i, offsetBy: 2)
        }
        i = s.index(after: i)
    }
    return nil
}

/// Expression tokens.
private enum Token: Equatable {
    case name(String)
    case string(String)
    case integer(Int)
    case number(Double)
    case symbol(String)
}

private func tokenize(_ s: String) throws -> [Token] {
    var tokens: [Token] = []
    let chars = Array(s)
    var i = 0
    func error(_ m: String) -> TokenizerError { TokenizerError(.chatTemplate, source: "chat template", "\(m) in \"\(s)\"") }
    while i < chars.count {
        let c = chars[i]
        if c.isWhitespace {
            i += 1
        } else if c.isLetter || c == "_" {
            var j = i
            while j < chars.count, chars[j].isLetter || chars[j].isNumber || chars[j] == "_" { j += 1 }
            tokens.append(.name(String(chars[i..<j])))
            i = j
        } else if c.isNumber {
            var j = i
            while j < chars.count, chars[j].isNumber || chars[j] == "_" { j += 1 }
            if j + 1 < chars.count, chars[j] == ".", chars[j + 1].isNumber {
                j += 1
                while j < chars.count, chars[j].isNumber { j += 1 }
                guard let v = Double(String(chars[i..<j])) else { throw error("bad number") }
                tokens.append(.number(v))
            } else {
                guard let v = Int(String(chars[i..<j]).replacingOccurrences(of: "_", with: "")) else { throw error("bad number") }
                tokens.append(.integer(v))
            }
            i = j
        } else if c == "'" || c == "\"" {
            var j = i + 1
            var value = ""
            while j < chars.count, chars[j] != c {
                if chars[j] == "\\", j + 1 < chars.count {
                    j += 1
                    switch chars[j] {
                    case "n": value.append("\n")
                    case "t": value.append("\t")
                    case "r": value.append("\r")
                    case "\\", "'", "\"": value.append(chars[j])
                    default: value.append("\\"); value.append(chars[j])
                    }
                } else {
                    value.append(chars[j])
                }
                j += 1
            }
            guard j < chars.count else { throw error("unterminated string") }
            tokens.append(.string(value))
            i = j + 1
        } else {
            let two = i + 1 < chars.count ? String(chars[i...(i + 1)]) : ""
            if ["==", "!=", "<=", ">=", "//", "**"].contains(two) {
                tokens.append(.symbol(two))
                i += 2
            } else if "()[]{}.,:|~+-*/%<>=".contains(c) {
                tokens.append(.symbol(String(c)))
                i += 1
            } else {
                throw error("unexpected character \(c)")
            }
        }
    }
    return tokens
}

/// Recursive-descent parser over the segments.
struct TemplateParser {
    private var segments: [Segment]
    private var position = 0

    init(source: String) throws {
        segments = try lex(source)
    }

    private func error(_ m: String) -> TokenizerError { TokenizerError(.chatTemplate, source: "chat template", m) }

    mutating func parseDocument() throws -> [TemplateNode] {
        let (nodes, end) = try parseBlock(until: [])
        if let end { throw error("unexpected {% \(end) %}") }
        return nodes
    }

    /// Parses nodes up to a statement whose first word is in `terminators`; returns that statement.
    private mutating func parseBlock(until terminators: Set<String>) throws -> ([TemplateNode], String?) {
        var nodes: [TemplateNode] = []
        while position < segments.count {
            let segment = segments[position]
            position += 1
            switch segment {
            case .text(let t):
                nodes.append(.text(t))
            case .expression(let e):
                var p = ExpressionParser(tokens: try tokenize(e), source: e)
                nodes.append(.output(try p.parseComplete()))
            case .statement(let s):
                let trimmed = s.trimmingCharacters(in: .whitespacesAndNewlines)
                let keyword = String(trimmed.prefix(while: { !$0.isWhitespace }))
                if terminators.contains(keyword) { return (nodes, trimmed) }
                let rest = String(trimmed.dropFirst(keyword.count))
                switch keyword {
                case "if": nodes.append(try parseIf(rest))
                case "for": nodes.append(try parseFor(rest))
                case "set": nodes.append(try parseSet(rest))
                default: throw error("unsupported statement {% \(trimmed) %}")
                }
            }
        }
        if !terminators.isEmpty { throw error("missing {% \(terminators.sorted().joined(separator: " or ")) %}") }
        return (nodes, nil)
    }

    private mutating func parseIf(_ condition: String) throws -> TemplateNode {
        var branches: [(TemplateExpr, [TemplateNode])] = []
        var otherwise: [TemplateNode] = []
        var cond = try ExpressionParser.parse(condition)
        while true {
            let (body, end) = try parseBlock(until: ["elif", "else", "endif"])
            guard let end else { throw error("missing {% endif %}") }
            if end.hasPrefix("elif") {
                branches.append((cond, body))
                cond = try ExpressionParser.parse(String(end.dropFirst(4)))
            } else if end == "else" {
                branches.append((cond, body))
                let (elseBody, close) = try parseBlock(until: ["endif"])
                guard close != nil else { throw error("missing {% endif %}") }
                otherwise = elseBody
                break
            } else {
                branches.append((cond, body))
                break
            }
        }
        return .conditional(branches, otherwise: otherwise)
    }

    private mutating func parseFor(_ header: String) throws -> TemplateNode {
        var p = ExpressionParser(tokens: try tokenize(header), source: header)
        var names: [String] = []
        repeat {
            guard case .name(let n)? = p.next() else { throw error("bad loop variable in {% for \(header) %}") }
            names.append(n)
        } while p.accept(.symbol(","))
        guard p.accept(.name("in")) else { throw error("missing `in` in {% for \(header) %}") }
        let iterable = try p.parseConditionalFree()
        var filter: TemplateExpr?
        if p.accept(.name("if")) { filter = try p.parseOr() }
        try p.expectEnd()
        let (body, end) = try parseBlock(until: ["else", "endfor"])
        var otherwise: [TemplateNode] = []
        if end == "else" {
            let (elseBody, close) = try parseBlock(until: ["endfor"])
            guard close != nil else { throw error("missing {% endfor %}") }
            otherwise = elseBody
        } else if end == nil {
            throw error("missing {% endfor %}")
        }
        return .loop(names: names, iterable: iterable, filter: filter, body: body, otherwise: otherwise)
    }

    private mutating func parseSet(_ rest: String) throws -> TemplateNode {
        var p = ExpressionParser(tokens: try tokenize(rest), source: rest)
        guard case .name(let name)? = p.next() else { throw error("bad {% set \(rest) %}") }
        var attribute: String?
        if p.accept(.symbol(".")) {
            guard case .name(let a)? = p.next() else { throw error("bad {% set \(rest) %}") }
            attribute = a
        }
        guard p.accept(.symbol("=")) else { throw error("block {% set %} … {% endset %} is not supported") }
        let value = try p.parseComplete()
        return .assign(name: name, attribute: attribute, value: value)
    }
}

/// Jinja expression grammar, lowest precedence first: conditional, or, and, not, comparison
/// (incl. `in`, `is`), `~`, `+ -`, `* / // %`, unary minus, filters, postfix (`.` `[]` `()`).
private struct ExpressionParser {
    let tokens: [Token]
    let source: String
    var i = 0

    init(tokens: [Token], source: String) {
        self.tokens = tokens
        self.source = source
    }

    static func parse(_ s: String) throws -> TemplateExpr {
        var p = ExpressionParser(tokens: try tokenize(s), source: s)
        return try p.parseComplete()
    }

    func error(_ m: String) -> TokenizerError { TokenizerError(.chatTemplate, source: "chat template", "\(m) in \"\(source)\"") }

    var peek: Token? { i < tokens.count ? tokens[i] : nil }
    mutating func next() -> Token? {
        defer { i += 1 }
        return peek
    }
    mutating func accept(_ t: Token) -> Bool {
        if peek == t { i += 1; return true }
        return false
    }
    mutating func expect(_ t: Token) throws {
        guard accept(t) else { throw error("expected \(t)") }
    }
    func expectEnd() throws {
        if let t = peek { throw error("unexpected \(t)") }
    }

    mutating func parseComplete() throws -> TemplateExpr {
        let e = try parseExpression()
        try expectEnd()
        return e
    }

    mutating func parseExpression() throws -> TemplateExpr {
        let value = try parseOr()
        if accept(.name("if")) {
            let cond = try parseOr()
            let otherwise = accept(.name("else")) ? try parseExpression() : nil
            return .conditional(cond, then: value, otherwise: otherwise)
        }
        return value
    }

    /// An expression without a trailing `if` (the iterable of a for loop, whose `if` filters).
    mutating func parseConditionalFree() throws -> TemplateExpr { try parseOr() }

    mutating func parseOr() throws -> TemplateExpr {
        var e = try parseAnd()
        while accept(.name("or")) { e = .binary("or", e, try parseAnd()) }
        return e
    }

    mutating func parseAnd() throws -> TemplateExpr {
        var e = try parseNot()
        while accept(.name("and")) { e = .binary("and", e, try parseNot()) }
        return e
    }

    mutating func parseNot() throws -> TemplateExpr {
        if accept(.name("not")) { return .not(try parseNot()) }
        return try parseComparison()
    }

    mutating func parseComparison() throws -> TemplateExpr {
        var e = try parseConcat()
        while true {
            if case .symbol(let s)? = peek, ["==", "!=", "<", "<=", ">", ">="].contains(s) {
                i += 1
                e = .binary(s, e, try parseConcat())
            } else if accept(.name("in")) {
                e = .binary("in", e, try parseConcat())
            } else if peek == .name("not"), i + 1 < tokens.count, tokens[i + 1] == .name("in") {
                i += 2
                e = .not(.binary("in", e, try parseConcat()))
            } else if accept(.name("is")) {
                let negated = accept(.name("not"))
                guard case .name(let test)? = next() else { throw error("expected a test name after `is`") }
                e = .test(e, test, negated: negated)
            } else {
                return e
            }
        }
    }

    mutating func parseConcat() throws -> TemplateExpr {
        var e = try parseAdditive()
        while accept(.symbol("~")) { e = .binary("~", e, try parseAdditive()) }
        return e
    }

    mutating func parseAdditive() throws -> TemplateExpr {
        var e = try parseMultiplicative()
        while case .symbol(let s)? = peek, s == "+" || s == "-" {
            i += 1
            e = .binary(s, e, try parseMultiplicative())
        }
        return e
    }

    mutating func parseMultiplicative() throws -> TemplateExpr {
        var e = try parseUnary()
        while case .symbol(let s)? = peek, ["*", "/", "//", "%"].contains(s) {
            i += 1
            e = .binary(s, e, try parseUnary())
        }
        return e
    }

    mutating func parseUnary() throws -> TemplateExpr {
        if accept(.symbol("-")) { return .negate(try parseUnary()) }
        if accept(.symbol("+")) { return try parseUnary() }
        return try parseFiltered()
    }

    mutating func parseFiltered() throws -> TemplateExpr {
        var e = try parsePostfix()
        while accept(.symbol("|")) {
            guard case .name(let f)? = next() else { throw error("expected a filter name after |") }
            var args: [TemplateExpr] = []
            if accept(.symbol("(")) {
                if !accept(.symbol(")")) {
                    repeat { args.append(try parseExpression()) } while accept(.symbol(","))
                    try expect(.symbol(")"))
                }
            }
            e = .filter(e, f, args)
        }
        return e
    }

    mutating func parsePostfix() throws -> TemplateExpr {
        var e = try parsePrimary()
        while true {
            if accept(.symbol(".")) {
                guard case .name(let n)? = next() else { throw error("expected an attribute name after .") }
                e = .attribute(e, n)
            } else if accept(.symbol("[")) {
                var parts: [TemplateExpr?] = [nil]
                var isSlice = false
                while true {
                    if accept(.symbol("]")) { break }
                    if accept(.symbol(":")) {
                        isSlice = true
                        parts.append(nil)
                        continue
                    }
                    parts[parts.count - 1] = try parseExpression()
                }
                if isSlice {
                    guard parts.count <= 3 else { throw error("bad slice") }
                    while parts.count < 3 { parts.append(nil) }
                    e = .slice(e, parts[0], parts[1], parts[2])
                } else {
                    guard let index = parts[0] else { throw error("empty subscript") }
                    e = .item(e, index)
                }
            } else if accept(.symbol("(")) {
                var args: [TemplateExpr] = []
                var keywords: [(String, TemplateExpr)] = []
                if !accept(.symbol(")")) {
                    repeat {
                        if case .name(let k)? = peek, i + 1 < tokens.count, tokens[i + 1] == .symbol("=") {
                            i += 2
                            keywords.append((k, try parseExpression()))
                        } else {
                            args.append(try parseExpression())
                        }
                    } while accept(.symbol(","))
                    try expect(.symbol(")"))
                }
                e = .call(e, args, keywords)
            } else {
                return e
            }
        }
    }

    mutating func parsePrimary() throws -> TemplateExpr {
        guard let t = next() else { throw error("unexpected end of expression") }
        switch t {
        case .string(var s):
            while case .string(let more)? = peek {  // adjacent literals concatenate
                s += more
                i += 1
            }
            return .literal(.string(s))
        case .integer(let v): return .literal(.integer(v))
        case .number(let v): return .literal(.double(v))
        case .name(let n):
            switch n {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(n)
            }
        case .symbol("("):
            let e = try parseExpression()
            try expect(.symbol(")"))
            return e
        case .symbol("["):
            var items: [TemplateExpr] = []
            if !accept(.symbol("]")) {
                repeat {
                    if peek == .symbol("]") { break }
                    items.append(try parseExpression())
                } while accept(.symbol(","))
                try expect(.symbol("]"))
            }
            return .list(items)
        case .symbol("{"):
            var pairs: [(TemplateExpr, TemplateExpr)] = []
            if !accept(.symbol("}")) {
                repeat {
                    if peek == .symbol("}") { break }
                    let k = try parseExpression()
                    try expect(.symbol(":"))
                    pairs.append((k, try parseExpression()))
                } while accept(.symbol(","))
                try expect(.symbol("}"))
            }
            return .dictionary(pairs)
        default:
            throw error("unexpected \(t)")
        }
    }
}
