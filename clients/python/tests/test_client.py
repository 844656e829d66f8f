"""Tests of the Python client against a real daemon started from the built ``rasd-index``.

The binary is ``$RASD_INDEX``, else ``.build/release/rasd-index`` in the repository
(``scripts/test`` builds it and sets the variable). Answers are checked against the in-process
``rasd-index query --json``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from typing import List, Tuple

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from rasd_client import (  # noqa: E402
    SOURCE_DATASTORE,
    SOURCE_DRAFT,
    ErrorCode,
    RetrievalClient,
    RetrievalResult,
    ServiceError,
)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
RASD_INDEX = os.environ.get("RASD_INDEX") or os.path.join(REPO, ".build", "release", "rasd-index")
VOCABULARY = 300


def corpus(seed: int, documents: int) -> List[List[int]]:
    """Random documents that share phrases, so that matches, ties and long continuations occur."""
    rng = random.Random(seed)
    phrases = [[int((VOCABULARY - 1) * rng.random() ** 3) for _ in range(rng.randint(2, 13))] for _ in range(40)]
    docs = []
    for _ in range(documents):
        doc: List[int] = []
        length = rng.randint(0, 119)
        while len(doc) < length:
            doc += [int((VOCABULARY - 1) * rng.random() ** 3)] if rng.random() < 1 / 3 else rng.choice(phrases)
        docs.append(doc)
    return docs


def contexts_from(docs: List[List[int]], count: int, seed: int) -> List[List[int]]:
    rng = random.Random(seed)
    usable = [d for d in docs if len(d) >= 4]
    out = []
    for i in range(count):
        doc = rng.choice(usable)
        end = rng.randint(1, len(doc))
        context = doc[max(0, end - 1 - rng.randint(0, 19)) : end]
        if i % 5 == 4:
            context.append(rng.randrange(VOCABULARY))
        out.append(context if i % 7 != 6 else [])
    return out


def in_process(datastore: str, context: List[int], max_nodes: int = 64, continuation_length: int = 10) -> dict:
    out = subprocess.run(
        [RASD_INDEX, "query", datastore, "--context", ",".join(map(str, context)), "--json",
         "--max-nodes", str(max_nodes), "--continuation-length", str(continuation_length)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout)


def same(result: RetrievalResult, expected: dict) -> bool:
    return (
        result.match_length == expected["matchLength"] and result.occurrences == expected["occurrences"]
        and result.sampled == expected["sampled"] and result.tokens == expected["tokens"]
        and result.parents == expected["parents"] and result.counts == expected["counts"]
    )


def setUpModule() -> None:
    global WORK, DATASTORE, SOCKET, DAEMON, DOCS
    if not os.access(RASD_INDEX, os.X_OK):
        raise RuntimeError(f"no rasd-index binary at {RASD_INDEX}: run `swift build -c release` or set RASD_INDEX")
    WORK = tempfile.mkdtemp(prefix="rasd-py-")
    DOCS = corpus(7, 400)
    with open(os.path.join(WORK, "docs.jsonl"), "w") as f:
        for d in DOCS:
            f.write(json.dumps(d) + "\n")
    DATASTORE = os.path.join(WORK, "ds")
    subprocess.run(
        [RASD_INDEX, "build", "corpus", os.path.join(WORK, "docs.jsonl"), "--vocab-size", str(VOCABULARY), "--output", DATASTORE],
        check=True, capture_output=True,
    )
    SOCKET = os.path.join(WORK, "s")
    DAEMON = subprocess.Popen(
        [RASD_INDEX, "serve", "--socket", SOCKET, "--datastore", f"code={DATASTORE}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.time() + 30
    while not os.path.exists(SOCKET):
        if DAEMON.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"the daemon did not start: {DAEMON.stderr.read().decode() if DAEMON.stderr else ''}")
        time.sleep(0.02)


def tearDownModule() -> None:
    if DAEMON.poll() is None:
        DAEMON.kill()
        DAEMON.wait()
    shutil.rmtree(WORK, ignore_errors=True)


class RetrievalTests(unittest.TestCase):
    def setUp(self) -> None:
        self.client = RetrievalClient(SOCKET)

    def tearDown(self) -> None:
        self.client.close()

    def test_handshake_reports_the_server(self) -> None:
        self.assertEqual(self.client.server.protocol, "1.0")
        self.assertGreaterEqual(self.client.server.max_frame_bytes, 4096)

    def test_answers_equal_in_process_query(self) -> None:
        matched = 0
        for i, context in enumerate(contexts_from(DOCS, 24, seed=3)):
            max_nodes, length = ((64, 10), (7, 3), (200, 16))[i % 3]
            result = self.client.retrieve("code", context, max_nodes=max_nodes, continuation_length=length)
            self.assertTrue(same(result, in_process(DATASTORE, context, max_nodes, length)), f"context {context}")
            self.assertEqual(result.depths, [1 if p < 0 else result.depths[p] + 1 for p in result.parents])
            for node in range(len(result)):
                self.assertEqual(len(result.path(node)), result.depths[node])
            matched += len(result) > 0
        self.assertGreater(matched, 10)

    def test_batch_equals_single_requests(self) -> None:
        contexts = contexts_from(DOCS, 50, seed=4)
        batch = self.client.retrieve_batch("code", contexts)
        self.assertEqual(batch, [self.client.retrieve("code", c) for c in contexts])
        self.assertEqual(self.client.retrieve_batch("code", []), [])
        # A reply far larger than the client's initial 64 KiB buffer.
        big = self.client.retrieve_batch("code", contexts * 4, max_nodes=400, continuation_length=32)
        self.assertGreater(sum(len(a) for a in big) * 12, 1 << 17)
        self.assertEqual(big[:50], [self.client.retrieve("code", c, max_nodes=400, continuation_length=32) for c in contexts])

    def test_bad_requests_raise_and_keep_the_connection(self) -> None:
        with self.assertRaises(ServiceError) as e:
            self.client.retrieve("docs", [1, 2])
        self.assertEqual(e.exception.code, ErrorCode.UNKNOWN_DATASTORE)
        self.assertIn('"docs"', str(e.exception))
        self.assertEqual(e.exception.name, "unknown_datastore")
        with self.assertRaises(ServiceError) as e:
            self.client.retrieve("code", [1, VOCABULARY])
        self.assertEqual(e.exception.code, ErrorCode.TOKEN_OUT_OF_RANGE)
        self.assertIn(str(VOCABULARY), e.exception.message)
        for bad in ({"max_nodes": 5000}, {"min_match": 0}, {"max_match": 1, "min_match": 2}, {"max_nodes": -1}):
            with self.assertRaises(ServiceError) as e:
                self.client.retrieve("code", [1, 2], **bad)
            self.assertEqual(e.exception.code, ErrorCode.INVALID_PARAMETERS, bad)
        with self.assertRaises(ServiceError) as e:
            self.client.retrieve_batch("code", [[1], [2, 10_000]])
        self.assertIn("context 1", e.exception.message)
        with self.assertRaises(ValueError):
            self.client.retrieve("code", [1, -5])
        context = contexts_from(DOCS, 1, seed=5)[0]
        self.assertTrue(same(self.client.retrieve("code", context), in_process(DATASTORE, context)))

    def test_missing_socket_is_a_clear_error(self) -> None:
        with self.assertRaises(ServiceError) as e:
            RetrievalClient(os.path.join(WORK, "nope"))
        self.assertEqual(e.exception.code, ErrorCode.CANNOT_CONNECT)
        self.assertIn("no daemon socket at", str(e.exception))

    def test_datastores_stats_and_reload(self) -> None:
        self.client.retrieve("code", [1, 2, 3])
        (info,) = self.client.datastores()
        self.assertEqual((info.name, info.path, info.vocabulary_size, info.generation), ("code", DATASTORE, VOCABULARY, 1))
        self.assertEqual(info.tokens, sum(len(d) for d in DOCS))
        stats = self.client.stats()
        self.assertGreaterEqual(stats["requests"]["retrieve"]["count"], 1)
        self.assertIn("p99", stats["requests"]["retrieve"]["latencyMicroseconds"])
        self.assertEqual(stats["datastores"][0]["name"], "code")
        self.assertIn('rasd_datastore_tokens{datastore="code"}', self.client.stats_prometheus())
        self.assertEqual([o["status"] for o in self.client.reload()], ["unchanged"])
        with self.assertRaises(ServiceError) as e:
            self.client.reload("docs")
        self.assertEqual(e.exception.code, ErrorCode.UNKNOWN_DATASTORE)


def random_draft(rng: random.Random, n: int, vocabulary: int) -> Tuple[List[int], List[int], List[float]]:
    tokens, parents, probabilities = [], [], []
    for i in range(n):
        parents.append(-1 if i == 0 or rng.random() < 0.2 else rng.randrange(-1, i))
        tokens.append(rng.randrange(vocabulary))
        probabilities.append(rng.choice([1.0, 0.5, 0.25, rng.uniform(0.01, 1.0)]))
    return tokens, parents, probabilities


def root_token(tokens: List[int], parents: List[int], node: int) -> int:
    while parents[node] >= 0:
        node = parents[node]
    return tokens[node]


def paths_of(tokens: List[int], parents: List[int]) -> set:
    out = set()
    for i in range(len(tokens)):
        path, node = [], i
        while node >= 0:
            path.append(tokens[node])
            node = parents[node]
        out.add(tuple(reversed(path)))
    return out


class TreeTests(unittest.TestCase):
    def setUp(self) -> None:
        self.client = RetrievalClient(SOCKET)
        self.rng = random.Random(11)

    def tearDown(self) -> None:
        self.client.close()

    def fuse(self, budget: int, pending: bool = True):
        draft = random_draft(self.rng, self.rng.randint(1, 25), 40)
        context = contexts_from(DOCS, 1, seed=self.rng.randrange(1 << 30))[0]
        answer = self.client.retrieve("code", context, max_nodes=40)
        top = sorted({*draft[0][:3], *answer.tokens[:4], 5})
        top_p = [1.0 / (k + 2) for k in range(len(top))]
        fused = self.client.fuse(
            draft_tokens=draft[0], draft_parents=draft[1], draft_probabilities=draft[2], retrievals=[answer],
            root_top_tokens=top, root_top_probabilities=top_p, budget=budget,
            pending_token=7 if pending else None, vocabulary_size=VOCABULARY,
        )
        return draft, answer, top, fused

    def test_fusion_keeps_every_path_within_budget_and_prunes_by_the_root_top_k(self) -> None:
        for _ in range(30):
            draft, answer, top, fused = self.fuse(budget=10_000)
            fused_paths = paths_of(fused.tokens, fused.parents)
            self.assertTrue(paths_of(draft[0], draft[1]) <= fused_paths)
            kept = {p for p in paths_of(answer.tokens, answer.parents) if p[0] in top}
            self.assertTrue(kept <= fused_paths)
            for i, p in enumerate(fused.parents):
                self.assertLess(p, i)
                if fused.sources[i] & SOURCE_DATASTORE and not fused.sources[i] & SOURCE_DRAFT:
                    self.assertIn(root_token(fused.tokens, fused.parents, i), top)
            self.assertEqual(len(fused_paths), len(fused))  # duplicates merged
        for budget in (0, 1, 5, 17):
            _, _, _, fused = self.fuse(budget=budget)
            self.assertLessEqual(len(fused), budget)
            self.assertTrue(all(p < i for i, p in enumerate(fused.parents)))

    def test_layout_mask_and_paths_match_the_ancestor_relation(self) -> None:
        for pending in (True, False):
            for _ in range(15):
                _, _, _, fused = self.fuse(budget=40, pending=pending)
                layout = fused.layout
                self.assertEqual(len(layout), len(fused) + (1 if pending else 0))
                self.assertEqual(layout.has_pending_token, pending)
                ancestors = []
                for row, parent in enumerate(layout.parents):
                    self.assertLess(parent, row)
                    ancestors.append((ancestors[parent] if parent >= 0 else set()) | {row})
                matrix = layout.mask_matrix()
                for i in range(len(layout)):
                    for j in range(len(layout)):
                        self.assertEqual(matrix[i][j], j in ancestors[i])
                for path in layout.root_to_leaf_paths():
                    self.assertEqual(set(path), ancestors[path[-1]])
                    self.assertIn(path[-1], layout.leaves)
                for r in range(len(layout)):
                    children = range(layout.child_offsets[r], layout.child_offsets[r + 1])
                    self.assertEqual(list(children), [c for c, p in enumerate(layout.parents) if p == r])

    def test_greedy_acceptance_equals_walking_the_argmax(self) -> None:
        for _ in range(40):
            _, _, _, fused = self.fuse(budget=30)
            layout = fused.layout
            argmax = []
            for r in range(len(layout)):
                children = list(range(layout.child_offsets[r], layout.child_offsets[r + 1]))
                argmax.append(layout.tokens[self.rng.choice(children)] if children and self.rng.random() < 0.7 else self.rng.randrange(VOCABULARY))
            accepted = self.client.accept_greedy(layout, argmax)
            # Step-by-step greedy decoding along the tree.
            row, rows = 0, []
            while True:
                nxt = [c for c in range(layout.child_offsets[row], layout.child_offsets[row + 1]) if layout.tokens[c] == argmax[row]]
                if not nxt:
                    break
                row = nxt[0]
                rows.append(row)
            self.assertEqual(accepted.rows, rows)
            self.assertEqual(accepted.tokens, [layout.tokens[r] for r in rows])
            self.assertEqual(accepted.bonus_token, argmax[row])
            self.assertEqual(accepted.emitted_tokens, accepted.tokens + [accepted.bonus_token])

    def test_sampling_is_seeded_and_sparse_rows_equal_dense_rows(self) -> None:
        outcomes = set()
        for seed in range(40):
            _, _, _, fused = self.fuse(budget=30)
            layout = fused.layout
            vocabulary = VOCABULARY
            sparse, dense = [], []
            for _ in range(len(layout)):
                ids = sorted(self.rng.sample(range(vocabulary), 12) + [t for t in layout.tokens if self.rng.random() < 0.3])
                ids = sorted(set(ids))
                probabilities = [self.rng.random() + 0.01 for _ in ids]
                sparse.append((ids[::-1], probabilities[::-1]))
                row = [0.0] * vocabulary
                for t, p in zip(ids, probabilities):
                    row[t] = p
                dense.append(row)
            a = self.client.accept_sampling(layout, dense, seed=seed)
            b = self.client.accept_sampling(layout, sparse_rows=sparse, seed=seed, vocabulary_size=vocabulary)
            self.assertEqual(a, b)
            self.assertEqual(a, self.client.accept_sampling(layout, dense, seed=seed))
            # The bonus token is one the distribution after the last accepted row gives mass to.
            last = a.rows[-1] if a.rows else 0
            self.assertGreater(dense[last][a.bonus_token], 0)
            outcomes.add((a.acceptance_length, a.bonus_token))
        self.assertGreater(len(outcomes), 10)

    def test_bad_trees_raise_and_keep_the_connection(self) -> None:
        with self.assertRaises(ServiceError) as e:
            self.client.fuse(draft_tokens=[1, 2], draft_parents=[1, -1], draft_probabilities=[0.5, 0.5],
                             root_top_tokens=[1], root_top_probabilities=[1.0])
        self.assertEqual(e.exception.code, ErrorCode.INVALID_TREE)
        with self.assertRaises(ServiceError) as e:
            self.client.fuse(draft_tokens=[1], draft_parents=[-1], draft_probabilities=[1.5],
                             root_top_tokens=[1], root_top_probabilities=[1.0])
        self.assertEqual(e.exception.code, ErrorCode.INVALID_TREE)
        _, _, _, fused = self.fuse(budget=10)
        with self.assertRaises(ServiceError) as e:
            self.client.accept_greedy(fused.layout, [0])
        self.assertEqual(e.exception.code, ErrorCode.INVALID_TREE)
        self.assertEqual(self.client.retrieve("code", [1, 2]).match_length >= 0, True)

    def test_readme_example(self) -> None:
        # The decode step from clients/python/README.md, with plain lists for the tensors.
        client = self.client
        context = contexts_from(DOCS, 1, seed=99)[0] or [1, 2]
        root_probs = [0.0] * VOCABULARY
        for t, p in zip([3, 5, 8, 13], [0.4, 0.3, 0.2, 0.1]):
            root_probs[t] = p
        top = sorted(range(VOCABULARY), key=lambda t: -root_probs[t])[:8]  # torch.topk(root_probs, 8)
        answer = client.retrieve("code", context)
        step = client.fuse(
            draft_tokens=[3, 5, 21], draft_parents=[-1, -1, 0], draft_probabilities=[0.4, 0.3, 0.9],
            retrievals=[answer], root_top_tokens=top, root_top_probabilities=[root_probs[t] for t in top],
            budget=32, pending_token=context[-1],
        )
        target_argmax = [step.layout.tokens[min(r + 1, len(step.layout) - 1)] for r in range(len(step.layout))]
        accepted = client.accept_greedy(step.layout, target_argmax)
        self.assertEqual(accepted.rows, sorted(accepted.rows))
        self.assertEqual(len(accepted.emitted_tokens), accepted.acceptance_length)


class ShutdownTests(unittest.TestCase):
    """A daemon of its own, stopped with SIGTERM."""

    def test_connection_limit_then_sigterm_exits_zero_and_removes_the_socket(self) -> None:
        sock = os.path.join(WORK, "t")
        daemon = subprocess.Popen([RASD_INDEX, "serve", "--socket", sock, "--datastore", DATASTORE, "--max-connections", "1"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while not os.path.exists(sock) and time.time() < deadline:
            time.sleep(0.02)
        client = RetrievalClient(sock)
        self.assertEqual(client.datastores()[0].name, "ds")
        for _ in range(3):
            with self.assertRaises(ServiceError) as e:
                RetrievalClient(sock)
            self.assertEqual(e.exception.code, ErrorCode.TOO_MANY_CONNECTIONS)
            self.assertIn("1 connections", e.exception.message)
        daemon.send_signal(signal.SIGTERM)
        self.assertEqual(daemon.wait(timeout=30), 0)
        self.assertFalse(os.path.exists(sock))
        with self.assertRaises(ServiceError) as e:
            client.retrieve("ds", [1, 2])
        self.assertEqual(e.exception.code, ErrorCode.DISCONNECTED)


if __name__ == "__main__":
    unittest.main()
