"""Exact nearest-neighbour scoring with Pinecone's score conventions.

* cosine: cosine similarity, higher first;
* dotproduct: dense dot product plus sparse dot product, higher first;
* euclidean: squared Euclidean distance, lower first.

Scores are computed for every candidate with float32 matrix-vector products; the best ``top_k + margin`` are then
rescored in float64 from the stored vectors, so returned scores carry no float32 cancellation error. Ties are broken
by id so results are deterministic.

The scan is memory-bound (100k x 384 float32 is 150 MB read per query). A filter that keeps less than half of the
rows is scored on a gathered copy of those rows, gathered in cache-sized chunks so the copy is never written back to
memory; a filter that keeps more is cheaper to score with one product over all rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from .store import Namespace
    from .validation import SparseVector

_RESCORE_MARGIN = 16
_GATHER_CHUNK_ROWS = 1024
"""Rows gathered and scored at a time on the filtered path (1.5 MB at 384 dimensions: stays in cache)."""
_GATHER_MAX_FRACTION = 0.5
"""Above this share of candidate rows, scoring every row and picking the candidates is cheaper than gathering."""


class Match(NamedTuple):
    """One result row: the namespace row and its score."""

    row: int
    score: float


def _sparse_dot(query: SparseVector, stored: SparseVector | None) -> float:
    if stored is None:
        return 0.0
    common, query_pos, stored_pos = np.intersect1d(query[0], stored[0], assume_unique=True, return_indices=True)
    if not len(common):
        return 0.0
    return float(np.dot(query[1][query_pos].astype(np.float64), stored[1][stored_pos].astype(np.float64)))


def _exact_scores(ns: Namespace, rows: np.ndarray, dense: np.ndarray | None, sparse: SparseVector | None) -> np.ndarray:
    """float64 scores of ``rows`` (larger is better for every metric: euclidean is negated here)."""
    metric = ns.space.metric
    scores = np.zeros(len(rows), dtype=np.float64)
    if dense is not None and ns.space.dimension:
        vectors = ns.matrix[rows].astype(np.float64)
        query = dense.astype(np.float64)
        if metric == "euclidean":
            diff = vectors - query
            scores = -np.einsum("ij,ij->i", diff, diff)
        else:
            scores = vectors @ query
            if metric == "cosine":
                norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(query)
                scores = scores / np.where(norms == 0, 1.0, norms)
    if sparse is not None and ns.sparse_count:
        scores = scores + np.array([_sparse_dot(sparse, ns.sparse[r]) for r in rows], dtype=np.float64)
    return scores


def _approx_scores(ns: Namespace, rows: np.ndarray | None, dense: np.ndarray) -> np.ndarray:
    """float32 scores of ``rows`` (all rows when ``None``), larger is better for every metric."""
    size = len(ns)
    query = dense.astype(np.float32, copy=False)
    if rows is None or len(rows) >= size * _GATHER_MAX_FRACTION:
        products = ns.dense @ query
        norms_sq = ns.sq_norms[:size]
        if rows is not None:
            products, norms_sq = products[rows], norms_sq[rows]
    else:
        products = np.empty(len(rows), dtype=np.float32)
        for start in range(0, len(rows), _GATHER_CHUNK_ROWS):
            chunk = rows[start : start + _GATHER_CHUNK_ROWS]
            np.matmul(ns.matrix[chunk], query, out=products[start : start + len(chunk)])
        norms_sq = ns.sq_norms[rows]
    metric = ns.space.metric
    if metric == "euclidean":
        return 2.0 * products - norms_sq
    if metric == "cosine":
        return products / np.sqrt(np.maximum(norms_sq, np.float32(1e-30)))
    return products


def _best(scores: np.ndarray, keep: int) -> np.ndarray:
    """Positions of the ``keep`` largest scores, in no particular order."""
    if len(scores) <= keep:
        return np.arange(len(scores))
    return np.argpartition(scores, len(scores) - keep)[len(scores) - keep :]


def top_matches(
    ns: Namespace,
    dense: np.ndarray | None,
    sparse: SparseVector | None,
    top_k: int,
    candidate_rows: np.ndarray | None,
) -> list[Match]:
    """The ``top_k`` best rows of ``ns`` (restricted to ``candidate_rows`` when given), best first."""
    total = len(ns) if candidate_rows is None else len(candidate_rows)
    if total == 0:
        return []
    keep = top_k + _RESCORE_MARGIN
    use_sparse_exactly = sparse is not None and ns.sparse_count > 0
    if dense is None or not ns.space.dimension or use_sparse_exactly or total <= keep:
        shortlist = np.arange(len(ns)) if candidate_rows is None else candidate_rows
    else:
        positions = _best(_approx_scores(ns, candidate_rows, dense), keep)
        shortlist = positions if candidate_rows is None else candidate_rows[positions]
    exact = _exact_scores(ns, shortlist, dense, sparse)
    if len(shortlist) > keep:
        positions = _best(exact, keep)
        shortlist, exact = shortlist[positions], exact[positions]
    ids = ns.ids
    order = sorted(range(len(shortlist)), key=lambda i: (-exact[i], ids[shortlist[i]]))[:top_k]
    sign = -1.0 if ns.space.metric == "euclidean" else 1.0
    return [Match(int(shortlist[i]), sign * float(exact[i])) for i in order]
