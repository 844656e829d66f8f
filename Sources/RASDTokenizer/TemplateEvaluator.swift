import Foundation

/// An insertion-ordered string-keyed dictionary (Python dicts keep insertion order, and
/// templates iterate them).
struct TemplateDictionary: Sendable {
    var entries: [(String, TemplateValue)]

    init(_ entries: [(String, TemplateValue)]) { self.entries = entries }

    subscript(key: String) -> TemplateValue? {
        get { entries.first { $0.0 == key }?.1 }
        set {
            if let i = entries.firstIndex(where: { $0.0 == key }) {
                if let newValue { entries[i].1 = newValue } else { entries.remove(at: i) }
            } else if let newValue {
                entries.append((key, newValue))
            }
        }
    }
}

/// A Jinja value.
indirect enum TemplateValue: Sendable {
    case undefined(String)
    case none
    case bool(Bool)
    case integer(Int)
    case double(Double)
    case string(String)
    case list([TemplateValue])
    case dictionary(TemplateDictionary)
    /// A `namespace()` object: a dictionary that `{% set ns.x = … %}` may change.
    case namespace(Int)

    var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .integer(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .list(let l): return !l.isEmpty
        case .dictionary(let d): return !d.entries.isEmpty
        case .namespace: return true
        }
    }

    var isUndefined: Bool {
        if case .undefined = self { return true }
        return false
    }
}

/// Rendering state: variable scopes and namespace objects.
struct TemplateContext {
    private var scopes: [[String: TemplateValue]]
    private var namespaces: [TemplateDictionary] = []

    init(globals: [String: TemplateValue]) { scopes = [globals] }

    private func error(_ m: String) -> TokenizerError { TokenizerError(.chatTemplate, source: "chat template", m) }

    mutating func render(_ nodes: [TemplateNode], into out: inout String) throws {
        for node in nodes {
            switch node {
            case .text(let t):
                out += t
            case .output(let e):
                out += try string(of: evaluate(e))
            case .conditional(let branches, let otherwise):
                var done = false
                for (cond, body) in branches where try evaluate(cond).truthy {
                    try render(body, into: &out)
                    done = true
                    break
                }
                if !done { try render(otherwise, into: &out) }
            case .loop(let names, let iterableExpr, let filter, let body, let otherwise):
                try renderLoop(names, try evaluate(iterableExpr), filter, body, otherwise, into: &out)
            case .assign(let name, let attribute, let valueExpr):
                let value = try evaluate(valueExpr)
                if let attribute {
                    guard case .namespace(let id)? = lookup(name) else {
                        throw error("{% set \(name).\(attribute) %} needs \(name) to be a namespace()")
                    }
                    namespaces[id][attribute] = value
                } else {
                    scopes[scopes.count - 1][name] = value
                }
            }
        }
    }

    private mutating func renderLoop(
        _ names: [String], _ iterable: TemplateValue, _ filter: TemplateExpr?, _ body: [TemplateNode],
        _ otherwise: [TemplateNode], into out: inout String
    ) throws {
        var items = try sequence(iterable)
        if let filter {
            var kept: [TemplateValue] = []
            for item in items {
                scopes.append(try bind(names, item))
                defer { scopes.removeLast() }
                if try evaluate(filter).truthy { kept.append(item) }
            }
            items = kept
        }
        if items.isEmpty {
            try render(otherwise, into: &out)
            return
        }
        for (index, item) in items.enumerated() {
            var scope = try bind(names, item)
            let n = items.count
            scope["loop"] = .dictionary(TemplateDictionary([
                ("index", .integer(index + 1)), ("index0", .integer(index)),
                ("revindex", .integer(n - index)), ("revindex0", .integer(n - index - 1)),
                ("first", .bool(index == 0)), ("last", .bool(index == n - 1)), ("length", .integer(n)),
                ("previtem", index > 0 ? items[index - 1] : .undefined("loop.previtem")),
                ("nextitem", index + 1 < n ? items[index + 1] : .undefined("loop.nextitem")),
            ]))
            scopes.append(scope)
            defer { scopes.removeLast() }
            try render(body, into: &out)
            // Assignments inside a loop body do not leak out (Jinja scoping); namespaces do.
        }
    }

    private func bind(_ names: [String], _ item: TemplateValue) throws -> [String: TemplateValue] {
        if names.count == 1 { return [names[0]: item] }
        let parts = try sequence(item)
        guard parts.count == names.count else { throw error("cannot unpack \(parts.count) values into \(names.count) loop variables") }
        return Dictionary(uniqueKeysWithValues: zip(names, parts))
    }

    private func lookup(_ name: String) -> TemplateValue? {
        for scope in scopes.reversed() {
            if let v = scope[name] { return v }
        }
        return nil
    }

    private func sequence(_ v: TemplateValue) throws -> [TemplateValue] {
        switch v {
        case .list(let l): return l
        case .string(let s): return s.map { .string(String($0)) }
        case .dictionary(let d): return d.entries.map { .string($0.0) }
        case .undefined(let name): throw error("\(name) is undefined and cannot be iterated")
        default: throw error("\(try string(of: v)) is not iterable")
        }
    }

    // MARK: Expressions

    mutating func evaluate(_ e: TemplateExpr) throws -> TemplateValue {
        switch e {
        case .literal(let v): return v
        case .name(let n): return lookup(n) ?? .undefined(n)
        case .attribute(let base, let name):
            return try member(try evaluate(base), name, description: name)
        case .item(let base, let indexExpr):
            let b = try evaluate(base)
            let index = try evaluate(indexExpr)
            switch (b, index) {
            case (.list(let l), .integer(let i)):
                let k = i < 0 ? l.count + i : i
                return l.indices.contains(k) ? l[k] : .undefined("[\(i)]")
            case (.string(let s), .integer(let i)):
                let chars = Array(s)
                let k = i < 0 ? chars.count + i : i
                return chars.indices.contains(k) ? .string(String(chars[k])) : .undefined("[\(i)]")
            case (_, .string(let key)):
                return try member(b, key, description: "['\(key)']")
            case (.undefined(let n), _):
                throw error("\(n) is undefined")
            default:
                return .undefined("item")
            }
        case .slice(let base, let lo, let hi, let step):
            let b = try evaluate(base)
            let s = try step.map { try integer(evaluate($0)) } ?? 1
            guard s != 0 else { throw error("slice step cannot be zero") }
            let items: [TemplateValue]
            if case .string(let str) = b { items = str.map { .string(String($0)) } } else { items = try sequence(b) }
            let n = items.count
            func clamp(_ v: Int?, _ dflt: Int) -> Int {
                guard let v else { return dflt }
                let k = v < 0 ? v + n : v
                return s > 0 ? min(max(k, 0), n) : min(max(k, -1), n - 1)
            }
            let start = clamp(try lo.map { try integer(evaluate($0)) }, s > 0 ? 0 : n - 1)
            let stop = clamp(try hi.map { try integer(evaluate($0)) }, s > 0 ? n : -1)
            var out: [TemplateValue] = []
            var k = start
            while s > 0 ? k < stop : k > stop {
                out.append(items[k])
                k += s
            }
            if case .string = b { return .string(try out.map { try string(of: $0) }.joined()) }
            return .list(out)
        case .call(let callee, let argExprs, let keywordExprs):
            let args = try argExprs.map { try evaluate($0) }
            var keywords: [(String, TemplateValue)] = []
            for (k, v) in keywordExprs { keywords.append((k, try evaluate(v))) }
            return try call(callee, args, keywords)
        case .filter(let base, let name, let argExprs):
            let args = try argExprs.map { try evaluate($0) }
            return try applyFilter(name, try evaluate(base), args)
        case .test(let base, let name, let negated):
            let v = try evaluate(base)
            let result: Bool
            switch name {
            case "defined": result = !v.isUndefined
            case "undefined": result = v.isUndefined
            case "none": if case .none = v { result = true } else { result = false }
            case "string": if case .string = v { result = true } else { result = false }
            case "number":
                switch v {
                case .integer, .double: result = true
                default: result = false
                }
            case "mapping":
                switch v {
                case .dictionary, .namespace: result = true
                default: result = false
                }
            case "iterable", "sequence":
                switch v {
                case .list, .string, .dictionary: result = true
                default: result = false
                }
            case "true": if case .bool(true) = v { result = true } else { result = false }
            case "false": if case .bool(false) = v { result = true } else { result = false }
            default: throw error("unsupported test `is \(name)`")
            }
            return .bool(result != negated)
        case .not(let inner): return .bool(!(try evaluate(inner).truthy))
        case .negate(let inner):
            switch try evaluate(inner) {
            case .integer(let i): return .integer(-i)
            case .double(let d): return .double(-d)
            case let v: throw error("cannot negate \(try string(of: v))")
            }
        case .binary(let op, let l, let r):
            if op == "and" {
                let a = try evaluate(l)
                return a.truthy ? try evaluate(r) : a
            }
            if op == "or" {
                let a = try evaluate(l)
                return a.truthy ? a : try evaluate(r)
            }
            return try binary(op, try evaluate(l), try evaluate(r))
        case .conditional(let cond, let then, let otherwise):
            if try evaluate(cond).truthy { return try evaluate(then) }
            return try otherwise.map { try evaluate($0) } ?? .undefined("else branch")
        case .list(let items): return .list(try items.map { try evaluate($0) })
        case .dictionary(let pairs):
            var d = TemplateDictionary([])
            for (k, v) in pairs {
                guard case .string(let key) = try evaluate(k) else { throw error("dictionary keys must be strings") }
                d[key] = try evaluate(v)
            }
            return .dictionary(d)
        }
    }

    private func member(_ base: TemplateValue, _ name: String, description: String) throws -> TemplateValue {
        switch base {
        case .dictionary(let d): return d[name] ?? .undefined(description)
        case .namespace(let id): return namespaces[id][name] ?? .undefined(description)
        case .undefined(let n): throw error("\(n) is undefined (looking up \(description))")
        default: return .undefined(description)
        }
    }

    private mutating func call(_ callee: TemplateExpr, _ args: [TemplateValue], _ keywords: [(String, TemplateValue)]) throws -> TemplateValue {
        if case .name(let fn) = callee {
            switch fn {
            case "raise_exception":
                throw error("the template refused the conversation: \(try args.first.map { try string(of: $0) } ?? "")")
            case "namespace":
                namespaces.append(TemplateDictionary(keywords))
                return .namespace(namespaces.count - 1)
            case "range":
                let ints = try args.map { try integer($0) }
                let (lo, hi) = ints.count == 1 ? (0, ints[0]) : (ints.first ?? 0, ints.count > 1 ? ints[1] : 0)
                return .list(lo < hi ? (lo..<hi).map { .integer($0) } : [])
            default:
                throw error("unsupported function \(fn)()")
            }
        }
        guard case .attribute(let baseExpr, let method) = callee else { throw error("unsupported call") }
        let base = try evaluate(baseExpr)
        switch base {
        case .string(let s):
            let arg = try args.first.map { try string(of: $0) }
            switch method {
            case "strip": return .string(strip(s, arg, leading: true, trailing: true))
            case "lstrip": return .string(strip(s, arg, leading: true, trailing: false))
            case "rstrip": return .string(strip(s, arg, leading: false, trailing: true))
            case "upper": return .string(s.uppercased())
            case "lower": return .string(s.lowercased())
            case "title": return .string(s.capitalized)
            case "startswith": return .bool(s.hasPrefix(arg ?? ""))
            case "endswith": return .bool(s.hasSuffix(arg ?? ""))
            case "split":
                if let arg { return .list(s.components(separatedBy: arg).map { .string($0) }) }
                return .list(s.split(whereSeparator: { $0.isWhitespace }).map { .string(String($0)) })
            case "replace":
                guard args.count == 2 else { throw error("replace() takes two arguments") }
                return .string(s.replacingOccurrences(of: try string(of: args[0]), with: try string(of: args[1])))
            default: break
            }
        case .dictionary(let d):
            switch method {
            case "items": return .list(d.entries.map { .list([.string($0.0), $0.1]) })
            case "keys": return .list(d.entries.map { .string($0.0) })
            case "values": return .list(d.entries.map { $0.1 })
            case "get":
                guard let key = args.first, case .string(let k) = key else { throw error("get() needs a key") }
                return d[k] ?? (args.count > 1 ? args[1] : .none)
            default: break
            }
        default: break
        }
        throw error("unsupported method .\(method)()")
    }

    private func strip(_ s: String, _ chars: String?, leading: Bool, trailing: Bool) -> String {
        let set: (Character) -> Bool = chars.map { c in { c.contains($0) } } ?? { $0.isWhitespace }
        var sub = Substring(s)
        if leading { sub = sub.drop(while: set) }
        if trailing { while let c = sub.last, set(c) { sub = sub.dropLast() } }
        return String(sub)
    }

    private func applyFilter(_ name: String, _ v: TemplateValue, _ args: [TemplateValue]) throws -> TemplateValue {
        switch name {
        case "trim": return .string(strip(try string(of: v), nil, leading: true, trailing: true))
        case "upper": return .string(try string(of: v).uppercased())
        case "lower": return .string(try string(of: v).lowercased())
        case "capitalize":
            let s = try string(of: v)
            return .string(s.prefix(1).uppercased() + s.dropFirst().lowercased())
        case "title": return .string(try string(of: v).capitalized)
        case "length", "count":
            switch v {
            case .string(let s): return .integer(s.count)
            case .list(let l): return .integer(l.count)
            case .dictionary(let d): return .integer(d.entries.count)
            default: throw error("length of a value without length")
            }
        case "default", "d":
            let useForFalsy = args.count > 1 && args[1].truthy
            if v.isUndefined || (useForFalsy && !v.truthy) { return args.first ?? .string("") }
            return v
        case "first": return try sequence(v).first ?? .undefined("first")
        case "last": return try sequence(v).last ?? .undefined("last")
        case "join":
            let sep = try args.first.map { try string(of: $0) } ?? ""
            return .string(try sequence(v).map { try string(of: $0) }.joined(separator: sep))
        case "string": return .string(try string(of: v))
        case "int":
            switch v {
            case .integer: return v
            case .double(let d): return .integer(Int(d))
            case .string(let s): return .integer(Int(s.trimmingCharacters(in: .whitespaces)) ?? 0)
            case .bool(let b): return .integer(b ? 1 : 0)
            default: return .integer(0)
            }
        case "list": return .list(try sequence(v))
        case "reverse":
            if case .string(let s) = v { return .string(String(s.reversed())) }
            return .list(try sequence(v).reversed())
        case "replace":
            guard args.count >= 2 else { throw error("replace needs two arguments") }
            return .string(try string(of: v).replacingOccurrences(of: try string(of: args[0]), with: try string(of: args[1])))
        case "tojson": return .string(try json(v))
        case "safe": return v
        default: throw error("unsupported filter |\(name)")
        }
    }

    private func binary(_ op: String, _ a: TemplateValue, _ b: TemplateValue) throws -> TemplateValue {
        switch op {
        case "~": return .string(try string(of: a) + string(of: b))
        case "==": return .bool(equal(a, b))
        case "!=": return .bool(!equal(a, b))
        case "in":
            switch b {
            case .string(let s): return .bool(s.contains(try string(of: a)))
            case .list(let l): return .bool(l.contains { equal($0, a) })
            case .dictionary(let d):
                guard case .string(let k) = a else { return .bool(false) }
                return .bool(d[k] != nil)
            case .undefined(let n): throw error("\(n) is undefined (right of `in`)")
            default: throw error("`in` needs a string, list or dictionary on its right")
            }
        default: break
        }
        switch (a, b) {
        case (.string(let x), .string(let y)):
            switch op {
            case "+": return .string(x + y)
            case "<": return .bool(x < y)
            case "<=": return .bool(x <= y)
            case ">": return .bool(x > y)
            case ">=": return .bool(x >= y)
            default: break
            }
        case (.list(let x), .list(let y)) where op == "+":
            return .list(x + y)
        case (.integer(let x), .integer(let y)):
            switch op {
            case "+": return .integer(x + y)
            case "-": return .integer(x - y)
            case "*": return .integer(x * y)
            case "/": return y == 0 ? .undefined("division by zero") : .double(Double(x) / Double(y))
            case "//": return y == 0 ? .undefined("division by zero") : .integer(Int((Double(x) / Double(y)).rounded(.down)))
            case "%": return y == 0 ? .undefined("division by zero") : .integer(((x % y) + y) % y)
            case "<": return .bool(x < y)
            case "<=": return .bool(x <= y)
            case ">": return .bool(x > y)
            case ">=": return .bool(x >= y)
            default: break
            }
        default:
            if let x = number(a), let y = number(b) {
                switch op {
                case "+": return .double(x + y)
                case "-": return .double(x - y)
                case "*": return .double(x * y)
                case "/": return .double(x / y)
                case "<": return .bool(x < y)
                case "<=": return .bool(x <= y)
                case ">": return .bool(x > y)
                case ">=": return .bool(x >= y)
                default: break
                }
            }
            if case .undefined(let n) = a { throw error("\(n) is undefined (left of \(op))") }
            if case .undefined(let n) = b { throw error("\(n) is undefined (right of \(op))") }
        }
        throw error("unsupported operands for \(op)")
    }

    private func number(_ v: TemplateValue) -> Double? {
        switch v {
        case .integer(let i): return Double(i)
        case .double(let d): return d
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    private func integer(_ v: TemplateValue) throws -> Int {
        switch v {
        case .integer(let i): return i
        case .bool(let b): return b ? 1 : 0
        default: throw error("\(try string(of: v)) is not an integer")
        }
    }

    private func equal(_ a: TemplateValue, _ b: TemplateValue) -> Bool {
        switch (a, b) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let x), .string(let y)): return x == y
        case (.list(let x), .list(let y)): return x.count == y.count && zip(x, y).allSatisfy { equal($0, $1) }
        case (.dictionary(let x), .dictionary(let y)):
            return x.entries.count == y.entries.count && x.entries.allSatisfy { e in y[e.0].map { equal(e.1, $0) } ?? false }
        case (.namespace(let x), .namespace(let y)): return x == y
        default:
            if let x = number(a), let y = number(b) { return x == y }
            return false
        }
    }

    /// Python's `str()` of a value, as Jinja prints it.
    func string(of v: TemplateValue) throws -> String {
        switch v {
        case .undefined: return ""
        case .string(let s): return s
        default: return repr(v, top: true)
        }
    }

    private func repr(_ v: TemplateValue, top: Bool = false) -> String {
        switch v {
        case .undefined: return ""
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .integer(let i): return String(i)
        case .double(let d): return d == d.rounded() && abs(d) < 1e16 ? String(format: "%.1f", d) : String(d)
        case .string(let s): return top ? s : "'" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
        case .list(let l): return "[" + l.map { repr($0) }.joined(separator: ", ") + "]"
        case .dictionary(let d): return "{" + d.entries.map { "'\($0.0)': " + repr($0.1) }.joined(separator: ", ") + "}"
        case .namespace: return "<Namespace>"
        }
    }

    /// JSON as Jinja's `tojson` writes it (Python's json.dumps: ", " and ": " separators,
    /// non-ASCII escaped, `<>&'` escaped for HTML safety).
    private func json(_ v: TemplateValue) throws -> String {
        switch v {
        case .undefined, .none: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .integer(let i): return String(i)
        case .double: return repr(v)
        case .string(let s):
            var out = "\""
            for u in s.utf16 {
                switch u {
                case 0x22: out += "\\\""
                case 0x5C: out += "\\\\"
                case 0x0A: out += "\\n"
                case 0x0D: out += "\\r"
                case 0x09: out += "\\t"
                case 0x08: out += "\\b"
                case 0x0C: out += "\\f"
                case 0x3C, 0x3E, 0x26, 0x27, 0..<0x20, 0x7F...: out += String(format: "\\u%04x", u)
                default: out.append(Character(Unicode.Scalar(UInt8(u))))
                }
            }
            return out + "\""
        case .list(let l): return "[" + (try l.map { try json($0) }.joined(separator: ", ")) + "]"
        case .dictionary(let d):
            return "{" + (try d.entries.map { "\(try json(.string($0.0))): \(try json($0.1))" }.joined(separator: ", ")) + "}"
        case .namespace: throw error("a namespace cannot be written as JSON")
        }
    }
}
