"""What the rasd retrieval service returns, as small immutable dataclasses of plain lists."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import List, Optional

#: Bits of a fused tree node's ``sources``.
SOURCE_DRAFT = 1
SOURCE_DATASTORE = 2
SOURCE_CONTEXT = 4


@dataclass(frozen=True)
class RetrievalResult:
    """A retrieval answer: the most frequent continuations of the longest matching context
    suffix, as a prefix-closed trie in flat lists (parents before children).

    Node ``i`` has token ``tokens[i]``, parent ``parents[i]`` (-1 for the next token), depth
    ``depths[i]`` (1 for the next token) and ``counts[i]``, the number of occurrences whose
    continuation starts with the node's path. Nodes come in ranking order: count descending,
    then depth, then parent, then token id.
    """

    tokens: List[int]
    parents: List[int]
    counts: List[int]
    match_length: int
    """Length of the longest context suffix that occurs (0: no match, empty trie)."""
    occurrences: int
    """How many times that suffix occurs."""
    sampled: bool
    """True when counts come from an even sample of the occurrences."""

    @cached_property
    def depths(self) -> List[int]:
        """Depth of every node: 1 for the next token (computed on first use)."""
        depths: List[int] = []
        for p in self.parents:
            depths.append(1 if p < 0 else depths[p] + 1)
        return depths

    def __len__(self) -> int:
        return len(self.tokens)

    def path(self, node: int) -> List[int]:
        """Tokens from the root to ``node``, inclusive."""
        out: List[int] = []
        while node >= 0:
            out.append(self.tokens[node])
            node = self.parents[node]
        return out[::-1]


@dataclass(frozen=True)
class DatastoreInfo:
    """An open datastore of the daemon."""

    name: str
    path: str
    vocabulary_size: int
    tokens: int
    documents: int
    bytes_on_disk: int
    tokenizer: Optional[str]
    generation: int
    """1 when first opened, +1 per reload that reopened it."""
    opened_at: str


@dataclass(frozen=True)
class ServerInfo:
    """The server's handshake reply."""

    protocol: str
    max_frame_bytes: int
    max_batch_contexts: int
    server: str


@dataclass(frozen=True)
class TreeLayout:
    """A fused tree laid out for one verification pass (breadth-first rows).

    With a pending token, row 0 is the pending token (the last accepted token, whose KV is not
    computed yet) and every speculative node hangs below it. ``tokens`` and ``parents`` are the
    verification input: ``parents[i] < i``, -1 meaning "right after the committed context".
    ``positions[i]`` is the row's offset from the first uncommitted position. Children of row
    ``r`` are rows ``child_offsets[r]:child_offsets[r + 1]``. ``paths`` holds one
    root-to-leaf path per leaf, ``path_width`` rows each, padded with -1.
    """

    has_pending_token: bool
    tokens: List[int]
    parents: List[int]
    positions: List[int]
    tree_indices: List[int]
    child_offsets: List[int]
    top_level_count: int
    mask: List[int]
    """Bit-packed ancestor mask: row ``i`` is words ``i * mask_words_per_row ...``; bit ``j``
    set when row ``i`` attends to row ``j`` (itself or an ancestor)."""
    mask_words_per_row: int
    leaves: List[int]
    paths: List[int]
    path_width: int

    def __len__(self) -> int:
        return len(self.tokens)

    def attends(self, row: int, column: int) -> bool:
        """True when ``row`` attends to ``column`` (``column`` is ``row`` or an ancestor)."""
        word = self.mask[row * self.mask_words_per_row + (column >> 6)]
        return (word >> (column & 63)) & 1 == 1

    def mask_matrix(self) -> List[List[bool]]:
        """The ancestor mask as a rows x rows matrix of booleans (``torch.tensor(...)`` ready)."""
        n = len(self.tokens)
        return [[self.attends(i, j) for j in range(n)] for i in range(n)]

    def root_to_leaf_paths(self) -> List[List[int]]:
        """The rows of every root-to-leaf path, without padding."""
        w = self.path_width
        return [[r for r in self.paths[k * w : (k + 1) * w] if r >= 0] for k in range(len(self.leaves))]


@dataclass(frozen=True)
class FusedTree:
    """The result of :meth:`RetrievalClient.fuse`: the fused tree in ranking order (its first
    ``k`` nodes are the best ``k``-node tree) and its layout."""

    tokens: List[int]
    parents: List[int]
    depths: List[int]
    scores: List[float]
    sources: List[int]
    """Bit set per node: SOURCE_DRAFT, SOURCE_DATASTORE, SOURCE_CONTEXT."""
    layout: TreeLayout

    def __len__(self) -> int:
        return len(self.tokens)


@dataclass(frozen=True)
class Acceptance:
    """The outcome of verifying a layout: accepted rows (top down, never the pending token's),
    their tokens and the target's bonus token after them."""

    rows: List[int]
    tokens: List[int]
    bonus_token: int

    @property
    def emitted_tokens(self) -> List[int]:
        """The tokens this step emits: the accepted tokens, then the bonus token."""
        return self.tokens + [self.bonus_token]

    @property
    def acceptance_length(self) -> int:
        """Accepted tokens plus the bonus token (the Spec-Bench convention)."""
        return len(self.tokens) + 1
