import CRASDKernels
import Dispatch

/// Suffix-array construction by induced sorting (SA-IS; Nong, Zhang and Chan 2009).
///
/// Linear time, and the only memory besides the text and the output is two bucket arrays of the
/// alphabet's size: suffix types are never stored, they are recomputed from neighbouring symbols
/// where needed, and sign bits in the output mark what the induction passes still owe.
enum SuffixSorting {
    /// Fills `sa[0..<text.count]` with the suffix array of `text` over the alphabet `0..<alphabetSize`.
    ///
    /// No sentinel is needed in `text`: the end of the text compares below every symbol.
    /// - Precondition: every symbol is below `alphabetSize`; `text.count < Int32.max`.
    static func sort<S: FixedWidthInteger & Sendable>(
        text: UnsafeBufferPointer<S>, alphabetSize: Int, into sa: UnsafeMutableBufferPointer<Int32>,
        pipelineBlock: Int? = 1 << 16
    ) {
        precondition(sa.count >= text.count && text.count < Int(Int32.max))
        guard let t = text.baseAddress, let s = sa.baseAddress, text.count > 0 else { return }
        if text.count == 1 { s[0] = 0; return }
        sais(t, s, text.count, alphabetSize, pipelineBlock)
    }

    private static func sais<S: FixedWidthInteger & Sendable>(
        _ T: UnsafePointer<S>, _ SA: UnsafeMutablePointer<Int32>, _ n: Int, _ k: Int, _ block: Int?
    ) {
        let C = UnsafeMutablePointer<Int32>.allocate(capacity: k)
        let B = UnsafeMutablePointer<Int32>.allocate(capacity: k)
        defer { C.deallocate(); B.deallocate() }
        C.initialize(repeating: 0, count: k)
        for i in 0..<n { C[Int(T[i])] += 1 }

        // Stage 1: sort the LMS substrings by inducing from LMS suffixes at their bucket ends.
        bucketEnds(C, B, k)
        SA.initialize(repeating: 0, count: n)
        var m = 0
        forEachLMS(T, n) { p in
            let c = Int(T[p])
            B[c] -= 1
            SA[Int(B[c])] = Int32(p)
            m += 1
        }
        // The L-part of each bucket ends where the L pass left its head; LMS entries in the
        // S-parts stay negative, so collecting them needs no random access to the text.
        let lEnd = UnsafeMutablePointer<Int32>.allocate(capacity: k)
        defer { lEnd.deallocate() }
        induce(T, SA, C, B, n, k, lEnd: lEnd, block: block)
        var w = 0
        do {
            var start = 0
            for c in 0..<k {
                let end = start + Int(C[c])
                var i = Int(lEnd[c])
                while i < end {
                    let v = SA[i]
                    if v < 0 && v != -1 { SA[w] = ~v; w += 1 }
                    i += 1
                }
                start = end
            }
        }
        assert(w == m)

        // Name the sorted LMS substrings; equal substrings (same length, same symbols) share a name.
        // Lengths go to SA[m + p/2] first (LMS positions are at least two apart, so slots are distinct).
        for i in m..<n { SA[i] = 0 }
        var next = n
        forEachLMS(T, n) { p in
            SA[m + (p >> 1)] = Int32(next == n ? n - p : next - p + 1)
            next = p
        }
        var names = 0
        var prev = -1
        var prevLength = 0
        for x in 0..<m {
            let p = Int(SA[x])
            let length = Int(SA[m + (p >> 1)])
            var differs = true
            if length == prevLength && prev >= 0 {
                differs = false
                // A substring that reaches the end of the text ends with the virtual sentinel.
                if p + length == n || prev + length == n {
                    differs = true
                } else {
                    var d = 0
                    while d < length {
                        if T[p + d] != T[prev + d] { differs = true; break }
                        d += 1
                    }
                }
            }
            if differs { names += 1; prev = p; prevLength = length }
            SA[m + (p >> 1)] = Int32(names - 1)
        }
        // Gather the names in text order into SA[n - m ..< n].
        do {
            var j = n - 1
            forEachLMS(T, n) { p in
                SA[j] = SA[m + (p >> 1)]
                j -= 1
            }
        }

        // Stage 2: sort the LMS suffixes, recursing while names are not unique.
        let s1 = SA + (n - m)
        if names < m {
            sais(UnsafePointer(s1), SA, m, names, block)
        } else {
            for i in 0..<m { SA[Int(s1[i])] = Int32(i) }
        }

        // Stage 3: put the sorted LMS suffixes at their bucket ends and induce the rest.
        do {
            var j = m - 1
            forEachLMS(T, n) { p in
                s1[j] = Int32(p)
                j -= 1
            }
        }
        for x in 0..<m { SA[x] = s1[Int(SA[x])] }
        for x in m..<n { SA[x] = 0 }
        bucketEnds(C, B, k)
        var x = m - 1
        while x >= 0 {
            let p = Int(SA[x])
            SA[x] = 0
            let c = Int(T[p])
            B[c] -= 1
            SA[Int(B[c])] = Int32(p)
            x -= 1
        }
        induce(T, SA, C, B, n, k, lEnd: nil, block: block)
    }

    /// Calls `body` for every LMS position, from right to left.
    @inline(__always)
    private static func forEachLMS<S: FixedWidthInteger & Sendable>(_ T: UnsafePointer<S>, _ n: Int, _ body: (Int) -> Void) {
        // T[n-1] is L-type: the virtual sentinel after it is smaller.
        var nextIsS = false
        var c1 = T[n - 1]
        var i = n - 2
        while i >= 0 {
            let c0 = T[i]
            let isS = c0 < c1 || (c0 == c1 && nextIsS)
            if !isS && nextIsS { body(i + 1) }
            nextIsS = isS
            c1 = c0
            i -= 1
        }
    }

    @inline(__always)
    private static func bucketEnds(_ C: UnsafeMutablePointer<Int32>, _ B: UnsafeMutablePointer<Int32>, _ k: Int) {
        var sum: Int32 = 0
        for c in 0..<k { sum += C[c]; B[c] = sum }
    }

    /// Induces L-type then S-type suffixes.
    ///
    /// Entries are written as `j` when their predecessor must still be induced in the current
    /// pass and as `~j` otherwise, so neither pass needs the suffix types. With `lEnd`, the S pass
    /// leaves negative entries alone (LMS suffixes stay marked) and the end of every bucket's
    /// L-part is recorded.
    private static func induce<S: FixedWidthInteger & Sendable>(
        _ T: UnsafePointer<S>, _ SA: UnsafeMutablePointer<Int32>, _ C: UnsafeMutablePointer<Int32>,
        _ B: UnsafeMutablePointer<Int32>, _ n: Int, _ k: Int, lEnd: UnsafeMutablePointer<Int32>?, block: Int?
    ) {
        if let block, block > 0, n >= 4 * block {
            inducePipelined(T, SA, C, B, n, k, lEnd: lEnd, block: block)
        } else {
            induceSequential(T, SA, C, B, n, k, lEnd: lEnd)
        }
    }

    private static func induceSequential<S: FixedWidthInteger & Sendable>(
        _ T: UnsafePointer<S>, _ SA: UnsafeMutablePointer<Int32>, _ C: UnsafeMutablePointer<Int32>,
        _ B: UnsafeMutablePointer<Int32>, _ n: Int, _ k: Int, lEnd: UnsafeMutablePointer<Int32>?
    ) {
        // L pass, left to right, from bucket starts. The bucket head of the current symbol is kept
        // in a register and written back only when the symbol changes.
        do { var sum: Int32 = 0; for c in 0..<k { B[c] = sum; sum += C[c] } }
        var j = n - 1
        var c1 = Int(T[j])
        var b = Int(B[c1])
        SA[b] = (j > 0 && Int(T[j - 1]) < c1) ? ~Int32(j) : Int32(j)
        b += 1
        for i in 0..<n {
            // Hide the random reads: the text symbol of the entry 64 ahead, the bucket slot of
            // the entry 32 ahead (entries ahead may still change; a stale hint only costs a line).
            if i &+ 64 < n {
                let far = Int(SA[i &+ 64])
                if far > 1 { rasd_prefetch(T + (far &- 2)) }
                let near = Int(SA[i &+ 32])
                if near > 0 { rasd_prefetch_write(SA + Int(B[Int(T[near &- 1])])) }
            }
            let v = Int(SA[i])
            SA[i] = ~Int32(truncatingIfNeeded: v)
            if v > 0 {
                j = v - 1
                let c0 = Int(T[j])
                if c0 != c1 { B[c1] = Int32(b); c1 = c0; b = Int(B[c1]) }
                SA[b] = (j > 0 && Int(T[j - 1]) < c1) ? ~Int32(j) : Int32(j)
                b += 1
            }
        }
        B[c1] = Int32(b)
        if let lEnd { lEnd.update(from: B, count: k) }

        // S pass, right to left, from bucket ends.
        bucketEnds(C, B, k)
        c1 = 0
        b = Int(B[0])
        var i = n - 1
        while i >= 0 {
            if i >= 64 {
                let far = Int(SA[i &- 64])
                if far > 1 { rasd_prefetch(T + (far &- 2)) }
                let near = Int(SA[i &- 32])
                if near > 0 { rasd_prefetch_write(SA + (Int(B[Int(T[near &- 1])]) &- 1)) }
            }
            let v = Int(SA[i])
            if v > 0 {
                j = v - 1
                let c0 = Int(T[j])
                if c0 != c1 { B[c1] = Int32(b); c1 = c0; b = Int(B[c1]) }
                b -= 1
                SA[b] = (j == 0 || Int(T[j - 1]) > c1) ? ~Int32(j) : Int32(j)
            } else if lEnd == nil {
                SA[i] = ~Int32(truncatingIfNeeded: v)
            }
            i -= 1
        }
    }

    /// The same induction on two cores. The scans go block by block; while this thread writes
    /// the entries of one block into their buckets, a helper thread reads ahead for the next
    /// block: each entry's value, its predecessor's symbol and the value to write — the random
    /// reads of the text that dominate SA-IS. An entry the writing thread changes after the
    /// helper read it (an insertion into the next block) is recomputed: the writer compares the
    /// value it finds with the one read ahead, and what an entry induces depends on its value
    /// alone, so equal values need nothing more. (The helper may read an entry while the writer
    /// stores it; 32-bit stores do not tear, and such an entry then fails the comparison or was
    /// read right.)
    private static func inducePipelined<S: FixedWidthInteger & Sendable>(
        _ T: UnsafePointer<S>, _ SA: UnsafeMutablePointer<Int32>, _ C: UnsafeMutablePointer<Int32>,
        _ B: UnsafeMutablePointer<Int32>, _ n: Int, _ k: Int, lEnd: UnsafeMutablePointer<Int32>?, block: Int
    ) {
        // Two buffer slots of `block` entries: value read ahead, predecessor's symbol, value to write.
        let values = UnsafeMutablePointer<Int32>.allocate(capacity: 2 * block)
        let symbols = UnsafeMutablePointer<Int32>.allocate(capacity: 2 * block)
        let writes = UnsafeMutablePointer<Int32>.allocate(capacity: 2 * block)
        defer { values.deallocate(); symbols.deallocate(); writes.deallocate() }
        let shared = UnsafeSendable((T, SA, values, symbols, writes))
        let queue = DispatchQueue(label: "rasd.suffix-sorting.read-ahead")
        let blocks = (n + block - 1) / block

        /// Reads ahead for block `index` (in scan order) into slot `index & 1`.
        @Sendable func readAhead(_ index: Int, leftToRight: Bool) {
            let (T, SA, values, symbols, writes) = shared.value
            let slot = (index & 1) * block
            let lo = leftToRight ? index * block : max(0, n - (index + 1) * block)
            let hi = leftToRight ? min(n, (index + 1) * block) : n - index * block
            for i in lo..<hi {
                let v = Int(SA[i])
                let o = slot + (i - lo)
                values[o] = Int32(truncatingIfNeeded: v)
                if v > 0 {
                    let j = v - 1
                    let c0 = Int(T[j])
                    symbols[o] = Int32(c0)
                    writes[o] = leftToRight
                        ? ((j > 0 && Int(T[j - 1]) < c0) ? ~Int32(j) : Int32(j))
                        : ((j == 0 || Int(T[j - 1]) > c0) ? ~Int32(j) : Int32(j))
                }
            }
        }

        // L pass, left to right, from bucket starts.
        do { var sum: Int32 = 0; for c in 0..<k { B[c] = sum; sum += C[c] } }
        var c1 = Int(T[n - 1])
        var b = Int(B[c1])
        SA[b] = (n - 1 > 0 && Int(T[n - 2]) < c1) ? ~Int32(n - 1) : Int32(n - 1)
        b += 1
        readAhead(0, leftToRight: true)
        for index in 0..<blocks {
            let group = DispatchGroup()
            if index + 1 < blocks { queue.async(group: group) { readAhead(index + 1, leftToRight: true) } }
            let slot = (index & 1) * block
            let lo = index * block, hi = min(n, lo + block)
            for i in lo..<hi {
                let o = slot + (i - lo)
                let v = SA[i]
                SA[i] = ~v
                guard v > 0 else { continue }
                let c0: Int, w: Int32
                if v == values[o] {
                    c0 = Int(symbols[o])
                    w = writes[o]
                } else {
                    let j = Int(v) - 1
                    c0 = Int(T[j])
                    w = (j > 0 && Int(T[j - 1]) < c0) ? ~Int32(j) : Int32(j)
                }
                if c0 != c1 { B[c1] = Int32(b); c1 = c0; b = Int(B[c1]) }
                SA[b] = w
                b += 1
            }
            group.wait()
        }
        B[c1] = Int32(b)
        if let lEnd { lEnd.update(from: B, count: k) }

        // S pass, right to left, from bucket ends; block `index` ends at n - index * block.
        bucketEnds(C, B, k)
        c1 = 0
        b = Int(B[0])
        readAhead(0, leftToRight: false)
        for index in 0..<blocks {
            let group = DispatchGroup()
            if index + 1 < blocks { queue.async(group: group) { readAhead(index + 1, leftToRight: false) } }
            let slot = (index & 1) * block
            let hi = n - index * block, lo = max(0, hi - block)
            var i = hi - 1
            while i >= lo {
                let o = slot + (i - lo)
                let v = SA[i]
                if v > 0 {
                    let c0: Int, w: Int32
                    if v == values[o] {
                        c0 = Int(symbols[o])
                        w = writes[o]
                    } else {
                        let j = Int(v) - 1
                        c0 = Int(T[j])
                        w = (j == 0 || Int(T[j - 1]) > c0) ? ~Int32(j) : Int32(j)
                    }
                    if c0 != c1 { B[c1] = Int32(b); c1 = c0; b = Int(B[c1]) }
                    b -= 1
                    SA[b] = w
                } else if lEnd == nil {
                    SA[i] = ~v
                }
                i -= 1
            }
            group.wait()
        }
    }
}

/// Entry points for the test suite (`@_spi(Testing) import RASDDatastore`).
@_spi(Testing)
public enum SuffixSortingForTesting {
    /// The suffix array of `text`, sequentially (`pipelineBlock` nil) or with the two-thread
    /// induction in blocks of `pipelineBlock` entries.
    public static func suffixArray(_ text: [UInt32], alphabetSize: Int, pipelineBlock: Int?) -> [Int32] {
        var sa = [Int32](repeating: 0, count: text.count)
        text.withUnsafeBufferPointer { t in
            sa.withUnsafeMutableBufferPointer { SuffixSorting.sort(text: t, alphabetSize: alphabetSize, into: $0, pipelineBlock: pipelineBlock) }
        }
        return sa
    }
}
