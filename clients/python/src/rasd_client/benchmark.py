"""Round-trip latency of the Python client: ``python -m rasd_client.benchmark``.

Times :meth:`RetrievalClient.retrieve` for every query of a JSON-lines file
(``{"context": [...], ...}`` per line), ``--runs`` passes, and prints one JSON object with the
distribution of per-query medians in microseconds (the method of ``rasd-index bench service``,
which runs this and prints it beside the Swift client).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import List

from .client import RetrievalClient


def _quantile(sorted_values: List[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(round((len(sorted_values) - 1) * q)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True)
    parser.add_argument("--datastore", required=True)
    parser.add_argument("--queries", required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N queries")
    args = parser.parse_args()

    with open(args.queries, encoding="utf-8") as f:
        contexts = [json.loads(line)["context"] for line in f if line.strip()]
    if args.limit:
        contexts = contexts[: args.limit]
    client = RetrievalClient(args.socket, client_name="rasd-python benchmark")
    for c in contexts:  # warm-up pass
        client.retrieve(args.datastore, c)
    times: List[List[float]] = [[] for _ in contexts]
    clock = time.perf_counter_ns
    for _ in range(max(1, args.runs)):
        for i, c in enumerate(contexts):
            start = clock()
            client.retrieve(args.datastore, c)
            times[i].append((clock() - start) / 1000)
    medians = sorted(sorted(t)[len(t) // 2] for t in times)
    print(json.dumps({
        "queries": len(contexts), "runs": args.runs,
        "p50": _quantile(medians, 0.5), "p90": _quantile(medians, 0.9), "p99": _quantile(medians, 0.99),
        "mean": sum(medians) / max(1, len(medians)), "max": medians[-1] if medians else 0.0,
    }))


if __name__ == "__main__":
    main()
