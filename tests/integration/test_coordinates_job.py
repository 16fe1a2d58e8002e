"""The Kafka → Flink path the ingest job stands on, on a real broker and the Flink mini-cluster.

The coordinates job runs as its own process, the way users run a job locally.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from kafka_pinecone_flink.stack.flink import job_process_environment
from kafka_pinecone_flink.stack.kafka import KafkaBroker
from kafka_pinecone_flink.stack.kafka_client import Message, consume, produce
from kafka_pinecone_flink.stack.paths import ROOT, free_port

pytestmark = pytest.mark.integration

JOB_TIMEOUT_S = 240


def run_job(broker: KafkaBroker, run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "kafka_pinecone_flink.jobs.coordinates_job",
        "--bootstrap-servers",
        broker.bootstrap_servers,
        "--run-dir",
        str(run_dir),
        "--rest-port",
        str(free_port()),
        "--bounded",
        *args,
    ]
    env = job_process_environment()
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT_S)
    assert result.returncode == 0, f"job failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def decode(message: Message) -> dict:
    return json.loads(message.value or b"")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_key_value_headers_and_coordinates_arrive_intact_and_a_tombstone_arrives_as_null(
    kafka_broker: KafkaBroker, kafka_topic: Callable[..., str], tmp_path: Path
) -> None:
    source, output = kafka_topic("in", partitions=2), kafka_topic("out")
    records = []
    for i in range(20):
        key = f"key-{i}".encode()
        value = None if i % 7 == 3 else json.dumps({"n": i, "bytes": "é\u0000"}).encode()
        records.append((key, value, [("trace", f"t{i}".encode()), ("binary", bytes([0, 255, i]))]))
    produce(kafka_broker.bootstrap_servers, source, records[:10], partition=0)
    produce(kafka_broker.bootstrap_servers, source, records[10:], partition=1)

    result = run_job(kafka_broker, tmp_path, "--topics", source, "--output-topic", output)

    assert "Flink Web UI: http://127.0.0.1:" in result.stdout
    out = consume(kafka_broker.bootstrap_servers, output, expected=20)
    assert len(out) == 20
    by_key = {m.key: (m, decode(m)) for m in out}
    for i, (key, value, headers) in enumerate(records):
        message, doc = by_key[key]
        assert doc["topic"] == source
        assert (doc["partition"], doc["offset"]) == ((0, i) if i < 10 else (1, i - 10))
        assert isinstance(doc["timestamp"], int) and doc["timestamp"] > 1_600_000_000_000
        assert doc["key"] == b64(key)
        assert doc["tombstone"] is (value is None)
        assert doc["value"] == (None if value is None else b64(value))
        assert doc["headers"] == {name: b64(data) for name, data in headers}
        assert dict(message.headers) == dict(headers)


def test_a_job_restarted_after_a_failure_resumes_from_its_checkpoint_without_skipping_a_record(
    kafka_broker: KafkaBroker, kafka_topic: Callable[..., str], tmp_path: Path
) -> None:
    source, output = kafka_topic("in"), kafka_topic("out")
    total, fail_at = 3000, 2500
    produce(kafka_broker.bootstrap_servers, source, [(f"k{i}".encode(), f"v{i}".encode()) for i in range(total)])
    marker = tmp_path / "failed.marker"

    run_job(
        kafka_broker,
        tmp_path,
        "--topics",
        source,
        "--output-topic",
        output,
        "--checkpoint-interval-ms",
        "300",
        "--fail-at-offset",
        str(fail_at),
        "--fail-marker",
        str(marker),
    )

    assert marker.read_text() == str(fail_at), "the injected failure did not happen"
    # The job has finished, so its output is complete; duplicates mean reading until the topic is idle.
    out = consume(kafka_broker.bootstrap_servers, output)
    offsets = Counter(decode(m)["offset"] for m in out)
    assert set(offsets) == set(range(total)), f"skipped offsets: {sorted(set(range(total)) - set(offsets))[:10]}"
    replayed = sorted(o for o, n in offsets.items() if n > 1)
    # At-least-once: only records after the last completed checkpoint are replayed, not the whole topic.
    assert len(replayed) < fail_at, f"{len(replayed)} records replayed: the job did not resume from its checkpoint"
    assert all(o < fail_at for o in replayed), f"records after the failure point replayed: {replayed[-5:]}"
