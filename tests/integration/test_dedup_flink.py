"""The JVM dedup operator in a real PyFlink local mini-cluster: Python rows in, keyed JVM state, Python rows out."""

from __future__ import annotations

import sys
from hashlib import blake2b

import pytest
from pyflink.common.typeinfo import Types
from pyflink.datastream import StreamExecutionEnvironment

from kafka_pinecone_flink.stack.paths import kpf_jar
from kafka_pinecone_flink.udfs.dedup import applied_change, dedup_row, input_type, keyed_dedup
from kafka_pinecone_flink.udfs.records import DELETE, UPSERT, Change, Op, SourceRecord

pytestmark = pytest.mark.integration


def _hash(text: str) -> bytes:
    return blake2b(text.encode(), digest_size=16).digest()


def change(op: Op, record_id: str, version: int, content: str, offset: int) -> Change:
    return Change(
        op=op,
        namespace="ns",
        id=record_id,
        source=SourceRecord("t", 0, offset, None, None, b"{}"),
        text=None if op == DELETE else content,
        version=version,
        content_hash=_hash(f"{op}:{content}"),
        text_hash=None if op == DELETE else _hash(content),
    )


def test_dedup_function_in_a_mini_cluster_drops_unchanged_and_stale_changes_per_key() -> None:
    inputs = [
        change(UPSERT, "a", 1, "x", 0),
        change(UPSERT, "b", 1, "y", 1),
        change(UPSERT, "a", 1, "x", 2),  # unchanged
        change(UPSERT, "a", 3, "x2", 3),  # update
        change(UPSERT, "a", 2, "old", 4),  # stale
        change(DELETE, "b", 2, "", 5),  # delete leaves a tombstone
        change(UPSERT, "b", 1, "y", 6),  # late older update: blocked by the tombstone
        change(DELETE, "b", 2, "", 7),  # repeated delete
        change(UPSERT, "b", 4, "y", 8),  # re-insert
    ]
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(2)
    env.set_python_executable(sys.executable)
    env.add_jars(kpf_jar().resolve().as_uri())
    # from_collection cannot carry arbitrary Python objects to Java: send indexes, map them to dedup rows in Python.
    # The map runs with parallelism 1 so that each key's changes stay in order through the keying.
    rows = (
        env.from_collection(list(range(len(inputs))), type_info=Types.INT())
        .map(lambda i: dedup_row(inputs[i]), output_type=input_type())
        .set_parallelism(1)
    )
    stream = keyed_dedup(rows, state_ttl_ms=86_400_000).map(applied_change, output_type=Types.PICKLED_BYTE_ARRAY())
    with stream.execute_and_collect() as results:
        emitted = list(results)
    by_offset = {c.source.offset: c for c in emitted}
    assert sorted(by_offset) == [0, 1, 3, 5, 8]
    assert [by_offset[o].replaces for o in (0, 1, 3, 5, 8)] == [False, False, True, True, False]
