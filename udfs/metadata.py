"""Metadata policy: how a decoded row becomes Pinecone metadata.

Pinecone metadata is a flat object whose values are strings, numbers (stored as float64), booleans or lists of
strings; no nulls, no nested objects, keys must not start with ``$``, at most 40 KB per record. The policy:

Which fields
  - ``metadata_fields=None`` (default): every top-level field of the row except the dense vector field, the sparse
    vector field and control fields, i.e. top-level keys starting with ``__`` (Debezium's ``__deleted``, ``__op``,
    ``__table``, ``__source_ts_ms``, ...). The id field and text fields are kept (useful in filters and results).
    For a raw Debezium envelope the row is ``after``; the envelope (``source``, ``ts_ms``, ...) is not metadata.
  - ``metadata_fields=(...)``: only these fields (looked up like every field path: literal key, then dotted path);
    the metadata key is the name as configured. Listed ``__`` fields are kept. Absent fields are simply absent.

How values are converted
  - null: dropped (Pinecone has no null; absence is how "no value" is filtered with ``$exists``).
  - string, boolean: kept.
  - integer: kept as a number when ``|n| <= 2**53`` (exact in float64); otherwise the decimal string, so that no
    digit is lost. Integers beyond 64 bits are read exactly too (the JSON parser's float for them is not trusted).
  - float: kept.
  - object: flattened into dotted keys, recursively: ``{"a": {"b": 1}}`` -> ``"a.b": 1``; null members are dropped;
    an empty object contributes nothing.
  - list of strings (including the empty list): kept.
  - list of scalars that are not all strings: a list of strings, strings as they are and every other element as its
    JSON text (``[1, true, null, "x"]`` -> ``["1", "true", "null", "x"]``).
  - list containing an object or a list: the whole list as one JSON-encoded string.

Rejections (the record goes to the dead-letter topic; nothing is renamed or dropped silently)
  - a final key that is empty or starts with ``$``: ``InvalidMetadataKeyError`` (exclude the field with
    ``metadata_fields`` if it is not wanted);
  - two fields that flatten to the same key (``"a.b"`` next to ``{"a": {"b": ...}}``): ``MetadataKeyCollisionError``;
  - objects or lists nested more than 32 levels deep: ``MetadataTooDeepError``;
  - JSON-encoded metadata larger than ``max_metadata_bytes`` (default 40,960): ``MetadataTooLargeError``.
"""

from __future__ import annotations

import json
from itertools import compress, repeat
from typing import Any

import orjson

from kafka_pinecone_flink.udfs.decode_errors import (
    InvalidMetadataKeyError,
    MetadataKeyCollisionError,
    MetadataTooDeepError,
    MetadataTooLargeError,
)
from kafka_pinecone_flink.udfs.route_config import MISSING, RouteConfig

MAX_EXACT_INT = 2**53
"""Largest integer magnitude float64 (Pinecone's number type) holds exactly; larger ones become strings."""
INEXACT_FLOAT = float(2**63)
"""orjson reads integers outside [-2**63, 2**64) as floats: an integral float this large may be such an integer."""
CONTROL_PREFIX = "__"
_SPECIAL_PREFIXES = (CONTROL_PREFIX, "$")
_NESTED_KINDS = (dict, list)
_NUMBER_KINDS = (int, float)
_NONE_KIND = type(None)
MAX_DEPTH = 32
"""Deepest nesting of objects/lists in a field; bounds key length and keeps every walk far from Python's stack limit."""


class InexactNumberError(Exception):
    """Internal: the JSON parser may have turned a big integer into a float; decode again with an exact parser.

    Not a ``RecordError``: ``decode`` catches it and re-reads the value with Python's ``json`` (exact integers).
    """


def check_exact(value: float) -> None:
    """Raise ``InexactNumberError`` if ``value`` may be a big integer that orjson read as a float."""
    if (value >= INEXACT_FLOAT or value <= -INEXACT_FLOAT) and value.is_integer():
        raise InexactNumberError


def json_text(value: Any) -> str:
    """Compact JSON text of a decoded JSON value (``json`` fallback for integers beyond 64 bits)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def flatten_metadata(row: dict[str, Any], config: RouteConfig, *, exact: bool = False) -> dict[str, Any]:
    """The metadata of ``row`` by the policy above (not yet size-checked: see ``encode_metadata``).

    ``exact`` says the row was parsed with exact integers; otherwise a suspicious float raises
    ``InexactNumberError``. Raises ``InvalidMetadataKeyError`` / ``MetadataKeyCollisionError`` /
    ``MetadataTooDeepError``.
    """
    paths = config.metadata_paths
    if paths is None:
        flat = _flat_row(row, config, exact)
        if flat is not None:
            return flat
    out: dict[str, Any] = {}
    if paths is None:
        excluded = (config.vector_field, config.sparse_field)
        for key, value in row.items():
            if value is None or key in excluded or key.startswith(CONTROL_PREFIX):
                continue
            _put(out, key, value, exact, 1)
    else:
        for path in paths:
            value = path.lookup(row)
            if value is not None and value is not MISSING:
                _put(out, path.text, value, exact, 1)
    return out


def _flat_row(row: dict[str, Any], config: RouteConfig, exact: bool) -> dict[str, Any] | None:
    """The metadata of the whole row, or None if a rare case (a ``$`` or empty key, a number beyond 2**53) needs
    the general path.

    Top-level scalars (strings, booleans, small numbers, nulls, ``__`` control fields) are handled by C-level
    passes (dict copy, map, compress, max) instead of one Python call per field; only objects and lists go
    through ``_put``, after every scalar is in place, so that a collision with a dotted scalar key is seen.
    """
    out = dict(row)
    out.pop(config.vector_field, None)
    if config.sparse_field is not None:
        out.pop(config.sparse_field, None)
    kinds = set(map(type, out.values()))
    if _NONE_KIND in kinds:
        out = {key: value for key, value in out.items() if value is not None}
    if "" in out:
        return None
    for key in list(compress(out, map(str.startswith, out, repeat(_SPECIAL_PREFIXES)))):
        if not key.startswith(CONTROL_PREFIX):
            return None  # a "$" key: the general path reports it
        del out[key]
    nested: list[tuple[str, Any]] = []
    if dict in kinds or list in kinds:
        values = out.values()
        nested = [(key, out[key]) for key in compress(out, map(isinstance, values, repeat(_NESTED_KINDS)))]
        for key, _ in nested:
            del out[key]
    if int in kinds or float in kinds:
        values = out.values()
        numbers = compress(values, map(isinstance, values, repeat(_NUMBER_KINDS)))
        if max(map(abs, numbers), default=0) > MAX_EXACT_INT:
            return None
    for key, value in nested:
        _put(out, key, value, exact, 1)
    return out


def encode_metadata(metadata: dict[str, Any], max_bytes: int) -> bytes:
    """Canonical JSON of ``metadata`` (sorted keys); raises ``MetadataTooLargeError`` if over ``max_bytes``."""
    try:
        encoded = orjson.dumps(metadata, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # unreachable with flatten_metadata's output (big ints are strings); kept for other callers
        encoded = json.dumps(metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    if len(encoded) > max_bytes:
        raise MetadataTooLargeError(
            f"metadata is {len(encoded)} bytes as JSON, more than the limit of {max_bytes} bytes "
            f"(exclude fields with metadata_fields)"
        )
    return encoded


def _put(out: dict[str, Any], key: str, value: Any, exact: bool, depth: int) -> None:
    kind = type(value)
    if kind is dict:
        if depth >= MAX_DEPTH:
            raise _too_deep(key)
        for member, member_value in value.items():
            if member_value is not None:
                _put(out, f"{key}.{member}", member_value, exact, depth + 1)
        return
    if kind is int:
        if not -MAX_EXACT_INT <= value <= MAX_EXACT_INT:
            value = str(value)
    elif kind is float:
        if not exact:
            check_exact(value)
    elif kind is list:
        value = _list_value(value, key, exact, depth)
    if not key or key[0] == "$":
        raise InvalidMetadataKeyError(
            f"metadata key {key!r} is not allowed by Pinecone (empty or starting with '$'); "
            f"exclude the field with metadata_fields"
        )
    if key in out:
        raise MetadataKeyCollisionError(f"two fields flatten to the same metadata key {key!r}")
    out[key] = value


def _list_value(items: list[Any], key: str, exact: bool, depth: int) -> list[str] | str:
    kinds = set(map(type, items))
    if kinds <= {str}:
        return items
    if dict in kinds or list in kinds:
        _check_nested(items, key, exact, depth)
        return json_text(items)
    converted: list[str] = []
    for item in items:
        kind = type(item)
        if kind is str:
            converted.append(item)
        elif kind is float:
            if not exact:
                check_exact(item)
            converted.append(orjson.dumps(item).decode())
        elif kind is bool:
            converted.append("true" if item else "false")
        elif item is None:
            converted.append("null")
        else:
            converted.append(str(item))
    return converted


def _check_nested(value: Any, key: str, exact: bool, depth: int) -> None:
    kind = type(value)
    if kind is float:
        if not exact:
            check_exact(value)
    elif kind is list or kind is dict:
        if depth >= MAX_DEPTH:
            raise _too_deep(key)
        for item in value if kind is list else value.values():
            _check_nested(item, key, exact, depth + 1)


def _too_deep(key: str) -> MetadataTooDeepError:
    return MetadataTooDeepError(f"metadata field {key[:80]!r} is nested more than {MAX_DEPTH} levels deep")
