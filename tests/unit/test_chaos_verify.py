"""The chaos verdict catches every kind of discrepancy between an index snapshot (faked here) and the expected
state, and reads the index and dead letters the way the SDK and the dead-letter format present them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from chaos.verify import (
    NOT_A_DEAD_LETTER,
    FoundDeadLetter,
    FoundVector,
    Report,
    as_float32,
    compare,
    decode_dead_letter,
    read_index,
)
from chaos.workload import Expectation, ExpectedDeadLetter, ExpectedVector, value_digest
from kafka_pinecone_flink.sinks.dead_letter import to_kafka
from kafka_pinecone_flink.stack.kafka_client import Message
from kafka_pinecone_flink.udfs.records import DeadLetter, SourceRecord

pytestmark = pytest.mark.unit

VALUES = (0.1, -0.2, 0.3, 0.123456789, 0.5, -0.6, 0.7, 0.8)
POISON_VALUE = b'{"id": "x", "val'


def _metadata(record_id: str, version: int, price: float = 1.5) -> dict[str, Any]:
    return {"id": record_id, "version": float(version), "price": price, "tags": ["a", "b"]}


EXPECTED = Expectation(
    alive={
        "ns-a": {"x": ExpectedVector(VALUES, _metadata("x", 7), 7), "y": ExpectedVector(VALUES, _metadata("y", 3), 3)},
        "ns-b": {"z": ExpectedVector(VALUES, _metadata("z", 4), 4)},
    },
    deleted={"ns-a": frozenset({"gone"})},
    dead_letters=Counter({ExpectedDeadLetter(b"poison-000000", "InvalidJsonError", value_digest(POISON_VALUE)): 1}),
)


def _stored(values: tuple[float, ...] = VALUES) -> tuple[float, ...]:
    return tuple(as_float32(v) for v in values)


def _snapshot() -> dict[str, dict[str, FoundVector]]:
    return {
        namespace: {i: FoundVector(_stored(v.values), dict(v.metadata)) for i, v in held.items()}
        for namespace, held in EXPECTED.alive.items()
    }


def _letter(key: bytes = b"poison-000000", error: str = "InvalidJsonError", offset: int = 9) -> FoundDeadLetter:
    return FoundDeadLetter(key, POISON_VALUE, error, "chaos-a", 0, offset)


def _compare(snapshot: dict[str, dict[str, FoundVector]], letters: list[FoundDeadLetter] | None = None) -> Report:
    return compare(EXPECTED, snapshot, [_letter()] if letters is None else letters, events=20)


def test_a_snapshot_holding_exactly_the_expected_state_in_float32_is_ok() -> None:
    report = _compare(_snapshot())
    assert report.ok
    assert (report.expected_alive, report.expected_deleted, report.found_vectors) == (3, 1, 3)
    assert report.dead_letters_exact and report.dead_letter_redeliveries == 0


def test_a_missing_id_is_reported_and_fails_the_verdict() -> None:
    snapshot = _snapshot()
    del snapshot["ns-b"]
    report = _compare(snapshot)
    assert report.missing == ["ns-b/z"]
    assert not report.ok


def test_an_older_version_is_reported_as_stale() -> None:
    snapshot = _snapshot()
    snapshot["ns-a"]["x"] = FoundVector(_stored(), _metadata("x", 5))
    report = _compare(snapshot)
    assert report.stale == ["ns-a/x (version 5.0 instead of 7; metadata differs)"]
    assert not report.ok


def test_a_vector_beyond_float32_rounding_is_stale_and_one_within_it_is_not() -> None:
    snapshot = _snapshot()
    close = list(_stored())
    close[3] += 2e-7  # float32 rounding of the server's decimal answer
    snapshot["ns-a"]["x"] = FoundVector(tuple(close), _metadata("x", 7))
    assert _compare(snapshot).ok
    far = list(_stored())
    far[3] += 1e-4
    snapshot["ns-a"]["x"] = FoundVector(tuple(far), _metadata("x", 7))
    assert _compare(snapshot).stale == ["ns-a/x (vector differs)"]
    snapshot["ns-a"]["x"] = FoundVector(_stored()[:7], _metadata("x", 7))
    assert _compare(snapshot).stale == ["ns-a/x (vector differs)"]


def test_a_lost_metadata_update_is_stale_because_metadata_is_compared_exactly() -> None:
    snapshot = _snapshot()
    snapshot["ns-a"]["y"] = FoundVector(_stored(), _metadata("y", 3, price=1.25))
    assert _compare(snapshot).stale == ["ns-a/y (metadata differs)"]


def test_a_deleted_id_that_is_back_is_reported_as_resurrected() -> None:
    snapshot = _snapshot()
    snapshot["ns-a"]["gone"] = FoundVector(_stored(), _metadata("gone", 1))
    report = _compare(snapshot)
    assert report.resurrected == ["ns-a/gone"]
    assert (report.unexpected, report.duplicates) == ([], [])
    assert not report.ok


def test_an_id_the_workload_never_produced_is_unexpected() -> None:
    snapshot = _snapshot()
    snapshot["ns-c"] = {"stranger": FoundVector(_stored(), {})}
    report = _compare(snapshot)
    assert report.unexpected == ["ns-c/stranger"]
    assert not report.ok


def test_an_id_in_a_namespace_other_than_its_own_is_a_duplicate_vector() -> None:
    snapshot = _snapshot()
    snapshot["ns-b"]["x"] = FoundVector(_stored(), _metadata("x", 7))
    report = _compare(snapshot)
    assert report.duplicates == ["ns-b/x (belongs to 'ns-a')"]
    assert report.missing == [] and not report.ok


def test_a_lost_dead_letter_breaks_the_exact_match() -> None:
    report = _compare(_snapshot(), letters=[])
    assert report.dead_letters_missing == ["poison-000000:InvalidJsonError"]
    assert not report.dead_letters_exact and not report.ok


def test_a_dead_letter_written_twice_breaks_the_exact_match_and_counts_as_re_sent() -> None:
    report = _compare(_snapshot(), letters=[_letter(), _letter()])
    assert report.dead_letters_extra == ["poison-000000:InvalidJsonError"]
    assert report.dead_letter_redeliveries == 1
    assert not report.ok


def test_a_dead_letter_with_another_error_class_is_both_missing_and_extra() -> None:
    report = _compare(_snapshot(), letters=[_letter(error="DimensionMismatchError")])
    assert report.dead_letters_missing == ["poison-000000:InvalidJsonError"]
    assert report.dead_letters_extra == ["poison-000000:DimensionMismatchError"]
    assert report.dead_letter_redeliveries == 0


def test_a_dead_letter_whose_value_bytes_changed_does_not_match() -> None:
    changed = FoundDeadLetter(b"poison-000000", POISON_VALUE + b" ", "InvalidJsonError", "chaos-a", 0, 9)
    assert not _compare(_snapshot(), letters=[changed]).dead_letters_exact


def test_the_harness_figures_do_not_change_the_verdict_and_render_shows_every_figure() -> None:
    report = _compare(_snapshot())
    report.faults_injected = ["burst5xx", "job-kill"]
    report.restarts = 2
    report.recovery_times_s = [3.0, 10.0, 5.0]
    report.wall_time_s = 61.0
    assert report.ok
    assert (report.recovery_median_s, report.recovery_worst_s) == (5.0, 10.0)
    text = report.render()
    for fragment in ("missing ids", "stale ids", "resurrected deletes", "unexpected ids", "duplicate vectors"):
        assert fragment in text
    assert "2: burst5xx, job-kill" in text and "5.0s / 10.0s" in text and "verdict" in text and "OK" in text
    assert report.to_dict()["ok"] is True


def test_render_lists_examples_of_each_discrepancy() -> None:
    snapshot = _snapshot()
    del snapshot["ns-b"]
    text = _compare(snapshot, letters=[]).render()
    assert "missing: ns-b/z" in text and "dead letters missing: poison-000000:InvalidJsonError" in text
    assert "FAILED" in text and "NOT exact" in text


_Page = list[str]


class _FakeIndex:
    """The SDK's Index as read_index uses it: stats, list (pages of ids) and fetch."""

    def __init__(self, data: dict[str, dict[str, FoundVector]]) -> None:
        self.data = data
        self.fetches = 0

    def describe_index_stats(self) -> Any:
        return SimpleNamespace(namespaces={name: {} for name in self.data})

    def list(self, namespace: str) -> Iterator[_Page]:
        ids = sorted(self.data.get(namespace, {}))
        yield from (ids[i : i + 2] for i in range(0, len(ids), 2))

    def fetch(self, ids: _Page, namespace: str) -> Any:
        self.fetches += 1
        held = self.data[namespace]
        vectors = {i: SimpleNamespace(values=list(held[i].values), metadata=held[i].metadata) for i in ids}
        return SimpleNamespace(vectors=vectors)


def test_read_index_reads_the_expected_namespaces_and_every_other_the_index_reports() -> None:
    data = _snapshot()
    data["stray"] = {"s": FoundVector((1.0,) * 8, {})}
    index = _FakeIndex(data)
    snapshot = read_index(index, ["ns-a", "ns-b", "empty"])
    assert snapshot == data
    assert compare(EXPECTED, snapshot, [_letter()], events=1).unexpected == ["stray/s"]


def test_a_dead_letter_topic_record_is_decoded_by_its_headers_and_a_foreign_record_is_kept_as_such() -> None:
    source = SourceRecord("chaos-a", 2, 41, 1000, b"poison-000001", POISON_VALUE)
    key, value, headers = to_kafka(DeadLetter(source, "InvalidJsonError", "not valid JSON", "decode"))
    letter = decode_dead_letter(Message("dlq", 0, 5, key, value, tuple(headers), 0))
    assert letter == FoundDeadLetter(b"poison-000001", POISON_VALUE, "InvalidJsonError", "chaos-a", 2, 41)
    foreign = decode_dead_letter(Message("dlq", 0, 6, b"k", b"v", (), 0))
    assert foreign.error_class == NOT_A_DEAD_LETTER
