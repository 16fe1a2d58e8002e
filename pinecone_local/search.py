"""Exact nearest-neighbour scoring with Pinecone's score conventions.

* cosine: cosine similarity, higher first;
* dotproduct: dense dot product plus sparse dot product, higher first;
* euclidean: squared Euclidean distance, lower first.

Scores are computed for every candidate with one float32 matrix-vector product; the best ``top_k + margin`` are then
rescored in float64 from the stored vectors, so returned scores carry no float32 cancellation error. Ties are broken
by id so results are deterministic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from .store import Namespace
    from .validation import SparseVector

_RESCORE_MARGIN = 16


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
    matrix = ns.dense if rows is None else ns.matrix[rows]
    norms_sq = ns.sq_norms[: len(ns)] if rows is None else ns.sq_norms[rows]
    products = matrix @ dense
    metric = ns.space.metric
    if metric == "euclidean":
        return 2.0 * products - norms_sq
    if metric == "cosine":
        return products / np.sqrt(np.maximum(norms_sq, np.float32(1e-30)))
    return products


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
    all_rows = np.arange(len(ns)) if candidate_rows is None else candidate_rows
    use_sparse_exactly = sparse is not None and ns.sparse_count > 0
    if dense is None or not ns.space.dimension or use_sparse_exactly or total <= top_k + _RESCORE_MARGIN:
        shortlist = all_rows
    else:
        approx = _approx_scores(ns, candidate_rows, dense)
        keep = min(total, top_k + _RESCORE_MARGIN)
        positions = np.argpartition(-approx, keep - 1)[:keep]
        shortlist = all_rows[positions]
    exact = _exact_scores(ns, shortlist, dense, sparse)
    keep = top_k + _RESCORE_MARGIN
    if len(shortlist) > keep:
        positions = np.argpartition(-exact, keep - 1)[:keep]
        shortlist, exact = shortlist[positions], exact[positions]
    ids = ns.ids
    order = sorted(range(len(shortlist)), key=lambda i: (-exact[i], ids[shortlist[i]]))[:top_k]
    sign = -1.0 if ns.space.metric == "euclidean" else 1.0
    return [Match(int(shortlist[i]), sign * float(exact[i])) for i in order]
