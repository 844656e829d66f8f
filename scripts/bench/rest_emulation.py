"""REST's retrieval rule (DraftRetriever, FasterDecoding/REST), emulated on the same index.

REST cannot be installed here (it is not on PyPI and needs crates.io), so its draft trees are
rebuilt from its source, `DraftRetriever/src/lib.rs` (`Reader::search`, `cut_to_choices`,
`get_draft_choices`), over infini-gram's index of the same tokens:

1. The suffix that matched (REST tries lengths 16 down to 2 and stops at the first with hits:
   the same longest match as rasd's).
2. The first k = 5,000 occurrences in REST's suffix-array order. REST's array (libsais over the
   int32 ids) sorts by token id; infini-gram's sorts by little-endian bytes, a different order,
   so all occurrences are read and sorted by their continuations in token-id order, a document's
   end first (ties between equal continuations do not matter: they count alike).
3. Their continuations of up to `long` = 10 tokens; every prefix counted (`cnt`).
4. A heap keeps the `choices` = 64 prefixes of highest count; a prefix replaces the heap's
   minimum only when its count is strictly higher. REST iterates a Rust HashMap, whose order is
   random per process: emulated with a seeded shuffle, so ties at the threshold fall as they
   would in one run of REST.
5. `cut_to_choices`: paths ranked by their number of distinct token values (stable sort, HashSet
   order shuffled likewise), the highest removed until the sum is at most `choices`.
6. The draft tree is every prefix of the remaining paths.

One difference is kept on purpose: REST concatenates documents without separators, so its
matches and continuations may run into the next document; here, as for rasd, they stop at a
document's end.
"""
import heapq
import random

import numpy as np

FIRST_K = 5000
CHUNK = 1 << 20


def first_continuations(sa, lo, hi, match_length, long=10, k=FIRST_K):
    """Continuations of the first k occurrences of suffix-array ranks lo..<hi in REST's order."""
    best = None
    for start in range(lo, hi, CHUNK):
        positions = sa.positions(start, min(hi, start + CHUNK)) + match_length
        rows = sa.continuations(positions, long)
        if hi - lo > k:
            if best is not None:
                rows = np.concatenate([best, rows])
            # np.lexsort sorts by its last key first; -1 (a document's end) sorts first.
            rows = rows[np.lexsort(rows.T[::-1])][:k]
        best = rows
    return best if best is not None else np.zeros((0, long), dtype=np.int32)


def prefix_counts(rows):
    """REST's `cnt`: every continuation prefix (a tuple of ids) with its count."""
    counts = {}
    for depth in range(1, rows.shape[1] + 1):
        sub = rows[rows[:, depth - 1] >= 0, :depth]
        if len(sub) == 0:
            break
        unique, n = np.unique(sub, axis=0, return_counts=True)
        counts.update(zip(map(tuple, unique.tolist()), n.tolist()))
    return counts


class _HeapEntry:
    """Rust's BinaryHeap<(Reverse(count), prefix)> keeps the least count, then the greatest
    prefix, on top: this entry orders a Python min-heap the same way."""
    __slots__ = ("count", "prefix")

    def __init__(self, count, prefix):
        self.count, self.prefix = count, prefix

    def __lt__(self, other):
        return self.count < other.count or (self.count == other.count and self.prefix > other.prefix)


def draft_tree(counts, rng, choices=64):
    """REST's draft tree (a set of prefixes) from its prefix counts."""
    items = list(counts.items())
    rng.shuffle(items)  # HashMap iteration order
    heap = []
    for prefix, count in items:
        if len(heap) < choices:
            heapq.heappush(heap, _HeapEntry(count, prefix))
        elif count > heap[0].count:
            heapq.heapreplace(heap, _HeapEntry(count, prefix))
    paths = list({e.prefix for e in heap})
    rng.shuffle(paths)  # HashSet iteration order
    ranked = sorted(((len(set(p)), i) for i, p in enumerate(paths)), key=lambda x: -x[0])
    total = sum(c for c, _ in ranked)
    removed = set()
    for c, i in ranked:
        if total <= choices:
            break
        total -= c
        removed.add(i)
    return {p[:j] for i, p in enumerate(paths) if i not in removed for j in range(1, len(p) + 1)}


def acceptance(tree, next_tokens):
    """1 + the longest prefix of the true continuation that is a path of the tree."""
    accepted = 0
    while accepted < len(next_tokens) and tuple(next_tokens[:accepted + 1]) in tree:
        accepted += 1
    return accepted + 1


def emulate(sa, engine, context, match_length, next_tokens, seeds, long=10, choices=64):
    """Acceptance and tree size of REST's tree for one query, one value per seed."""
    if match_length == 0:
        return [(1, 0)] * len(seeds)
    suffix = list(context[len(context) - match_length:])
    (lo, hi), = engine.find(suffix)["segment_by_shard"]
    counts = prefix_counts(first_continuations(sa, lo, hi, match_length, long))
    out = []
    for seed in seeds:
        tree = draft_tree(counts, random.Random(seed), choices)
        out.append((acceptance(tree, next_tokens), len(tree)))
    return out
