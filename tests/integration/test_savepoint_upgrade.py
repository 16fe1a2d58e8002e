"""An upgrade: this version of the job, started from a savepoint an earlier version took, carries on where it stopped.

Each fixture in ``tests/fixtures/savepoints/`` is a canonical savepoint of an earlier version's job that had read
``savepoint_upgrade.BEFORE`` (how they are made: ``tests/integration/savepoint_upgrade.py``). This test gives the same
topic ``BEFORE`` and ``AFTER`` on the session's real broker, runs this version's job in a mini-cluster restored from
the savepoint (``execution.state-recovery.path``, the same consumer group and options) and reads the index through the
real SDK. If the job took over the old one's Kafka offsets and dedup state, it writes only ``AFTER``'s edited, new and
last ids into the empty index: no ``BEFORE`` record is read again, an unchanged record and two older versions (one
behind a restored tombstone) are skipped, and the dead-letter topic gets the one bad record of ``AFTER``. A job that
started afresh would write ten ids and two dead letters; one that kept the offsets but lost the dedup state would write
the unchanged and both older versions.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from kafka_pinecone_flink.jobs.checkpoints import find_checkpoints
from kafka_pinecone_flink.stack.kafka_client import consume
from kafka_pinecone_flink.udfs.ids import uuid_for
from tests.integration.ingest_harness import IngestHarness, RunningJob, dead_letter_headers
from tests.integration.savepoint_upgrade import (
    AFTER,
    BEFORE,
    EXPECTED_AFTER,
    EXPECTED_SKIPS,
    FIXTURES,
    VECTOR_HASH,
    commit_offsets,
)

pytestmark = pytest.mark.integration

WAIT_S = 240


def _completed_checkpoints(job: RunningJob) -> set[Path]:
    assert job.run_dir is not None
    return {found.path for found in find_checkpoints(job.run_dir / "checkpoints") if found.complete}


RESHAPED = ("--metrics.partition-lag-interval-ms=0", "--flink.parallelism=2")
"""Options that change the job's shape: no partition-lag operator after the source, whose id Flink derived from the
operators chained after it before the source had a uid; and parallelism 2, a rescale, which also puts the dedup behind
the keyed exchange (``dedup.in-source-task`` keys it in place at parallelism 1 since e378f80, whose fixture was taken in
that shape)."""


def _fresh(bootstrap: str, topic: str, group: str) -> None:
    """No ``topic`` and no consumer group ``group`` on the broker: the fixture's topic name is fixed (the source's
    state in the savepoint names it), and another case of this test may have used both in this session."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_consumer_groups([group], request_timeout=30).values():
        with contextlib.suppress(KafkaException):  # no such group
            future.result(timeout=60)
    for future in admin.delete_topics([topic], operation_timeout=30).values():
        with contextlib.suppress(KafkaException):  # no such topic
            future.result(timeout=60)
    deadline = time.monotonic() + 60
    while topic in admin.list_topics(timeout=30).topics:
        assert time.monotonic() < deadline, f"topic {topic} still there 60 s after its deletion"
        time.sleep(0.2)


def _cases() -> list[Any]:
    cases = []
    for fixture in sorted(p for p in FIXTURES.iterdir() if p.is_dir()):
        cases.append(pytest.param(fixture, (), id=fixture.name))
        if not json.loads((fixture / "manifest.json").read_text())["allow_non_restored_state"]:
            cases.append(pytest.param(fixture, RESHAPED, id=f"{fixture.name}-reshaped"))
    return cases


@pytest.mark.parametrize(("fixture", "shape"), _cases())
def test_a_savepoint_of_an_earlier_version_restores_its_offsets_and_dedup_state(
    ingest: IngestHarness, tmp_path: Path, fixture: Path, shape: tuple[str, ...]
) -> None:
    manifest = json.loads((fixture / "manifest.json").read_text())
    savepoint = tmp_path / "savepoint"
    shutil.copytree(fixture / "savepoint", savepoint)
    topic = manifest["topic"]
    expected = dict(EXPECTED_AFTER)
    skips = dict(EXPECTED_SKIPS)
    if manifest["vector_hash"] != VECTOR_HASH:
        # The restored state holds the old hash of "unchanged": it is written once more (README).
        expected[b"unchanged"] = ([1, 0, 0, 0], "unchanged")
        skips["skipped_unchanged"] = 0
    expected_ids = {uuid_for(key) for key in expected}
    seen: dict[str, Any] = {}

    def until_applied(job: RunningJob) -> None:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            written = set(job.index.fetch(ids=sorted(expected_ids), namespace=topic).vectors)
            if written == expected_ids:
                break
            time.sleep(0.5)
        # Every AFTER record has passed the dedup once "last" is written; the REST API's metrics lag by up to the
        # JobManager's fetch interval.
        while time.monotonic() < deadline:
            seen["dedup"] = job.operator_metrics(["Dedup"], list(skips))
            if {name: int(seen["dedup"][name]) for name in skips} == skips:
                break
            time.sleep(1)
        # The dead letter of AFTER is committed with the checkpoint that covers it.
        assert job.dead_letter_topic is not None
        consume(ingest.broker.bootstrap_servers, job.dead_letter_topic, expected=1, timeout_s=60)
        # Whatever was still on its way to the sink is written before the next checkpoint completes.
        before = _completed_checkpoints(job)
        while time.monotonic() < deadline and not _completed_checkpoints(job) - before:
            time.sleep(0.5)

    _fresh(ingest.broker.bootstrap_servers, topic, manifest["group_id"])
    restore = [f"--flink.conf=execution.state-recovery.path={savepoint.resolve().as_uri()}"]
    if manifest["allow_non_restored_state"]:
        # Versions before 2026-12-07 gave the Kafka source and the dead-letter sink no uid: their state cannot be
        # mapped, and the source starts from the offsets the group committed (README: "Upgrading"), here as the old
        # version left them. Without this, Flink refuses the savepoint.
        restore.append("--flink.conf=execution.state-recovery.ignore-unclaimed-state=true")
        ingest.broker.create_topics([topic])
        commit_offsets(ingest.broker.bootstrap_servers, manifest["group_id"], topic, manifest["committed_offsets"])
    # Otherwise the group has no offsets here: a source that did not restore its own would start from the earliest.
    run = ingest.run(
        {topic: [*BEFORE, *AFTER]},
        f"--kafka.group-id={manifest['group_id']}",
        "--kafka.starting-position=committed",
        *manifest["options"],
        *shape,
        *restore,
        exact_topic_names=True,
        unbounded=True,
        during=until_applied,
        expect_success=False,
    )

    index = run.snapshot(topic)
    assert set(index) == expected_ids, (
        f"ids written after the restore: {sorted(index)}; expected those of {sorted(expected)}\n{run.output[-3000:]}"
    )
    for key, (values, title) in expected.items():
        written_values, metadata = index[uuid_for(key)]
        assert (list(written_values), metadata["title"]) == ([float(v) for v in values], title)
    dedup = {name: int(seen["dedup"][name]) for name in skips}
    assert dedup == skips, seen["dedup"]

    # Exactly once across the upgrade: the old version's dead letter is not written again, AFTER's is written once.
    letters = consume(ingest.broker.bootstrap_servers, run.dead_letter_topic, timeout_s=10)
    coordinates = []
    for message in letters:
        headers = dead_letter_headers(message)
        coordinates.append((message.key, headers["kpf.source.offset"], headers["kpf.error.stage"]))
    bad_offset = len(BEFORE) + [key for key, _ in AFTER].index(b"bad-after")
    assert coordinates == [(b"bad-after", str(bad_offset), "decode")]
