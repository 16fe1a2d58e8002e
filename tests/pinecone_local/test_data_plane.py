"""Every data-plane endpoint through the real SDK."""

from __future__ import annotations

import httpx
import pytest
from pinecone import NotFoundError

from tests.fixtures.pinecone_local import LocalIndex

pytestmark = pytest.mark.integration


def unit(i: int, dim: int = 8) -> list[float]:
    v = [0.0] * dim
    v[i % dim] = 1.0
    v[(i + 1) % dim] = 0.5
    return v


def seed(ix: LocalIndex, n: int = 20, namespace: str = "ns") -> None:
    ix.index.upsert(
        vectors=[{"id": f"doc-{i:02d}", "values": unit(i), "metadata": {"n": i, "even": i % 2 == 0}} for i in range(n)],
        namespace=namespace,
    )


def test_upsert_then_fetch_returns_values_and_metadata(pinecone_local_index: LocalIndex) -> None:
    idx = pinecone_local_index.index
    assert (
        idx.upsert(
            vectors=[("a", unit(0), {"genre": "drama", "year": 2020, "tags": ["x"]})], namespace="ns"
        ).upserted_count
        == 1
    )
    fetched = idx.fetch(ids=["a", "missing"], namespace="ns")
    assert list(fetched.vectors) == ["a"]
    assert fetched.vectors["a"].values == unit(0)
    assert fetched.vectors["a"].metadata == {"genre": "drama", "year": 2020.0, "tags": ["x"]}
    assert fetched.namespace == "ns"


def test_upserting_an_existing_id_replaces_the_whole_record(pinecone_local_index: LocalIndex) -> None:
    idx = pinecone_local_index.index
    idx.upsert(vectors=[("a", unit(0), {"old": True})])
    idx.upsert(vectors=[("a", unit(3))])
    record = idx.fetch(ids=["a"]).vectors["a"]
    assert record.values == unit(3)
    assert record.metadata is None
    assert idx.describe_index_stats().total_vector_count == 1


def test_query_by_vector_and_by_id_rank_the_nearest_first(pinecone_local_index: LocalIndex) -> None:
    seed(pinecone_local_index)
    idx = pinecone_local_index.index
    by_vector = idx.query(vector=unit(3), top_k=3, namespace="ns", include_metadata=True)
    assert by_vector.matches[0].id == "doc-03"
    assert by_vector.matches[0].score == pytest.approx(1.0, abs=1e-6)
    assert by_vector.matches[0].metadata == {"n": 3.0, "even": False}
    assert by_vector.matches[0].values == []
    by_id = idx.query(id="doc-05", top_k=2, namespace="ns", include_values=True)
    assert by_id.matches[0].id == "doc-05"
    assert by_id.matches[0].values == unit(5)
    assert len(by_id.matches) == 2


def test_query_with_a_filter_only_returns_matching_records(pinecone_local_index: LocalIndex) -> None:
    seed(pinecone_local_index)
    result = pinecone_local_index.index.query(
        vector=unit(0), top_k=20, namespace="ns", filter={"even": True, "n": {"$gte": 10}}, include_metadata=True
    )
    assert {m.id for m in result.matches} == {f"doc-{i:02d}" for i in range(10, 20, 2)}


def test_query_on_an_empty_namespace_returns_no_matches(pinecone_local_index: LocalIndex) -> None:
    assert pinecone_local_index.index.query(vector=unit(0), top_k=5, namespace="nothing-here").matches == []


def test_delete_by_ids_by_filter_and_all(pinecone_local_index: LocalIndex) -> None:
    seed(pinecone_local_index)
    idx = pinecone_local_index.index
    idx.delete(ids=["doc-00", "doc-01"], namespace="ns")
    assert idx.describe_index_stats().namespaces["ns"].vector_count == 18
    idx.delete(filter={"even": {"$eq": True}}, namespace="ns")
    remaining = {item.id for page in idx.list(namespace="ns") for item in page.vectors}
    assert remaining == {f"doc-{i:02d}" for i in range(3, 20, 2)}
    idx.delete(delete_all=True, namespace="ns")
    assert idx.describe_index_stats().total_vector_count == 0


def test_deleting_in_a_namespace_that_does_not_exist_is_404(pinecone_local_index: LocalIndex) -> None:
    with pytest.raises(NotFoundError):
        pinecone_local_index.index.delete(ids=["x"], namespace="ghost")


def test_update_replaces_values_and_merges_metadata(pinecone_local_index: LocalIndex) -> None:
    idx = pinecone_local_index.index
    idx.upsert(vectors=[("a", unit(0), {"keep": "yes", "change": 1})])
    idx.update(id="a", values=unit(4), set_metadata={"change": 2, "new": ["p"]})
    record = idx.fetch(ids=["a"]).vectors["a"]
    assert record.values == unit(4)
    assert record.metadata == {"keep": "yes", "change": 2.0, "new": ["p"]}


def test_update_by_filter_sets_metadata_on_every_match(pinecone_local_index: LocalIndex) -> None:
    seed(pinecone_local_index)
    idx = pinecone_local_index.index
    result = idx.update(filter={"even": True}, set_metadata={"flag": "on"}, namespace="ns")
    assert result.matched_records == 10
    flagged = idx.query(vector=unit(0), top_k=100, namespace="ns", filter={"flag": "on"})
    assert len(flagged.matches) == 10


def test_sparse_values_round_trip_and_add_to_dotproduct_scores(pinecone_local_index_factory: object) -> None:
    ix = pinecone_local_index_factory(dimension=4, metric="dotproduct")  # type: ignore[operator]
    idx = ix.index
    idx.upsert(
        vectors=[
            {"id": "s", "values": [1, 0, 0, 0], "sparse_values": {"indices": [7, 3], "values": [2.0, 1.0]}},
            {"id": "d", "values": [1, 0, 0, 0]},
        ]
    )
    fetched = idx.fetch(ids=["s"]).vectors["s"]
    assert fetched.sparse_values.indices == [3, 7] and fetched.sparse_values.values == [1.0, 2.0]
    result = idx.query(vector=[1, 0, 0, 0], sparse_vector={"indices": [7], "values": [0.5]}, top_k=2)
    assert [(m.id, round(m.score, 5)) for m in result.matches] == [("s", 2.0), ("d", 1.0)]


def test_sparse_index_accepts_and_scores_sparse_only_records(pinecone_local_server: object) -> None:
    pc = pinecone_local_server.client()  # type: ignore[attr-defined]
    from kafka_pinecone_flink.pinecone_local.launcher import unique_index_name

    name = unique_index_name()
    model = pc.indexes.create(name=name, metric="dotproduct", vector_type="sparse")
    try:
        idx = pc.index(host=model.host)
        idx.upsert(
            vectors=[
                {"id": "a", "sparse_values": {"indices": [1, 2], "values": [1.0, 3.0]}},
                {"id": "b", "sparse_values": {"indices": [2], "values": [1.0]}},
            ]
        )
        result = idx.query(sparse_vector={"indices": [2], "values": [2.0]}, top_k=2)
        assert [(m.id, m.score) for m in result.matches] == [("a", 6.0), ("b", 2.0)]
        assert idx.describe_index_stats().vector_type == "sparse"
    finally:
        pc.indexes.delete(name)


def test_list_pages_ids_in_byte_order_with_prefix(pinecone_local_index: LocalIndex) -> None:
    idx = pinecone_local_index.index
    ids = ["b-2", "a-10", "a-9", "a-1", "B-1", "a-~"]
    idx.upsert(vectors=[(i, unit(n)) for n, i in enumerate(ids)])
    pages = list(idx.list(prefix="a-", limit=2))
    assert [[v.id for v in p.vectors] for p in pages] == [["a-1", "a-10"], ["a-9", "a-~"]]
    single = idx.list_paginated(limit=10)
    assert [v.id for v in single.vectors] == sorted(ids, key=lambda s: s.encode())
    assert single.pagination is None


def test_stats_count_vectors_per_namespace_with_default_named(pinecone_local_index: LocalIndex) -> None:
    idx = pinecone_local_index.index
    idx.upsert(vectors=[("a", unit(0)), ("b", unit(1))])
    idx.upsert(vectors=[("c", unit(2))], namespace="other")
    stats = idx.describe_index_stats()
    assert stats.total_vector_count == 3
    assert stats.dimension == 8 and stats.metric == "cosine"
    assert {k: v.vector_count for k, v in stats.namespaces.items()} == {"__default__": 2, "other": 1}


def test_namespaces_appear_on_first_upsert_and_can_be_deleted(pinecone_local_index: LocalIndex) -> None:
    idx = pinecone_local_index.index
    assert [ns.name for page in idx.list_namespaces() for ns in page.namespaces] == []
    idx.upsert(vectors=[("a", unit(0))], namespace="alpha")
    idx.upsert(vectors=[("b", unit(0)), ("c", unit(1))], namespace="beta")
    listed = {ns.name: ns.record_count for page in idx.list_namespaces() for ns in page.namespaces}
    assert listed == {"alpha": 1, "beta": 2}
    assert idx.describe_namespace(name="beta").record_count == 2
    idx.delete_namespace(name="alpha")
    with pytest.raises(NotFoundError):
        idx.describe_namespace(name="alpha")
    assert idx.fetch(ids=["a"], namespace="alpha").vectors == {}


def test_fetch_by_metadata_pages_through_matches(pinecone_local_index: LocalIndex, raw: httpx.Client) -> None:
    seed(pinecone_local_index)
    url = f"{pinecone_local_index.host}/vectors/fetch_by_metadata"
    first = raw.post(url, json={"namespace": "ns", "filter": {"even": True}, "limit": 4}).json()
    assert list(first["vectors"]) == ["doc-00", "doc-02", "doc-04", "doc-06"]
    second = raw.post(
        url,
        json={"namespace": "ns", "filter": {"even": True}, "limit": 4, "paginationToken": first["pagination"]["next"]},
    ).json()
    assert list(second["vectors"]) == ["doc-08", "doc-10", "doc-12", "doc-14"]


def test_unknown_index_on_the_data_plane_is_404_in_grpc_shape(pinecone_local_server: object, raw: httpx.Client) -> None:
    response = raw.post(f"{pinecone_local_server.url}/indexes-data/ghost/query", json={"topK": 1, "vector": [1.0]})  # type: ignore[attr-defined]
    assert response.status_code == 404
    assert response.json() == {"code": 5, "message": "Index 'ghost' not found", "details": []}
