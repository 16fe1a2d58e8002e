"""Control plane through the real SDK (and raw HTTP for shapes the SDK hides)."""

from __future__ import annotations

import httpx
import pytest
from pinecone import NotFoundError, ServerlessSpec
from pinecone.errors.exceptions import ApiError, ConflictError

from kafka_pinecone_flink.pinecone_local.launcher import LocalServer, unique_index_name

pytestmark = pytest.mark.integration


def test_created_index_is_ready_at_once_and_has_an_http_host(pinecone_local_server: LocalServer) -> None:
    pc = pinecone_local_server.client()
    name = unique_index_name()
    model = pc.indexes.create(
        name=name, dimension=5, metric="dotproduct", spec=ServerlessSpec(cloud="aws", region="us-east-1")
    )
    try:
        assert model.status.ready and model.status.state == "Ready"
        assert model.host == f"{pinecone_local_server.url}/indexes-data/{name}"
        described = pc.indexes.describe(name)
        assert described.schema.fields["_values"].dimension == 5
        assert described.schema.fields["_values"].metric == "dotproduct"
        assert described.deployment.cloud == "aws"
        assert name in [i.name for i in pc.indexes.list()]
    finally:
        pc.indexes.delete(name)
    assert not pc.indexes.exists(name)


def test_the_10x_schema_body_and_the_legacy_body_both_create_indexes(
    pinecone_local_server: LocalServer, raw: httpx.Client
) -> None:
    url = pinecone_local_server.url
    modern, legacy = unique_index_name(), unique_index_name()
    r1 = raw.post(
        f"{url}/indexes",
        json={
            "name": modern,
            "schema": {"fields": {"_values": {"type": "dense_vector", "dimension": 3, "metric": "euclidean"}}},
            "deployment": {"deployment_type": "managed", "cloud": "gcp", "region": "us-central1"},
        },
    )
    r2 = raw.post(
        f"{url}/indexes",
        json={
            "name": legacy,
            "dimension": 4,
            "metric": "cosine",
            "vector_type": "dense",
            "spec": {"serverless": {"cloud": "aws", "region": "us-west-2"}},
            "deletion_protection": "disabled",
        },
    )
    assert (r1.status_code, r2.status_code) == (201, 201)
    body = raw.get(f"{url}/indexes/{legacy}").json()
    assert body["dimension"] == 4 and body["metric"] == "cosine" and body["vector_type"] == "dense"
    assert body["spec"] == {"serverless": {"cloud": "aws", "region": "us-west-2"}}
    assert body["schema"]["fields"]["_values"] == {"type": "dense_vector", "dimension": 4, "metric": "cosine"}
    assert raw.get(f"{url}/indexes/{modern}").json()["deployment"]["cloud"] == "gcp"
    for name in (modern, legacy):
        assert raw.delete(f"{url}/indexes/{name}").status_code == 202


def test_the_data_host_from_describe_works_with_index_by_name_and_by_host(pinecone_local_server: LocalServer) -> None:
    pc = pinecone_local_server.client()
    name = unique_index_name()
    model = pc.indexes.create(name=name, dimension=2, metric="cosine")
    try:
        pc.index(name=name).upsert(vectors=[("a", [1.0, 0.0])])
        assert pc.Index(host=model.host).describe_index_stats().total_vector_count == 1
    finally:
        pc.indexes.delete(name)


def test_unknown_index_is_404_in_pinecone_shape(pinecone_local_server: LocalServer, raw: httpx.Client) -> None:
    response = raw.get(f"{pinecone_local_server.url}/indexes/no-such-index")
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "NOT_FOUND", "message": "Resource no-such-index not found"},
        "status": 404,
    }
    with pytest.raises(NotFoundError):
        pinecone_local_server.client().indexes.describe("no-such-index")


def test_creating_an_existing_index_is_409(pinecone_local_server: LocalServer) -> None:
    pc = pinecone_local_server.client()
    name = unique_index_name()
    pc.indexes.create(name=name, dimension=2)
    try:
        with pytest.raises(ConflictError) as excinfo:
            pc.indexes.create(name=name, dimension=2)
        assert excinfo.value.status_code == 409
    finally:
        pc.indexes.delete(name)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"name": "Bad_Name", "dimension": 3}, 400, "INVALID_ARGUMENT"),
        ({"name": "ok-name", "dimension": 0}, 400, "INVALID_ARGUMENT"),
        ({"name": "ok-name", "dimension": 20_001}, 400, "INVALID_ARGUMENT"),
        ({"name": "ok-name", "dimension": 3, "metric": "manhattan"}, 400, "INVALID_ARGUMENT"),
        ({"name": "ok-name"}, 422, "UNPROCESSABLE_ENTITY"),
        ({"dimension": 3}, 422, "UNPROCESSABLE_ENTITY"),
        ({"name": "ok-name", "dimension": "three"}, 422, "UNPROCESSABLE_ENTITY"),
    ],
)
def test_invalid_create_bodies_are_rejected_with_pinecone_codes(
    pinecone_local_server: LocalServer, raw: httpx.Client, body: dict[str, object], status: int, code: str
) -> None:
    response = raw.post(f"{pinecone_local_server.url}/indexes", json=body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["status"] == status
    assert raw.get(f"{pinecone_local_server.url}/indexes/ok-name").status_code == 404


def test_malformed_json_is_a_400(pinecone_local_server: LocalServer, raw: httpx.Client) -> None:
    response = raw.post(
        f"{pinecone_local_server.url}/indexes", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "Malformed JSON" in response.json()["error"]["message"]


def test_deletion_protection_blocks_delete_until_disabled(pinecone_local_server: LocalServer) -> None:
    pc = pinecone_local_server.client()
    name = unique_index_name()
    pc.indexes.create(name=name, dimension=2, deletion_protection="enabled")
    with pytest.raises(ApiError) as excinfo:
        pc.indexes.delete(name)
    assert excinfo.value.status_code == 403
    pc.indexes.configure(name, deletion_protection="disabled")
    pc.indexes.delete(name)
    assert not pc.indexes.exists(name)


def test_api_key_is_enforced_when_configured(tmp_path: object) -> None:
    from pinecone import UnauthorizedError

    from kafka_pinecone_flink.pinecone_local.launcher import start_pinecone_local

    server = start_pinecone_local(api_key="s3cret")
    try:
        assert server.client().indexes.list() is not None
        from pinecone import Pinecone

        wrong = Pinecone(api_key="wrong", host=server.url)
        with pytest.raises(UnauthorizedError):
            wrong.indexes.describe("anything")
        response = httpx.get(f"{server.url}/indexes", headers={"Api-Key": "wrong"})
        assert response.json() == {"error": {"code": "UNAUTHENTICATED", "message": "Invalid API Key"}, "status": 401}
    finally:
        server.stop()
