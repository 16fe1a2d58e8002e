"""Query results over the SDK equal a brute-force reference on random data, for every metric and with filters."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from kafka_pinecone_flink.pinecone_local.filters import compile_filter

pytestmark = pytest.mark.integration

N, DIM, TOP_K = 400, 12, 15
GENRES = ["drama", "comedy", "horror", "news"]


def reference(metric: str, values: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v, q = values.astype(np.float64), query.astype(np.float64)
    if metric == "cosine":
        scores = v @ q / (np.linalg.norm(v, axis=1) * np.linalg.norm(q))
        return np.argsort(-scores, kind="stable"), scores
    if metric == "dotproduct":
        scores = v @ q
        return np.argsort(-scores, kind="stable"), scores
    scores = ((v - q) ** 2).sum(axis=1)
    return np.argsort(scores, kind="stable"), scores


def random_metadata(rng: np.random.Generator) -> dict[str, Any]:
    md: dict[str, Any] = {
        "year": float(rng.integers(1990, 2025)),
        "tags": list(rng.choice(GENRES, size=rng.integers(0, 3), replace=False)),
    }
    if rng.random() < 0.7:
        md["genre"] = str(rng.choice(GENRES))
    return md


FILTERS: list[dict[str, Any] | None] = [
    None,
    {"genre": "drama"},
    {"genre": {"$ne": "drama"}},
    {"year": {"$gte": 2000, "$lt": 2010}},
    {"tags": {"$in": ["news", "horror"]}},
    {"tags": {"$nin": ["comedy"]}},
    {"$or": [{"genre": {"$exists": False}}, {"year": {"$gt": 2020}}]},
]


@pytest.mark.parametrize("metric", ["cosine", "dotproduct", "euclidean"])
def test_query_matches_brute_force_reference(pinecone_local_index_factory: Any, metric: str) -> None:
    rng = np.random.default_rng({"cosine": 1, "dotproduct": 2, "euclidean": 3}[metric])
    ix = pinecone_local_index_factory(dimension=DIM, metric=metric)
    values = rng.normal(size=(N, DIM)).astype(np.float32)
    metadata = [random_metadata(rng) for _ in range(N)]
    ids = [f"r{i:04d}" for i in range(N)]
    records = [{"id": ids[i], "values": values[i].tolist(), "metadata": metadata[i]} for i in range(N)]
    for start in range(0, N, 100):
        ix.index.upsert(vectors=records[start : start + 100], namespace="ref")
    for q in range(3):
        query = rng.normal(size=DIM).astype(np.float32)
        order, scores = reference(metric, values, query)
        for spec in FILTERS:
            predicate = compile_filter(spec or {})
            expected = [i for i in order if predicate({k: v for k, v in metadata[i].items()})][:TOP_K]
            result = ix.index.query(vector=query.tolist(), top_k=TOP_K, namespace="ref", filter=spec)
            assert [m.id for m in result.matches] == [ids[i] for i in expected], (metric, spec, q)
            assert [m.score for m in result.matches] == pytest.approx([scores[i] for i in expected], rel=1e-5, abs=1e-5)
