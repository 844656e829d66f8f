#!/usr/bin/env python3
"""infini-gram 2.6.0 as a peer and as an oracle: its on-disk index, built from rasd's token ids.

infini-gram's index of one shard is three files (read `infini_gram/indexing.py` in the wheel):
`tokenized.0`, the token ids as little-endian uint16 with the two bytes 0xFF 0xFF before every
document; `offset.0`, the byte offset of each document's separator as uint64; and `table.0`,
the suffix array over the *bytes* of `tokenized.0` (only even offsets), each entry a
little-endian integer of `ratio` bytes. Its `build_sa` step runs the bundled `rust_indexing`
binary (make-part, merge, concat). Because the array sorts bytes, suffixes are in byte order
of the little-endian ids (low byte first), not in token-id order.

The engine reports a document end (the separator, or the end of the data) as the token
`eos_token_id`; `END` is an id no real token has, so continuations can stop there.
"""
import argparse
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

#: The token the engine reports where a document ends (any id >= the vocabulary works).
END = 65534
SEPARATOR = 0xFFFF

FILES = ("tokenized.0", "offset.0", "table.0")


def write_tokenized(tokens_path, starts_path, out_dir):
    """Writes tokenized.0 and offset.0 from rasd's uint32 tokens and uint64 document starts.

    Returns (tokens, documents). Every id must be below END, so that neither the separator nor
    the end marker can be mistaken for a token.
    """
    tokens = np.fromfile(tokens_path, dtype="<u4")
    starts = np.fromfile(starts_path, dtype="<u8")
    if len(starts) == 0 or starts[-1] != len(tokens):
        starts = np.append(starts, np.uint64(len(tokens)))
    if len(tokens) and int(tokens.max()) >= END:
        raise SystemExit(f"{tokens_path}: token id {int(tokens.max())} does not fit infini-gram's u16 format")
    documents = len(starts) - 1
    out = np.empty(len(tokens) + documents, dtype="<u2")
    separators = starts[:-1].astype(np.int64) + np.arange(documents)
    is_token = np.ones(len(out), dtype=bool)
    is_token[separators] = False
    out[separators] = SEPARATOR
    out[is_token] = tokens
    os.makedirs(out_dir, exist_ok=True)
    out.tofile(os.path.join(out_dir, "tokenized.0"))
    (2 * separators).astype("<u8").tofile(os.path.join(out_dir, "offset.0"))
    return len(tokens), documents


@dataclass
class BuildMeasurement:
    seconds: float
    cpu_seconds: float
    peak_bytes: int  # of the process tree, sampled
    peak_single_process_bytes: int  # the largest ru_maxrss of one process of the tree


def build_suffix_array(index_dir, cpus, mem_gib, log_path):
    """Runs infini-gram's own `build_sa` (its rust_indexing steps) in a child process.

    Returns a BuildMeasurement. The peak sums the resident memory of the child and all its
    descendants (the parallel rust_indexing jobs), sampled every 20 ms; CPU time is the user and
    system time of the child and its descendants.
    """
    table = os.path.join(index_dir, "table.0")
    if os.path.exists(table):
        os.remove(table)  # build_sa skips existing tables
    code = (
        "import argparse; from infini_gram import indexing; "
        "indexing.build_sa(argparse.Namespace(save_dir=%r, temp_dir=%r, worker_id=0, workers=1, shards=1, "
        "mem=%d, cpus=%d, token_width=2))" % (index_dir, index_dir, mem_gib, cpus))
    with open(log_path, "w") as log:
        start = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT)
        sampler = TreeMemorySampler(child.pid)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        sampler.stop()
    if child.returncode != 0 or not os.path.exists(table):
        raise SystemExit(f"infini-gram build_sa failed (status {child.returncode}); see {log_path}")
    return BuildMeasurement(seconds, usage.ru_utime + usage.ru_stime, sampler.peak, usage.ru_maxrss * 1024)


def disk_bytes(index_dir):
    """Bytes of the index files (tokens, offsets, suffix array)."""
    return sum(os.path.getsize(os.path.join(index_dir, f)) for f in FILES)


def open_engine(index_dir):
    """The engine over an index, prefetching off.

    The engine's default prefetching (madvise(WILLNEED) ahead of each binary-search probe, some
    300 system calls per `count`) helps an index on disk; with the index in the page cache, as
    here and as rasd's is, it only costs: 60-140 µs per `count` without it against 260-450 µs
    with it, measured side by side on this machine.
    """
    from infini_gram.engine import InfiniGramEngine
    return InfiniGramEngine(index_dir=index_dir, eos_token_id=END, vocab_size=END + 1, version=4, token_dtype="u16",
                            ds_prefetch_depth=0, sa_prefetch_depth=0, od_prefetch_depth=0)


class SuffixArray:
    """Direct reads of an index's token array and suffix array (for the REST emulation)."""

    def __init__(self, index_dir):
        self.tokens = np.memmap(os.path.join(index_dir, "tokenized.0"), dtype="<u2", mode="r")
        self.table = np.memmap(os.path.join(index_dir, "table.0"), dtype=np.uint8, mode="r")
        self.ratio = len(self.table) // len(self.tokens)
        if self.ratio * len(self.tokens) != len(self.table) or not 1 <= self.ratio <= 8:
            raise SystemExit(f"{index_dir}: table.0 does not match tokenized.0")

    def positions(self, lo, hi):
        """Token positions of the suffixes of ranks lo..<hi."""
        raw = np.asarray(self.table[lo * self.ratio:hi * self.ratio]).reshape(-1, self.ratio)
        wide = np.zeros((hi - lo, 8), dtype=np.uint8)
        wide[:, :self.ratio] = raw
        return (wide.view("<u8").ravel() // 2).astype(np.int64)

    def continuations(self, positions, length):
        """The `length` tokens at each position as int32 rows, -1 from a document's end on."""
        index = positions[:, None] + np.arange(length)
        beyond = index >= len(self.tokens)
        values = self.tokens[np.minimum(index, len(self.tokens) - 1)].astype(np.int32)
        ended = np.maximum.accumulate(beyond | (values == SEPARATOR), axis=1)
        values[ended] = -1
        return values


class TreeMemorySampler:
    """Samples the summed resident memory of a process and its descendants in a thread."""

    def __init__(self, pid, interval=0.02):
        self.pid, self.interval, self.peak = pid, interval, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._page = os.sysconf("SC_PAGE_SIZE")

    def start(self):
        self._thread.start()

    def stop(self):
        self._done.set()
        self._thread.join()

    def _run(self):
        while not self._done.is_set():
            self.peak = max(self.peak, self._sample())
            self._done.wait(self.interval)

    def _sample(self):
        parents = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            # The command name may hold spaces: fields resume after its closing parenthesis.
            parents.setdefault(int(stat[stat.rindex(")") + 2:].split()[1]), []).append(int(entry))
        total, stack = 0, [self.pid]
        while stack:
            pid = stack.pop()
            try:
                with open(f"/proc/{pid}/statm") as f:
                    total += int(f.read().split()[1]) * self._page
            except OSError:
                continue
            stack.extend(parents.get(pid, []))
        return total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tokens", help="uint32 token file")
    ap.add_argument("starts", help="uint64 document starts")
    ap.add_argument("--output", required=True, help="index directory")
    ap.add_argument("--cpus", type=int, default=os.cpu_count())
    ap.add_argument("--mem", type=int, default=16, help="GiB infini-gram may use (sets its batching)")
    a = ap.parse_args()
    n, d = write_tokenized(a.tokens, a.starts, a.output)
    b = build_suffix_array(a.output, a.cpus, a.mem, os.path.join(a.output, "build_sa.log"))
    print(f"{n} tokens, {d} documents; build_sa {b.seconds:.1f} s ({b.cpu_seconds:.1f} s CPU), "
          f"peak {b.peak_bytes / 2**20:.0f} MiB (process tree), "
          f"{disk_bytes(a.output) / n:.2f} bytes/token on disk")


if __name__ == "__main__":
    main()
