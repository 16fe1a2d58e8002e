"""The records that cross operator boundaries: pickling and the source-row conversion."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from typing import Any

import cloudpickle
import pytest

from kafka_pinecone_flink.udfs.records import Change, SourceRecord, SparseVector, row_to_source_record

pytestmark = pytest.mark.unit

SOURCE = SourceRecord("docs", 1, 42, 1_700_000_000_000, b"k", b'{"a": 1}', (("h", b"v"), ("n", None)))


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
@pytest.mark.parametrize(
    "values",
    [[0.1, -2.5, 1e-300, 3.4028234663852886e38, 0.0], None, []],
    ids=["dense", "none", "empty"],
)
def test_a_change_survives_pickling_exactly(dumps: object, values: list[float] | None) -> None:
    change = Change(
        op="upsert",
        namespace="ns",
        id="doc-1",
        source=SOURCE,
        values=values,
        sparse=SparseVector((1, 7), (0.5, 0.25)),
        metadata={"tags": ["a", "b"], "price": 9.5},
        text="some text",
        version=17,
        content_hash=b"\x01" * 16,
        text_hash=b"\x02" * 16,
        replaces=True,
    )
    copy = pickle.loads(dumps(change))  # type: ignore[operator]
    assert copy == change
    assert copy.values is None or all(type(v) is float for v in copy.values)


def test_a_pickled_dense_vector_is_packed_not_a_list_of_floats() -> None:
    vector = [float(i) / 7 for i in range(384)]
    change = Change(op="upsert", namespace="", id="x", source=SOURCE, values=vector)
    # 8 bytes per value plus the rest of the record; a list of floats pickles to 9 bytes per value plus framing.
    assert len(pickle.dumps(change)) < 384 * 8 + 300


class _Instant:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def to_epoch_milli(self) -> int:
        return self.ms


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (_Instant(1_700_000_000_123), 1_700_000_000_123),
        (datetime(2024, 1, 1, tzinfo=UTC), 1_704_067_200_000),
        (None, None),
    ],
)
def test_a_source_row_becomes_a_source_record(timestamp: object, expected: int | None) -> None:
    row = {
        "topic": "docs",
        "partition": 3,
        "offset": 9,
        "timestamp": timestamp,
        "key": bytearray(b"k"),
        "value": None,
        "headers": {"h": bytearray(b"v"), "n": None},
    }
    record = row_to_source_record(row)
    assert record == SourceRecord("docs", 3, 9, expected, b"k", None, (("h", b"v"), ("n", None)))
    assert isinstance(record.key, bytes)


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_a_source_record_pickles_through_its_constructor(dumps: Any) -> None:
    copy = pickle.loads(dumps(SOURCE))
    assert copy == SOURCE and copy.headers == (("h", b"v"), ("n", None))
    assert SOURCE.__reduce__()[0] is SourceRecord  # not the slow dataclass state path
