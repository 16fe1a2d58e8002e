"""Answers that must match Pinecone's (API 2026-07, SDK 10.2.0), each driven through the real SDK where it can be.

The oracle for each test is named in its docstring: the installed SDK's source (``pinecone/...``), the SDK's own
integration tests and migration notes (pinecone-io/python-sdk ``tests/integration/...``, ``docs/migration/...``) or
the OpenAPI files (pinecone-io/pinecone-api ``2026-04/db_data_2026-04.oas.yaml``).
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from pinecone import NotFoundError
from pinecone.errors.exceptions import ApiError, ConflictError

from tests.fixtures.pinecone_local import LocalIndex, LocalServer, start_pinecone_local, unique_index_name

pytestmark = pytest.mark.integration

GOOD = [0.1] * 8
DOCUMENT_SCHEMA_MESSAGE = "This index has a document schema, so writes must go through the documents API"


def named_schema(dimension: int = 4, metric: str = "cosine") -> dict[str, Any]:
    return {"fields": {"embedding": {"type": "dense_vector", "dimension": dimension, "metric": metric}}}


# --- 1. named schema fields: described back as named, served by the documents API -------------------------------------


def test_a_named_dense_field_is_described_back_under_its_own_name(pinecone_local_server: LocalServer) -> None:
    """Oracle: python-sdk tests/integration/test_indexes_2026_07.py (``"embedding" in created.schema.fields``)."""
    pc = pinecone_local_server.client()
    name = unique_index_name()
    created = pc.indexes.create(name=name, schema=named_schema())
    try:
        assert set(created.schema.fields) == {"embedding"}
        described = pc.indexes.describe(name)
        assert set(described.schema.fields) == {"embedding"}
        assert described.schema.fields["embedding"].dimension == 4
        assert described.schema.fields["embedding"].metric == "cosine"
    finally:
        pc.indexes.delete(name)


def test_vector_writes_on_a_document_schema_index_are_refused_pointing_at_the_documents_api(
    pinecone_local_server: LocalServer,
) -> None:
    """Oracle: python-sdk docs/migration/v10-2026-07-vector-models.md (the 400 quoted from pc-validation) and
    v10-2026-07-db-data-breaking-changes.md ("A vector-API write aimed at a document-schema index is refused");
    tests/integration/test_data_plane_extended.py (reads succeed and return empty); pinecone/index/__init__.py
    describe_namespace ("On a document index ``__default__`` is an ordinary name")."""
    pc = pinecone_local_server.client()
    name = unique_index_name()
    host = pc.indexes.create(name=name, schema=named_schema()).host
    try:
        idx = pc.index(host=host)
        writes = [
            lambda: idx.upsert(vectors=[("a", [0.1, 0.2, 0.3, 0.4])], namespace="ns"),
            lambda: idx.update(id="a", values=[0.1, 0.2, 0.3, 0.4], namespace="ns"),
            lambda: idx.delete(ids=["a"], namespace="ns"),
        ]
        for write in writes:
            with pytest.raises(ApiError) as excinfo:
                write()
            assert excinfo.value.status_code == 400
            assert DOCUMENT_SCHEMA_MESSAGE in str(excinfo.value)
        assert idx.describe_index_stats().total_vector_count == 0
        assert idx.query(vector=[0.1, 0.2, 0.3, 0.4], top_k=3, namespace="ns").matches == []
        assert idx.fetch(ids=["a"], namespace="ns").vectors == {}
        with pytest.raises(NotFoundError):  # on a document index __default__ is an ordinary name
            idx.describe_namespace(name="__default__")
    finally:
        pc.indexes.delete(name)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/namespaces/ns/documents/upsert"),
        ("POST", "/namespaces/ns/documents/search"),
        ("POST", "/records/namespaces/ns/upsert"),
        ("POST", "/bulk/imports"),
    ],
)
def test_calls_this_server_does_not_serve_are_refused_like_an_unsupported_pinecone_call(
    pinecone_local_index: LocalIndex, raw: httpx.Client, method: str, path: str
) -> None:
    """Oracle: pinecone/_internal/index_migration.py (Pinecone refuses what it does not support with 400 "... is
    not supported" / "... is not yet supported")."""
    response = raw.request(method, f"{pinecone_local_index.host}{path}", json={"documents": [{"_id": "a"}]})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 3 and body["details"] == []
    assert "not supported by pinecone_local" in body["message"]


# --- 2. deployment without deployment_type ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deployment", "status"),
    [
        ({"invalid": {"cloud": "aws", "region": "us-east-1"}}, 422),
        ({"deployment_type": "byoc"}, 422),
        ({"deployment_type": "managed", "cloud": "aws"}, 422),
        ({"deployment_type": "managed", "cloud": "aws", "region": "us-east-1", "replicas": 2}, 422),
        ({"deployment_type": "pod", "environment": "e", "pod_type": "p1.x1", "replicas": 1, "shards": 1}, 400),
    ],
)
def test_a_deployment_pinecone_cannot_deserialize_or_serve_is_refused(
    pinecone_local_server: LocalServer, deployment: dict[str, Any], status: int
) -> None:
    """Oracle: pinecone-api 2026-01.alpha db_control OAS (IndexDeploymentRequest: oneOf discriminated on
    ``deployment_type``; ManagedDeployment requires cloud and region, additionalProperties false); python-sdk
    docs/migration/v10-2026-07-index-model.md (omissions are a 422); pinecone/_internal/index_migration.py (400
    "deployment_type 'pod' is not supported on this API version")."""
    pc = pinecone_local_server.client()
    name = unique_index_name()
    with pytest.raises(ApiError) as excinfo:
        pc.indexes.create(name=name, schema=named_schema(), deployment=deployment, timeout=-1)
    assert excinfo.value.status_code == status
    assert not pc.indexes.exists(name)


# --- 3. describe_index_stats with a filter ----------------------------------------------------------------------------


def test_describe_index_stats_with_a_filter_is_400(pinecone_local_index: LocalIndex) -> None:
    """Oracle: pinecone/index/__init__.py describe_index_stats ("The server rejects a non-empty filter");
    python-sdk docs/migration/v10-2026-07-db-data-breaking-changes.md row 2; db_data_2026-04.oas.yaml
    DescribeIndexStatsRequest ("Serverless indexes do not support filtering")."""
    idx = pinecone_local_index.index
    idx.upsert(vectors=[("a", GOOD, {"genre": "drama"})], namespace="ns")
    with pytest.raises(ApiError) as excinfo:
        idx.describe_index_stats(filter={"genre": {"$eq": "comedy"}})
    assert excinfo.value.status_code == 400
    assert idx.describe_index_stats().namespaces["ns"].vector_count == 1


# --- 4. a namespace outlives its last vector --------------------------------------------------------------------------


def _listed(idx: Any) -> dict[str, int]:
    return {ns.name: ns.record_count for page in idx.list_namespaces() for ns in page.namespaces}


def test_a_namespace_stays_when_its_last_vector_is_deleted_and_a_replayed_delete_is_200(
    pinecone_local_index: LocalIndex,
) -> None:
    """Oracle: python-sdk docs/how-to/vectors/namespaces.md (``delete(delete_all=True)`` "removes every vector in a
    namespace without deleting the namespace itself"; only delete_namespace removes it); NotFoundError only for "no
    namespace of that name exists" (pinecone/index/__init__.py describe_namespace)."""
    idx = pinecone_local_index.index
    idx.upsert(vectors=[("a", GOOD), ("b", GOOD)], namespace="ns")
    idx.delete(ids=["a", "b"], namespace="ns")
    idx.delete(ids=["a"], namespace="ns")  # a replayed tombstone
    idx.delete(filter={"genre": "drama"}, namespace="ns")
    assert _listed(idx) == {"ns": 0}
    assert idx.describe_namespace(name="ns").record_count == 0
    assert {k: v.vector_count for k, v in idx.describe_index_stats().namespaces.items()} == {"ns": 0}

    idx.upsert(vectors=[("c", GOOD)], namespace="other")
    idx.delete(delete_all=True, namespace="other")
    idx.delete(ids=["c"], namespace="other")
    assert _listed(idx) == {"ns": 0, "other": 0}

    idx.delete_namespace(name="other")
    with pytest.raises(NotFoundError):
        idx.delete(ids=["c"], namespace="other")
    with pytest.raises(NotFoundError):
        idx.describe_namespace(name="other")


def test_the_default_namespace_always_exists_and_answers_to_default(pinecone_local_index: LocalIndex) -> None:
    """Oracle: pinecone/_internal/validation.py RESERVED_DEFAULT_NAMESPACE ("the namespace it aliases always exists";
    "Legal wherever a namespace is named — describe, delete, reads, writes")."""
    idx = pinecone_local_index.index
    assert idx.describe_namespace(name="__default__").record_count == 0
    idx.delete(ids=["never-written"])
    idx.upsert(vectors=[("a", GOOD)], namespace="__default__")
    assert idx.fetch(ids=["a"]).vectors["a"].id == "a"
    assert {k: v.vector_count for k, v in idx.describe_index_stats().namespaces.items()} == {"__default__": 1}


def test_an_emptied_namespace_and_the_sparse_field_survive_kill_9_and_a_clean_restart(tmp_path: Path) -> None:
    """Durability of items 4 and 6: the emptied namespace, a namespace created empty and the synthesized
    ``_sparse_values`` field are rebuilt from the log (kill -9) and from the snapshot (clean stop)."""
    server = start_pinecone_local(data_dir=tmp_path / "data")
    try:
        pc = server.client()
        name = unique_index_name()
        host = pc.indexes.create(name=name, dimension=2, metric="dotproduct").host
        idx = pc.index(host=host)
        idx.upsert(vectors=[{"id": "a", "values": [1.0, 0.0], "sparse_values": {"indices": [3], "values": [1.0]}}])
        idx.upsert(vectors=[("b", [1.0, 0.0])], namespace="emptied")
        idx.delete(ids=["b"], namespace="emptied")
        idx.create_namespace(name="created")
        idx.upsert(vectors=[("c", [1.0, 0.0])], namespace="wiped")
        idx.delete(delete_all=True, namespace="wiped")
        expected = {"__default__": 1, "emptied": 0, "created": 0, "wiped": 0}
        for restart in (server.kill, server.stop):
            restart()
            server.restart()
            pc = server.client()
            idx = pc.index(host=host)
            assert _listed(idx) == expected
            idx.delete(ids=["b"], namespace="emptied")
            assert "_sparse_values" in pc.indexes.describe(name).schema.fields
    finally:
        server.kill()


# --- 5. schema fields not used for search -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "status", "fragment"),
    [
        ({"type": "string", "filterable": True}, 400, "only accepts fields used for search"),
        ({"type": "float", "filterable": True}, 400, "only accepts fields used for search"),
        ({"type": "boolean", "filterable": False}, 400, "only accepts fields used for search"),
        ({"type": "string_list", "filterable": True}, 400, "only accepts fields used for search"),
        ({"type": "string"}, 422, ""),
        ({"type": "integer"}, 422, ""),
        ({"type": "boolean"}, 422, ""),
    ],
)
def test_schema_fields_that_are_not_used_for_search_are_refused_as_pinecone_does(
    pinecone_local_server: LocalServer, field: dict[str, Any], status: int, fragment: str
) -> None:
    """Oracle: python-sdk tests/integration/test_indexes_2026_07.py test_bare_string_field_rejected_by_server (bare
    string 422, filterable string 400 "only accepts fields used for search"); pinecone/schema_builder.py
    (float/boolean/string_list are rejected with that 400, integer is response-only and a 422);
    docs/migration/v10-2026-07-db-data-breaking-changes.md row 3 (``filterable`` is required on those types)."""
    pc = pinecone_local_server.client()
    name = unique_index_name()
    schema = named_schema()
    schema["fields"]["title"] = field
    with pytest.raises(ApiError) as excinfo:
        pc.indexes.create(name=name, schema=schema, timeout=-1)
    assert excinfo.value.status_code == status
    assert fragment in str(excinfo.value)
    assert "pinecone_local" not in str(excinfo.value)
    assert not pc.indexes.exists(name)


# --- 6. the synthesized _sparse_values field --------------------------------------------------------------------------


def test_a_sparse_upsert_into_a_dotproduct_index_adds_the_sparse_values_field(
    pinecone_local_index_factory: Any, pinecone_local_server: LocalServer
) -> None:
    """Oracle: python-sdk tests/integration/test_legacy_sugar_index.py (schema is ``{_values}`` at create; after a
    dense+sparse upsert ``_sparse_values`` must be in ``describe().schema.fields``)."""
    ix = pinecone_local_index_factory(dimension=4, metric="dotproduct")
    pc = pinecone_local_server.client()
    assert set(pc.indexes.describe(ix.name).schema.fields) == {"_values"}
    ix.index.upsert(vectors=[{"id": "d", "values": [1, 0, 0, 0]}])
    assert set(pc.indexes.describe(ix.name).schema.fields) == {"_values"}
    ix.index.upsert(vectors=[{"id": "s", "values": [1, 0, 0, 0], "sparse_values": {"indices": [7], "values": [2.0]}}])
    fields = pc.indexes.describe(ix.name).schema.fields
    assert set(fields) == {"_values", "_sparse_values"}
    assert type(fields["_sparse_values"]).__name__ == "SparseVectorField"
    assert fields["_values"].metric == "dotproduct"


# --- 7. POST /namespaces --------------------------------------------------------------------------------------------


def test_create_namespace_creates_an_empty_namespace_and_a_duplicate_is_409(
    pinecone_local_index: LocalIndex, raw: httpx.Client
) -> None:
    """Oracle: pinecone/index/__init__.py create_namespace (ConflictError when it exists; ``__default__`` reserved);
    db_data_2026-04.oas.yaml ``POST /namespaces`` (200 NamespaceDescription, 409 on a duplicate)."""
    idx = pinecone_local_index.index
    created = idx.create_namespace(name="movies-en")
    assert (created.name, created.record_count) == ("movies-en", 0)
    with pytest.raises(ConflictError) as excinfo:
        idx.create_namespace(name="movies-en")
    assert excinfo.value.status_code == 409
    assert _listed(idx) == {"movies-en": 0}
    with_schema = idx.create_namespace(name="movies-fr", schema={"fields": {"genre": {"filterable": True}}})
    assert with_schema.schema is not None and with_schema.schema.fields["genre"].filterable is True
    assert idx.describe_namespace(name="movies-fr").schema.fields["genre"].filterable is True
    idx.upsert(vectors=[("a", GOOD)], namespace="movies-en")
    assert idx.describe_namespace(name="movies-en").record_count == 1

    url = f"{pinecone_local_index.host}/namespaces"
    response = raw.post(url, json={"name": "raw-ns"})
    assert response.status_code == 200 and response.json()["name"] == "raw-ns"
    for body in ({"name": "__default__"}, {"name": "x", "schema": {"fields": {"g": {"filterable": False}}}}, {}):
        assert raw.post(url, json=body).status_code in (400, 422)
    assert "x" not in _listed(idx)


# --- 8. create without a name -----------------------------------------------------------------------------------------


def test_create_without_a_name_assigns_one(pinecone_local_server: LocalServer) -> None:
    """Oracle: python-sdk tests/integration/test_indexes_2026_07.py test_create_without_name_assigns_one;
    pinecone/client/indexes.py ("The server assigns a name when omitted")."""
    pc = pinecone_local_server.client()
    created = pc.indexes.create(schema=named_schema())
    try:
        assert re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,43}[a-z0-9])?", created.name)
        assert pc.indexes.exists(created.name)
        assert created.host.endswith(f"/indexes-data/{created.name}")
    finally:
        pc.indexes.delete(created.name)


# --- 9. authentication and size are checked before the body is read ---------------------------------------------------


def _head_only_post(port: int, path: str, headers: dict[str, str], length: int) -> bytes:
    """Send a POST's headers announcing ``length`` body bytes, send none of them, and return what comes back."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        chunks = []
        deadline = time.monotonic() + 5
        try:
            while time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


def test_an_unauthenticated_or_oversized_post_is_answered_before_its_body_is_sent() -> None:
    """Issue 15 (hardening): 8 parallel unauthenticated 60 MB posts were buffered whole before the 401."""
    server = start_pinecone_local(api_key="s3cret")
    try:
        name = unique_index_name()
        server.client().indexes.create(name=name, dimension=2)
        unauthenticated = _head_only_post(server.port, f"/indexes-data/{name}/vectors/upsert", {}, 60_000_000)
        assert unauthenticated.startswith(b"HTTP/1.1 401")
        too_big = _head_only_post(server.port, "/indexes", {"Api-Key": "s3cret"}, 65 * 1024 * 1024)
        assert too_big.startswith(b"HTTP/1.1 413")
        over_2mb = _head_only_post(
            server.port, f"/indexes-data/{name}/vectors/upsert", {"Api-Key": "s3cret"}, 3 * 1024 * 1024
        )
        assert over_2mb.startswith(b"HTTP/1.1 400") and b"maximum supported size of 2MB" in over_2mb
        assert server.client().indexes.describe(name).name == name
    finally:
        server.stop()


# --- 10. namespace names --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("namespace", ["x" * 513, "nul\x00inside", "caf\u00e9"])
def test_invalid_namespace_names_are_400_on_every_call(
    pinecone_local_index: LocalIndex, raw: httpx.Client, namespace: str
) -> None:
    """Oracle: pinecone/_internal/validation.py require_valid_namespace_name (1-512 characters, ASCII code points
    1-127, so no NUL) and python-sdk docs/how-to/vectors/namespaces.md "Name rules"."""
    host = pinecone_local_index.host
    calls = [
        raw.post(f"{host}/vectors/upsert", json={"vectors": [{"id": "a", "values": GOOD}], "namespace": namespace}),
        raw.post(f"{host}/query", json={"topK": 1, "vector": GOOD, "namespace": namespace}),
        raw.post(f"{host}/vectors/delete", json={"ids": ["a"], "namespace": namespace}),
        raw.post(f"{host}/vectors/update", json={"id": "a", "values": GOOD, "namespace": namespace}),
        raw.post(f"{host}/vectors/fetch_by_metadata", json={"filter": {"a": 1}, "namespace": namespace}),
        raw.get(f"{host}/vectors/fetch", params={"ids": ["a"], "namespace": namespace}),
        raw.get(f"{host}/vectors/list", params={"namespace": namespace}),
        raw.get(f"{host}/namespaces", params={"prefix": namespace}),
        raw.post(f"{host}/namespaces", json={"name": namespace}),
        raw.get(f"{host}/namespaces/{quote(namespace, safe='')}"),
    ]
    for response in calls:
        assert response.status_code == 400, (response.request.url, response.text)
        assert response.json()["code"] == 3
        assert "namespace" in response.json()["message"].lower()
    assert pinecone_local_index.index.describe_index_stats().total_vector_count == 0


def test_valid_namespace_names_with_slashes_and_newlines_are_reachable(pinecone_local_index: LocalIndex) -> None:
    """Oracle: the same rule admits every code point 1-127 and 512 characters (python-sdk unit tests name ``\\x01``
    and ``\\x7f`` the lowest and highest legal code points); the SDK percent-encodes the name into the path."""
    idx = pinecone_local_index.index
    names = ["a/b", "line\nbreak", "y" * 512, "%2F"]
    for name in names:
        idx.upsert(vectors=[("a", GOOD)], namespace=name)
        assert idx.describe_namespace(name=name).record_count == 1
    assert set(_listed(idx)) == set(names)
    for name in names:
        idx.delete_namespace(name=name)
    assert _listed(idx) == {}


# --- 11. bounded filters and the other recursive parsers --------------------------------------------------------------


def _nested_and(depth: int) -> str:
    """``{"$and": [{"$and": [... {"genre": "drama"} ...]}]}``, as JSON text (too deep for ``json.dumps``)."""
    return '{"$and": [' * depth + '{"genre": "drama"}' + "]}" * depth


HUGE_OR = '{"$or": [' + ", ".join(f'{{"n": {i}}}' for i in range(20_000)) + "]}"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/query", '{"topK": 1, "vector": VECTOR, "filter": DEEP_AND}'),
        ("/vectors/delete", '{"filter": DEEP_AND, "namespace": "ns"}'),
        ("/vectors/update", '{"filter": DEEP_AND, "setMetadata": {"a": 1}, "namespace": "ns"}'),
        ("/vectors/fetch_by_metadata", '{"filter": DEEP_AND, "namespace": "ns"}'),
        ("/query", '{"topK": 1, "vector": VECTOR, "filter": HUGE_OR}'),
    ],
)
def test_deep_or_huge_filters_are_400_not_500(
    pinecone_local_index: LocalIndex, raw: httpx.Client, path: str, body: str
) -> None:
    """Issue 15: 500 nested ``$and`` answered 500 (RecursionError). Pinecone's data-plane error shape is
    ``{"code": 3, "message": ..., "details": []}`` (pinecone-api db_data rpcStatus)."""
    pinecone_local_index.index.upsert(vectors=[("a", GOOD, {"genre": "drama"})], namespace="ns")
    text = body.replace("DEEP_AND", _nested_and(500)).replace("HUGE_OR", HUGE_OR).replace("VECTOR", str(GOOD))
    response = raw.post(
        f"{pinecone_local_index.host}{path}", content=text.encode(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 400, response.text[:300]
    assert response.json()["code"] == 3
    assert pinecone_local_index.index.fetch(ids=["a"], namespace="ns").vectors["a"].metadata == {"genre": "drama"}


def test_deeply_nested_values_elsewhere_in_a_request_are_400_not_500(
    pinecone_local_index: LocalIndex, raw: httpx.Client
) -> None:
    """Siblings of item 11: error messages that echoed a value through ``repr``/``orjson.dumps`` recursed over it."""
    deep = "[" * 900 + "1" + "]" * 900
    vector = "[1, 0, 0, 0, 0, 0, 0, 0]"
    host = pinecone_local_index.host
    bodies = [
        ("/query", '{"topK": DEEP, "vector": VECTOR}'),
        ("/vectors/upsert", '{"vectors": [{"id": "a", "values": VECTOR, "metadata": {"t": [DEEP]}}]}'),
        ("/query", '{"topK": 1, "vector": VECTOR, "filter": {"a": {"$eq": DEEP}}}'),
        ("/query", '{"topK": 1, "vector": VECTOR, "filter": {"a": {"$in": [DEEP]}}}'),
        ("/vectors/fetch_by_metadata", '{"filter": {"a": 1}, "limit": DEEP}'),
    ]
    for path, body in bodies:
        response = raw.post(
            f"{host}{path}",
            content=body.replace("DEEP", deep).replace("VECTOR", vector).encode(),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 400, (path, response.text[:300])
        assert response.json()["code"] == 3
