"""The records that flow between the job's stages.

``SourceRecord`` is what the Kafka source gives (raw bytes and coordinates, nothing parsed). ``Change`` is one
decoded, validated and routed operation on one Pinecone record. ``DeadLetter`` is a record that could not be
processed, with the reason; it keeps the original key and value bytes so that it can be replayed.

These objects cross Flink operator boundaries pickled, so they are plain slotted dataclasses with no behaviour
that depends on process state. A ``Change`` whose vector is known when it is decoded carries the record as the JSON
of an upsert request (``Change.json``, made once by ``upsert_json``): it crosses to the sink as those bytes, without
its values and metadata as Python objects, and the sink sends the bytes as they are. Rebuilding 384 floats from a
pickle, then encoding them again for the request, was ~55 µs a record: a fifth of the job's Python time on
pre-computed vectors. A ``Change`` without it (a text to embed) pickles its dense vector as packed doubles (exact).

A vector the model made is float32. The sink writes such a vector (``upsert_json(..., narrow=True)``) in float32's
shortest form, ``0.012345679``, not as the double it became in Python, ``0.012345679104328156``: Pinecone keeps float32
values, and both texts read back as the same float32, so the index holds the same numbers while a 384-d vector's
JSON shrinks by about two fifths. Vectors that came with their record keep the form decode gave them (the JVM decode
path writes the same bytes as ``upsert_json`` without ``narrow``).
"""

from __future__ import annotations

import pickle
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
import orjson

Op = Literal["upsert", "delete"]
UPSERT: Op = "upsert"
DELETE: Op = "delete"

Stage = Literal["decode", "dedup", "embed", "sink"]


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One Kafka record as the source read it. ``value`` is None for a tombstone."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()

    @property
    def coordinates(self) -> str:
        """``topic[partition]@offset``: how logs and errors name a record."""
        return f"{self.topic}[{self.partition}]@{self.offset}"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # The default for a slotted dataclass calls dataclasses.fields() on every pickle and unpickle (~6% of the
        # job's Python time on the vector workload, py-spy); the constructor's arguments are all it needs.
        return (
            SourceRecord,
            (self.topic, self.partition, self.offset, self.timestamp_ms, self.key, self.value, self.headers),
        )


@dataclass(frozen=True, slots=True)
class SparseVector:
    indices: tuple[int, ...]
    values: tuple[float, ...]


@dataclass(slots=True)
class Change:
    """One operation on one Pinecone record, decoded and validated, ready for dedup, embedding and the sink.

    For an upsert either ``values`` holds the dense vector or ``text`` holds the text to embed (then ``values``
    is filled in by the embed stage). A delete carries only the namespace, the id and the version.
    """

    op: Op
    namespace: str
    id: str
    source: SourceRecord
    values: list[float] | None = None
    sparse: SparseVector | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    text: str | None = None
    version: int | float | None = None
    """Source version for fencing (e.g. Debezium ts_ms/LSN, updated_at); None means arrival order."""
    content_hash: bytes = b""
    """Digest of everything written to Pinecone for this record (op, values, sparse, metadata, text)."""
    text_hash: bytes | None = None
    """Digest of ``text`` when the vector is to be embedded; None otherwise."""
    replaces: bool = False
    """Set by dedup: the id held an applied version before (an update rather than an insert)."""
    json: bytes | None = None
    """The record as one element of an upsert request (``upsert_json``), made by decode when the vector came with
    the record. A pickled change that has it leaves out ``values``, ``sparse`` and ``metadata``: after it crosses a
    Flink boundary only ``json`` holds them."""
    chunk_spans: tuple[tuple[int, int], ...] | None = None
    """With chunking on (``udfs.chunking``), set by decode for a text to embed: each chunk's ``[start, end)`` in
    ``text``. None: the record is one vector with its own id."""
    previous_chunks: int = 0
    """Set by dedup: how many chunks the id's last applied version wrote (0: none, or one plain vector)."""
    follows: bool = False
    """Set by the embed stage on every Pinecone operation of a document but its first, so that the sink counts each
    record once (the others count as ``chunk_operations``)."""

    @property
    def chunk_count(self) -> int:
        """The chunks this change writes (0: not chunked)."""
        return 0 if self.chunk_spans is None else len(self.chunk_spans)

    @property
    def key(self) -> str:
        """The dedup key: namespace and id."""
        return f"{self.namespace}\x00{self.id}"

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        if self.json is not None:
            packed, sparse, metadata = None, None, None
        else:
            packed = None if self.values is None else array("d", self.values).tobytes()
            sparse, metadata = self.sparse, self.metadata
        return (
            _unpickle_change,
            (
                self.op,
                self.namespace,
                self.id,
                self.source,
                packed,
                sparse,
                metadata,
                self.text,
                self.version,
                self.content_hash,
                self.text_hash,
                self.replaces,
                self.json,
                self.chunk_spans,
                self.previous_chunks,
                self.follows,
            ),
        )


def _unpickle_change(
    op: Op,
    namespace: str,
    id: str,
    source: SourceRecord,
    packed: bytes | None,
    sparse: SparseVector | None,
    metadata: dict[str, Any],
    text: str | None,
    version: int | float | None,
    content_hash: bytes,
    text_hash: bytes | None,
    replaces: bool,
    json: bytes | None = None,
    chunk_spans: tuple[tuple[int, int], ...] | None = None,
    previous_chunks: int = 0,
    follows: bool = False,
) -> Change:
    values = None if packed is None else array("d", packed).tolist()
    return Change(
        op,
        namespace,
        id,
        source,
        values,
        sparse,
        {} if metadata is None else metadata,
        text,
        version,
        content_hash,
        text_hash,
        replaces,
        json,
        chunk_spans,
        previous_chunks,
        follows,
    )


def _applied_change(change: Change | bytes, replaces: bool, previous_chunks: int) -> Change:
    """A change of a group the JVM pickled after dedup (``io.github.kpf.decode.ChangePickle.appliedGroup``): the
    change, or its own pickle (Python's, which the group holds as bytes), with what dedup found set."""
    loaded: Change = pickle.loads(change) if isinstance(change, bytes) else change
    loaded.replaces = replaces
    loaded.previous_chunks = previous_chunks
    return loaded


def upsert_json(
    record_id: str,
    values: Sequence[float],
    sparse: SparseVector | None,
    metadata_json: bytes | None,
    *,
    narrow: bool = False,
) -> bytes:
    """One record of an upsert request's ``vectors``, as Pinecone's API takes it and the SDK encodes it: ``id``,
    ``values``, ``sparseValues`` when there is a sparse vector, ``metadata`` when ``metadata_json`` (the metadata
    object's JSON) is given. ``narrow``: write the dense values in float32's shortest form when every one of them is
    a float32 (a model's vector; see the module docstring). Raises ``TypeError`` for a value JSON cannot hold."""
    parts = [
        b'{"id":',
        orjson.dumps(record_id),
        b',"values":',
        _narrow_json(values) if narrow else orjson.dumps(values),
    ]
    if sparse is not None:
        parts += [b',"sparseValues":', orjson.dumps({"indices": sparse.indices, "values": sparse.values})]
    if metadata_json is not None:
        parts += [b',"metadata":', metadata_json]
    parts.append(b"}")
    return b"".join(parts)


def _narrow_json(values: Sequence[float]) -> bytes:
    """``values`` as JSON in float32's shortest form if each is exactly a float32 (then it reads back as the same
    float32), else as doubles, as ``orjson.dumps`` writes them."""
    if values:
        try:
            wide = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            return orjson.dumps(values)
        with np.errstate(over="ignore"):  # beyond float32's range: not a float32, written as doubles
            narrow = wide.astype(np.float32)
        if wide.ndim == 1 and np.array_equal(narrow, wide):
            return orjson.dumps(narrow, option=orjson.OPT_SERIALIZE_NUMPY)
    return orjson.dumps(values)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that could not be processed, with why and where."""

    source: SourceRecord
    error_class: str
    message: str
    stage: Stage


def _epoch_ms(value: Any) -> int | None:
    if value is None:
        return None
    if hasattr(value, "to_epoch_milli"):  # pyflink.common.time.Instant (TIMESTAMP_LTZ)
        return int(value.to_epoch_milli())
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return int(value)


def row_to_source_record(row: Any) -> SourceRecord:
    """A row of the job's Kafka source table (``jobs.kafka_io.source_table_ddl``: key, value, headers and the
    topic/partition/offset/timestamp metadata columns) as a ``SourceRecord``."""
    headers = row["headers"] or {}
    return SourceRecord(
        topic=row["topic"],
        partition=int(row["partition"]),
        offset=int(row["offset"]),
        timestamp_ms=_epoch_ms(row["timestamp"]),
        key=None if row["key"] is None else bytes(row["key"]),
        value=None if row["value"] is None else bytes(row["value"]),
        headers=tuple((str(k), None if v is None else bytes(v)) for k, v in headers.items()),
    )
