"""The Pinecone API key and a standalone cluster's logs: the key is set in the environment of whoever starts the
cluster and runs ``flink run`` (as users do), the job runs to its end, and no log file, no log the REST API serves
holds it (Beam logs a Python worker's whole environment when the worker stops)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from kafka_pinecone_flink.pinecone_local.launcher import LocalServer
from kafka_pinecone_flink.stack.cluster import FlinkCluster
from kafka_pinecone_flink.stack.kafka import KafkaBroker
from kafka_pinecone_flink.stack.kafka_client import produce
from kafka_pinecone_flink.stack.paths import free_port

pytestmark = pytest.mark.integration


def test_the_api_key_is_in_no_log_of_a_standalone_cluster(
    kafka_broker: KafkaBroker,
    kafka_topic: Callable[..., str],
    pinecone_local_server: LocalServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    marker = f"kpf-secret-marker-{uuid.uuid4().hex}"
    monkeypatch.setenv("PINECONE_API_KEY", marker)
    topic, dead_letter_topic = kafka_topic("in"), kafka_topic("dlq")
    index_name = f"secret-{uuid.uuid4().hex[:10]}"
    pinecone_local_server.client().create_index(
        name=index_name, dimension=4, metric="cosine", spec={"serverless": {"cloud": "aws", "region": "local"}}
    )
    records = [(f"k{i}".encode(), json.dumps({"values": [1, i, 0, 0]}).encode()) for i in range(20)]
    produce(kafka_broker.bootstrap_servers, topic, [*records, (b"bad", b"{")])
    cluster = FlinkCluster(tmp_path / "cluster", rest_port=free_port(), rpc_port=free_port())
    try:
        cluster.start()
        job_id = cluster.submit(
            [
                f"--kafka.bootstrap-servers={kafka_broker.bootstrap_servers}",
                f"--kafka.topics={topic}",
                "--kafka.starting-position=earliest",
                "--kafka.bounded=true",
                f"--pinecone.index={index_name}",
                f"--pinecone.controller-host={pinecone_local_server.url}",
                "--errors.tolerance=all",
                f"--errors.dead-letter-topic={dead_letter_topic}",
                "--flink.checkpoint-interval-ms=1000",
            ]
        )
        assert cluster.wait_for_state(job_id, {"FINISHED"}, timeout_s=300) == "FINISHED"
        index = pinecone_local_server.client().index(name=index_name)
        assert index.describe_index_stats().total_vector_count == 20  # the key was used: the job wrote
        served = {"/jobmanager/log": httpx.get(f"{cluster.rest_url}/jobmanager/log", timeout=30).text}
        for manager in httpx.get(f"{cluster.rest_url}/taskmanagers", timeout=10).json()["taskmanagers"]:
            path = f"/taskmanagers/{manager['id']}/log"
            served[path] = httpx.get(f"{cluster.rest_url}{path}", timeout=30).text
        assert any("FINISHED" in text for text in served.values())
        for path, text in served.items():
            assert marker not in text, f"the API key is in {path}"
    finally:
        cluster.stop()  # the TaskManager closes its Python environments (and Beam logs them) when it stops
    files = [path for path in cluster.log_dir.rglob("*") if path.is_file()]
    assert any("taskexecutor" in path.name for path in files), files
    for file in files:
        assert marker.encode() not in file.read_bytes(), f"the API key is in {file}"
