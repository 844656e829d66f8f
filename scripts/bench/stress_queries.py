#!/usr/bin/env python3
"""Adversarial retrieval queries for the exactness check (retrieval_oracle.py).

The benchmark's queries come from held-out text and mostly match long suffixes with few
occurrences. These come from the indexed token file itself and aim at the corners:

  short      a random indexed bigram or trigram after 14 rare tokens: matches of 2-3 tokens
             with up to millions of occurrences, many ties
  doc-end    the last 2-16 tokens of a document: occurrences whose continuation is cut short
  doc-start  the first 2-16 tokens of a document
  boundary   the last 8 tokens of a document and the first 8 of the next: a match must not
             run across the boundary
  repeat     one frequent token 16 times: self-overlapping occurrences
  tiny       contexts of 0-3 tokens (below, at and just above minMatch)
  absent     16 random ids, mostly never seen together

Writes JSON lines {"context", "next": [], "domain": kind}. Standard library only; seeded.
"""
import argparse
import array
import json
import random


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tokens", help="the indexed uint32 token file")
    ap.add_argument("starts", help="its uint64 document starts")
    ap.add_argument("--output", required=True)
    ap.add_argument("--per-kind", type=int, default=300)
    ap.add_argument("--vocab-size", type=int, default=49152)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()

    tokens = array.array("I")
    with open(a.tokens, "rb") as f:
        tokens.frombytes(f.read())
    starts = array.array("Q")
    with open(a.starts, "rb") as f:
        starts.frombytes(f.read())
    if starts[-1] != len(tokens):
        starts.append(len(tokens))
    documents = len(starts) - 1
    rng = random.Random(a.seed)
    frequent = sorted(set(tokens[i] for i in (rng.randrange(len(tokens)) for _ in range(2000))))
    rare = list(range(a.vocab_size - 4000, a.vocab_size))

    def document(min_length):
        while True:
            d = rng.randrange(documents)
            if starts[d + 1] - starts[d] >= min_length:
                return d

    def short():
        k = rng.choice([2, 3])
        p = rng.randrange(len(tokens) - k)
        return [rng.choice(rare) for _ in range(16 - k)] + tokens[p:p + k].tolist()

    def doc_end():
        d = document(16)
        return tokens[starts[d + 1] - rng.randint(2, 16):starts[d + 1]].tolist()

    def doc_start():
        d = document(16)
        return tokens[starts[d]:starts[d] + rng.randint(2, 16)].tolist()

    def boundary():
        while True:
            d = rng.randrange(documents - 1)
            if starts[d + 1] - starts[d] >= 8 and starts[d + 2] - starts[d + 1] >= 8:
                return tokens[starts[d + 1] - 8:starts[d + 1] + 8].tolist()

    def repeat():
        return [rng.choice(frequent)] * 16

    def tiny():
        p = rng.randrange(len(tokens) - 3)
        return tokens[p:p + rng.randint(0, 3)].tolist()

    def absent():
        return [rng.randrange(a.vocab_size) for _ in range(16)]

    kinds = {"short": short, "doc-end": doc_end, "doc-start": doc_start, "boundary": boundary,
             "repeat": repeat, "tiny": tiny, "absent": absent}
    with open(a.output, "w") as f:
        for kind, make in kinds.items():
            for _ in range(a.per_kind):
                f.write(json.dumps({"context": make(), "next": [], "domain": kind}) + "\n")


main()
