"""The decode/validate/route stage: one Kafka record in, one ``Change`` (or a counted ``Skip``) out.

``decode(record, config)`` never does I/O and, for any key and value bytes, either returns a ``Change`` or a
``Skip`` or raises a ``RecordError`` subclass (see ``udfs.decode_errors``) naming the kind of bad input; the caller
turns that into a dead letter or stops the job. Any other exception would be a bug.

Record shapes
  - Plain JSON object: the row itself. It must be UTF-8 JSON (``InvalidJsonError``, NaN/Infinity included), not
    empty (``EmptyValueError``), and an object (``NotAnObjectError``). No object anywhere in the value may hold a
    key twice (``DuplicateKeyError``: parsers keep the last, and ``{"__deleted": "true", "__deleted": "false"}``
    would silently upsert); ``udfs.json_keys`` finds them for ~3.5 µs per record (1 KB or 8 KB). Strings must be valid
    Unicode (a lone surrogate escape ``"\\ud800"`` is ``InvalidJsonError``: no Flink string field, id, metadata
    value or text to embed can hold one). Integers are exact at any size up to Python's 4,300 digits (more is
    ``InvalidJsonError``); a float beyond float64 is ``InvalidJsonError`` ("out of the range of a 64-bit float").
  - Schema-wrapped (Kafka Connect JSON converter with schemas): an object with exactly the keys ``schema`` and
    ``payload`` is replaced by its ``payload``; a null payload is a tombstone.
  - Raw Debezium envelope: an object with the keys ``op``, ``before`` and ``after``. ``op`` ``c``/``r``/``u``
    upserts ``after`` (which must be an object); ``d`` deletes ``before`` (id from ``before``, else from the key);
    other ops (``t`` truncate, ``m`` message) are ``UnsupportedOperationError``. An object with ``before`` and
    ``after`` (objects or null) but no ``op``, that has no id or vector of its own, is ``UnsupportedOperationError``
    too (the op is what is missing); with an id and a vector it is a row whose columns happen to be so named.
  - Flattened Debezium (ExtractNewRecordState): the row with ``__``-prefixed control fields. ``__deleted`` ``"true"``
    or ``true``, or ``__op`` ``"d"``, makes it a delete of that row; ``__deleted`` must be ``"true"``/``"false"``/a
    boolean and ``__op`` one of ``c r u d``, else ``UnsupportedOperationError``. Control fields are never metadata.
  - Tombstone (null value; or a null schema-wrapped payload): a delete, id from the key.

Deletes: with ``delete_enabled=False`` a tombstone is ``Skip("tombstone_ignored")`` and an explicit delete
(Debezium ``op: d``, ``__deleted``, ``__op: d``) is ``Skip("delete_ignored")``: the index keeps what it has, and
the deleted row's last state is not written back. Under ``id_strategy="none"`` an enabled delete is
``UnaddressableDeleteError``.

Vectors and text: a dense vector in ``vector_field`` wins; without one (field absent or null), if ``text_fields``
or ``text_template`` is configured the record carries ``text`` for the embed stage, else ``MissingVectorError``.
Text of ``text_fields``: the texts of the fields that are present, non-null and non-empty, joined by ``"\\n"``.
Text of ``text_template``: each ``${field}`` replaced by the field's text, a missing or null field by ``""``; if no
referenced field has a non-empty text, the record has no text. A string field's text is the string; any other
value's is its compact JSON text. A text that is empty or whitespace only counts as no text (nothing to embed):
with no vector that is ``MissingVectorError``.

Versions (``version_field``): looked up in the Debezium envelope first (so ``ts_ms`` and ``source.lsn`` work), then
in the row. An integer is kept exact; a float is kept; a string of digits (optionally signed) is an integer; any
other string must be an ISO-8601 timestamp (``datetime.fromisoformat``; without an offset it is UTC) and becomes
integer microseconds since the Unix epoch. Missing or null is ``MissingVersionError``, anything else
``InvalidVersionError``, so that a bad version can never reorder writes silently. Tombstones carry no version.

Hashes: ``content_hash`` is a 128-bit digest of the op, the dense values (as little-endian float64), the sparse
vector, the canonical (sorted keys) JSON metadata and the text; ``text_hash`` is BLAKE2b-128 of the UTF-8 text, set
only when the record is to be embedded (text set, no vector). The content hash of a record with a dense vector is
SHA-256 cut to 128 bits: the JVM decode path takes such records and computes the same bytes, and SHA-256 runs in
hardware or vector code in both runtimes (the JVM's intrinsic, OpenSSL): 2.45 µs for a record of (a) in the JVM,
against 8.3 µs for BLAKE2b written in Java (BENCHMARKS.md). Any other record (a text to embed, a sparse vector alone)
keeps BLAKE2b-128, as before that change: the hash is in the dedup state, and a new one would have embedded every
such record's text again after an upgrade.

Chunking (``RouteConfig.chunk_tokens`` > 0, ``udfs.chunking``): a record to embed gets ``chunk_spans``, its text cut
by the model's tokenizer, checked here (chunk ids, chunk metadata: ``chunking.plan``); its content hash is bound to
the chunking settings.
"""

from __future__ import annotations

import json
import math
import re
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import blake2b, sha256
from typing import Any

import orjson

from kafka_pinecone_flink.udfs import chunking, ids
from kafka_pinecone_flink.udfs.decode_errors import (
    DuplicateKeyError,
    EmptyValueError,
    InvalidEnvelopeError,
    InvalidJsonError,
    InvalidVersionError,
    MissingIdError,
    MissingVectorError,
    MissingVersionError,
    NotAnObjectError,
    UnsupportedOperationError,
)
from kafka_pinecone_flink.udfs.json_keys import DuplicateKey, may_repeat_keys, unique_object
from kafka_pinecone_flink.udfs.metadata import (
    InexactNumberError,
    check_exact,
    encode_metadata,
    flatten_metadata,
    json_text,
)
from kafka_pinecone_flink.udfs.records import DELETE, UPSERT, Change, SourceRecord, SparseVector, upsert_json
from kafka_pinecone_flink.udfs.route_config import MISSING, RouteConfig
from kafka_pinecone_flink.udfs.vectors import json_kind, parse_dense, parse_sparse

TOMBSTONE_IGNORED = "tombstone_ignored"
DELETE_IGNORED = "delete_ignored"

HASH_BYTES = 16
_UPSERT_OPS = ("c", "r", "u")  # a tuple: an unhashable op (a JSON object) must compare, not raise
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_DELETE_HASH = blake2b(b"delete", digest_size=HASH_BYTES).digest()
_NON_FINITE_WORDS = (b"NaN", b"Infinity")
_ORJSON_NUMBER_RANGE = "number is infinity"
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_MAX_REASON_CONTEXT = 20
_PACKERS: dict[int, struct.Struct] = {}
"""Compiled ``struct`` formats by vector length: dense vectors have one length (the dimension)."""


@dataclass(frozen=True, slots=True)
class Skip:
    """A record that ends as a counted skip, not a write. ``reason`` is a metric label."""

    reason: str


def decode(record: SourceRecord, config: RouteConfig) -> Change | Skip:
    """Decode, validate and route ``record`` (see the module docstring); raises only ``RecordError`` subclasses."""
    value = record.value
    if value is None:
        return _tombstone(record, config)
    if not value:
        raise EmptyValueError("the record value is empty (zero bytes); a delete is a null value (tombstone)")
    try:
        try:
            obj = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            # orjson reads no number beyond float64; an integer that is beyond it is read exactly here.
            return _decode_object(record, _parse_after_orjson_failed(value, exc), config, exact=True)
        if type(obj) is dict and may_repeat_keys(value, obj):
            _check_unique_keys(value)
        try:
            return _decode_object(record, obj, config, exact=False)
        except InexactNumberError:
            # orjson read an integer beyond 64 bits as a float; Python's json reads it exactly (rare: slow is fine).
            try:
                exact_obj = json.loads(value)
            except ValueError as exc:  # unreachable after orjson accepted the value; kept so nothing else escapes
                raise InvalidJsonError(f"the record value is not valid JSON: {exc}") from None
            return _decode_object(record, exact_obj, config, exact=True)
    except RecursionError:
        # orjson accepts 1,024 levels of nesting; walking that deep in Python (e.g. a text field) may not fit.
        raise InvalidJsonError("the record value is nested too deeply to process") from None


def _check_unique_keys(value: bytes) -> None:
    """Raise ``DuplicateKeyError`` if an object in ``value`` (valid JSON: orjson read it) repeats a name."""
    try:
        json.loads(value, object_pairs_hook=unique_object)
    except DuplicateKey as exc:
        raise DuplicateKeyError(
            f"the record value has a JSON object with the key {_short(exc.key)} more than once"
        ) from None
    except (ValueError, RecursionError):
        # Python's json refuses what orjson took: an integer of more than 4,300 digits, or nesting deeper than its
        # recursion limit. Such values are rejected further on (as too deep, as not a number) in almost every
        # configuration; they are not worth a second kind of error here.
        pass


def _parse_after_orjson_failed(value: bytes, exc: orjson.JSONDecodeError) -> Any:
    """The value orjson refused, if only for a number beyond float64 that is an integer (Python's ``json`` reads
    integers exactly); otherwise ``InvalidJsonError`` saying what is wrong."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidJsonError(f"the record value is not valid UTF-8 (byte offset {error.start})") from None
    if "surrogate" in exc.msg:
        escape = _SURROGATE_ESCAPE.search(text, max(exc.pos - 1, 0))
        shown = f" ({escape.group(0)})" if escape is not None else ""
        raise InvalidJsonError(
            f"the record value holds a lone UTF-16 surrogate escape{shown} at line {exc.lineno} column {exc.colno}, "
            "which is not valid Unicode"
        )
    if not exc.msg.startswith(_ORJSON_NUMBER_RANGE):
        raise InvalidJsonError(_json_reason(value, exc))
    try:
        obj = json.loads(
            text, parse_float=_finite_float, parse_constant=_reject_constant, object_pairs_hook=unique_object
        )
    except _OutOfRange as error:
        raise InvalidJsonError(
            f"the record value holds the number {_short_number(error.text)}, out of the range of a 64-bit float"
        ) from None
    except DuplicateKey as error:
        raise DuplicateKeyError(
            f"the record value has a JSON object with the key {_short(error.key)} more than once"
        ) from None
    except ValueError as error:
        if "integer string conversion" in str(error):
            raise InvalidJsonError(
                f"the record value holds an integer of more than {sys.get_int_max_str_digits()} digits"
            ) from None
        raise InvalidJsonError(_json_reason(value, exc)) from None
    try:
        # Python's json, unlike orjson, takes lone surrogate escapes: nothing that is not valid Unicode goes on.
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidJsonError(
            f"the record value holds a lone UTF-16 surrogate escape ({error.object[error.start]!r}), "
            "which is not valid Unicode"
        ) from None
    return obj


class _OutOfRange(ValueError):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _OutOfRange(text)
    return number


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _short_number(text: str, limit: int = 24) -> str:
    return text if len(text) <= limit else text[: limit - 4] + "..."


def _tombstone(record: SourceRecord, config: RouteConfig) -> Change | Skip:
    if not config.delete_enabled:
        return Skip(TOMBSTONE_IGNORED)
    namespace = config.namespace_for(record.topic)
    record_id = ids.delete_id(record.key, None, config)
    return Change(op=DELETE, namespace=namespace, id=record_id, source=record, content_hash=_DELETE_HASH)


def _decode_object(record: SourceRecord, obj: Any, config: RouteConfig, *, exact: bool) -> Change | Skip:
    if type(obj) is not dict:
        raise NotAnObjectError(f"the record value is a JSON {json_kind(obj)}, not an object")
    if "payload" in obj and "schema" in obj and len(obj) == 2:
        obj = obj["payload"]
        if obj is None:
            return _tombstone(record, config)
        if type(obj) is not dict:
            raise NotAnObjectError(f"the schema-wrapped payload is a JSON {json_kind(obj)}, not an object")
    envelope: dict[str, Any] | None = None
    row: Any
    if "op" in obj and "after" in obj and "before" in obj:
        envelope = obj
        op = obj["op"]
        if op in _UPSERT_OPS:
            row = obj["after"]
            if type(row) is not dict:
                raise InvalidEnvelopeError(f"Debezium op {op!r} with 'after' a JSON {json_kind(row)}, not an object")
            is_delete = False
        elif op == "d":
            row = obj["before"]
            if row is not None and type(row) is not dict:
                raise InvalidEnvelopeError(f"Debezium op 'd' with 'before' a JSON {json_kind(row)}, not an object")
            is_delete = True
        else:
            raise UnsupportedOperationError(f"Debezium op {_short(op)} cannot be applied to one record")
    else:
        row = obj
        is_delete = ("__deleted" in row or "__op" in row) and _flattened_delete(row)

    if is_delete:
        if not config.delete_enabled:
            return Skip(DELETE_IGNORED)
        namespace = config.namespace_for(record.topic)
        record_id = ids.delete_id(record.key, row, config, exact=exact)
        version = _version(envelope, row, config, exact)
        return Change(
            op=DELETE, namespace=namespace, id=record_id, source=record, version=version, content_hash=_DELETE_HASH
        )

    namespace = config.namespace_for(record.topic)
    try:
        record_id = ids.upsert_id(record.key, row, config, exact=exact)
        values: list[float] | None = None
        raw_vector = row.get(config.vector_field)
        if raw_vector is not None:
            values = parse_dense(raw_vector, config.vector_field, config.dimension, config.metric)
        sparse: SparseVector | None = None
        if config.sparse_field is not None:
            raw_sparse = row.get(config.sparse_field)
            if raw_sparse is not None:
                sparse = parse_sparse(raw_sparse, config.sparse_field, exact=exact)
        text: str | None = None
        if values is None:
            text = _text(row, config) if config.has_text else None
            if text is None:
                raise MissingVectorError(_missing_vector_message(config))
    except (MissingIdError, MissingVectorError):
        if envelope is None and _looks_like_envelope(row):
            # A row that has no id or vector of its own but Debezium's before/after: the op is what is missing.
            raise UnsupportedOperationError(
                "the record looks like a Debezium envelope ('before'/'after') but has no 'op' field; "
                "without it the change cannot be applied"
            ) from None
        raise
    metadata = flatten_metadata(row, config, exact=exact)
    metadata_json = encode_metadata(metadata, config.max_metadata_bytes)
    version = _version(envelope, row, config, exact)
    content_hash = _content_hash(values, sparse, metadata_json, text)
    spans = None
    if text is not None and config.chunk_tokens:
        spans = chunking.plan(record_id, text, metadata, config)
        content_hash = chunking.chunked_hash(content_hash, config)
    # The vector is final: encode the record for the upsert request once, here (see udfs.records).
    request_json = None
    if values is not None:
        request_json = upsert_json(record_id, values, sparse, metadata_json if metadata else None)
    return Change(
        op=UPSERT,
        namespace=namespace,
        id=record_id,
        source=record,
        values=values,
        sparse=sparse,
        metadata=metadata,
        text=text,
        version=version,
        content_hash=content_hash,
        text_hash=_text_hash(text) if text is not None else None,
        json=request_json,
        chunk_spans=spans,
    )


def _looks_like_envelope(row: dict[str, Any]) -> bool:
    return all(key in row and (row[key] is None or type(row[key]) is dict) for key in ("before", "after"))


def _flattened_delete(row: dict[str, Any]) -> bool:
    deleted = row.get("__deleted")
    if deleted is True or deleted == "true":
        return True
    if deleted is not None and deleted is not False and deleted != "false":
        raise UnsupportedOperationError(f"__deleted is {_short(deleted)}; expected 'true', 'false' or a boolean")
    op = row.get("__op")
    if op == "d":
        return True
    if op is not None and op not in _UPSERT_OPS:
        raise UnsupportedOperationError(f"__op is {_short(op)}; expected one of 'c', 'r', 'u', 'd'")
    return False


def _text(row: dict[str, Any], config: RouteConfig) -> str | None:
    if config.text_paths:
        texts = [_field_text(path.lookup(row)) for path in config.text_paths]
        text = "\n".join(piece for piece in texts if piece)
    else:
        pieces: list[str] = []
        found = False
        for literal, path in config.text_parts:
            pieces.append(literal)
            if path is not None:
                piece = _field_text(path.lookup(row))
                found = found or bool(piece)
                pieces.append(piece)
        if not found:
            return None
        text = "".join(pieces)
    return text if text and not text.isspace() else None


def _field_text(value: Any) -> str:
    if value is None or value is MISSING:
        return ""
    if type(value) is str:
        return value
    return json_text(value)


def _missing_vector_message(config: RouteConfig) -> str:
    if not config.has_text:
        return f"the record has no vector in field {config.vector_field!r} and no text fields are configured"
    sources = f"fields {list(config.text_fields)}" if config.text_fields else f"template {config.text_template!r}"
    return f"the record has no vector in field {config.vector_field!r} and no text in {sources}"


def _version(envelope: dict[str, Any] | None, row: dict[str, Any] | None, config: RouteConfig, exact: bool) -> Any:
    path = config.version_path
    if path is None:
        return None
    value = path.lookup(envelope) if envelope is not None else MISSING
    if (value is MISSING or value is None) and row is not None:
        value = path.lookup(row)
    if value is MISSING or value is None:
        raise MissingVersionError(f"the record has no version field {path.text!r}")
    return parse_version(value, path.text, exact=exact)


def parse_version(value: Any, field: str, *, exact: bool = True) -> int | float:
    """A version field's value as a number (see the module docstring); raises ``InvalidVersionError``."""
    kind = type(value)
    if kind is int:
        return value
    if kind is float:
        if not exact:
            check_exact(value)
        return value
    if kind is str:
        text = value.strip()
        digits = text[1:] if text[:1] in ("-", "+") else text
        if digits.isascii() and digits.isdigit():
            try:
                return int(text)
            except ValueError:  # more digits than Python converts (4,300)
                raise InvalidVersionError(f"version field {field!r} holds a number with too many digits") from None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidVersionError(
                f"version field {field!r} holds {_short(value)}, neither a number nor an ISO-8601 timestamp"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return (moment - _EPOCH) // _MICROSECOND
    raise InvalidVersionError(f"version field {field!r} holds a JSON {json_kind(value)}, not a number or a timestamp")


def _content_hash(
    values: list[float] | None, sparse: SparseVector | None, metadata_json: bytes, text: str | None
) -> bytes:
    # Tagged parts; each JSON part is self-delimiting and the text comes last, so the encoding is unambiguous. A record
    # with a dense vector hashes with SHA-256, the others (texts to embed) with BLAKE2b: see the module docstring.
    digest = sha256(b"upsert\x00") if values is not None else blake2b(b"upsert\x00", digest_size=HASH_BYTES)
    if values is not None:
        digest.update(b"V")
        _update(digest, _pack_floats(values))
    if sparse is not None:
        digest.update(b"S")
        _update(digest, orjson.dumps(sparse.indices))
        _update(digest, _pack_floats(sparse.values))
    digest.update(b"M")
    _update(digest, metadata_json)
    if text is not None:
        digest.update(b"T")
        _update(digest, text.encode())
    return digest.digest()[:HASH_BYTES]


_GIL_KEEPING_CHUNK = 2_000
"""hashlib releases the GIL while hashing 2,048 bytes or more. The Python worker runs the decode thread, the sink's
event loop and gRPC threads together, and a thread that lets go of the GIL waits up to the switch interval (5 ms) to
get it back: hashing a 384-d vector (3 KB packed) in one call made ``_content_hash`` the job's busiest line in
py-spy, while hashing it takes ~10 µs. Smaller pieces hash to the same digest and keep the GIL."""


def _update(digest: Any, data: bytes) -> None:
    if len(data) < _GIL_KEEPING_CHUNK:
        digest.update(data)
        return
    view = memoryview(data)
    for start in range(0, len(view), _GIL_KEEPING_CHUNK):
        digest.update(view[start : start + _GIL_KEEPING_CHUNK])


def _text_hash(text: str) -> bytes:
    digest = blake2b(digest_size=HASH_BYTES)
    _update(digest, text.encode())
    return digest.digest()


def _pack_floats(values: Sequence[float]) -> bytes:
    # Packing doubles is ~5x cheaper than JSON-encoding them, and exact: equal vectors give equal bytes.
    packer = _PACKERS.get(len(values))
    if packer is None:
        packer = _PACKERS[len(values)] = struct.Struct(f"<{len(values)}d")
    return packer.pack(*values)


def _json_reason(value: bytes, exc: orjson.JSONDecodeError) -> str:
    reason = f"the record value is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    at = value[exc.pos : exc.pos + _MAX_REASON_CONTEXT] if 0 <= exc.pos < len(value) else b""
    if any(at.startswith(word) or at.startswith(b"-" + word) for word in _NON_FINITE_WORDS):
        # Python's json.dumps writes NaN/Infinity unless allow_nan=False: the usual cause of this error.
        reason += " (NaN and Infinity are not valid JSON numbers; vectors and fields must hold finite numbers)"
    return reason


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
