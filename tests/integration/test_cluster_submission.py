"""The ingest job operated as Flink users operate it: a standalone cluster (separate JobManager and TaskManager
JVMs), ``flink run`` submission, metrics from the REST API, stop with a savepoint, resume with a changed option and
parallelism; and a running job rescaled in place by the adaptive scheduler.

One test walks the whole life cycle (a cluster costs ~10 s and a submission ~20 s on two cores): every id must be
in the index with its newest version, deleted ids must be gone, and the resumed job must start from the savepoint's
offsets (it reads only what was produced after the stop).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from kafka_pinecone_flink.jobs.status import RECORDS_IN_OPERATORS
from kafka_pinecone_flink.pinecone_local.launcher import LocalServer
from kafka_pinecone_flink.stack.cluster import FlinkCluster
from kafka_pinecone_flink.stack.kafka import KafkaBroker
from kafka_pinecone_flink.stack.kafka_client import produce
from kafka_pinecone_flink.stack.paths import free_port
from tests.fixtures.stack import CLUSTER_CHECKPOINT_INTERVAL_MS

pytestmark = pytest.mark.integration

INDEX_TIMEOUT_S = 90.0
SINK_RESULTS = ["Pinecone sink results"]
RESUMED_INTERVAL_MS = 1500
Record = tuple[bytes, bytes | None]


def _upsert(record_id: int, version: int) -> Record:
    value = {"values": [1.0, record_id / 100, version / 10, 0.5], "version": version}
    return f"id-{record_id}".encode(), json.dumps(value).encode()


def _snapshot(index: Any, namespace: str) -> dict[str, float]:
    """Every record of ``namespace``: id → its ``version`` metadata."""
    ids = [item.id for page in index.list(namespace=namespace) for item in getattr(page, "vectors", page)]
    versions: dict[str, float] = {}
    for start in range(0, len(ids), 200):
        fetched = index.fetch(ids=ids[start : start + 200], namespace=namespace)
        versions.update({rid: float((v.metadata or {})["version"]) for rid, v in fetched.vectors.items()})
    return versions


def _wait_for_index(index: Any, namespace: str, expected: dict[str, float]) -> dict[str, float]:
    deadline = time.monotonic() + INDEX_TIMEOUT_S
    seen: dict[str, float] = {}
    while time.monotonic() < deadline:
        seen = _snapshot(index, namespace)
        if seen == expected:
            return seen
        time.sleep(0.5)
    missing = sorted(set(expected) - set(seen))[:5]
    stale = sorted(k for k in expected if k in seen and seen[k] != expected[k])[:5]
    extra = sorted(set(seen) - set(expected))[:5]
    raise AssertionError(f"index never matched: missing {missing}, stale {stale}, unexpected {extra}")


def _wait_for_metrics(
    cluster: FlinkCluster, job_id: str, operators: Sequence[str], expected: dict[str, float]
) -> dict[str, float]:
    """Metrics are reported every few seconds: poll until ``operators`` show ``expected`` (absent counters read as
    0). By operator: at parallelism 1 the whole job is one vertex (the dedup runs in the source's task)."""
    deadline = time.monotonic() + INDEX_TIMEOUT_S
    seen: dict[str, float] = {}
    while time.monotonic() < deadline:
        reported = cluster.metrics(job_id, operators, expected)
        seen = {name: reported.get(name, 0.0) for name in expected}
        if seen == expected:
            return seen
        time.sleep(0.5)
    raise AssertionError(f"metrics of {operators}: expected {expected}, last seen {seen}")


def _index_and_options(
    name: str, broker: KafkaBroker, topic: str, dead_letter_topic: str, server: LocalServer
) -> tuple[Any, list[str]]:
    """A new index (4-d) named after ``name``, and the job's options that write ``topic`` into it."""
    index_name = f"{name}-{uuid.uuid4().hex[:10]}"
    pinecone = server.client()
    pinecone.create_index(
        name=index_name, dimension=4, metric="cosine", spec={"serverless": {"cloud": "aws", "region": "local"}}
    )
    options = [
        f"--kafka.bootstrap-servers={broker.bootstrap_servers}",
        f"--kafka.topics={topic}",
        f"--kafka.group-id={name}-{uuid.uuid4().hex[:8]}",
        "--kafka.starting-position=earliest",
        f"--pinecone.index={index_name}",
        f"--pinecone.controller-host={server.url}",
        "--id.format=raw",
        "--errors.tolerance=all",
        f"--errors.dead-letter-topic={dead_letter_topic}",
    ]
    return pinecone.index(name=index_name), options


def _shape(cluster: FlinkCluster, job_id: str) -> list[tuple[int, bool]]:
    """The job's vertices but the dead-letter sink's, as (parallelism, whether it runs Dedup), sorted."""
    vertices = [v for v in cluster.vertices(job_id) if "dead_letters" not in v["name"]]
    return sorted((int(v["parallelism"]), "Dedup" in v["name"]) for v in vertices)


def _latest(records: Iterable[Record]) -> dict[str, float]:
    """What the index must hold after ``records``: id → version of the last upsert, deleted ids absent."""
    state: dict[str, float] = {}
    for key, value in records:
        if value is None:
            state.pop(key.decode(), None)
        else:
            state[key.decode()] = float(json.loads(value)["version"])
    return state


def test_a_job_submitted_with_flink_run_survives_stop_with_savepoint_and_resume_with_a_new_batch_size(
    flink_cluster: FlinkCluster,
    kafka_broker: KafkaBroker,
    kafka_topic: Callable[..., str],
    pinecone_local_server: LocalServer,
) -> None:
    topic = kafka_topic("in")
    index, options = _index_and_options("cluster", kafka_broker, topic, kafka_topic("dlq"), pinecone_local_server)
    first = [_upsert(i, 1) for i in range(200)]
    produce(kafka_broker.bootstrap_servers, topic, first)

    # The TaskManager runs with flink-conf's env.java.opts.taskmanager (the serial collector), the JobManager with
    # env.java.opts.jobmanager (C1 only, the serial collector): the rendered configuration reaches Flink's own start
    # scripts.
    tm_pid, jm_pid = flink_cluster.taskmanager_pid(), flink_cluster.jobmanager_pid()
    assert tm_pid is not None and jm_pid is not None
    tm_flags = Path(f"/proc/{tm_pid}/cmdline").read_bytes().decode().split("\0")
    jm_flags = Path(f"/proc/{jm_pid}/cmdline").read_bytes().decode().split("\0")
    assert "-XX:+UseSerialGC" in tm_flags and "-XX:TieredStopAtLevel=1" not in tm_flags
    assert {"-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"} <= set(jm_flags)

    began = time.monotonic()
    job_id = flink_cluster.submit([*options, "--sink.batch-size=50"])
    submitted = time.monotonic()
    flink_cluster.wait_until_running(job_id)
    timings = {"flink run": submitted - began, "submission to RUNNING": time.monotonic() - began}
    # Without -p or --flink.parallelism the cluster's parallelism.default (1) applies: one vertex, the dedup keyed
    # in the source's task.
    assert _shape(flink_cluster, job_id) == [(1, True)]
    # Without --flink.checkpoint-interval-ms the cluster's execution.checkpointing.interval applies.
    assert flink_cluster.checkpoint_config(job_id)["interval"] == CLUSTER_CHECKPOINT_INTERVAL_MS
    _wait_for_index(index, topic, _latest(first))
    assert _wait_for_metrics(flink_cluster, job_id, SINK_RESULTS, {"upserted": 200.0, "deleted": 0.0}) == {
        "upserted": 200.0,
        "deleted": 0.0,
    }
    # records_in as kpf status reads it: the decoders' (the dedup counts the same records again).
    read = {"records_in": 200.0}
    assert _wait_for_metrics(flink_cluster, job_id, RECORDS_IN_OPERATORS, read) == read

    began = time.monotonic()
    savepoint = flink_cluster.stop_with_savepoint(job_id)
    timings["stop with savepoint"] = time.monotonic() - began
    assert flink_cluster.job_status(job_id) == "FINISHED"
    assert savepoint.startswith("file:") and str(flink_cluster.savepoint_dir) in savepoint

    # While the job is stopped: updates of half the ids, new ids, and deletes.
    second: list[Record] = [_upsert(i, 2) for i in range(100)]
    second += [_upsert(i, 1) for i in range(200, 300)]
    second += [(f"id-{i}".encode(), None) for i in range(150, 160)]
    produce(kafka_broker.bootstrap_servers, topic, second)

    began = time.monotonic()
    # flink run -p 2, the Flink convention, rescales the job: the dedup's state, written in the source's task,
    # is split between two subtasks behind the keyed exchange.
    # The job's own options apply over the cluster's settings.
    resumed = flink_cluster.resume(
        savepoint,
        [*options, "--sink.batch-size=7", f"--flink.checkpoint-interval-ms={RESUMED_INTERVAL_MS}"],
        parallelism=2,
    )
    assert resumed != job_id
    flink_cluster.wait_until_running(resumed)
    timings["resume to RUNNING"] = time.monotonic() - began
    assert _shape(flink_cluster, resumed) == [(2, False), (2, True)]
    assert flink_cluster.checkpoint_config(resumed)["interval"] == RESUMED_INTERVAL_MS
    print("timings (s):", {phase: round(seconds, 1) for phase, seconds in timings.items()})  # shown with -s
    final = _wait_for_index(index, topic, _latest(first + second))
    assert len(final) == 290 and final["id-0"] == 2.0 and "id-150" not in final and final["id-299"] == 1.0
    # Started from the savepoint's offsets: only the 210 records produced after the stop are read again.
    # upserted counts new ids, updated the upserts of ids that held an applied version.
    expected = {"records_in": 210.0, "upserted": 100.0, "updated": 100.0, "deleted": 10.0}
    assert _wait_for_metrics(flink_cluster, resumed, ["Dedup", *SINK_RESULTS], expected) == expected
    flink_cluster.cancel(resumed)
    flink_cluster.wait_for_state(resumed, {"CANCELED"}, timeout_s=60)


ADAPTIVE = {
    "jobmanager.scheduler": "adaptive",
    # Rescale as soon as the new requirements can be met, instead of 30 s after the job started running.
    "jobmanager.adaptive-scheduler.executing.cooldown-after-rescaling": "0s",
}


def test_the_adaptive_scheduler_rescales_a_running_job_and_the_dedup_keeps_its_state(
    kafka_broker: KafkaBroker,
    kafka_topic: Callable[..., str],
    pinecone_local_server: LocalServer,
    tmp_path: Path,
) -> None:
    """On a cluster with the adaptive scheduler the dedup stays behind the keyed exchange at parallelism 1
    (``dedup.in-source-task`` would key it in place, which a rescale in place would break), so the scheduler can
    rescale the running job to 2 and split the dedup's state by key group: records seen before are still known."""
    topic = kafka_topic("in", partitions=2)
    index, options = _index_and_options("rescale", kafka_broker, topic, kafka_topic("dlq"), pinecone_local_server)
    cluster = FlinkCluster(tmp_path / "cluster", rest_port=free_port(), rpc_port=free_port(), conf=ADAPTIVE)
    try:
        cluster.start()
        first = [_upsert(i, 1) for i in range(200)]
        produce(kafka_broker.bootstrap_servers, topic, first)
        job_id = cluster.submit([*options, "--flink.checkpoint-interval-ms=1000"])
        cluster.wait_until_running(job_id)
        assert _shape(cluster, job_id) == [(1, False), (1, True)]  # the keyed exchange, at parallelism 1
        _wait_for_index(index, topic, _latest(first))
        # Two more checkpoints: the latest one, which the rescale restores, holds every record of the first batch.
        done = cluster.completed_checkpoints(job_id)
        _wait_until(lambda: cluster.completed_checkpoints(job_id) >= done + 2, "two more checkpoints")

        cluster.rescale(job_id, 2)
        _wait_until(lambda: _shape(cluster, job_id) == [(2, False), (2, True)], "the rescale to 2")
        cluster.wait_until_running(job_id)
        # The first batch again (unchanged: skipped), newer versions of half the ids, deletes of ten.
        second = [*first, *(_upsert(i, 2) for i in range(100)), *((f"id-{i}".encode(), None) for i in range(150, 160))]
        produce(kafka_broker.bootstrap_servers, topic, second)
        _wait_for_index(index, topic, _latest(first + second))
        # Counters start again with the rescaled tasks. Had the dedup lost its state, the unchanged records would be
        # written again, and the new versions counted as new ids (upserted), not as updates.
        expected = {"records_in": 310.0, "skipped_unchanged": 200.0, "upserted": 0.0, "updated": 100.0, "deleted": 10.0}
        assert _wait_for_metrics(cluster, job_id, ["Dedup", *SINK_RESULTS], expected) == expected
        cluster.cancel(job_id)
    finally:
        cluster.stop()


def _wait_until(condition: Callable[[], bool], what: str, timeout_s: float = INDEX_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"no {what} after {timeout_s:.0f}s")
