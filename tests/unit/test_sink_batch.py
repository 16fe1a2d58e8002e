from __future__ import annotations

import numpy as np
import orjson
import pytest
from pinecone import SparseValues, Vector
from pinecone._internal.data_plane_helpers import _vector_to_dict
from pinecone._internal.vector_factory import VectorFactory

from kafka_pinecone_flink.sinks.batch import (
    MissingVectorError,
    RecordTooLargeError,
    UnencodableRecordError,
    UpsertRequest,
    collapse,
    encode_upsert,
    pack,
    upsert_body,
)
from kafka_pinecone_flink.sinks.config import (
    DEFAULT_MAX_REQUEST_BYTES,
    PINECONE_MAX_DELETE_IDS,
    PINECONE_MAX_UPSERT_RECORDS,
)
from kafka_pinecone_flink.udfs.records import DELETE, UPSERT, Change, Op, SourceRecord, SparseVector, upsert_json

pytestmark = pytest.mark.unit

DIM = 384


def change(
    record_id: str,
    op: Op = UPSERT,
    *,
    offset: int = 0,
    values: list[float] | None = None,
    sparse: SparseVector | None = None,
    metadata: dict[str, object] | None = None,
) -> Change:
    source = SourceRecord("docs", 0, offset, 1_000, record_id.encode(), b"{}")
    if op == UPSERT and values is None and sparse is None:
        values = [0.1, 0.2, 0.3]
    return Change(
        op=op,
        namespace="ns",
        id=record_id,
        source=source,
        values=values,
        sparse=sparse,
        metadata=dict(metadata or {}),
    )


def sdk_body(changes: list[Change], request: UpsertRequest, namespace: str) -> bytes:
    """The body pinecone 10.2's AsyncIndex.upsert sends for the changes of ``request`` (its own encoding path)."""
    vectors = []
    for position in request.positions:
        c = changes[position]
        sparse = (
            None if c.sparse is None else SparseValues(indices=list(c.sparse.indices), values=list(c.sparse.values))
        )
        vector = Vector(id=c.id, values=c.values or [], sparse_values=sparse, metadata=c.metadata or None)
        vectors.append(_vector_to_dict(VectorFactory.build(vector)))
    body: dict[str, object] = {"vectors": vectors}
    if namespace:
        body["namespace"] = namespace
    return orjson.dumps(body)


def sent_body(request: UpsertRequest, namespace: str) -> bytes:
    """The body the sink sends for ``request`` (``PineconeIndexClient.upsert``)."""
    return orjson.dumps(upsert_body(request.records, namespace))


def dense(seed: int) -> list[float]:
    return [((seed * 7919 + i * 104729) % 1_000_003) / 1_000_003 - 0.5 for i in range(DIM)]


def test_collapse_keeps_the_last_operation_of_each_id() -> None:
    changes = [change("a", offset=0), change("b", offset=1), change("a", offset=2)]
    winners, history = collapse(changes)
    assert winners == [1, 2]
    assert history == {"a": [0, 2], "b": [1]}


def test_a_delete_after_an_upsert_of_the_same_id_leaves_only_the_delete() -> None:
    changes = [change("a"), change("a", DELETE)]
    winners, _ = collapse(changes)
    packed = pack(changes, winners, "ns", max_records=100, max_bytes=DEFAULT_MAX_REQUEST_BYTES)
    assert packed.upserts == []
    assert [(d.ids, d.positions) for d in packed.deletes] == [(["a"], [1])]


def test_an_upsert_after_a_delete_of_the_same_id_leaves_only_the_upsert() -> None:
    changes = [change("a", DELETE), change("a", values=[9.0, 9.0, 9.0])]
    winners, _ = collapse(changes)
    packed = pack(changes, winners, "ns", max_records=100, max_bytes=DEFAULT_MAX_REQUEST_BYTES)
    assert packed.deletes == []
    assert len(packed.upserts) == 1
    assert packed.upserts[0].positions == [1]
    assert orjson.loads(packed.upserts[0].records[0].json)["values"] == [9.0, 9.0, 9.0]


def test_upserts_are_packed_at_most_1000_records_per_request() -> None:
    changes = [change(f"id-{i}") for i in range(2_500)]
    packed = pack(
        changes, range(2_500), "ns", max_records=PINECONE_MAX_UPSERT_RECORDS, max_bytes=DEFAULT_MAX_REQUEST_BYTES
    )
    assert [len(u.records) for u in packed.upserts] == [1_000, 1_000, 500]
    assert [p for u in packed.upserts for p in u.positions] == list(range(2_500))


def test_deletes_are_packed_at_most_1000_ids_per_request() -> None:
    changes = [change(f"id-{i}", DELETE) for i in range(2_001)]
    packed = pack(changes, range(2_001), "ns", max_records=100, max_bytes=DEFAULT_MAX_REQUEST_BYTES)
    assert [len(d.ids) for d in packed.deletes] == [PINECONE_MAX_DELETE_IDS, PINECONE_MAX_DELETE_IDS, 1]


def test_upserts_are_packed_within_the_byte_limit_and_each_request_is_full() -> None:
    changes = [change(f"doc-{i}", values=dense(i), metadata={"title": f"t{i}" * 20}) for i in range(700)]
    packed = pack(changes, range(700), "ns", max_records=1_000, max_bytes=DEFAULT_MAX_REQUEST_BYTES)
    assert len(packed.upserts) >= 2
    for request, following in zip(packed.upserts, packed.upserts[1:], strict=False):
        assert len(sent_body(request, "ns")) == request.body_bytes <= DEFAULT_MAX_REQUEST_BYTES
        # Full: the next request's first record would not have fitted.
        assert request.body_bytes + 1 + following.sizes[0] > DEFAULT_MAX_REQUEST_BYTES
    assert sum(len(u.records) for u in packed.upserts) == 700


WORST_FLOAT = -2.2250738585072014e-308  # the longest JSON a double can take: 24 characters


@pytest.mark.parametrize("namespace", ["", "ns", 'näme "quoted"'])
def test_the_sent_body_is_the_sdks_and_its_size_is_exact(namespace: str) -> None:
    worst = [WORST_FLOAT] * DIM
    changes = [
        change("plain", values=worst),
        change("sparse", values=worst, sparse=SparseVector((1, 5, 4_000_000_000), (0.5, -1.25, 3.0))),
        change("meta", values=worst, metadata={"a": "x", "n": 3, "f": 1.5, "b": True, "l": ["p", "q"], "é": "ü"}),
        change("sparse-only", sparse=SparseVector((7,), (1.0,))),
        change("typical", values=dense(3), metadata={"i": 3}),
    ]
    packed = pack(changes, range(5), namespace, max_records=100, max_bytes=DEFAULT_MAX_REQUEST_BYTES)
    (request,) = packed.upserts
    assert sent_body(request, namespace) == sdk_body(changes, request, namespace)
    assert request.body_bytes == len(sent_body(request, namespace))


def test_a_record_decode_encoded_is_sent_as_it_is() -> None:
    made_by_decode = change("a", values=[0.5, 0.25], metadata={"b": 1, "a": "x"})
    made_by_decode.json = b'{"id":"a","values":[0.5,0.25],"metadata":{"a":"x","b":1}}'
    (request,) = pack([made_by_decode], [0], "ns", max_records=100, max_bytes=DEFAULT_MAX_REQUEST_BYTES).upserts
    assert sent_body(request, "ns") == b'{"vectors":[' + made_by_decode.json + b'],"namespace":"ns"}'
    assert orjson.loads(sent_body(request, "ns")) == orjson.loads(sdk_body([made_by_decode], request, "ns"))
    assert request.body_bytes == len(sent_body(request, "ns"))


def test_a_split_request_keeps_exact_sizes() -> None:
    changes = [change(f"doc-{i}", values=[WORST_FLOAT] * DIM) for i in range(5)]
    (request,) = pack(changes, range(5), "ns", max_records=100, max_bytes=DEFAULT_MAX_REQUEST_BYTES).upserts
    first, second = request.split("ns")
    assert first.positions == [0, 1] and second.positions == [2, 3, 4]
    assert first.body_bytes == len(sent_body(first, "ns"))
    assert second.body_bytes == len(sent_body(second, "ns"))


def test_a_record_that_fills_the_limit_exactly_is_kept() -> None:
    record = encode_upsert(change("a", values=[0.5] * 100))
    limit = len(sent_body(UpsertRequest([record], [0]), "ns"))
    packed = pack([change("a", values=[0.5] * 100)], [0], "ns", max_records=100, max_bytes=limit)
    assert packed.rejected == []
    assert pack([change("a", values=[0.5] * 100)], [0], "ns", max_records=100, max_bytes=limit - 1).upserts == []


def test_a_record_larger_than_the_byte_limit_alone_is_rejected_not_sent() -> None:
    changes = [change("small"), change("huge", values=dense(1)), change("small-2")]
    packed = pack(changes, range(3), "ns", max_records=100, max_bytes=2_048)
    assert [p for u in packed.upserts for p in u.positions] == [0, 2]
    ((position, error),) = packed.rejected
    assert position == 1
    assert isinstance(error, RecordTooLargeError)
    assert "'huge' needs a" in error.message and "the limit is 2048 bytes" in error.message


def test_an_upsert_without_any_vector_is_rejected() -> None:
    bad = change("a")
    bad.values = None
    ((position, error),) = pack([bad], [0], "ns", max_records=100, max_bytes=DEFAULT_MAX_REQUEST_BYTES).rejected
    assert position == 0
    assert isinstance(error, MissingVectorError)
    assert "neither dense values nor sparse values" in error.message


def test_a_model_vector_is_sent_in_float32s_shortest_form_and_a_records_json_as_it_is() -> None:
    """A change without ``json`` carries the model's vector (float32): the request holds the same float32 numbers,
    in about three fifths of the bytes; a change with ``json`` (a record's own vector) is sent as that JSON."""
    vector = (np.random.default_rng(3).standard_normal(DIM) / 20).astype(np.float32)
    embedded = change("a", values=vector.tolist(), metadata={"title": "t"})
    record = encode_upsert(embedded)
    sent = orjson.loads(record.json)
    assert np.array_equal(np.asarray(sent["values"], dtype=np.float32), vector)
    assert sent["metadata"] == {"title": "t"} and sent["id"] == "a"
    as_doubles = upsert_json("a", vector.tolist(), None, orjson.dumps({"title": "t"}))
    assert len(record.json) < 0.65 * len(as_doubles)
    brought = change("b", values=vector.tolist())
    brought.json = as_doubles
    assert encode_upsert(brought).json is as_doubles


def test_a_record_whose_metadata_cannot_be_encoded_is_rejected() -> None:
    with pytest.raises(UnencodableRecordError, match="cannot be encoded as JSON"):
        encode_upsert(change("a", metadata={"when": object()}))


def test_every_position_ends_in_exactly_one_request_or_rejection() -> None:
    changes = [change(f"u{i}") if i % 3 else change(f"d{i}", DELETE) for i in range(50)]
    changes.append(change("big", values=dense(9)))
    packed = pack(changes, range(51), "ns", max_records=7, max_bytes=2_048)
    seen = [p for u in packed.upserts for p in u.positions]
    seen += [p for d in packed.deletes for p in d.positions]
    seen += [p for p, _ in packed.rejected]
    assert sorted(seen) == list(range(51))
    assert all(len(u.records) <= 7 and u.body_bytes <= 2_048 for u in packed.upserts)
