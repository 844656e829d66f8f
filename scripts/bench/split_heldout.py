#!/usr/bin/env python3
"""Split a pre-tokenized corpus into an indexed part and held-out retrieval queries.

Input: a uint32 token file, its uint64 document starts, and optionally a file with one domain
label per document. Every `--every`-th document is held out (never indexed); `--queries`
contexts of `--context` tokens are drawn from held-out documents at random positions with at
least `--next` following tokens, and written as JSON lines {"context", "next", "domain"}.
Standard library only; deterministic for a given --seed.
"""
import argparse, array, json, random, sys

def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("tokens"); ap.add_argument("starts")
    ap.add_argument("--domains", help="one label per document, one per line")
    ap.add_argument("--out-prefix", required=True, help="writes PREFIX.u32, PREFIX.starts.u64, PREFIX.queries.jsonl")
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--context", type=int, default=16)
    ap.add_argument("--next", type=int, default=10)
    ap.add_argument("--seed", type=int, default=2026)
    a = ap.parse_args()

    tokens = array.array("I"); tokens.frombytes(open(a.tokens, "rb").read())
    starts = array.array("Q"); starts.frombytes(open(a.starts, "rb").read())
    if starts[-1] != len(tokens): starts.append(len(tokens))
    domains = open(a.domains).read().split("\n") if a.domains else ["all"] * (len(starts) - 1)
    kept_tokens = array.array("I"); kept_starts = array.array("Q"); held = []
    for d in range(len(starts) - 1):
        s, e = starts[d], starts[d + 1]
        if d % a.every == a.every // 2:
            held.append(d); continue
        kept_starts.append(len(kept_tokens)); kept_tokens.extend(tokens[s:e])
    kept_starts.append(len(kept_tokens))
    with open(a.out_prefix + ".u32", "wb") as f: kept_tokens.tofile(f)
    with open(a.out_prefix + ".starts.u64", "wb") as f: kept_starts.tofile(f)

    rng = random.Random(a.seed)
    eligible = [d for d in held if starts[d + 1] - starts[d] >= a.context + a.next]
    if not eligible: sys.exit("no held-out document is long enough")
    with open(a.out_prefix + ".queries.jsonl", "w") as f:
        for _ in range(a.queries):
            d = rng.choice(eligible)
            p = rng.randrange(starts[d] + a.context, starts[d + 1] - a.next + 1)
            f.write(json.dumps({"context": tokens[p - a.context:p].tolist(), "next": tokens[p:p + a.next].tolist(),
                                "domain": domains[d]}) + "\n")
    print(f"indexed {len(kept_starts) - 1} documents, {len(kept_tokens)} tokens; held out {len(held)}; "
          f"{a.queries} queries", file=sys.stderr)

main()
