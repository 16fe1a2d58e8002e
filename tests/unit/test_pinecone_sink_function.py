"""PineconeSinkFunction on a group: writes through its PineconeWriter and returns one batch_result row (no records,
the group's dead letters as raw Kafka rows, counts per outcome)."""

from __future__ import annotations

import asyncio
import pickle
from typing import Any

import pytest

from kafka_pinecone_flink.sinks.dead_letter import H_ERROR_CLASS, H_OFFSET, H_STAGE
from kafka_pinecone_flink.sinks.pinecone_sink import PineconeSinkFunction
from kafka_pinecone_flink.sinks.writer import PineconeWriter
from kafka_pinecone_flink.udfs.records import DELETE, Change, DeadLetter, _applied_change
from tests.unit.test_sink_writer import KEY, FakeIndex, Sleeps, Stored, change, config

pytestmark = pytest.mark.unit


KAFKA_PASSWORD = "hunter2-kafka-pw"


def sink_over(fake: FakeIndex, **overrides: Any) -> PineconeSinkFunction:
    sink_config = config(linger_ms=10_000, **overrides)
    function = PineconeSinkFunction(sink_config, secrets=(KEY, KAFKA_PASSWORD))
    function._writer = PineconeWriter(fake, sink_config, sleep=Sleeps())
    return function


def invoke(function: PineconeSinkFunction, group: list[Any]) -> tuple[list[Any], list[Any], dict[str, int]]:
    (result,) = asyncio.run(asyncio.wait_for(function.async_invoke(group), timeout=10))
    return list(result[0]), list(result[1]), dict(result[2])


def dedup_output(record_id: str, op: str = "upsert", *, offset: int = 0, replaces: bool = False) -> Change:
    """A change as the sink gets it after dedup (``udfs.dedup.applied_groups``): with whether it replaces a live
    version."""
    return _applied_change(pickle.dumps(change(record_id, op, offset=offset)), replaces, 0)  # type: ignore[arg-type]


def test_a_group_of_changes_after_dedup_is_written_and_counted_per_outcome() -> None:
    fake = FakeIndex()
    fake.store["ns"] = {"old": Stored("old", [1.0]), "gone": Stored("gone", [1.0])}
    group = [
        dedup_output("new", offset=1),
        dedup_output("old", offset=2, replaces=True),
        dedup_output("gone", DELETE, offset=3),
        dedup_output("twice", offset=4),
        dedup_output("twice", offset=5),
    ]
    records, dead_letters, counts = invoke(sink_over(fake), group)
    assert records == [] and dead_letters == []
    assert counts == {"upserted": 2, "updated": 1, "deleted": 1, "superseded": 1}
    assert fake.ids() == {"new", "old", "twice"}


def test_a_record_pinecone_rejects_is_a_sink_dead_letter_row() -> None:
    fake = FakeIndex()
    bad = f"bad-{KAFKA_PASSWORD}"  # Pinecone's message names the id: it must be scrubbed of every secret
    fake.bad_ids = {bad}
    group = [dedup_output("good", offset=1), dedup_output(bad, offset=2)]
    records, (letter,), counts = invoke(sink_over(fake, max_concurrency=1), group)
    assert records == [] and counts == {"upserted": 1, "dead_lettered": 1}
    assert letter[0] == bad.encode() and letter[1] == b"{}"  # the source record's key and value, as they were
    headers = letter[2]
    assert headers[H_STAGE] == b"sink" and headers[H_ERROR_CLASS] == b"PineconeRejectedError"
    assert headers[H_OFFSET] == b"2"
    assert b"Invalid vector" in headers["kpf.error.message"]
    assert KAFKA_PASSWORD.encode() not in headers["kpf.error.message"]


def test_embed_dead_letters_pass_through_as_rows_and_are_counted_apart() -> None:
    fake = FakeIndex()
    embed_failed = DeadLetter(change("x", offset=7).source, "EmbeddingError", f"no vector (key {KEY})", "embed")
    group = [change("a", offset=6), embed_failed, change("b", offset=8)]  # what the embed stage returns
    records, (letter,), counts = invoke(sink_over(fake), group)
    assert records == [] and counts == {"upserted": 2, "embed_dead_lettered": 1}
    headers = letter[2]
    assert headers[H_STAGE] == b"embed" and headers[H_ERROR_CLASS] == b"EmbeddingError"
    assert headers[H_OFFSET] == b"7" and KEY.encode() not in headers["kpf.error.message"]
    assert fake.ids() == {"a", "b"}


def test_a_group_of_only_embed_dead_letters_writes_nothing() -> None:
    fake = FakeIndex()
    letters = [DeadLetter(change(f"x{i}", offset=i).source, "EmbeddingError", "no", "embed") for i in range(3)]
    records, dead_letters, counts = invoke(sink_over(fake), letters)
    assert (records, len(dead_letters), counts) == ([], 3, {"embed_dead_lettered": 3})
    assert fake.calls == []


def test_async_invoke_before_open_is_an_error() -> None:
    function = PineconeSinkFunction(config())
    with pytest.raises(RuntimeError, match="called before open"):
        asyncio.run(function.async_invoke([]))


def test_a_documents_chunk_operations_count_the_record_once() -> None:
    from kafka_pinecone_flink.udfs.chunking import expand

    fake = FakeIndex()
    fake.store["ns"] = {f"doc#{n}": Stored(f"doc#{n}", [1.0]) for n in range(4)}
    fake.bad_ids = {"doc#1"}
    document = change("doc", replaces=True)
    document.values, document.text = None, "aa bb"
    document.chunk_spans, document.previous_chunks = ((0, 2), (3, 5)), 4
    gone = change("old", DELETE, offset=1, replaces=True)
    gone.previous_chunks = 2
    group = [*expand(document, [[0.1, 0.2, 0.3]] * 2, None), *expand(gone, None, None)]
    assert [(c.id, c.follows) for c in group] == [
        ("doc#0", False),
        ("doc#1", True),
        ("doc#2", True),
        ("doc#3", True),
        ("old#0", False),
        ("old#1", True),
    ]
    _, dead_letters, counts = invoke(sink_over(fake, max_concurrency=1), group)
    # Two records: one updated, one deleted; the rejected chunk is a dead letter of the document's record.
    assert counts == {"updated": 1, "deleted": 1, "chunk_operations": 3, "chunk_dead_lettered": 1}
    assert len(dead_letters) == 1 and dead_letters[0][0] == b"doc"
    assert fake.ids() == {"doc#0", "doc#1"}  # doc#1 kept its old vector: Pinecone refused the new one
