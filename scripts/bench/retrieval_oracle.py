#!/usr/bin/env python3
"""Exactness of rasd's retrieval, checked against infini-gram 2.6.0 as the oracle.

For every query of a benchmark file (JSON lines {"context": [...], ...}) this computes the exact
answer of the design brief's retrieval semantics with infini-gram's engine, over an infini-gram
index of the same token ids, and compares it with `rasd-index query D --queries Q --json`:

- match length: the longest context suffix of length maxMatch down to minMatch with a nonzero
  `count` (tried one length at a time, longest first: the definition, not a shortcut);
- occurrences: `count` of that suffix (never across documents: queries hold no separator);
- the trie: continuation prefixes of up to continuationLength tokens, counted over all
  occurrences, chosen greedily: a node becomes eligible once its parent is chosen, and the next
  chosen is the eligible one with the highest count, then the smaller depth, then the parent
  chosen earlier, then the smaller token id, until maxNodes are chosen. A node's children and
  their counts come from `ntd` (next-token distribution) of suffix + path with max_support
  above every count, so nothing is sampled; a document's end stops a continuation.

Prints the number of queries whose answers differ in matchLength, occurrences, sampled, tokens,
parents or counts (target 0), and the first few differences in full. Exit status 1 on any.

    retrieval_oracle.py --datastore D --infinigram DIR --queries Q.jsonl [--rasd-index PATH]
        [--tokens T.u32 --documents S.u64]   # build the infini-gram index into DIR if missing
        [--self-check N]   # check the oracle too: its first N answers against brute force
"""
import argparse
import heapq
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import infinigram_index  # noqa: E402

FIELDS = ("matchLength", "occurrences", "sampled", "tokens", "parents", "counts")


@dataclass(frozen=True)
class Parameters:
    """rasd's RetrievalParameters, with its defaults."""
    max_match: int = 16
    min_match: int = 2
    continuation_length: int = 10
    max_nodes: int = 64

    def flags(self):
        return ["--max-match", str(self.max_match), "--min-match", str(self.min_match),
                "--continuation-length", str(self.continuation_length), "--max-nodes", str(self.max_nodes)]


class Oracle:
    """Exact retrieval answers from an infini-gram engine."""

    def __init__(self, engine, parameters=Parameters(), max_support=None):
        """`max_support` None makes `ntd` exact; a number lets it sample above that many
        occurrences (infini-gram's default is 1,000), which is no longer the oracle."""
        self.engine, self.p = engine, parameters
        self.exact = max_support is None
        # Above any count in the index: `ntd` then visits every occurrence (no sampling).
        self.max_support = 1 << 62 if max_support is None else max_support

    def count(self, ids):
        return self.engine.count(ids)["count"]

    def match_length(self, context, binary=False):
        """The longest suffix length in maxMatch...minMatch that occurs, else 0.

        `binary` searches the lengths by bisection (a suffix occurs only if every shorter one
        does), which is what a fast implementation does; the default tries each length.
        """
        top = min(self.p.max_match, len(context))
        if not binary:
            for length in range(top, self.p.min_match - 1, -1):
                if self.count(context[len(context) - length:]) > 0:
                    return length
            return 0
        lo, hi = 0, top
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.count(context[len(context) - mid:]) > 0:
                lo = mid
            else:
                hi = mid - 1
        return lo if lo >= self.p.min_match else 0

    def children(self, pattern):
        """(token, count) of every token that follows `pattern` inside a document."""
        result = self.engine.ntd(pattern, max_support=self.max_support)
        if self.exact and result.get("approx"):
            raise RuntimeError(f"infini-gram sampled the next tokens of {pattern}")
        return [(t, r["cont_cnt"]) for t, r in result["result_by_token_id"].items() if t != infinigram_index.END]

    def answer(self, context, binary=False):
        """The answer in rasd's JSON form."""
        length = self.match_length(context, binary)
        if length == 0:
            return empty_answer()
        suffix = list(context[len(context) - length:])
        return greedy_trie(length, self.count(suffix), lambda path: self.children(suffix + list(path)), self.p)


def empty_answer():
    return {"matchLength": 0, "occurrences": 0, "sampled": False, "tokens": [], "parents": [], "counts": []}


def greedy_trie(match_length, occurrences, children, p):
    """The top-maxNodes trie, chosen greedily; `children(path)` gives (token, count) pairs."""
    out = {"matchLength": match_length, "occurrences": occurrences, "sampled": False, "tokens": [], "parents": [], "counts": []}
    # Heap keys give the ranking order directly: count desc, depth, parent's rank, token.
    heap = [(-c, 1, -1, t, ()) for t, c in children(())]
    heapq.heapify(heap)
    while heap and len(out["tokens"]) < p.max_nodes:
        negative_count, depth, parent, token, path = heapq.heappop(heap)
        index = len(out["tokens"])
        out["tokens"].append(token)
        out["parents"].append(parent)
        out["counts"].append(-negative_count)
        if depth < p.continuation_length and index + 1 < p.max_nodes:
            path = path + (token,)
            for t, c in children(path):
                heapq.heappush(heap, (-c, depth + 1, index, t, path))
    return out


def brute_force_answer(oracle, suffix_array, context):
    """The same answer from every occurrence's continuation, read from the suffix array and
    counted here (a check of the oracle's use of `ntd`, not of rasd)."""
    p = oracle.p
    length = oracle.match_length(context)
    if length == 0:
        return empty_answer()
    suffix = list(context[len(context) - length:])
    (lo, hi), = oracle.engine.find(suffix)["segment_by_shard"]
    rows = suffix_array.continuations(suffix_array.positions(lo, hi) + length, p.continuation_length).tolist()
    counts = {}
    for row in rows:
        for depth in range(1, len(row) + 1):
            if row[depth - 1] < 0:
                break
            key = tuple(row[:depth - 1])
            counts.setdefault(key, {})
            counts[key][row[depth - 1]] = counts[key].get(row[depth - 1], 0) + 1
    return greedy_trie(length, hi - lo, lambda path: list(counts.get(path, {}).items()), p)


def acceptance(answer, next_tokens):
    """Oracle acceptance: 1 + the longest prefix of the true continuation that is a trie path."""
    node, accepted = -1, 0
    for token in next_tokens:
        for i, (t, p) in enumerate(zip(answer["tokens"], answer["parents"])):
            if p == node and t == token:
                node, accepted = i, accepted + 1
                break
        else:
            break
    return accepted + 1


def load_queries(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def rasd_answers(rasd_index, datastore, queries_path, parameters=Parameters()):
    """rasd's answers, one per query, from `rasd-index query --queries --json`."""
    run = subprocess.run([rasd_index, "query", datastore, "--queries", queries_path, "--json", *parameters.flags()],
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"rasd-index query failed: {run.stderr.strip()}")
    return [json.loads(line) for line in run.stdout.splitlines() if line.strip()]


def compare(queries, expected, actual):
    """Per query whose answers differ: (index, fields that differ)."""
    if len(expected) != len(actual):
        raise SystemExit(f"{len(queries)} queries but {len(expected)} oracle and {len(actual)} rasd answers")
    out = []
    for i, (e, a) in enumerate(zip(expected, actual)):
        fields = [f for f in FIELDS if e.get(f) != a.get(f)]
        if fields:
            out.append((i, fields))
    return out


def report(queries, expected, actual, mismatches, show=3, file=sys.stdout):
    print(f"exactness: {len(queries)} queries, {len(mismatches)} mismatches "
          f"(matchLength, occurrences, sampled, tokens, parents, counts against infini-gram)", file=file)
    for i, fields in mismatches[:show]:
        print(f"\nquery {i} differs in {', '.join(fields)}\n  context {queries[i]['context']}", file=file)
        print(f"  oracle  {json.dumps(expected[i])}\n  rasd    {json.dumps(actual[i])}", file=file)


def oracle_answers(oracle, queries, progress=True):
    out, start = [], time.time()
    for i, q in enumerate(queries):
        out.append(oracle.answer(q["context"]))
        if progress and (i + 1) % 250 == 0:
            print(f"  oracle {i + 1}/{len(queries)} ({time.time() - start:.0f} s)", file=sys.stderr)
    return out


def self_check(oracle, suffix_array, queries, expected):
    """Compares the oracle's first answers with brute force; fails loudly on a difference."""
    for i, q in enumerate(queries):
        if brute_force_answer(oracle, suffix_array, q["context"]) != expected[i]:
            raise SystemExit(f"the oracle itself is wrong on query {i}: ntd and brute force differ")
    return f"oracle self-check: {len(queries)} answers equal to brute force over every occurrence"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datastore", required=True, help="rasd datastore directory")
    ap.add_argument("--infinigram", required=True, help="infini-gram index directory of the same tokens")
    ap.add_argument("--queries", required=True, help="JSON lines with a context per line")
    ap.add_argument("--rasd-index", default=os.path.join(os.path.dirname(__file__), "../../.build/release/rasd-index"))
    ap.add_argument("--tokens", help="uint32 tokens to build the infini-gram index from, if it is missing")
    ap.add_argument("--documents", help="uint64 document starts for --tokens")
    ap.add_argument("--show", type=int, default=3, help="differences printed in full")
    defaults = Parameters()
    ap.add_argument("--max-match", type=int, default=defaults.max_match)
    ap.add_argument("--min-match", type=int, default=defaults.min_match)
    ap.add_argument("--continuation-length", type=int, default=defaults.continuation_length)
    ap.add_argument("--max-nodes", type=int, default=defaults.max_nodes)
    ap.add_argument("--self-check", type=int, default=0, metavar="N",
                    help="first recompute N oracle answers by brute force over the suffix array")
    a = ap.parse_args()

    if not all(os.path.exists(os.path.join(a.infinigram, f)) for f in infinigram_index.FILES):
        if not (a.tokens and a.documents):
            raise SystemExit(f"{a.infinigram} holds no infini-gram index; give --tokens and --documents to build one")
        infinigram_index.write_tokenized(a.tokens, a.documents, a.infinigram)
        infinigram_index.build_suffix_array(a.infinigram, os.cpu_count(), 16, os.path.join(a.infinigram, "build_sa.log"))
    queries = load_queries(a.queries)
    parameters = Parameters(a.max_match, a.min_match, a.continuation_length, a.max_nodes)
    oracle = Oracle(infinigram_index.open_engine(a.infinigram), parameters)
    expected = oracle_answers(oracle, queries)
    if a.self_check:
        print(self_check(oracle, infinigram_index.SuffixArray(a.infinigram), queries[:a.self_check], expected))
    actual = rasd_answers(a.rasd_index, a.datastore, a.queries, parameters)
    mismatches = compare(queries, expected, actual)
    report(queries, expected, actual, mismatches, a.show)
    sys.exit(1 if mismatches else 0)


if __name__ == "__main__":
    main()
