"""Property tests: the columnar filter masks agree with the per-record reference evaluator, on random data and random
filters, and keep agreeing while records are inserted, overwritten, updated and deleted (no server)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from kafka_pinecone_flink.pinecone_local.columns import STALE_CODES_SLACK
from kafka_pinecone_flink.pinecone_local.filters import compile_filter
from kafka_pinecone_flink.pinecone_local.store import Namespace
from kafka_pinecone_flink.pinecone_local.validation import UpsertBatch, VectorSpace

pytestmark = pytest.mark.unit

SPACE = VectorSpace(dimension=2, metric="dotproduct", sparse=False)
KEYS = ["genre", "year", "tags", "live", "mixed"]
WORDS = ["drama", "comedy", "news", "x", ""]
NUMBERS = [0.0, 1.0, 2.0, 2.5, -1.0, 2020.0]


def random_value(rng: random.Random) -> Any:
    kind = rng.randrange(4)
    if kind == 0:
        return rng.choice(WORDS)
    if kind == 1:
        return rng.choice(NUMBERS)
    if kind == 2:
        return rng.random() < 0.5
    return rng.sample(WORDS, rng.randrange(0, 3))


def random_metadata(rng: random.Random) -> dict[str, Any] | None:
    if rng.random() < 0.1:
        return None
    return {key: random_value(rng) for key in KEYS if rng.random() < 0.7}


def random_operand(rng: random.Random) -> Any:
    return rng.choice([rng.choice(WORDS), rng.choice(NUMBERS), rng.random() < 0.5, rng.choice([0, 1, 2])])


def random_condition(rng: random.Random) -> Any:
    op = rng.choice(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", "bare"])
    if op == "bare":
        return random_operand(rng)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        return {op: rng.choice(NUMBERS)}
    if op in ("$in", "$nin"):
        return {op: [random_operand(rng) for _ in range(rng.randrange(1, 9))]}
    if op == "$exists":
        return {op: rng.random() < 0.5}
    return {op: random_operand(rng)}


def random_filter(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    if depth < 2 and rng.random() < 0.3:
        return {rng.choice(["$and", "$or"]): [random_filter(rng, depth + 1) for _ in range(rng.randrange(1, 4))]}
    return {rng.choice(KEYS): random_condition(rng) for _ in range(rng.randrange(1, 3))}


def upsert(ns: Namespace, ids: list[str], metadata: list[dict[str, Any] | None]) -> None:
    values = np.ones((len(ids), SPACE.dimension), dtype=np.float32)
    ns.upsert(UpsertBatch(ids=ids, values=values, metadata=metadata, sparse=[None] * len(ids)))


def assert_masks_match_reference(ns: Namespace, filters: list[dict[str, Any]]) -> None:
    for spec in filters:
        compiled = compile_filter(spec)
        expected = [compiled(md) for md in ns.metadata]
        assert compiled.mask(ns).tolist() == expected, spec
        assert ns.matching_rows(compiled).tolist() == [row for row, hit in enumerate(expected) if hit], spec


@pytest.mark.parametrize("seed", range(8))
def test_masks_equal_the_per_record_evaluator_on_random_filters(seed: int) -> None:
    rng = random.Random(seed)
    ns = Namespace(SPACE)
    upsert(ns, [f"r{i}" for i in range(300)], [random_metadata(rng) for _ in range(300)])
    assert_masks_match_reference(ns, [random_filter(rng) for _ in range(150)])


@pytest.mark.parametrize("seed", range(4))
def test_columns_stay_in_step_through_overwrites_updates_and_deletes(seed: int) -> None:
    rng = random.Random(100 + seed)
    ns = Namespace(SPACE)
    filters = [random_filter(rng) for _ in range(40)]
    upsert(ns, [f"r{i}" for i in range(120)], [random_metadata(rng) for _ in range(120)])
    assert_masks_match_reference(ns, filters)  # builds the columns; everything below must maintain them
    for _ in range(25):
        action = rng.randrange(4)
        if action == 0:  # a batch mixing new ids and overwrites
            ids = list({f"r{rng.randrange(200)}" for _ in range(rng.randrange(1, 30))})
            upsert(ns, ids, [random_metadata(rng) for _ in ids])
        elif action == 1 and len(ns):
            ns.delete([*rng.sample(ns.ids, min(len(ns), rng.randrange(1, 20))), "never-existed"])
        elif action == 2 and len(ns):
            ns.update(rng.choice(ns.ids), None, None, random_metadata(rng) or {})
        elif len(ns):
            ns.set_metadata(ns.rows[rng.choice(ns.ids)], random_metadata(rng))
        assert_masks_match_reference(ns, filters)


def test_deleting_every_record_leaves_masks_empty_and_reinserts_are_seen() -> None:
    rng = random.Random(7)
    ns = Namespace(SPACE)
    upsert(ns, ["a", "b", "c"], [{"genre": "drama", "tags": ["x"]}, {"genre": "news"}, None])
    drama = compile_filter({"genre": "drama"})
    assert drama.mask(ns).tolist() == [True, False, False]
    ns.delete(["a", "b", "c"])
    assert drama.mask(ns).tolist() == []
    upsert(ns, ["d"], [{"genre": "drama"}])
    assert ns.matching_rows(drama).tolist() == [0]
    assert_masks_match_reference(ns, [random_filter(rng) for _ in range(30)])


def test_a_column_whose_dictionary_outgrows_its_rows_is_rebuilt_correctly() -> None:
    ns = Namespace(SPACE)
    upsert(ns, ["a", "b"], [{"text": "first"}, {"text": "second"}])
    first = compile_filter({"text": "first"})
    assert first.mask(ns).tolist() == [True, False]
    for n in range(STALE_CODES_SLACK + 10):  # every overwrite brings a string never seen before
        upsert(ns, ["b"], [{"text": f"text-{n}"}])
    assert "text" not in ns.columns.columns  # dropped once its dictionary outgrew the two live rows
    assert first.mask(ns).tolist() == [True, False]
    assert len(ns.columns.columns["text"].codes) == 2  # rebuilt from the live rows only
    assert compile_filter({"text": f"text-{STALE_CODES_SLACK + 9}"}).mask(ns).tolist() == [False, True]
    assert compile_filter({"text": "text-0"}).mask(ns).tolist() == [False, False]


def test_list_fields_match_any_element_and_negations_include_missing_fields() -> None:
    ns = Namespace(SPACE)
    upsert(ns, ["a", "b", "c", "d"], [{"tags": ["x", "y"]}, {"tags": []}, {"tags": "x"}, None])
    assert compile_filter({"tags": "x"}).mask(ns).tolist() == [True, False, True, False]
    assert compile_filter({"tags": {"$in": ["y", "z"]}}).mask(ns).tolist() == [True, False, False, False]
    assert compile_filter({"tags": {"$nin": ["x"]}}).mask(ns).tolist() == [False, True, False, True]
    assert compile_filter({"tags": {"$gt": 0}}).mask(ns).tolist() == [False, False, False, False]


def test_booleans_and_numbers_never_match_each_other_in_masks() -> None:
    ns = Namespace(SPACE)
    upsert(ns, ["t", "one", "zero", "f"], [{"v": True}, {"v": 1.0}, {"v": 0.0}, {"v": False}])
    assert compile_filter({"v": True}).mask(ns).tolist() == [True, False, False, False]
    assert compile_filter({"v": 1}).mask(ns).tolist() == [False, True, False, False]
    assert compile_filter({"v": {"$in": [False, 1]}}).mask(ns).tolist() == [False, True, False, True]
    assert compile_filter({"v": {"$gte": 0}}).mask(ns).tolist() == [False, True, True, False]
