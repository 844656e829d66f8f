/// Sorts unique integer keys ascending in place without allocating.
///
/// The standard library's `sort()` is a merge sort that allocates a scratch buffer for more than
/// a handful of elements; fusion sorts a hundred-odd ranking keys every decode step and must not
/// allocate. Quicksort with median-of-three pivots and insertion sort for short ranges; the
/// recursion always takes the shorter side, so the stack stays logarithmic, and after
/// `2 log2(n)` levels a range falls back to heapsort, so the worst case stays O(n log n).
func sortAscending<Key: FixedWidthInteger>(_ keys: UnsafeMutableBufferPointer<Key>) {
    guard keys.count > 1, let base = keys.baseAddress else { return }
    let depthLimit = 2 * (Int.bitWidth - keys.count.leadingZeroBitCount)
    quicksort(base, 0, keys.count, depthLimit)
}

private func quicksort<Key: FixedWidthInteger>(_ a: UnsafeMutablePointer<Key>, _ start: Int, _ end: Int, _ depth: Int) {
    var start = start, end = end, depth = depth
    while end - start > 16 {
        if depth == 0 {
            heapsort(a + start, end - start)
            return
        }
        depth -= 1
        let mid = start + (end - start) / 2
        // Median of three to a[start], as the pivot.
        if a[mid] < a[start] { swapAt(a, mid, start) }
        if a[end - 1] < a[start] { swapAt(a, end - 1, start) }
        if a[end - 1] < a[mid] { swapAt(a, end - 1, mid) }
        swapAt(a, start, mid)
        // Lomuto partition around a[start]: keys are unique, so nothing equals the pivot.
        let pivot = a[start]
        var j = start
        for k in (start + 1)..<end where a[k] < pivot {
            j += 1
            swapAt(a, j, k)
        }
        swapAt(a, start, j)
        if j - start < end - j - 1 {
            quicksort(a, start, j, depth)
            start = j + 1
        } else {
            quicksort(a, j + 1, end, depth)
            end = j
        }
    }
    insertionSort(a, start, end)
}

@inline(__always)
private func swapAt<Key>(_ a: UnsafeMutablePointer<Key>, _ i: Int, _ j: Int) {
    let t = a[i]
    a[i] = a[j]
    a[j] = t
}

private func insertionSort<Key: FixedWidthInteger>(_ a: UnsafeMutablePointer<Key>, _ start: Int, _ end: Int) {
    guard end - start > 1 else { return }
    for i in (start + 1)..<end {
        let key = a[i]
        var j = i
        while j > start && a[j - 1] > key {
            a[j] = a[j - 1]
            j -= 1
        }
        a[j] = key
    }
}

private func heapsort<Key: FixedWidthInteger>(_ a: UnsafeMutablePointer<Key>, _ n: Int) {
    func siftDown(_ root: Int, _ n: Int) {
        var root = root
        while true {
            var child = 2 * root + 1
            if child >= n { return }
            if child + 1 < n && a[child + 1] > a[child] { child += 1 }
            if a[root] >= a[child] { return }
            swapAt(a, root, child)
            root = child
        }
    }
    for root in stride(from: n / 2 - 1, through: 0, by: -1) { siftDown(root, n) }
    for end in stride(from: n - 1, to: 0, by: -1) {
        swapAt(a, 0, end)
        siftDown(0, end)
    }
}
