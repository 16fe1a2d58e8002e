"""A bounded job killed mid-backfill and resumed from its last checkpoint ends, and leaves what an undisturbed one does.

Real components only: the session's Kafka broker, the ingest job as its own process (a Flink mini-cluster), the local
Pinecone server read back through the SDK. The crash is ``kill -9`` of the job's whole process group after at least
one checkpoint completed, while the sink is slowed by the server's added latency; the resume is the README's
(``--flink.conf=execution.state-recovery.path=<the latest chk-N>``, the same bounded options). Before
``jobs/bounded.py``, the resumed job applied everything and then never exited (issue 15: the Kafka connector's
enumerator restored from state never tells its readers that no more splits come).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from kafka_pinecone_flink.stack.flink import job_process_environment
from kafka_pinecone_flink.stack.kafka_client import Message, consume, produce
from kafka_pinecone_flink.stack.paths import ROOT, free_port
from tests.integration.ingest_harness import IngestHarness, IngestRun, dead_letter_headers, value

pytestmark = pytest.mark.integration

RESUMED_EXIT_TIMEOUT_S = 150
"""An undisturbed run of this stream takes well under a minute here; a resumed one that hangs never exits."""


def _stream(count: int) -> list[tuple[bytes | None, bytes | None]]:
    """Upserts, updates, tombstones and a bad record now and then; each key three times in a row, so that the index
    grows all along the stream (keys hash to both partitions)."""
    records: list[tuple[bytes | None, bytes | None]] = []
    for i in range(count):
        key = f"id-{i // 3}".encode()
        if i % 11 == 5:
            records.append((key, None))
        elif i % 97 == 13:
            records.append((key, b'{"values": [1, 0'))  # a dead letter
        else:
            records.append((key, value(values=[1.0, (i % 13) / 13, (i % 5) / 5, 0.5], seq=i, group=f"g{i % 3}")))
    return records


def _command(
    ingest: IngestHarness, topic: str, index_name: str, group: str, dlq: str, run_dir: Path, *extra: str
) -> list[str]:
    return [
        sys.executable,
        "-m",
        "kafka_pinecone_flink.jobs.ingest_job",
        f"--kafka.bootstrap-servers={ingest.broker.bootstrap_servers}",
        f"--kafka.topics={topic}",
        f"--kafka.group-id={group}",
        "--kafka.starting-position=earliest",
        "--kafka.bounded=true",
        f"--pinecone.index={index_name}",
        f"--pinecone.controller-host={ingest.pinecone_url}",
        "--errors.tolerance=all",
        f"--errors.dead-letter-topic={dlq}",
        "--sink.batch-size=10",
        "--sink.max-concurrency=1",
        # Small groups: a checkpoint barrier waits behind the groups ahead of it, and with groups of 1,000 the slowed
        # run wrote its whole backfill before its first checkpoint completed, so it could not be killed mid-way.
        "--batch.max-records=20",
        "--flink.checkpoint-interval-ms=1000",
        f"--flink.rest-port={free_port()}",
        f"--flink.run-dir={run_dir}",
        *extra,
    ]


def _start(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        # A session of its own, so that kill -9 takes the JVM and the Python workers with the client, as a crash does.
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=job_process_environment({"PINECONE_API_KEY": "local-test-key"}),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)


def _wait(process: subprocess.Popen[bytes], timeout_s: float, log: Path, what: str) -> None:
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        tail = log.read_text(errors="replace")[-3000:]
        pytest.fail(f"{what} did not exit within {timeout_s:.0f}s (killed); log tail:\n{tail}")
    with contextlib.suppress(ProcessLookupError):  # Python workers a clean client exit may leave behind
        os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, (
        f"{what} exited with {process.returncode}:\n{log.read_text(errors='replace')[-4000:]}"
    )


def _completed_checkpoints(run_dir: Path) -> list[Path]:
    found = [meta.parent for meta in (run_dir / "checkpoints").glob("*/chk-*/_metadata")]
    return sorted(found, key=lambda p: int(p.name[4:]))


def _dead_letter_coordinates(messages: list[Message]) -> list[tuple[str, str, str]]:
    coordinates = []
    for message in messages:
        headers = dead_letter_headers(message)
        coordinates.append((headers["kpf.error.class"], headers["kpf.source.partition"], headers["kpf.source.offset"]))
    return sorted(coordinates)


def test_a_bounded_job_resumed_from_its_last_checkpoint_exits_and_leaves_the_undisturbed_runs_index(
    ingest: IngestHarness, tmp_path: Path
) -> None:
    records = _stream(2400)
    bad = sum(1 for _, v in records if v is not None and v.startswith(b'{"values": [1, 0'))
    topic = ingest.topic("bounded", partitions=2)
    produce(ingest.broker.bootstrap_servers, topic, records)
    admin = ingest.pinecone_admin

    # The undisturbed run: the reference.
    reference_name, reference_index = ingest.create_index(4)
    reference_dlq = ingest.topic("dlq-ref")
    log = tmp_path / "undisturbed.log"
    job = _start(
        _command(ingest, topic, reference_name, f"g-{uuid.uuid4().hex[:8]}", reference_dlq, tmp_path / "a"), log
    )
    _wait(job, 300, log, "the undisturbed bounded run")
    reference = IngestRun(ingest.broker, reference_index, reference_dlq, subprocess.CompletedProcess([], 0))
    expected = reference.snapshot(topic)
    assert 600 < len(expected) < 800
    expected_dead = _dead_letter_coordinates(reference.dead_letters(expected=bad))
    assert len(expected_dead) == bad

    # The same backfill, slowed, killed mid-way after a checkpoint, then resumed from the latest one.
    index_name, sdk_index = ingest.create_index(4)
    dlq = ingest.topic("dlq")
    group = f"g-{uuid.uuid4().hex[:8]}"
    run_dir = tmp_path / "b"
    log = tmp_path / "disturbed.log"
    # Bundles of 4 groups. A barrier passes a Python stage only once the stage has finished its current bundle, and
    # until its bundle is full the operator keeps handing the Python worker whatever its transport buffers take. With
    # bundles of 1,000 groups (Flink's default, this job's before) the sink stage took in this entire backfill of
    # small records before the first barrier on a loaded machine, the first checkpoint covered every record, and the
    # run could not be killed mid-way (CI: 727 of 727 ids written at the kill). With 4, about 160 ids are written when
    # the first checkpoint completes, on a quiet or a loaded machine.
    command = _command(ingest, topic, index_name, group, dlq, run_dir, "--flink.conf=python.fn-execution.bundle.size=4")
    admin("PUT", "/admin/faults", {"latency_ms": 150})
    try:
        job = _start(command, log)
        deadline = time.monotonic() + 240
        count = 0
        while time.monotonic() < deadline and job.poll() is None:
            count = sdk_index.describe_index_stats().total_vector_count
            if _completed_checkpoints(run_dir) and count >= 100:
                break
            time.sleep(0.2)
        assert job.poll() is None, f"the slowed run ended before it could be killed:\n{log.read_text()[-3000:]}"
        assert _completed_checkpoints(run_dir), "no checkpoint completed before the kill"
        _kill_group(job)
        # A killed JVM removes none of its temporary files: the table planner jar the job's client extracted (44 MB)
        # stays where it was written, which is the run's own tmp dir, not the machine's /tmp.
        assert list((run_dir / "flink-tmp").glob("flink-table-planner_*.jar")), "the planner jar is not in the run dir"
    finally:
        admin("POST", "/admin/faults/reset")
    assert count < len(expected), "the run was not killed mid-backfill"
    restore = _completed_checkpoints(run_dir)[-1]

    log = tmp_path / "resumed.log"
    resumed = _start([*command, f"--flink.conf=execution.state-recovery.path={restore.resolve().as_uri()}"], log)
    _wait(resumed, RESUMED_EXIT_TIMEOUT_S, log, "the resumed bounded run")

    disturbed = IngestRun(ingest.broker, sdk_index, dlq, subprocess.CompletedProcess([], 0))
    assert disturbed.snapshot(topic) == expected
    # Exactly once: every dead letter once, none twice (the replay after the kill must not write one again).
    assert _dead_letter_coordinates(disturbed.dead_letters(expected=bad)) == expected_dead
    messages: Any = consume(ingest.broker.bootstrap_servers, dlq, timeout_s=10)
    assert len(messages) == bad
