/// How text is cut into words before byte-pair merging.
///
/// Both supported pre-tokenizers are GPT-2's byte-level regex
///
///     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
///
/// and ``splitDigits`` first isolates every numeric character (Unicode category N), as SmolLM,
/// StarCoder and their relatives do (llama.cpp: `\p{N}` before the regex; Hugging Face
/// `tokenizers`: `Digits(individual_digits=true)` before `ByteLevel`). The regex then runs in each
/// piece separately, so a space before a digit never joins it.
///
/// The regex is not run by a regex engine: ``WordSplitter`` is a hand-written scanner over
/// UTF-8 bytes with a class table, which is what makes tokenizing corpora fast.
public struct PreTokenizer: Sendable, Hashable, CustomStringConvertible {
    /// Whether every numeric character is split off on its own before the regex.
    public let splitDigits: Bool

    /// GPT-2's byte-level regex alone.
    public static let gpt2 = PreTokenizer(splitDigits: false)
    /// Digits isolated, then GPT-2's regex (SmolLM, StarCoder, …).
    public static let gpt2SplitDigits = PreTokenizer(splitDigits: true)

    /// Canonical name, used in the fingerprint: `gpt2` or `digits+gpt2`.
    public var canonicalName: String { splitDigits ? "digits+gpt2" : "gpt2" }

    public var description: String { canonicalName }

    /// Values of GGUF's `tokenizer.ggml.pre` meaning GPT-2's regex with digits isolated first
    /// (the names llama.cpp gives the same two regexes).
    static let splitDigitNames: Set<String> = [
        "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b",
    ]
    /// Values of `tokenizer.ggml.pre` meaning GPT-2's regex alone.
    static let gpt2Names: Set<String> = ["gpt-2", "gpt2", "mpt", "olmo", "jais"]

    /// Every `tokenizer.ggml.pre` value this implementation reproduces exactly.
    public static var supportedNames: [String] { (splitDigitNames.union(gpt2Names)).sorted() }

    /// The pre-tokenizer a GGUF's `tokenizer.ggml.pre` names, or nil when it is not supported.
    public init?(ggufName: String) {
        if Self.splitDigitNames.contains(ggufName) {
            self = .gpt2SplitDigits
        } else if Self.gpt2Names.contains(ggufName) {
            self = .gpt2
        } else {
            return nil
        }
    }

    private init(splitDigits: Bool) { self.splitDigits = splitDigits }

    /// Classes of U+0000..U+FFFF for this pre-tokenizer.
    var classTable: [UInt8] { splitDigits ? basicPlaneClassesSplitDigits : basicPlaneClassesGPT2 }

    /// The words `text` is cut into before BPE (special tokens are not looked for here).
    public func words(in text: String) -> [String] {
        var text = text
        return text.withUTF8 { bytes in
            classTable.withUnsafeBufferPointer { classes in
                var splitter = WordSplitter(bytes: bytes, range: 0..<bytes.count, splitDigits: splitDigits, classes: classes)
                var words: [String] = []
                while let r = splitter.next() { words.append(String(decoding: UnsafeBufferPointer(rebasing: bytes[r]), as: UTF8.self)) }
                return words
            }
        }
    }
}

/// Character classes of the GPT-2 regex.
enum CharClass: UInt8 {
    /// `\p{L}`: Lu, Ll, Lt, Lm, Lo.
    case letter = 0
    /// `\p{N}`: Nd, Nl, No.
    case number = 1
    /// `\s`: Unicode White_Space.
    case space = 2
    /// Everything else (punctuation, symbols, marks, controls, invalid bytes).
    case other = 3

    /// The Unicode version of the reference's regex engine (Oniguruma in Hugging Face
    /// `tokenizers` 0.23). Scalars assigned later are unassigned there, hence `other`: pinning
    /// the version keeps encodings from changing with the Unicode tables of the Swift runtime.
    static let regexUnicodeVersion = (major: 16, minor: 0)
    /// The Unicode version of the reference's digit split (Rust's `char::is_numeric`), newer
    /// than the regex's: a digit added in Unicode 17 is split off although the regex would not
    /// call it a number.
    static let digitSplitUnicodeVersion = (major: 17, minor: 0)

    static func of(_ scalar: Unicode.Scalar, splitDigits: Bool) -> CharClass {
        let p = scalar.properties
        guard let age = p.age else { return .other }
        let version = (age.major, age.minor)
        let isNumber: Bool
        switch p.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: isNumber = true
        default: isNumber = false
        }
        if splitDigits && isNumber && version <= digitSplitUnicodeVersion { return .number }
        guard version <= regexUnicodeVersion else { return .other }
        if p.isWhitespace { return .space }
        if isNumber { return .number }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        default:
            return .other
        }
    }

    /// Classes of every scalar below U+10000 for one pre-tokenizer, computed once: the scanner
    /// looks them up instead of asking the Unicode property tables per character.
    static func basicPlaneTable(splitDigits: Bool) -> [UInt8] {
        var table = [UInt8](repeating: CharClass.other.rawValue, count: 0x10000)
        for v in 0..<0x10000 {
            if let s = Unicode.Scalar(UInt32(v)) { table[v] = CharClass.of(s, splitDigits: splitDigits).rawValue }
        }
        return table
    }
}

let basicPlaneClassesGPT2 = CharClass.basicPlaneTable(splitDigits: false)
let basicPlaneClassesSplitDigits = CharClass.basicPlaneTable(splitDigits: true)

/// Scans UTF-8 bytes into the words of the GPT-2 regex (with digits isolated when asked).
///
/// Works on raw bytes: a malformed byte is a one-byte character of class `other`, so any input
/// is split without failing (valid UTF-8, which is what callers pass, is split exactly as the
/// regex splits the decoded text).
struct WordSplitter {
    let bytes: UnsafeBufferPointer<UInt8>
    let end: Int
    let splitDigits: Bool
    let classes: UnsafeBufferPointer<UInt8>
    var position: Int

    init(bytes: UnsafeBufferPointer<UInt8>, range: Range<Int>, splitDigits: Bool, classes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
        self.end = range.upperBound
        self.splitDigits = splitDigits
        self.classes = classes
        self.position = range.lowerBound
    }

    /// Class and byte length of the character starting at `i` (< end).
    @inline(__always)
    func character(at i: Int) -> (CharClass, Int) {
        let b0 = bytes[i]
        if b0 < 0x80 {
            return (CharClass(rawValue: classes[Int(b0)]) ?? .other, 1)
        }
        // Decode one scalar, checking continuation bytes and the end; anything malformed is a
        // single byte of class `other`.
        let length: Int
        var value: UInt32
        if b0 & 0xE0 == 0xC0 {
            length = 2; value = UInt32(b0 & 0x1F)
        } else if b0 & 0xF0 == 0xE0 {
            length = 3; value = UInt32(b0 & 0x0F)
        } else if b0 & 0xF8 == 0xF0 {
            length = 4; value = UInt32(b0 & 0x07)
        } else {
            return (.other, 1)
        }
        guard i + length <= end else { return (.other, 1) }
        for k in 1..<length {
            let b = bytes[i + k]
            guard b & 0xC0 == 0x80 else { return (.other, 1) }
            value = value << 6 | UInt32(b & 0x3F)
        }
        if value < 0x10000 {
            return (CharClass(rawValue: classes[Int(value)]) ?? .other, length)
        }
        guard let scalar = Unicode.Scalar(value) else { return (.other, 1) }
        return (CharClass.of(scalar, splitDigits: splitDigits), length)
    }

    /// The next word's byte range, or nil at the end.
    @inline(__always)
    mutating func next() -> Range<Int>? {
        let start = position
        guard start < end else { return nil }
        let b0 = bytes[start]
        // 's 't 're 've 'm 'll 'd (case-sensitive, as in GPT-2).
        if b0 == 0x27, start + 1 < end {
            let b1 = bytes[start + 1]
            if b1 == 0x73 || b1 == 0x74 || b1 == 0x6D || b1 == 0x64 {  // s t m d
                position = start + 2
                return start..<position
            }
            if start + 2 < end {
                let b2 = bytes[start + 2]
                if (b1 == 0x72 && b2 == 0x65) || (b1 == 0x76 && b2 == 0x65) || (b1 == 0x6C && b2 == 0x6C) {  // re ve ll
                    position = start + 3
                    return start..<position
                }
            }
        }
        var (cls, len) = character(at: start)
        var runStart = start
        if b0 == 0x20, start + 1 < end {
            // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: a space joins the run after it.
            let (nextClass, nextLength) = character(at: start + 1)
            if nextClass != .space && !(splitDigits && nextClass == .number) {
                cls = nextClass
                runStart = start + 1
                len = nextLength
            }
        }
        switch cls {
        case .number where splitDigits:
            position = runStart + len
            return start..<position
        case .letter, .number, .other:
            var i = runStart + len
            while i < end {
                let (c, l) = character(at: i)
                guard c == cls else { break }
                i += l
            }
            position = i
            return start..<i
        case .space:
            // `\s+(?!\S)|\s+`: a whitespace run, less its last character when a non-space
            // follows (that character then starts the next word), unless the run is one
            // character long. With digits isolated, a number ends the piece like the end of text.
            var i = start + len
            var lastStart = start
            while i < end {
                let (c, l) = character(at: i)
                if c != .space {
                    if !(splitDigits && c == .number), lastStart > start {
                        position = lastStart
                        return start..<lastStart
                    }
                    break
                }
                lastStart = i
                i += l
            }
            position = i
            return start..<i
        }
    }
}
