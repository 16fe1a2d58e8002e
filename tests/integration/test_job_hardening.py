"""The job at its edges (issue 15): a bad record at Kafka's size limit, a failure's cause on the console, a missing
dead-letter topic, the API key and Flink's logs, the address of a mini-cluster on any free port. Every run is a
real job (its own process, a Flink mini-cluster) against a real broker and the local Pinecone server."""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.ingest_harness import IngestHarness, RunningJob, dead_letter_headers, value

pytestmark = pytest.mark.integration

SOURCE_VALUE_BYTES = 1_048_300


def _produce_large(bootstrap_servers: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    """Produce records up to the broker's limit (librdkafka's own default message.max.bytes is 1,000,000)."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap_servers, "message.max.bytes": 2_000_000, "log_level": 3})
    errors: list[str] = []
    for key, data in records:
        producer.produce(topic, key=key, value=data, on_delivery=lambda err, _m: err and errors.append(str(err)))
    assert producer.flush(60) == 0 and not errors, errors


def _large_value() -> bytes:
    """A JSON record of exactly ``SOURCE_VALUE_BYTES`` bytes whose metadata is far over Pinecone's 40 KB."""
    shell = json.dumps({"values": [1, 0, 0, 0], "blob": ""}).encode()
    data = json.dumps({"values": [1, 0, 0, 0], "blob": "x" * (SOURCE_VALUE_BYTES - len(shell))}).encode()
    assert len(data) == SOURCE_VALUE_BYTES
    return data


def test_a_bad_record_at_kafkas_size_limit_is_dead_lettered_truncated_and_the_job_goes_on(
    ingest: IngestHarness,
) -> None:
    topic = ingest.topic("in")
    large = _large_value()
    _produce_large(
        ingest.broker.bootstrap_servers,
        topic,
        [(b"k1", value(values=[1, 0, 0, 0])), (b"big", large), (b"k3", value(values=[0, 1, 0, 0]))],
    )
    run = ingest.run({topic: []}, exact_topic_names=True)
    assert set(run.snapshot(topic)) == {_uuid(b"k1"), _uuid(b"k3")}
    [dead] = run.dead_letters(expected=1)
    headers = dead_letter_headers(dead)
    assert headers["kpf.error.class"] == "MetadataTooLargeError"
    assert (headers["kpf.source.topic"], headers["kpf.source.offset"]) == (topic, "1")
    assert headers["kpf.truncated"] == "value"
    assert headers["kpf.original.value.size"] == str(SOURCE_VALUE_BYTES)
    assert headers["kpf.original.value.sha256"] == hashlib.sha256(large).hexdigest()
    assert dead.key == b"big"
    assert dead.value is not None and 0 < len(dead.value) < SOURCE_VALUE_BYTES and large.startswith(dead.value)


def test_a_job_failure_in_the_jvm_prints_the_root_cause_not_only_the_py4j_wrapper(ingest: IngestHarness) -> None:
    # A dead-letter producer whose max.request.size is below any record: the dead letter cannot be sent, and the
    # job fails in the Kafka sink (Java) with RecordTooLargeException.
    run = ingest.run(
        [(b"k1", b"{not json")],
        "--kafka.property=max.request.size=100",
        "--flink.conf=restart-strategy.type=none",
        expect_success=False,
    )
    assert run.result.returncode == 1
    errors = [line for line in run.result.stderr.splitlines() if line.startswith("error:")]
    assert errors and "RecordTooLargeException" in errors[0], run.result.stderr[-3000:]
    assert "caused by (outermost first):" in run.result.stderr


def test_a_missing_dead_letter_topic_stops_the_job_before_it_starts_naming_the_topic(ingest: IngestHarness) -> None:
    missing = f"no-such-dlq-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    run = ingest.run(
        [(b"k1", b"{not json")],
        f"--errors.dead-letter-topic={missing}",
        "--flink.conf=restart-strategy.type=none",
        expect_success=False,
    )
    assert run.result.returncode == 1
    assert f"dead-letter topic {missing!r} does not exist" in run.result.stderr
    assert f"stack.kafka create-topic {missing}" in run.result.stderr
    assert "Flink Web UI" not in run.result.stdout, "the job was submitted"
    assert time.monotonic() - started < 60


def test_with_rest_port_zero_the_bound_address_is_printed(ingest: IngestHarness) -> None:
    run = ingest.run([(b"k1", value(values=[1, 0, 0, 0]))], "--flink.rest-port=0")
    printed = re.findall(r"Flink Web UI: http://127\.0\.0\.1:(\d+)", run.result.stdout)
    assert len(printed) == 1 and printed[0] != "0", run.result.stdout
    assert run.run_dir is not None
    logs = "".join(path.read_text(errors="replace") for path in _files(run.run_dir / "flink-logs"))
    assert re.search(rf"(Rest endpoint|Web frontend) listening at \S*:{printed[0]}\b", logs), "not the bound port"


def _uuid(key: bytes) -> str:
    from kafka_pinecone_flink.udfs.ids import uuid_for

    return uuid_for(key)


def _files(directory: Path) -> list[Path]:
    return [path for path in directory.rglob("*") if path.is_file()]


def _rest_logs(job: RunningJob) -> dict[str, str]:
    """The JobManager's and every TaskManager's log as the REST API serves them."""
    logs = {"/jobmanager/log": httpx.get(f"{job.rest_url}/jobmanager/log", timeout=30).text}
    for manager in httpx.get(f"{job.rest_url}/taskmanagers", timeout=10).json()["taskmanagers"]:
        path = f"/taskmanagers/{manager['id']}/log"
        logs[path] = httpx.get(f"{job.rest_url}{path}", timeout=30).text
    return logs


def _wait_for_a_restart(job: RunningJob, timeout_s: float = 180) -> None:
    """Until the running job has failed once and runs again."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            jobs = httpx.get(f"{job.rest_url}/jobs", timeout=5).json()["jobs"]
            if jobs:
                job_id = jobs[0]["id"]
                history = httpx.get(f"{job.rest_url}/jobs/{job_id}/exceptions", timeout=5).json()
                failed = history.get("exceptionHistory", {}).get("entries")
                if failed and jobs[0]["status"] == "RUNNING":
                    return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.5)
    raise AssertionError("the job did not fail and restart")


def test_the_api_key_is_in_no_log_file_rest_log_dead_letter_or_printed_output(ingest: IngestHarness) -> None:
    marker = f"kpf-secret-marker-{uuid.uuid4().hex}"
    records = [(f"k{i}".encode(), value(values=[1, i, 0, 0])) for i in range(50)] + [(b"bad", b"{")]
    served: dict[str, str] = {}

    def restart_then_read_the_logs(job: RunningJob) -> None:
        # Beam logs a Python worker's environment when the worker stops: make the job fail once and restart.
        deadline = time.monotonic() + 120
        while job.index.describe_index_stats().total_vector_count < 10 and time.monotonic() < deadline:
            time.sleep(0.2)
        ingest.pinecone_admin("PUT", "/admin/faults", {"fail_next": [{"kind": "upsert", "count": 1, "status": 503}]})
        produce_more(job)
        _wait_for_a_restart(job)
        time.sleep(5)  # the failed attempt's workers close while the new one starts
        served.update(_rest_logs(job))

    def produce_more(_job: Any) -> None:
        from kafka_pinecone_flink.stack.kafka_client import produce

        produce(ingest.broker.bootstrap_servers, topic, [(b"late", value(values=[0, 0, 1, 0]))])

    topic = ingest.topic("in")
    from kafka_pinecone_flink.stack.kafka_client import produce

    produce(ingest.broker.bootstrap_servers, topic, records)
    unbounded = ingest.run(
        {topic: []},
        "--sink.max-retries=0",
        exact_topic_names=True,
        api_key=marker,
        during=restart_then_read_the_logs,
        unbounded=True,
        expect_success=False,
    )
    ingest.pinecone_admin("POST", "/admin/faults/reset")
    assert served and "/jobmanager/log" in served
    assert "SinkUnavailableError" in served["/jobmanager/log"], "the served log does not show the restart"
    for path, text in served.items():
        assert marker not in text, f"the API key is in {path}"

    bounded = ingest.run(records, api_key=marker)  # to a normal end
    for run in (unbounded, bounded):
        assert run.run_dir is not None
        log_files = _files(run.run_dir / "flink-logs")
        assert log_files
        for path in log_files:
            assert marker.encode() not in path.read_bytes(), f"the API key is in {path}"
        assert marker not in run.output
        for message in run.dead_letters(expected=1):
            assert marker.encode() not in (message.value or b"") + b"".join(v or b"" for _, v in message.headers)
