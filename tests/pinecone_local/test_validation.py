"""Pinecone's validation rules: each bad request gets a clear 4xx and changes nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pinecone.errors.exceptions import ApiError

from tests.fixtures.pinecone_local import LocalIndex

pytestmark = pytest.mark.integration

DIM = 8
GOOD = [0.1] * DIM


def post(raw: httpx.Client, ix: LocalIndex, path: str, body: Any) -> httpx.Response:
    return raw.post(f"{ix.host}{path}", json=body)


def assert_rejected(response: httpx.Response, fragment: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == (3 if status == 400 else body["code"])
    assert body["details"] == []
    assert fragment in body["message"]


def count(ix: LocalIndex) -> int:
    return int(ix.index.describe_index_stats().total_vector_count)


def test_dimension_mismatch_is_rejected_with_pinecones_message(pinecone_local_index: LocalIndex) -> None:
    with pytest.raises(ApiError) as excinfo:
        pinecone_local_index.index.upsert(vectors=[("ok", GOOD), ("bad", [0.1] * 3)])
    assert excinfo.value.status_code == 400
    assert "Vector dimension 3 does not match the dimension of the index 8" in str(excinfo.value)
    assert count(pinecone_local_index) == 0


@pytest.mark.parametrize(
    ("record", "fragment"),
    [
        ({"id": "x" * 513, "values": GOOD}, "maximum length of 512"),
        ({"id": "", "values": GOOD}, "must not be empty"),
        ({"id": "n", "values": GOOD, "metadata": {"a": {"b": 1}}}, "nested objects are not supported"),
        ({"id": "n", "values": GOOD, "metadata": {"a": [1, 2]}}, "list values must be strings"),
        ({"id": "n", "values": GOOD, "metadata": {"$a": 1}}, "must not start with '$'"),
        ({"id": "n", "values": GOOD, "metadata": {"a": None}}, "must not be null"),
        ({"id": "n", "values": GOOD, "metadata": {"big": "x" * 41_000}}, "exceeds the limit of 40960 bytes per vector"),
        ({"id": "n", "values": [None] * DIM}, "must be numbers"),
        ({"id": "n", "values": ["1"] * DIM}, "must be numbers"),
        ({"id": "n", "values": [1e39] * DIM}, "finite numbers within the float32 range"),
        ({"id": "n", "values": [0.0] * DIM}, "at least one non-zero value"),
        ({"id": "n", "values": GOOD, "sparseValues": {"indices": [1], "values": [1.0]}}, "dotproduct"),
    ],
)
def test_a_bad_record_rejects_the_whole_batch(
    pinecone_local_index: LocalIndex, raw: httpx.Client, record: dict[str, Any], fragment: str
) -> None:
    response = post(raw, pinecone_local_index, "/vectors/upsert", {"vectors": [{"id": "fine", "values": GOOD}, record]})
    assert_rejected(response, fragment)
    assert count(pinecone_local_index) == 0


def test_more_than_1000_records_in_one_upsert_is_rejected(pinecone_local_index_factory: Any, raw: httpx.Client) -> None:
    ix = pinecone_local_index_factory(dimension=2)
    body = {"vectors": [{"id": str(i), "values": [1.0, 0.0]} for i in range(1001)]}
    assert_rejected(post(raw, ix, "/vectors/upsert", body), "exceeds the limit of 1000")
    body["vectors"] = body["vectors"][:1000]
    assert post(raw, ix, "/vectors/upsert", body).json() == {"upsertedCount": 1000}


def test_an_upsert_body_over_2mb_is_rejected(pinecone_local_index_factory: Any, raw: httpx.Client) -> None:
    ix = pinecone_local_index_factory(dimension=1000)
    body = {"vectors": [{"id": str(i), "values": [0.123456789] * 1000} for i in range(200)]}
    assert_rejected(post(raw, ix, "/vectors/upsert", body), "exceeds the maximum supported size of 2MB")
    assert count(ix) == 0


def test_nan_from_the_sdk_arrives_as_null_and_is_rejected(pinecone_local_index: LocalIndex) -> None:
    with pytest.raises(ApiError) as excinfo:
        pinecone_local_index.index.upsert(vectors=[("nan", [float("nan")] + [0.1] * (DIM - 1))])
    assert excinfo.value.status_code == 400
    assert count(pinecone_local_index) == 0


def test_non_json_tokens_like_nan_are_malformed_json(pinecone_local_index: LocalIndex, raw: httpx.Client) -> None:
    response = raw.post(
        f"{pinecone_local_index.host}/vectors/upsert", content=b'{"vectors":[{"id":"a","values":[NaN,1,1,1,1,1,1,1]}]}'
    )
    assert_rejected(response, "Malformed JSON")


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"topK": 0, "vector": GOOD}, "topK"),
        ({"topK": 10_001, "vector": GOOD}, "topK"),
        ({"topK": 1, "vector": [0.1] * 3}, "dimension 3 does not match"),
        ({"topK": 1, "vector": GOOD, "id": "a"}, "both"),
        ({"topK": 1}, "needs one of"),
        ({"topK": 1, "vector": GOOD, "filter": {"a": {"$bogus": 1}}}, "Invalid filter"),
        ({"topK": 1, "vector": GOOD, "filter": {"a": {"$in": "x"}}}, "Invalid filter"),
    ],
)
def test_bad_queries_are_400(
    pinecone_local_index: LocalIndex, raw: httpx.Client, body: dict[str, Any], fragment: str
) -> None:
    assert_rejected(post(raw, pinecone_local_index, "/query", body), fragment)


def test_fetch_and_delete_accept_at_most_1000_ids(pinecone_local_index: LocalIndex, raw: httpx.Client) -> None:
    pinecone_local_index.index.upsert(vectors=[("keep", GOOD)])
    ids = [f"id{i}" for i in range(1001)]
    assert_rejected(
        raw.get(f"{pinecone_local_index.host}/vectors/fetch", params={"ids": ids}), "maximum per request is 1000"
    )
    assert_rejected(
        post(raw, pinecone_local_index, "/vectors/delete", {"ids": ids, "namespace": ""}), "maximum per request is 1000"
    )
    assert count(pinecone_local_index) == 1


def test_update_that_would_exceed_the_metadata_limit_changes_nothing(
    pinecone_local_index: LocalIndex, raw: httpx.Client
) -> None:
    pinecone_local_index.index.upsert(vectors=[("a", GOOD, {"text": "x" * 30_000})])
    response = post(
        raw,
        pinecone_local_index,
        "/vectors/update",
        {"id": "a", "values": [0.2] * DIM, "setMetadata": {"more": "y" * 20_000}},
    )
    assert_rejected(response, "exceeds the limit of 40960")
    record = pinecone_local_index.index.fetch(ids=["a"]).vectors["a"]
    assert record.values == pytest.approx(GOOD)
    assert set(record.metadata) == {"text"}


def test_malformed_json_on_the_data_plane_is_400(pinecone_local_index: LocalIndex, raw: httpx.Client) -> None:
    assert_rejected(raw.post(f"{pinecone_local_index.host}/query", content=b"[1,"), "Malformed JSON")


def test_an_empty_delete_filter_is_rejected(pinecone_local_index: LocalIndex, raw: httpx.Client) -> None:
    pinecone_local_index.index.upsert(vectors=[("a", GOOD)])
    assert_rejected(
        post(raw, pinecone_local_index, "/vectors/delete", {"filter": {}, "namespace": ""}), "must not be empty"
    )
    assert count(pinecone_local_index) == 1
