"""EmbedFunction under AsyncDataStream.ordered_wait in a real PyFlink local mini-cluster, with the real model: groups
of dedup-output rows gathered by the JVM Batcher (``udfs.stage_batch.batched``), as in the job."""

from __future__ import annotations

import pickle
import sys

import pytest
from pyflink.common import Row
from pyflink.common.time import Time
from pyflink.common.typeinfo import Types
from pyflink.datastream import AsyncDataStream, StreamExecutionEnvironment

from kafka_pinecone_flink.stack.paths import kpf_jar
from kafka_pinecone_flink.udfs.dedup import applied_groups
from kafka_pinecone_flink.udfs.embed import EmbedConfig, EmbedFunction
from kafka_pinecone_flink.udfs.records import UPSERT, Change, DeadLetter, SourceRecord
from kafka_pinecone_flink.udfs.stage_batch import batched

pytestmark = pytest.mark.integration


def change(text: str | None, offset: int, values: list[float] | None = None) -> Change:
    return Change(
        op=UPSERT,
        namespace="ns",
        id="same-id" if offset % 2 else f"id{offset}",
        source=SourceRecord("t", 0, offset, None, None, b"{}"),
        text=text,
        values=values,
    )


DEDUP_OUTPUT = Types.ROW_NAMED(
    ["payload", "replaces", "previous_chunks"], [Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.BOOLEAN(), Types.LONG()]
)
"""The type of the JVM dedup operator's output rows (``DedupFunction.outputType``)."""
GROUP_RECORDS = 8


def test_embed_function_under_ordered_wait_keeps_order_and_dead_letters_a_bad_text() -> None:
    texts = [f"product number {i % 7} with a soft cotton cover" for i in range(40)]
    inputs = [change(t, i) for i, t in enumerate(texts)]
    inputs[5] = change("lone surrogate \ud800", 5)
    inputs[6] = change(None, 6, values=[0.25] * 384)
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    env.set_python_executable(sys.executable)
    env.add_jars(kpf_jar().resolve().as_uri())
    # from_collection cannot carry arbitrary Python objects to Java: send indexes, map them to the rows the JVM dedup
    # operator emits (the pickled change, replaces, previous chunks), and let the JVM Batcher gather them into groups.
    rows = env.from_collection(list(range(len(inputs))), type_info=Types.INT()).map(
        lambda i: Row(pickle.dumps(inputs[i]), i % 2 == 1, 0), output_type=DEDUP_OUTPUT
    )
    # With markers, as in the job: the embed stage hands on the groups it is still embedding on the marker at the end
    # of input (without them, the last groups' results were never handed on).
    groups = applied_groups(batched(rows, GROUP_RECORDS, 1 << 20, 10_000, "Batch for embed", marker_idle_ms=10))
    embedded = AsyncDataStream.ordered_wait(
        groups,
        EmbedFunction(EmbedConfig(batch_size=16, linger_ms=10)),
        Time.milliseconds(0),  # no per-record timer (see ARCHITECTURE.md)
        capacity=4,
        output_type=Types.PICKLED_BYTE_ARRAY(),
    )
    with embedded.execute_and_collect() as results:
        out_groups = list(results)
    assert all(len(group) <= GROUP_RECORDS for group in out_groups) and len(out_groups) >= len(inputs) // GROUP_RECORDS
    assert [] not in out_groups  # markers are not handed on
    out = [o for group in out_groups for o in group]
    assert [o.source.offset for o in out] == list(range(len(inputs)))
    assert isinstance(out[5], DeadLetter) and out[5].stage == "embed"
    assert isinstance(out[6], Change) and out[6].values == [0.25] * 384
    changes = [o for o in out if isinstance(o, Change)]
    assert len(changes) == len(inputs) - 1
    assert all(c.values is not None and len(c.values) == 384 for c in changes)
    # Same text, same vector: 0 and 7 share "product number 0".
    assert out[0].values == out[7].values
    # The replaces flag of each dedup row reaches the change.
    assert [c.replaces for c in changes] == [o % 2 == 1 for o in range(len(inputs)) if o != 5]
