"""Unit tests of the filter language (no server)."""

from __future__ import annotations

from typing import Any

import pytest

from kafka_pinecone_flink.pinecone_local.errors import ApiError
from kafka_pinecone_flink.pinecone_local.filters import compile_filter

pytestmark = pytest.mark.unit

RECORDS: dict[str, dict[str, Any] | None] = {
    "drama": {"genre": "drama", "year": 2020.0, "tags": ["a", "b"], "live": True},
    "comedy": {"genre": "comedy", "year": 2019.0, "tags": ["b"], "live": False},
    "bare": {"year": 2021.0},
    "none": None,
}


def matching(spec: dict[str, Any]) -> set[str]:
    predicate = compile_filter(spec)
    return {name for name, md in RECORDS.items() if predicate(md)}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"genre": "drama"}, {"drama"}),
        ({"genre": {"$eq": "drama"}}, {"drama"}),
        ({"genre": {"$ne": "drama"}}, {"comedy", "bare", "none"}),
        ({"year": {"$gt": 2019}}, {"drama", "bare"}),
        ({"year": {"$gte": 2019, "$lt": 2021}}, {"drama", "comedy"}),
        ({"year": {"$lte": 2019.0}}, {"comedy"}),
        ({"genre": {"$in": ["drama", "comedy"]}}, {"drama", "comedy"}),
        ({"genre": {"$nin": ["drama"]}}, {"comedy", "bare", "none"}),
        ({"genre": {"$exists": True}}, {"drama", "comedy"}),
        ({"genre": {"$exists": False}}, {"bare", "none"}),
        ({"$or": [{"genre": "comedy"}, {"year": 2021}]}, {"comedy", "bare"}),
        ({"$and": [{"year": {"$gt": 2000}}, {"live": True}]}, {"drama"}),
        ({"genre": "drama", "year": 2019}, set()),
        ({}, {"drama", "comedy", "bare", "none"}),
    ],
)
def test_operators_select_the_documented_records(spec: dict[str, Any], expected: set[str]) -> None:
    assert matching(spec) == expected


def test_eq_on_a_list_field_matches_when_any_element_matches() -> None:
    assert matching({"tags": "a"}) == {"drama"}
    assert matching({"tags": {"$in": ["b"]}}) == {"drama", "comedy"}


def test_ne_and_nin_on_a_list_field_match_only_when_no_element_matches() -> None:
    assert matching({"tags": {"$ne": "a"}}) == {"comedy", "bare", "none"}
    assert matching({"tags": {"$nin": ["b"]}}) == {"bare", "none"}


def test_booleans_are_not_numbers() -> None:
    assert matching({"live": 1}) == set()
    assert matching({"live": True}) == {"drama"}


def test_range_operators_never_match_strings() -> None:
    assert matching({"genre": {"$gt": 0}}) == set()


@pytest.mark.parametrize(
    "spec",
    [
        {"genre": {"$regex": "d.*"}},
        {"year": {"$gt": "2019"}},
        {"genre": {"$in": "drama"}},
        {"genre": {"$in": [{"x": 1}]}},
        {"$or": []},
        {"$and": {"genre": "drama"}},
        {"genre": {"$exists": "yes"}},
        {"genre": None},
        {"genre": {}},
        {"$nor": [{"a": 1}]},
        {"year": {"$in": list(range(10_001))}},
    ],
)
def test_malformed_filters_are_rejected_with_400(spec: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as excinfo:
        compile_filter(spec)
    assert excinfo.value.status == 400
    assert "Invalid filter" in excinfo.value.message
