"""The client of the rasd retrieval daemon (``rasd-index serve``)."""

from __future__ import annotations

import json
import socket
import struct
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from ._wire import F32, HEADER, I32, U32, U64, Reader, Writer, as_list
from .errors import ErrorCode, ServiceError
from .types import Acceptance, DatastoreInfo, FusedTree, RetrievalResult, ServerInfo, TreeLayout

PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 0

# Message types (docs/protocol.md); a reply has the request's type | 0x8000.
HELLO = 0x0001
LIST = 0x0002
STATS = 0x0003
RELOAD = 0x0004
RETRIEVE = 0x0010
RETRIEVE_BATCH = 0x0011
TREE_FUSE = 0x0020
TREE_ACCEPT_GREEDY = 0x0021
TREE_ACCEPT_SAMPLING = 0x0022
ERROR = 0xFFFF
CLOSING = 0x0001

_SOURCES = {"datastore": 2, "context": 4}

Retrieval = Union[RetrievalResult, Tuple[RetrievalResult, str]]


class RetrievalClient:
    """A blocking, reusable connection to a retrieval daemon.

    >>> client = RetrievalClient("/run/rasd.sock")
    >>> answer = client.retrieve("code", [1604, 275, 24, 104])
    >>> answer.tokens, answer.parents, answer.counts, answer.depths, answer.match_length

    Answers are exactly those of in-process retrieval (``rasd-index query --json``). Not
    thread-safe: give each thread its own client. Usable as a context manager.

    :param socket_path: the daemon's socket.
    :param timeout: seconds to wait for a reply (None: forever).
    :param client_name: a name for the daemon's debug log.
    :raises ServiceError: ``CANNOT_CONNECT`` (no daemon, permissions), ``UNSUPPORTED_VERSION``,
        ``TOO_MANY_CONNECTIONS``.
    """

    def __init__(self, socket_path: str, *, timeout: Optional[float] = 30.0, client_name: str = "rasd-python") -> None:
        self.socket_path = socket_path
        self._closed: Optional[ServiceError] = None
        self._strict = False  # until the server's minor version is known
        self._next_id = 1
        self._buffer = bytearray(1 << 16)
        self._view = memoryview(self._buffer)
        self._start = 0
        self._end = 0
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(socket_path)
        except FileNotFoundError:
            self._sock.close()
            raise ServiceError(ErrorCode.CANNOT_CONNECT, f"no daemon socket at {socket_path}") from None
        except ConnectionRefusedError:
            self._sock.close()
            raise ServiceError(ErrorCode.CANNOT_CONNECT, f"nothing listens on {socket_path} (the socket of a daemon that stopped)") from None
        except PermissionError:
            self._sock.close()
            raise ServiceError(
                ErrorCode.CANNOT_CONNECT,
                f"permission denied on {socket_path} (the daemon creates it 0600 for its own user; "
                "start it with --socket-mode 0660 to share it with a group)",
            ) from None
        except OSError as error:
            self._sock.close()
            raise ServiceError(ErrorCode.CANNOT_CONNECT, f"cannot connect to {socket_path}: {error}") from None
        w = Writer()
        w.buffer += b"RASD"
        w.u16(PROTOCOL_MAJOR)
        w.u16(PROTOCOL_MINOR)
        w.short_string(client_name.encode("utf-8")[:255].decode("utf-8", "ignore"))
        r = self._request(HELLO, w.buffer)
        major, minor, max_frame, max_batch = r.u16(), r.u16(), r.u32(), r.u32()
        self.server = ServerInfo(protocol=f"{major}.{minor}", max_frame_bytes=max_frame, max_batch_contexts=max_batch, server=r.short_string())
        """The server's protocol version and limits."""
        # A newer minor version may append reply fields, which this client ignores.
        self._strict = minor <= PROTOCOL_MINOR

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Closes the connection; later calls raise ``DISCONNECTED``."""
        if self._closed is None:
            self._closed = ServiceError(ErrorCode.DISCONNECTED, f"the client closed its connection to {self.socket_path}")
        self._sock.close()

    def __enter__(self) -> "RetrievalClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- retrieval -------------------------------------------------------------------------

    def retrieve(
        self,
        datastore: str,
        context: Sequence[int],
        *,
        max_match: int = 16,
        min_match: int = 2,
        continuation_length: int = 10,
        max_nodes: int = 64,
    ) -> RetrievalResult:
        """The candidate continuations of ``context`` (token ids) in the datastore called
        ``datastore``: the longest suffix of at most ``max_match`` tokens (and at least
        ``min_match``) that occurs, and the ``max_nodes`` most frequent continuation prefixes of
        up to ``continuation_length`` tokens.

        :raises ServiceError: ``UNKNOWN_DATASTORE``, ``TOKEN_OUT_OF_RANGE``, ``INVALID_PARAMETERS``.
        """
        w = Writer()
        w.short_string(datastore)
        _parameters(w, max_match, min_match, continuation_length, max_nodes)
        w.counted(U32, as_list(context), "context")
        return _read_trie(self._request(RETRIEVE, w.buffer))

    def retrieve_batch(
        self,
        datastore: str,
        contexts: Sequence[Sequence[int]],
        *,
        max_match: int = 16,
        min_match: int = 2,
        continuation_length: int = 10,
        max_nodes: int = 64,
    ) -> List[RetrievalResult]:
        """:meth:`retrieve` for many contexts in one request and one reply, answers in order.
        An error in any context fails the batch and names the context."""
        w = Writer()
        w.short_string(datastore)
        _parameters(w, max_match, min_match, continuation_length, max_nodes)
        contexts = as_list(contexts)
        w.u32(len(contexts))
        for i, context in enumerate(contexts):
            w.counted(U32, as_list(context), f"context {i}")
        r = self._request(RETRIEVE_BATCH, w.buffer)
        answers = [_read_trie(r, finish=False) for _ in range(r.u32())]
        r.finish()
        return answers

    # -- control ---------------------------------------------------------------------------

    def datastores(self) -> List[DatastoreInfo]:
        """The daemon's open datastores."""
        r = self._request(LIST, b"")
        return [
            DatastoreInfo(
                name=d["name"], path=d["path"], vocabulary_size=d["vocabularySize"], tokens=d["tokens"],
                documents=d["documents"], bytes_on_disk=d["bytesOnDisk"], tokenizer=d.get("tokenizer"),
                generation=d["generation"], opened_at=d["openedAt"],
            )
            for d in json.loads(r.long_string())["datastores"]
        ]

    def stats(self) -> Dict[str, Any]:
        """Uptime, requests and errors per kind, latency percentiles (microseconds), open
        datastores, connections and memory, as the daemon's JSON."""
        r = self._request(STATS, b"\x00")
        r.u8()
        return json.loads(r.long_string())

    def stats_prometheus(self) -> str:
        """The stats in Prometheus text exposition format."""
        r = self._request(STATS, b"\x01")
        r.u8()
        return r.long_string()

    def reload(self, datastore: Optional[str] = None) -> List[Dict[str, Any]]:
        """Makes the daemon reopen the datastores whose files changed (all, or one by name).

        :returns: one ``{"name", "path", "status": "reloaded" | "unchanged", "generation"}`` each.
        :raises ServiceError: ``RELOAD_FAILED`` (the old version keeps serving), ``UNKNOWN_DATASTORE``.
        """
        w = Writer()
        w.short_string(datastore or "")
        r = self._request(RELOAD, w.buffer)
        return json.loads(r.long_string())["datastores"]

    # -- trees -----------------------------------------------------------------------------

    def fuse(
        self,
        *,
        draft_tokens: Sequence[int],
        draft_parents: Sequence[int],
        draft_probabilities: Sequence[float],
        retrievals: Sequence[Retrieval] = (),
        root_top_tokens: Sequence[int],
        root_top_probabilities: Sequence[float],
        budget: int = 64,
        pending_token: Optional[int] = None,
        vocabulary_size: Optional[int] = None,
    ) -> FusedTree:
        """RASD steps 3-5 in one call: prune every retrieval trie to the branches whose first
        token is among the drafter's top tokens at the root, fuse them with the draft tree by
        longest prefix match within ``budget`` nodes, and lay the result out for verification.

        :param draft_tokens: the draft tree's tokens, parents before children.
        :param draft_parents: parent index of each draft node (-1 below the root).
        :param draft_probabilities: each draft node's probability given its parent's path.
        :param retrievals: retrieval answers (:meth:`retrieve`), or ``(answer, "context")`` for
            prompt-lookup tries; plain answers count as ``"datastore"``.
        :param root_top_tokens: the drafter's most probable next tokens (``torch.topk``), best first.
        :param root_top_probabilities: their probabilities.
        :param budget: most speculative nodes in the fused tree.
        :param pending_token: the last accepted token; it becomes layout row 0.
        :param vocabulary_size: when given, every token must be below it.
        :raises ServiceError: ``INVALID_TREE`` naming the offending node, ``INVALID_PARAMETERS``.
        """
        tokens, parents, probabilities = as_list(draft_tokens), as_list(draft_parents), as_list(draft_probabilities)
        if not len(tokens) == len(parents) == len(probabilities):
            raise ValueError(f"draft arrays differ in length ({len(tokens)}, {len(parents)}, {len(probabilities)})")
        top, top_p = as_list(root_top_tokens), as_list(root_top_probabilities)
        if len(top) != len(top_p):
            raise ValueError(f"{len(top)} root top tokens but {len(top_p)} probabilities")
        w = Writer()
        w.u32(budget)
        w.u32(0 if pending_token is None else 1)
        w.u32(pending_token or 0)
        w.u32(vocabulary_size or 0)
        w.counted(U32, top, "root_top_tokens")
        w.array(F32, top_p, "root_top_probabilities")
        w.counted(U32, tokens, "draft_tokens")
        w.array(I32, parents, "draft_parents")
        w.array(F32, probabilities, "draft_probabilities")
        w.u32(len(retrievals))
        for i, item in enumerate(retrievals):
            answer, source = item if isinstance(item, tuple) else (item, "datastore")
            if source not in _SOURCES:
                raise ValueError(f"retrieval {i}: source {source!r} is neither 'datastore' nor 'context'")
            w.u32(_SOURCES[source])
            w.u32(len(answer.tokens))
            w.u32(answer.match_length)
            w.u64(answer.occurrences)
            w.u32(1 if answer.sampled else 0)
            w.array(U32, answer.tokens, f"retrieval {i} tokens")
            w.array(I32, answer.parents, f"retrieval {i} parents")
            w.array(U32, answer.counts, f"retrieval {i} counts")
        r = self._request(TREE_FUSE, w.buffer)
        n = r.u32()
        tree_tokens, tree_parents, depths = r.array(U32, n), r.array(I32, n), r.array(I32, n)
        scores, sources = r.array(F32, n), list(r.raw(n))
        rows, flags, top_level, words, width, leaves = (r.u32() for _ in range(6))
        layout = TreeLayout(
            has_pending_token=bool(flags & 1),
            tokens=r.array(U32, rows),
            parents=r.array(I32, rows),
            positions=r.array(I32, rows),
            tree_indices=r.array(I32, rows),
            child_offsets=r.array(I32, rows + 1),
            top_level_count=top_level,
            mask=r.array(U64, rows * words),
            mask_words_per_row=words,
            leaves=r.array(I32, leaves),
            paths=r.array(I32, leaves * width),
            path_width=width,
        )
        r.finish()
        return FusedTree(tokens=tree_tokens, parents=tree_parents, depths=depths, scores=scores, sources=sources, layout=layout)

    def accept_greedy(self, layout: TreeLayout, target_argmax: Sequence[int], *, root_argmax: Optional[int] = None) -> Acceptance:
        """Greedy acceptance: the longest path whose every token is the target's argmax after
        its parent, and the argmax after it as the bonus token.

        :param layout: the layout :meth:`fuse` returned (rows unchanged).
        :param target_argmax: the target's argmax after every layout row, in row order.
        :param root_argmax: the argmax at the root; needed only without a pending token.
        """
        w = _layout_rows(layout, 1 if layout.has_pending_token else 0)
        w.u32(root_argmax or 0)
        w.counted(U32, as_list(target_argmax), "target_argmax")
        return _read_acceptance(self._request(TREE_ACCEPT_GREEDY, w.buffer))

    def accept_sampling(
        self,
        layout: TreeLayout,
        target_probabilities: Optional[Sequence[Sequence[float]]] = None,
        *,
        seed: int,
        sparse_rows: Optional[Sequence[Tuple[Sequence[int], Sequence[float]]]] = None,
        root_probabilities: Optional[Sequence[float]] = None,
        vocabulary_size: Optional[int] = None,
    ) -> Acceptance:
        """Sampling acceptance by recursive rejection over siblings (the emitted tokens are
        distributed exactly as the target's own samples), with the daemon's seeded generator:
        equal inputs and seeds give equal results.

        Give the target's distribution after every layout row either dense
        (``target_probabilities``: one row of ``vocabulary_size`` floats per layout row) or
        sparse (``sparse_rows``: per row, the token ids with probability and their
        probabilities, as after top-k / top-p filtering; ``vocabulary_size`` required). Sparse
        rows give exactly the dense result and are far smaller on the wire. Rows need not be
        normalised. Without a pending token, also pass the root's distribution (dense:
        ``root_probabilities``; sparse: as the first of ``sparse_rows``).
        """
        flags = 1 if layout.has_pending_token else 0
        if sparse_rows is not None:
            if vocabulary_size is None:
                raise ValueError("sparse_rows need vocabulary_size")
            w = _layout_rows(layout, flags | 2, seed=seed, vocabulary_size=vocabulary_size)
            for i, (ids, probabilities) in enumerate(sparse_rows):
                ids, probabilities = as_list(ids), as_list(probabilities)
                if len(ids) != len(probabilities):
                    raise ValueError(f"sparse row {i}: {len(ids)} tokens but {len(probabilities)} probabilities")
                w.counted(U32, ids, f"sparse row {i} tokens")
                w.array(F32, probabilities, f"sparse row {i} probabilities")
        else:
            if target_probabilities is None:
                raise ValueError("give target_probabilities or sparse_rows")
            rows = [as_list(row) for row in as_list(target_probabilities)]
            if not layout.has_pending_token:
                if root_probabilities is None:
                    raise ValueError("a layout without a pending token needs root_probabilities")
                rows.insert(0, as_list(root_probabilities))
            width = vocabulary_size or (len(rows[0]) if rows else 0)
            for i, row in enumerate(rows):
                if len(row) != width:
                    raise ValueError(f"distribution row {i} has {len(row)} entries, not {width}")
            w = _layout_rows(layout, flags, seed=seed, vocabulary_size=width)
            for i, row in enumerate(rows):
                w.array(F32, row, f"distribution row {i}")
        return _read_acceptance(self._request(TREE_ACCEPT_SAMPLING, w.buffer))

    # -- frames ----------------------------------------------------------------------------

    def _request(self, message_type: int, payload: Union[bytes, bytearray]) -> Reader:
        if self._closed is not None:
            raise self._closed
        if message_type != HELLO and len(payload) > self.server.max_frame_bytes:
            raise ServiceError(
                ErrorCode.REQUEST_TOO_LARGE,
                f"a request of {len(payload)} bytes exceeds the server's limit of {self.server.max_frame_bytes} bytes",
            )
        request_id = self._next_id
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        try:
            self._sock.sendall(HEADER.pack(len(payload), message_type, 0, request_id) + payload)
        except socket.timeout:
            raise self._fail(ErrorCode.TIMED_OUT, f"the server at {self.socket_path} accepts no data") from None
        except OSError as error:
            # The server may have closed after an error reply (a refused connection): that reply
            # says more than the failed send.
            pending = self._pending_error_reply()
            if pending is not None:
                self._closed = ServiceError(ErrorCode.DISCONNECTED, f"the server closed the connection after: {pending.message}")
                self._sock.close()
                raise pending from None
            raise self._fail(ErrorCode.DISCONNECTED, f"sending to {self.socket_path} failed: {error}") from None
        reply_type, flags, reply_id, payload_view = self._read_frame()
        r = Reader(payload_view, f"reply to message type 0x{message_type:04x}", self._strict)
        if reply_type == ERROR:
            try:
                code, _, message = r.u16(), r.u16(), r.long_string()
            except ValueError as error:
                raise self._fail(ErrorCode.INVALID_REPLY, str(error)) from None
            error = ServiceError(code, message)
            if flags & CLOSING or (isinstance(error.code, ErrorCode) and error.code.closes_connection):
                self._closed = ServiceError(ErrorCode.DISCONNECTED, f"the server closed the connection after: {message}")
                self._sock.close()
            raise error
        if reply_type != message_type | 0x8000 or reply_id != request_id:
            raise self._fail(
                ErrorCode.INVALID_REPLY,
                f"expected the reply to request {request_id} (type 0x{message_type | 0x8000:04x}), "
                f"got type 0x{reply_type:04x} for request {reply_id}",
            )
        return r

    def _read_frame(self) -> Tuple[int, int, int, memoryview]:
        while True:
            available = self._end - self._start
            if available >= 12:
                length, message_type, flags, request_id = HEADER.unpack_from(self._buffer, self._start)
                total = 12 + length
                if available >= total:
                    begin = self._start + 12
                    self._start += total
                    if self._start == self._end:
                        self._start = self._end = 0
                    return message_type, flags, request_id, self._view[begin : begin + length]
                if self._start + total > len(self._buffer):
                    self._make_room(total)
            if self._end == len(self._buffer):
                self._make_room(max(available + 1, len(self._buffer)))
            try:
                n = self._sock.recv_into(self._view[self._end :])
            except socket.timeout:
                raise self._fail(ErrorCode.TIMED_OUT, f"no reply from {self.socket_path} within the timeout") from None
            except OSError as error:
                raise self._fail(ErrorCode.DISCONNECTED, f"reading from {self.socket_path} failed: {error}") from None
            if n == 0:
                raise self._fail(ErrorCode.DISCONNECTED, f"the server at {self.socket_path} closed the connection")
            self._end += n

    def _pending_error_reply(self) -> Optional[ServiceError]:
        """An error reply already received, read without blocking (after a failed send)."""
        try:
            data = self._sock.recv(1 << 16, socket.MSG_DONTWAIT)
        except OSError:
            return None
        if len(data) < 12:
            return None
        length, message_type, _, _ = HEADER.unpack_from(data, 0)
        if message_type != ERROR or len(data) < 12 + length:
            return None
        r = Reader(memoryview(data)[12 : 12 + length], "error reply")
        try:
            code, _, message = r.u16(), r.u16(), r.long_string()
        except ValueError:
            return None
        return ServiceError(code, message)

    def _make_room(self, total: int) -> None:
        """Moves the unread bytes to the front of a buffer of at least ``total`` bytes."""
        pending = bytes(self._view[self._start : self._end])
        if total > len(self._buffer):
            self._view.release()
            size = len(self._buffer)
            while size < total:
                size *= 2
            self._buffer = bytearray(size)
            self._view = memoryview(self._buffer)
        self._buffer[: len(pending)] = pending
        self._start, self._end = 0, len(pending)

    def _fail(self, code: ErrorCode, message: str) -> ServiceError:
        self._closed = ServiceError(ErrorCode.DISCONNECTED, f"the connection to {self.socket_path} is unusable after: {message}")
        self._sock.close()
        return ServiceError(code, message)


_PARAMETERS = struct.Struct("<HHHH")
_TRIE_HEAD = struct.Struct("<IIQI")


def _parameters(w: Writer, max_match: int, min_match: int, continuation_length: int, max_nodes: int) -> None:
    values = (max_match, min_match, continuation_length, max_nodes)
    if min(values) < 0:
        names = ("max_match", "min_match", "continuation_length", "max_nodes")
        name, v = next((n, v) for n, v in zip(names, values) if v < 0)
        raise ServiceError(ErrorCode.INVALID_PARAMETERS, f"{name} must not be negative (got {v})")
    # Large values are clamped to 16 bits; the server rejects them with its limits.
    w.buffer += _PARAMETERS.pack(*(min(int(v), 0xFFFF) for v in values))


def _read_trie(r: Reader, finish: bool = True) -> RetrievalResult:
    r._need(_TRIE_HEAD.size)
    n, match_length, occurrences, flags = _TRIE_HEAD.unpack_from(r.data, r.offset)
    r.offset += _TRIE_HEAD.size
    tokens, parents, counts = r.array(U32, n), r.array(I32, n), r.array(U32, n)
    if finish:
        r.finish()
    return RetrievalResult(
        tokens=tokens, parents=parents, counts=counts, match_length=match_length, occurrences=occurrences,
        sampled=bool(flags & 1),
    )


def _layout_rows(layout: TreeLayout, flags: int, *, seed: Optional[int] = None, vocabulary_size: Optional[int] = None) -> Writer:
    w = Writer()
    w.u32(flags)
    if seed is not None:
        w.u64(seed & 0xFFFFFFFFFFFFFFFF)
        w.u32(vocabulary_size or 0)
    w.counted(U32, layout.tokens, "layout tokens")
    w.array(I32, layout.parents, "layout parents")
    return w


def _read_acceptance(r: Reader) -> Acceptance:
    n = r.u32()
    rows, tokens = r.array(I32, n), r.array(U32, n)
    bonus = r.u32()
    r.finish()
    return Acceptance(rows=rows, tokens=tokens, bonus_token=bonus)
