"""Savepoints of earlier versions of the job, kept as test fixtures, and the stream that made them.

A user upgrades the job by stopping it with a savepoint and starting the new version from it (README: "Running on a
Flink cluster"). ``tests/fixtures/savepoints/<label>/`` holds, for each earlier version tested, a canonical savepoint
that version wrote after reading ``BEFORE`` from one topic, and ``manifest.json`` (the version's commit, the topic and
consumer group, the options). ``test_savepoint_upgrade.py`` restores each with this version and feeds it ``AFTER``:
what this version then writes shows whether it took over the old version's Kafka offsets and dedup state.

Make a fixture from a clone of an earlier version (set up with ``scripts/setup.sh``)::

    .venv/bin/python -m tests.integration.savepoint_upgrade --clone /tmp/old --label 2026-12-06-93f8fc7

It starts a Kafka broker and the local Pinecone server of this tree, runs the clone's job (its own code: the clone is
the job's ``PYTHONPATH`` and working directory) unbounded on ``BEFORE``, waits until the index holds what ``BEFORE``
leaves and the group's committed offsets cover it (a checkpoint completed after it), stops the job with a savepoint
(``POST /jobs/<id>/stop``, no drain, canonical format) and writes the fixture.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kafka_pinecone_flink.stack.flink import job_process_environment
from kafka_pinecone_flink.stack.paths import ROOT, free_port

FIXTURES = ROOT / "tests" / "fixtures" / "savepoints"
DIMENSION = 4
VERSION_FIELD = "version"
OPTIONS = (f"--dedup.version-field={VERSION_FIELD}", "--errors.tolerance=all", "--flink.checkpoint-interval-ms=1000")
"""Options of both runs, the old version's and this one's, besides the addresses, topic, group and index."""
BAD_VALUE = b'{"values": [1, 0'
Record = tuple[bytes | None, bytes | None]


def _value(values: list[float], version: int, title: str, **extra: Any) -> bytes:
    return json.dumps({"values": values, VERSION_FIELD: version, "title": title, **extra}).encode()


BEFORE: tuple[Record, ...] = (
    (b"unchanged", _value([1, 0, 0, 0], 1, "unchanged")),
    (b"fenced", _value([0, 1, 0, 0], 5, "fenced v5")),
    (b"deleted", _value([0, 0, 1, 0], 3, "deleted v3")),
    (b"deleted", json.dumps({"__deleted": "true", VERSION_FIELD: 7}).encode()),
    (b"edited", _value([0, 0, 0, 1], 1, "edited v1")),
    (b"before-only", _value([1, 1, 0, 0], 1, "before only")),
    (b"bad-before", BAD_VALUE),
)
"""What the earlier version read before its savepoint: it leaves ``unchanged``, ``fenced``, ``edited`` and
``before-only`` in the index, a tombstone of version 7 for ``deleted`` in its dedup state, and one dead letter."""

AFTER: tuple[Record, ...] = (
    (b"unchanged", _value([1, 0, 0, 0], 1, "unchanged")),  # the same content: skipped_unchanged
    (b"fenced", _value([0, 1, 1, 0], 4, "fenced v4")),  # older than the restored version 5: skipped_stale
    (b"deleted", _value([1, 0, 1, 0], 6, "deleted v6")),  # older than the restored tombstone: skipped_stale
    (b"edited", _value([0, 1, 0, 1], 2, "edited v2")),  # a new version: written
    (b"new", _value([1, 1, 1, 0], 1, "new")),  # an id the old version never saw: written
    (b"bad-after", BAD_VALUE),  # a dead letter, the only one in this run's dead-letter topic
    (b"last", _value([1, 1, 1, 1], 1, "last")),
)
"""What this version reads after restoring: if it took over the offsets and the dedup state, it writes only
``EXPECTED_AFTER`` into an empty index."""

EXPECTED_AFTER = {
    b"edited": ([0, 1, 0, 1], "edited v2"),
    b"new": ([1, 1, 1, 0], "new"),
    b"last": ([1, 1, 1, 1], "last"),
}
"""Key → (values, title) of what the restored job writes into an empty index."""
EXPECTED_SKIPS = {"skipped_unchanged": 1, "skipped_stale": 2}
VECTOR_HASH = "sha256-128"
"""The content hash of a record with a dense vector since 2026-12-06 (e8879ad; BLAKE2b-128 before, ``"blake2b-128"``).
A savepoint of a version with the other hash holds it in its dedup state, so the first record of an id after the
upgrade is written even if nothing changed (README): the ``unchanged`` record of ``AFTER`` is written once."""


def job_command(
    clone: Path, bootstrap: str, topic: str, group: str, index: str, pinecone_url: str, dlq: str, rest_port: int
) -> list[str]:
    """The unbounded ingest job of ``clone`` on ``topic`` with ``OPTIONS``."""
    # Versions before 2026-12-03 noon had no kafka_pinecone_flink package: the job was jobs.ingest_job.
    package = "kafka_pinecone_flink." if (clone / "kafka_pinecone_flink").is_dir() else ""
    return [
        str(clone / ".venv" / "bin" / "python"),
        "-m",
        f"{package}jobs.ingest_job",
        f"--kafka.bootstrap-servers={bootstrap}",
        f"--kafka.topics={topic}",
        f"--kafka.group-id={group}",
        "--kafka.starting-position=earliest",
        f"--pinecone.index={index}",
        f"--pinecone.controller-host={pinecone_url}",
        f"--errors.dead-letter-topic={dlq}",
        f"--flink.rest-port={rest_port}",
        *OPTIONS,
    ]


def _wait_for(what: str, check: Any, timeout_s: float, job: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    last_error = None
    while time.monotonic() < deadline:
        if job.poll() is not None:
            raise RuntimeError(f"the job exited ({job.returncode}) before {what}:\n{log.read_text()[-4000:]}")
        try:  # the index or the broker may not answer yet
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - kept for the message below
            last_error = exc
        time.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what} (last error: {last_error!r}):\n{log.read_text()[-4000:]}")


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[str, int]:
    """Partition → offset that consumer group ``group`` committed for one-partition ``topic`` (-1: none), as the
    manifest keeps them."""
    from kafka_pinecone_flink.jobs.bounded import committed_offsets as group_offsets
    from kafka_pinecone_flink.jobs.kafka_io import KafkaSourceOptions

    options = KafkaSourceOptions(bootstrap_servers=bootstrap, topics=(topic,), group_id=group)
    found = group_offsets(options, [(topic, 0)])
    return {str(partition): offset for (_, partition), offset in found.items()}


def commit_offsets(bootstrap: str, group: str, topic: str, offsets: dict[str, int]) -> None:
    """Commit ``offsets`` (partition → offset) of ``topic`` for consumer group ``group``."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(
            offsets=[TopicPartition(topic, int(p), offset) for p, offset in offsets.items()], asynchronous=False
        )
    finally:
        consumer.close()


def generate(clone: Path, label: str, workdir: Path, allow_non_restored_state: bool, vector_hash: str) -> Path:
    """Run the job of ``clone`` on ``BEFORE``, stop it with a savepoint and write fixture ``label``; its folder.
    ``allow_non_restored_state``: the version gave its Kafka source and dead-letter sink no uid (before 2026-12-07),
    so their state cannot be restored into this version's operators. ``vector_hash``: the version's content hash of
    a record with a dense vector (``VECTOR_HASH``)."""
    from kafka_pinecone_flink.pinecone_local.launcher import start_pinecone_local
    from kafka_pinecone_flink.stack.cluster import RestClient
    from kafka_pinecone_flink.stack.kafka import KafkaBroker
    from kafka_pinecone_flink.stack.kafka_client import produce
    from kafka_pinecone_flink.udfs.ids import uuid_for

    commit = subprocess.run(
        ["git", "-C", str(clone), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    made = subprocess.run(
        ["git", "-C", str(clone), "log", "-1", "--format=%cI"], check=True, capture_output=True, text=True
    ).stdout.strip()
    topic, group, dlq = f"upgrade-{label}", f"upgrade-{label}", f"upgrade-{label}-dlq"
    broker = KafkaBroker(workdir / "kafka", port=free_port(), controller_port=free_port())
    broker.start()
    server = start_pinecone_local(log_path=workdir / "pinecone.log")
    job = None
    try:
        broker.create_topics([topic, dlq])
        produce(broker.bootstrap_servers, topic, BEFORE)
        client = server.client()
        client.create_index(
            name="upgrade",
            dimension=DIMENSION,
            metric="cosine",
            spec={"serverless": {"cloud": "aws", "region": "local"}},
        )
        index = client.index(name="upgrade")
        rest_port = free_port()
        command = job_command(clone, broker.bootstrap_servers, topic, group, "upgrade", server.url, dlq, rest_port)
        command.append(f"--flink.run-dir={workdir / 'run'}")
        env = job_process_environment({"PINECONE_API_KEY": "local-test-key"})
        env["PYTHONPATH"] = str(clone)
        log = workdir / "job.log"
        with open(log, "ab") as out:
            job = subprocess.Popen(
                command, cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        expected = {uuid_for(key) for key in (b"unchanged", b"fenced", b"edited", b"before-only")}

        def written() -> bool:
            found = index.fetch(ids=sorted(expected), namespace=topic).vectors
            return set(found) == expected

        _wait_for("the index holds BEFORE's writes", written, 300, job, log)
        # The source commits its offsets to the group when a checkpoint completes: once they cover BEFORE, a
        # checkpoint has completed after every record of it, as the offsets in the savepoint will.
        _wait_for(
            "the group's committed offsets to cover BEFORE",
            lambda: committed_offsets(broker.bootstrap_servers, group, topic) == {"0": len(BEFORE)},
            120,
            job,
            log,
        )
        rest = RestClient(f"http://127.0.0.1:{rest_port}")
        job_id = next(j["jid"] for j in rest.jobs() if j["state"] == "RUNNING")
        # A mini-cluster shuts down with its only job, before the savepoint's status can be polled: the job's exit
        # and the savepoint's _metadata tell instead.
        rest._post(f"/jobs/{job_id}/stop", {"drain": False, "targetDirectory": str(workdir / "savepoints")})
        job.wait(timeout=120)
        written_savepoints = [p.parent for p in (workdir / "savepoints").glob("savepoint-*/_metadata")]
        if job.returncode != 0 or len(written_savepoints) != 1:
            raise RuntimeError(f"the stop with a savepoint failed ({job.returncode}):\n{log.read_text()[-4000:]}")
        committed = committed_offsets(broker.bootstrap_servers, group, topic)
        target = FIXTURES / label
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(written_savepoints[0], target / "savepoint")
        manifest = {
            "label": label,
            "commit": commit,
            "commit_date": made,
            "topic": topic,
            "group_id": group,
            "records_before": len(BEFORE),
            "options": list(OPTIONS),
            "committed_offsets": committed,
            "allow_non_restored_state": allow_non_restored_state,
            "vector_hash": vector_hash,
        }
        (target / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        return target
    finally:
        if job is not None and job.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job.pid, signal.SIGKILL)
        server.stop()
        broker.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clone", type=Path, required=True, help="a set-up clone of the earlier version")
    parser.add_argument("--label", required=True, help="the fixture's folder name: <date>-<commit>")
    parser.add_argument(
        "--allow-non-restored-state",
        action="store_true",
        help="the version's Kafka source and dead-letter sink have no fixed uid (before 2026-12-07)",
    )
    parser.add_argument(
        "--vector-hash",
        choices=(VECTOR_HASH, "blake2b-128"),
        default=VECTOR_HASH,
        help="the version's content hash of a record with a dense vector (blake2b-128 before 2026-12-06)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kpf-savepoint-") as workdir:
        target = generate(
            args.clone.resolve(), args.label, Path(workdir), args.allow_non_restored_state, args.vector_hash
        )
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
