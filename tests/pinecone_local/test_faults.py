"""Each fault-injection switch, set at start (flags) and at run time (admin API and CLI)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pinecone import RateLimitError, ServiceError

from kafka_pinecone_flink.pinecone_local.launcher import LocalServer, start_pinecone_local, unique_index_name

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server() -> Iterator[LocalServer]:
    srv = start_pinecone_local()
    yield srv
    srv.stop()


def make_index(server: LocalServer) -> str:
    return str(server.client().indexes.create(name=unique_index_name(), dimension=2).host)


def upsert(host: str, namespace: str = "", vector_id: str = "a") -> httpx.Response:
    return httpx.post(
        f"{host}/vectors/upsert", json={"vectors": [{"id": vector_id, "values": [1.0, 0.0]}], "namespace": namespace}
    )


def test_rate_limit_answers_429_with_retry_after_per_namespace(server: LocalServer) -> None:
    host = make_index(server)
    server.set_faults(rate_limits={"upsert": 2})
    statuses = [upsert(host, "a", f"id{i}").status_code for i in range(3)]
    assert statuses == [200, 200, 429]
    throttled = upsert(host, "a", "x")
    assert throttled.headers["retry-after"] == "1"
    assert throttled.json()["code"] == 8 and "RESOURCE_EXHAUSTED" in throttled.json()["message"]
    assert upsert(host, "b").status_code == 200
    assert httpx.post(f"{host}/query", json={"topK": 1, "vector": [1.0, 0.0], "namespace": "a"}).status_code == 200
    assert server.client().index(host=host).fetch(ids=["x"], namespace="a").vectors == {}


def test_sdk_surfaces_rate_limit_error_once_its_retries_are_spent(server: LocalServer) -> None:
    host = make_index(server)
    server.set_faults(fail_next=[{"kind": "query", "count": 4, "status": 429}])
    with pytest.raises(RateLimitError) as excinfo:
        server.client().index(host=host).query(vector=[1.0, 0.0], top_k=1)
    assert excinfo.value.status_code == 429
    assert server.admin("GET", "/admin/faults")["counters"]["failed_next"] == 4


def test_fail_next_n_fails_exactly_n_requests_of_that_kind_and_the_sdk_retries_through(server: LocalServer) -> None:
    host = make_index(server)
    server.set_faults(fail_next=[{"kind": "upsert", "count": 2, "status": 503}])
    idx = server.client().index(host=host)
    assert idx.upsert(vectors=[("a", [1.0, 0.0])]).upserted_count == 1
    faults = server.admin("GET", "/admin/faults")
    assert faults["counters"]["failed_next"] == 2 and faults["fail_next"] == []


def test_fail_next_answers_the_chosen_status_and_changes_nothing(server: LocalServer) -> None:
    host = make_index(server)
    server.set_faults(fail_next=[{"kind": "upsert", "count": 1, "status": 500}])
    assert httpx.post(f"{host}/query", json={"topK": 1, "vector": [1.0, 0.0]}).status_code == 200
    failed = upsert(host)
    assert failed.status_code == 500 and failed.json()["code"] == 13
    assert httpx.post(f"{host}/describe_index_stats", json={}).json()["totalVectorCount"] == 0
    assert upsert(host).status_code == 200


def test_fail_next_after_lets_that_many_requests_of_its_kind_through_first(server: LocalServer) -> None:
    host = make_index(server)
    server.set_faults(fail_next=[{"kind": "upsert", "count": 2, "status": 503, "after": 3}])
    assert httpx.post(f"{host}/query", json={"topK": 1, "vector": [1.0, 0.0]}).status_code == 200  # not counted
    codes = [upsert(host, vector_id=f"v{n}").status_code for n in range(6)]
    assert codes == [200, 200, 200, 503, 503, 200]
    assert httpx.post(f"{host}/describe_index_stats", json={}).json()["totalVectorCount"] == 4
    faults = server.admin("GET", "/admin/faults")
    assert faults["counters"]["failed_next"] == 2 and faults["fail_next"] == []


def test_fail_next_rejects_a_negative_after(server: LocalServer) -> None:
    answer = httpx.put(f"{server.url}/admin/faults", json={"fail_next": [{"kind": "upsert", "count": 1, "after": -1}]})
    assert answer.status_code == 400 and "after must be >= 0" in answer.text


def test_error_rate_fails_about_that_share_of_requests(server: LocalServer) -> None:
    host = make_index(server)
    server.set_faults(error_rate=0.5, error_status=502, error_kinds=["query"], seed=7)
    with httpx.Client() as client:
        statuses = [
            client.post(f"{host}/query", json={"topK": 1, "vector": [1.0, 0.0]}).status_code for _ in range(200)
        ]
        assert set(statuses) == {200, 502}
        assert 60 <= statuses.count(502) <= 140
        assert upsert(host).status_code == 200
        server.reset_faults()
        assert all(
            client.post(f"{host}/query", json={"topK": 1, "vector": [1.0, 0.0]}).status_code == 200 for _ in range(20)
        )


def test_sdk_raises_service_error_when_every_attempt_fails(server: LocalServer) -> None:
    host = make_index(server)
    server.set_faults(error_rate=1.0, error_status=503, error_kinds=["fetch"])
    with pytest.raises(ServiceError):
        server.client().index(host=host).fetch(ids=["a"])


def test_latency_is_added_to_requests(server: LocalServer) -> None:
    host = make_index(server)
    server.set_faults(latency_ms=300)
    started = time.monotonic()
    assert upsert(host).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_fault_flags_at_start_take_effect(tmp_path: Path) -> None:
    srv = start_pinecone_local(
        extra_args=(
            *("--fail-next", "list_indexes:1:503", "--fail-next", "describe_index:1:502:1"),
            *("--rate-limit", "query=1"),
        )
    )
    try:
        assert httpx.get(f"{srv.url}/indexes").status_code == 503
        assert httpx.get(f"{srv.url}/indexes").status_code == 200
        assert [httpx.get(f"{srv.url}/indexes/absent").status_code for _ in range(3)] == [404, 502, 404]
        host = make_index(srv)
        codes = [httpx.post(f"{host}/query", json={"topK": 1, "vector": [1.0, 0.0]}).status_code for _ in range(2)]
        assert codes == [200, 429]
    finally:
        srv.stop()


def test_cli_faults_subcommand_changes_a_running_server(server: LocalServer) -> None:
    host = make_index(server)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kafka_pinecone_flink.pinecone_local", "faults", "--url", server.url, *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=30,
            check=True,
        )

    cli("fail-next", "upsert", "1", "--status", "504")
    assert upsert(host).status_code == 504
    cli("fail-next", "upsert", "1", "--status", "502", "--after", "1")
    assert [upsert(host).status_code for _ in range(3)] == [200, 502, 200]
    cli("set", "--latency-ms", "5", "--rate-limit", "fetch=50")
    shown = cli("show").stdout
    assert '"latency_ms": 5.0' in shown and '"fetch": 50.0' in shown
    cli("reset")
    assert server.admin("GET", "/admin/faults")["rate_limits"] == {}
