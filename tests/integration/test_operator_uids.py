"""Every operator of the ingest job that can hold state has a fixed uid, whatever the job's shape.

A savepoint maps its state to operators by id. Flink derives the id of an operator without a uid from its place in
the graph, so an option that adds or removes an operator (the partition-lag operator, the JVM decode path, the embed
stage) or an upgrade that adds one gave such operators new ids, and their state in a savepoint no longer restored: the
Kafka source's offsets and the dead-letter sink's transactions, which the Table API creates without a uid, until
2026-12-07 (``tests/integration/test_savepoint_upgrade.py`` restores savepoints of earlier versions). Each shape below
is built as Flink will run it (``tests/integration/job_graph.py``, without running it).
"""

from __future__ import annotations

import pytest

from kafka_pinecone_flink.jobs.kafka_io import DEAD_LETTER_SINK_UID, SOURCE_UID
from tests.integration.job_graph import operators

pytestmark = pytest.mark.integration

SHAPES = {
    "default": (),
    "Python decode, no partition lag": ("--decode.jvm=false", "--metrics.partition-lag-interval-ms=0"),
    "embedding": ("--embedding.text-fields=title",),
}
PLANNER_INTERNALS = ("Calc[", "TableToDataStream", "*anonymous_datastream_source$")
"""The Table API's own operators between the Kafka tables and the DataStream API: they hold no state."""
STATEFUL = {SOURCE_UID, "dedup", DEAD_LETTER_SINK_UID, f"Sink Committer: {DEAD_LETTER_SINK_UID}"}


@pytest.mark.parametrize("options", SHAPES.values(), ids=SHAPES.keys())
def test_every_operator_but_the_planners_stateless_ones_has_a_fixed_uid(options: tuple[str, ...]) -> None:
    found = operators(options)
    without_uid = [
        op["name"] for op in found if op["uid"] is None and not str(op["name"]).startswith(PLANNER_INTERNALS)
    ]
    assert without_uid == []
    uids = [op["uid"] for op in found if op["uid"] is not None]
    assert set(uids) >= STATEFUL
    assert len(uids) == len(set(uids))


DEDUP_INPUTS = {
    "default (parallelism 1)": ((), ["FORWARD"]),
    "option off": (("--dedup.in-source-task=false",), ["HASH"]),
    "parallelism 2": (("--flink.parallelism=2",), ["HASH"]),
    "adaptive scheduler": (("--flink.conf=jobmanager.scheduler=adaptive",), ["HASH"]),
    "reactive mode": (("--flink.conf=scheduler-mode=reactive",), ["HASH"]),
}


@pytest.mark.parametrize("options, inputs", DEDUP_INPUTS.values(), ids=DEDUP_INPUTS.keys())
def test_the_dedup_is_keyed_in_the_sources_task_only_at_parallelism_1_and_where_nothing_rescales_the_running_job(
    options: tuple[str, ...], inputs: list[str]
) -> None:
    # FORWARD: keyed in place, chained into the source's task; HASH: behind the keyed exchange. Either way the same
    # uid and state, so a savepoint of one shape restores into the other (DedupFunctionTest, test_savepoint_upgrade).
    (dedup,) = [op for op in operators(options) if op["uid"] == "dedup"]
    assert dedup["inputs"] == inputs
