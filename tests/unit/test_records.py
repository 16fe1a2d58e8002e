"""The records that cross operator boundaries: pickling and the source-row conversion."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from typing import Any

import cloudpickle
import numpy as np
import orjson
import pytest

from kafka_pinecone_flink.udfs.records import Change, SourceRecord, SparseVector, row_to_source_record, upsert_json

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


def test_a_change_with_its_request_json_crosses_as_that_json_only() -> None:
    vector = [float(i) / 7 for i in range(384)]
    metadata = {"title": "x" * 500}
    json = upsert_json("x", vector, None, orjson.dumps(metadata))
    change = Change(op="upsert", namespace="", id="x", source=SOURCE, values=vector, metadata=metadata, json=json)
    pickled = pickle.dumps(change)
    assert len(pickled) < len(json) + 300  # neither the packed vector nor the metadata besides the JSON
    copy = pickle.loads(pickled)
    assert copy.json == json and copy.values is None and copy.metadata == {} and copy.sparse is None
    assert (copy.op, copy.namespace, copy.id, copy.source) == ("upsert", "", "x", SOURCE)


@pytest.mark.parametrize(
    ("sparse", "metadata_json", "expected"),
    [
        (None, None, {"id": "a", "values": [0.5, -1.0]}),
        (None, b'{"k":"v"}', {"id": "a", "values": [0.5, -1.0], "metadata": {"k": "v"}}),
        (
            SparseVector((3, 9), (0.25, 2.0)),
            b'{"k":1}',
            {
                "id": "a",
                "values": [0.5, -1.0],
                "sparseValues": {"indices": [3, 9], "values": [0.25, 2.0]},
                "metadata": {"k": 1},
            },
        ),
    ],
    ids=["dense", "metadata", "sparse"],
)
def test_upsert_json_is_the_records_json_in_pinecones_shape(
    sparse: SparseVector | None, metadata_json: bytes | None, expected: dict[str, Any]
) -> None:
    assert orjson.loads(upsert_json("a", [0.5, -1.0], sparse, metadata_json)) == expected


def test_narrow_writes_a_float32_vector_in_float32s_shortest_form_that_reads_back_the_same() -> None:
    vector = (np.random.default_rng(7).standard_normal(384) / 20).astype(np.float32)
    edges = np.array([1e-45, 1.1754944e-38, 3.4028235e38, -0.0, 0.1, 1 / 3, 16777216], dtype=np.float32)
    for values in (vector, edges):
        wide = upsert_json("a", values.tolist(), None, None)
        narrow = upsert_json("a", values.tolist(), None, None, narrow=True)
        read = np.asarray(orjson.loads(narrow)["values"], dtype=np.float32)
        assert np.array_equal(read, values) and all(np.signbit(read) == np.signbit(values))
        assert np.array_equal(np.asarray(orjson.loads(wide)["values"], dtype=np.float32), read)
    assert b"0.1," in upsert_json("a", edges.tolist(), None, None, narrow=True)  # not 0.10000000149011612
    wide, narrow = (
        upsert_json("a", vector.tolist(), None, None),
        upsert_json("a", vector.tolist(), None, None, narrow=True),
    )
    assert len(narrow) < 0.65 * len(wide)


@pytest.mark.parametrize(
    "values",
    [[0.1, 0.2], [1e300, 2.0], [float("nan"), 1.0], [1e-45], [], [1, 2]],
    ids=["not-float32", "beyond-float32", "nan", "below-float32", "empty", "ints"],
)
def test_narrow_leaves_values_that_are_not_all_float32_as_doubles(values: list[float]) -> None:
    expected = b'{"id":"a","values":' + orjson.dumps(values) + b"}"
    if values == [1, 2]:  # exact float32s: written as such
        expected = b'{"id":"a","values":[1.0,2.0]}'
    assert upsert_json("a", values, None, None, narrow=True) == expected


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
