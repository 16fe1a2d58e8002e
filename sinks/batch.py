"""Turning one namespace's changes into Pinecone requests within Pinecone's limits.

``collapse`` keeps the last operation per id (deletes included): a delete after an upsert of the same id leaves only
the delete, an upsert after a delete only the upsert. The earlier operations are *superseded*; the writer reports them
as applied once the operation that supersedes them is applied. ``pack`` then groups the surviving operations into
upsert requests of at most ``max_records`` records and ``max_bytes`` bytes of JSON body, and delete requests of at
most ``PINECONE_MAX_DELETE_IDS`` ids. Every position passed to ``pack`` ends in exactly one request or in ``rejected``.

Each upsert record is sent as its JSON (``udfs.records.upsert_json``): the bytes decode made for a record that
brought its vector, or made here for one the embed stage filled in, whose float32 values are written in float32's
shortest form (the same numbers for Pinecone, about two fifths fewer bytes than as doubles). Sizes are therefore
exact, and packing never re-encodes a request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from kafka_pinecone_flink.sinks.config import PINECONE_MAX_DELETE_IDS
from kafka_pinecone_flink.udfs.errors import RecordError
from kafka_pinecone_flink.udfs.records import DELETE, Change, upsert_json

_BODY_OPEN_CLOSE = len(b'{"vectors":[]}')
_NAMESPACE_KEY = len(b',"namespace":')


class RecordTooLargeError(RecordError):
    """One record's JSON alone exceeds the request size limit: no request could carry it."""


class MissingVectorError(RecordError):
    """An upsert reached the sink with neither dense nor sparse values (nothing to write)."""


class UnencodableRecordError(RecordError):
    """A record cannot be encoded as JSON (e.g. a metadata value of an unsupported type)."""


@dataclass(frozen=True, slots=True)
class UpsertRecord:
    """One record of an upsert request, as the ``IndexClient`` seam takes it: the id, and the record's JSON."""

    id: str
    json: bytes


@dataclass(slots=True)
class UpsertRequest:
    """Records for one upsert call; ``positions[i]`` is the batch position of ``records[i]``."""

    records: list[UpsertRecord] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    body_bytes: int = 0

    def split(self, namespace: str) -> tuple[UpsertRequest, UpsertRequest]:
        """The first and second half (both non-empty when there are at least two records)."""
        mid = len(self.records) // 2
        return (
            _upsert_request(self.records[:mid], self.positions[:mid], self.sizes[:mid], namespace),
            _upsert_request(self.records[mid:], self.positions[mid:], self.sizes[mid:], namespace),
        )


@dataclass(slots=True)
class DeleteRequest:
    """Ids for one delete call; ``positions[i]`` is the batch position of ``ids[i]``."""

    ids: list[str] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)

    def split(self, namespace: str) -> tuple[DeleteRequest, DeleteRequest]:
        mid = len(self.ids) // 2
        return DeleteRequest(self.ids[:mid], self.positions[:mid]), DeleteRequest(self.ids[mid:], self.positions[mid:])


@dataclass(slots=True)
class Packed:
    """The requests for a set of batch positions, and the positions that no request can carry (with why)."""

    upserts: list[UpsertRequest] = field(default_factory=list)
    deletes: list[DeleteRequest] = field(default_factory=list)
    rejected: list[tuple[int, RecordError]] = field(default_factory=list)


def upsert_body(records: Sequence[UpsertRecord], namespace: str) -> dict[str, object]:
    """The body of an upsert request, as ``AsyncIndex.upsert`` makes it, with each record's JSON as it is: ``orjson``
    (the SDK's encoder) writes the body around the records without decoding them."""
    body: dict[str, object] = {"vectors": [orjson.Fragment(record.json) for record in records]}
    if namespace:
        body["namespace"] = namespace
    return body


def body_overhead(namespace: str) -> int:
    """Bytes of an upsert body that are not records or the commas between them."""
    return _BODY_OPEN_CLOSE + (_NAMESPACE_KEY + len(orjson.dumps(namespace)) if namespace else 0)


def _upsert_request(
    records: list[UpsertRecord], positions: list[int], sizes: list[int], namespace: str
) -> UpsertRequest:
    body = body_overhead(namespace) + sum(sizes) + max(len(sizes) - 1, 0)
    return UpsertRequest(records, positions, sizes, body)


def collapse(changes: Sequence[Change]) -> tuple[list[int], dict[str, list[int]]]:
    """The position of the last change of every id (ascending), and every id's positions in arrival order."""
    history: dict[str, list[int]] = {}
    for position, change in enumerate(changes):
        seen = history.get(change.id)
        if seen is None:
            history[change.id] = [position]
        else:
            seen.append(position)
    winners = sorted(positions[-1] for positions in history.values())
    return winners, history


def encode_upsert(change: Change) -> UpsertRecord:
    """The record to send for an upsert. Raises ``MissingVectorError`` or ``UnencodableRecordError``."""
    if change.json is not None:
        return UpsertRecord(change.id, change.json)
    if not change.values and change.sparse is None:
        raise MissingVectorError(f"upsert of id {change.id!r} has neither dense values nor sparse values")
    try:
        metadata = orjson.dumps(change.metadata) if change.metadata else None
        # Without ``json`` the vector is the model's (decode makes ``json`` for every vector a record brings).
        return UpsertRecord(
            change.id, upsert_json(change.id, change.values or [], change.sparse, metadata, narrow=True)
        )
    except TypeError as exc:  # orjson.JSONEncodeError is a TypeError
        raise UnencodableRecordError(f"record {change.id!r} cannot be encoded as JSON: {exc}") from None


def pack(
    changes: Sequence[Change],
    positions: Sequence[int],
    namespace: str,
    *,
    max_records: int,
    max_bytes: int,
) -> Packed:
    """Requests for ``changes[p]`` for every ``p`` in ``positions`` (which must name distinct ids).

    Upserts fill a request until one more record would pass ``max_records`` or ``max_bytes``; a record whose JSON
    exceeds ``max_bytes`` even alone is rejected with ``RecordTooLargeError``.
    """
    packed = Packed()
    overhead = body_overhead(namespace)
    upsert = UpsertRequest(body_bytes=overhead)
    delete = DeleteRequest()
    for position in positions:
        change = changes[position]
        if change.op == DELETE:
            if len(delete.ids) >= PINECONE_MAX_DELETE_IDS:
                packed.deletes.append(delete)
                delete = DeleteRequest()
            delete.ids.append(change.id)
            delete.positions.append(position)
            continue
        try:
            record = encode_upsert(change)
        except RecordError as exc:
            packed.rejected.append((position, exc))
            continue
        size = len(record.json)
        if overhead + size > max_bytes:
            packed.rejected.append(
                (
                    position,
                    RecordTooLargeError(
                        f"record {change.id!r} needs a {overhead + size}-byte upsert request on its own; "
                        f"the limit is {max_bytes} bytes"
                    ),
                )
            )
            continue
        separator = 1 if upsert.records else 0
        if upsert.records and (len(upsert.records) >= max_records or upsert.body_bytes + separator + size > max_bytes):
            packed.upserts.append(upsert)
            upsert = UpsertRequest(body_bytes=overhead)
            separator = 0
        upsert.records.append(record)
        upsert.positions.append(position)
        upsert.sizes.append(size)
        upsert.body_bytes += separator + size
    if upsert.records:
        packed.upserts.append(upsert)
    if delete.ids:
        packed.deletes.append(delete)
    return packed
