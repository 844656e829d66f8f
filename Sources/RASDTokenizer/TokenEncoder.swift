#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A reusable encoder with its own cache of word encodings: the fast way to tokenize much text.
///
/// Make one per thread with ``Tokenizer/makeEncoder(cacheLimit:)`` and reuse it: most words of a corpus
/// repeat, and a cached word costs one hash lookup instead of a BPE run. The cache is bounded
/// (it is cleared when it reaches ``cacheLimit`` words). Not thread-safe; the ``Tokenizer``
/// itself is, so many encoders can share it.
public final class TokenEncoder {
    /// The tokenizer this encoder runs.
    public let tokenizer: Tokenizer
    /// Most words the cache holds before it starts afresh.
    public let cacheLimit: Int

    private let tables: CompiledTables
    private var state = EncoderState()

    /// Bytes of the input dropped so far because they have no token of their own and the
    /// tokenizer has no unknown token (the reference drops them too).
    public var droppedByteCount: Int { state.droppedByteCount }

    init(tokenizer: Tokenizer, cacheLimit: Int) {
        self.tokenizer = tokenizer
        self.tables = tokenizer.tables
        self.cacheLimit = max(1024, cacheLimit)
    }

    /// The ids of `text`, without BOS.
    public func encode(_ text: String) -> [UInt32] {
        var out: [UInt32] = []
        encode(text, into: &out)
        return out
    }

    /// Appends the ids of `text` to `output`.
    public func encode(_ text: String, into output: inout [UInt32]) {
        var text = text
        text.withUTF8 { encode(utf8: $0, into: &output) }
    }

    /// Appends the ids of UTF-8 `bytes` to `output`.
    ///
    /// The input should be valid UTF-8 (corpus readers check it). A malformed byte is treated
    /// as a one-byte punctuation character and encoded as its byte token, so nothing fails.
    public func encode(utf8 bytes: UnsafeBufferPointer<UInt8>, into output: inout [UInt32]) {
        // The state moves into a local for the call: working on a local struct spares the
        // exclusivity checks and reference counting that every access to a class's stored
        // property costs (measured: ~15% of the time).
        var s = EncoderState()
        swap(&s, &state)
        defer { swap(&s, &state) }
        output.reserveCapacity(output.count + bytes.count / 3)
        var segmentStart = 0
        var i = 0
        let n = bytes.count
        if !tables.specials.isEmpty {
            while i < n {
                if let (id, length) = tables.special(at: i, in: bytes) {
                    s.encodeSegment(bytes, segmentStart..<i, tables: tables, cacheLimit: cacheLimit, into: &output)
                    output.append(id)
                    i += length
                    segmentStart = i
                } else {
                    i += 1
                }
            }
        }
        s.encodeSegment(bytes, segmentStart..<n, tables: tables, cacheLimit: cacheLimit, into: &output)
    }
}

/// The mutable part of an encoder: word cache, scratch buffers, counters.
struct EncoderState {
    var cache = WordCache()
    var symbols: [UInt32] = []
    var ranks: [UInt64] = []
    var heapWorker = HeapBPE()
    var droppedByteCount = 0

    /// Words longer than this many bytes are not cached (they are rare and would bloat it).
    static let longestCachedWord = 64

    /// Encodes text between special tokens: pre-tokenize, then each word through the cache or BPE.
    mutating func encodeSegment(
        _ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>, tables: CompiledTables, cacheLimit: Int,
        into output: inout [UInt32]
    ) {
        guard !range.isEmpty else { return }
        var splitter = WordSplitter(
            bytes: bytes, range: range, splitDigits: tables.splitDigits,
            classes: UnsafeBufferPointer(tables.classes))
        while let word = splitter.next() {
            let length = word.count
            if length == 1 {
                let t = tables.byteToken[Int(bytes[word.lowerBound])]
                if t != CompiledTables.noToken {
                    output.append(t)
                } else if let unk = tables.unknownToken {
                    output.append(unk)
                } else {
                    droppedByteCount += 1
                }
                continue
            }
            let wordBytes = UnsafeBufferPointer(rebasing: bytes[word])
            if length <= Self.longestCachedWord {
                let hash = WordCache.hash(wordBytes)
                if cache.lookup(wordBytes, hash: hash, into: &output) { continue }
                let before = output.count
                let droppedBefore = droppedByteCount
                bpe(wordBytes, tables: tables, into: &output)
                // Words that lost bytes stay uncached, so every occurrence is counted.
                if droppedByteCount == droppedBefore {
                    if cache.count >= cacheLimit { cache.removeAll() }
                    cache.insert(wordBytes, hash: hash, ids: output[before...])
                }
            } else {
                bpe(wordBytes, tables: tables, into: &output)
            }
        }
    }

    /// Byte-pair encodes one word: start from byte tokens, repeatedly merge the adjacent pair
    /// of lowest rank (the leftmost among equals), as the reference does.
    mutating func bpe(_ word: UnsafeBufferPointer<UInt8>, tables: CompiledTables, into output: inout [UInt32]) {
        symbols.removeAll(keepingCapacity: true)
        var lastWasUnknown = false
        for b in word {
            let t = tables.byteToken[Int(b)]
            if t != CompiledTables.noToken {
                symbols.append(t)
                lastWasUnknown = false
            } else if let unk = tables.unknownToken {
                if !(tables.fuseUnknown && lastWasUnknown) { symbols.append(unk) }
                lastWasUnknown = true
            } else {
                droppedByteCount += 1
            }
        }
        if symbols.count > 48 {
            // Long words (long runs of one character class) use a heap so they cost
            // O(n log n), not O(n²).
            heapWorker.run(&symbols, tables: tables)
            output.append(contentsOf: symbols)
            return
        }
        let n = symbols.count
        guard n > 1 else {
            output.append(contentsOf: symbols)
            return
        }
        ranks.removeAll(keepingCapacity: true)
        for k in 0..<(n - 1) { ranks.append(tables.merge(symbols[k], symbols[k + 1])) }
        symbols.withUnsafeMutableBufferPointer { sym in
            ranks.withUnsafeMutableBufferPointer { rk in
                var count = n
                while count > 1 {
                    // Rank is in the high half, so the smallest value is the best merge.
                    var best = 0
                    var bestValue = rk[0]
                    for k in 1..<(count - 1) where rk[k] < bestValue {
                        best = k
                        bestValue = rk[k]
                    }
                    if bestValue == UInt64.max { break }
                    sym[best] = UInt32(truncatingIfNeeded: bestValue)
                    // Remove symbol best+1 and the pair rank that started at it.
                    for k in (best + 1)..<(count - 1) { sym[k] = sym[k + 1] }
                    for k in (best + 1)..<max(best + 1, count - 2) { rk[k] = rk[k + 1] }
                    count -= 1
                    if best > 0 { rk[best - 1] = tables.merge(sym[best - 1], sym[best]) }
                    if best < count - 1 { rk[best] = tables.merge(sym[best], sym[best + 1]) }
                }
                output.append(contentsOf: UnsafeBufferPointer(rebasing: sym[0..<count]))
            }
        }
    }
}

/// BPE over a linked list with a binary heap of candidate merges ordered by (rank, position),
/// entries validated lazily when popped.
struct HeapBPE {
    private var next: [Int32] = []
    private var prev: [Int32] = []
    private var alive: [Bool] = []
    private var heap: [UInt64] = []  // rank << 32 | position

    mutating func run(_ symbols: inout [UInt32], tables: CompiledTables) {
        let n = symbols.count
        next = (0..<n).map { Int32($0 + 1) }
        next[n - 1] = -1
        prev = (0..<n).map { Int32($0 - 1) }
        alive = [Bool](repeating: true, count: n)
        heap.removeAll(keepingCapacity: true)
        for k in 0..<(n - 1) {
            let m = tables.merge(symbols[k], symbols[k + 1])
            if m != UInt64.max { push((m >> 32) << 32 | UInt64(k)) }
        }
        while let top = pop() {
            let pos = Int(top & 0xFFFF_FFFF)
            let rank = top >> 32
            guard alive[pos], next[pos] >= 0 else { continue }
            let right = Int(next[pos])
            let m = tables.merge(symbols[pos], symbols[right])
            guard m != UInt64.max, m >> 32 == rank else { continue }  // stale entry
            symbols[pos] = UInt32(truncatingIfNeeded: m)
            alive[right] = false
            next[pos] = next[right]
            if next[right] >= 0 { prev[Int(next[right])] = Int32(pos) }
            if prev[pos] >= 0 {
                let p = Int(prev[pos])
                let pm = tables.merge(symbols[p], symbols[pos])
                if pm != UInt64.max { push((pm >> 32) << 32 | UInt64(p)) }
            }
            if next[pos] >= 0 {
                let nm = tables.merge(symbols[pos], symbols[Int(next[pos])])
                if nm != UInt64.max { push((nm >> 32) << 32 | UInt64(pos)) }
            }
        }
        var out: [UInt32] = []
        out.reserveCapacity(n)
        var k = 0
        while k >= 0 {
            out.append(symbols[k])
            k = Int(next[k])
        }
        symbols = out
    }

    private mutating func push(_ v: UInt64) {
        heap.append(v)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard heap[parent] > heap[i] else { break }
            heap.swapAt(parent, i)
            i = parent
        }
    }

    private mutating func pop() -> UInt64? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count && heap[l] < heap[m] { m = l }
                if r < heap.count && heap[r] < heap[m] { m = r }
                if m == i { break }
                heap.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}

/// Open-addressing hash table from word bytes to their token ids, keys and values kept in two
/// arenas so inserting a word allocates nothing once the arenas have grown.
struct WordCache {
    private struct Entry {
        var hash: UInt64 = 0  // 0: free
        var keyStart: UInt32 = 0
        var keyLength: UInt32 = 0
        var valueStart: UInt32 = 0
        var valueCount: UInt32 = 0
    }

    // Allocated on the first insert, so a short-lived encoder (one `Tokenizer.encode` call on
    // a prompt) costs no table.
    private var entries: [Entry] = []
    private var keys: [UInt8] = []
    private var values: [UInt32] = []
    private(set) var count = 0

    @inline(__always)
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0x243F_6A88_85A3_08D3 ^ UInt64(bytes.count)
        let raw = UnsafeRawBufferPointer(bytes)
        var i = 0
        while i + 8 <= raw.count {
            h = (h ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xBF58_476D_1CE4_E5B9
            h ^= h >> 31
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < raw.count {
            tail |= UInt64(raw[i]) << shift
            shift += 8
            i += 1
        }
        h = (h ^ tail) &* 0x94D0_49BB_1331_11EB
        h ^= h >> 29
        return h | 1  // never 0, which marks a free entry
    }

    /// Appends the cached ids of `word` to `output`; false when the word is not cached.
    @inline(__always)
    func lookup(_ word: UnsafeBufferPointer<UInt8>, hash: UInt64, into output: inout [UInt32]) -> Bool {
        guard !entries.isEmpty else { return false }
        let mask = entries.count - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        return entries.withUnsafeBufferPointer { e in
            while true {
                let entry = e[slot]
                if entry.hash == 0 { return false }
                if entry.hash == hash && Int(entry.keyLength) == word.count {
                    let same = keys.withUnsafeBufferPointer { k -> Bool in
                        guard let kb = k.baseAddress, let wb = word.baseAddress else { return word.isEmpty }
                        return memcmp(kb + Int(entry.keyStart), wb, word.count) == 0
                    }
                    if same {
                        values.withUnsafeBufferPointer { v in
                            let start = Int(entry.valueStart)
                            output.append(contentsOf: UnsafeBufferPointer(rebasing: v[start..<(start + Int(entry.valueCount))]))
                        }
                        return true
                    }
                }
                slot = (slot + 1) & mask
            }
        }
    }

    mutating func insert(_ word: UnsafeBufferPointer<UInt8>, hash: UInt64, ids: ArraySlice<UInt32>) {
        if (count + 1) * 2 > entries.count { grow() }
        let mask = entries.count - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        while entries[slot].hash != 0 { slot = (slot + 1) & mask }
        entries[slot] = Entry(
            hash: hash, keyStart: UInt32(keys.count), keyLength: UInt32(word.count),
            valueStart: UInt32(values.count), valueCount: UInt32(ids.count))
        keys.append(contentsOf: word)
        values.append(contentsOf: ids)
        count += 1
    }

    mutating func removeAll() {
        entries = []
        keys.removeAll(keepingCapacity: true)
        values.removeAll(keepingCapacity: true)
        count = 0
    }

    private mutating func grow() {
        let old = entries
        entries = [Entry](repeating: Entry(), count: max(4096, old.count * 2))
        let mask = entries.count - 1
        for e in old where e.hash != 0 {
            var slot = Int(truncatingIfNeeded: e.hash) & mask
            while entries[slot].hash != 0 { slot = (slot + 1) & mask }
            entries[slot] = e
        }
    }
}
