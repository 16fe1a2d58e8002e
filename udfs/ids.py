"""Record id strategies: where a Pinecone id comes from, and how it is formatted.

Id source (``id_strategy``):
  - ``kafka`` (default): the Kafka record key, as raw bytes. A null or empty key is ``MissingIdError``.
  - ``field``: the row field ``id_field`` (literal key, else dotted path). Its text is: a JSON string as it is; an
    integer in decimal (exact at any size); a boolean as ``true``/``false``. A float is ``InvalidIdError`` (its
    JSON text is not preserved by parsing, and ``1`` vs ``1.0`` would silently name two records), as is an object
    or an array. A missing, null or empty value is ``MissingIdError``.
    For deletes, the field is read from the deleted row (Debezium ``before``, or the flattened row); for a
    tombstone, or a delete whose row lacks the field, from the Kafka key: a key that is a JSON object (a
    schema-wrapped ``{"schema", "payload"}`` key unwrapped) gives its ``id_field``; a key that is a JSON string,
    integer or boolean gives that value; any other key gives its UTF-8 text. So a key ``{"id": 7}``, ``7``,
    ``"7"`` or the bytes ``7`` all address the row whose ``id`` field is ``7``.
  - ``none``: a random UUIDv4 per record. Insert semantics: a replay after a crash inserts again, and deletes
    cannot be addressed (``UnaddressableDeleteError``).

Id format (``id_format``):
  - ``uuid`` (default): ``UUIDv5(ID_NAMESPACE, name)`` in the canonical 36-character lowercase form, where
    ``ID_NAMESPACE = 684b84d4-4252-52a8-b16f-14eb0acec78b`` (itself ``uuid5(NAMESPACE_URL,
    "urn:kafka-pinecone-flink:record-id")``) and ``name`` is, for ``kafka``, the raw key bytes and, for ``field``,
    the UTF-8 bytes of the field's text. In Python: ``uuid.uuid5(ID_NAMESPACE, text)`` for a field or a UTF-8 key;
    for arbitrary key bytes: ``uuid.UUID(bytes=sha1(ID_NAMESPACE.bytes + key).digest()[:16], version=5)``.
    Deterministic, so a replay rewrites the same records.
  - ``raw``: the key decoded as UTF-8 (invalid UTF-8 is ``InvalidIdError``) or the field's text, as it is;
    longer than 512 characters is ``IdTooLongError``.

Every id text must be valid Unicode, encodable as UTF-8, under either format: Python's ``json`` (which parses keys)
reads the JSON string ``"\\ud800"`` into a lone surrogate, which would fail the job where the id is hashed (uuid)
or handed to Flink as a string (raw). Such an id is ``InvalidIdError``, as is a key object holding a key twice.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from kafka_pinecone_flink.udfs.decode_errors import (
    IdTooLongError,
    InvalidIdError,
    MissingIdError,
    UnaddressableDeleteError,
)
from kafka_pinecone_flink.udfs.json_keys import DuplicateKey, unique_object
from kafka_pinecone_flink.udfs.metadata import check_exact
from kafka_pinecone_flink.udfs.route_config import MISSING, FieldPath, RouteConfig
from kafka_pinecone_flink.udfs.vectors import json_kind

ID_NAMESPACE = uuid.UUID("684b84d4-4252-52a8-b16f-14eb0acec78b")
"""The project's UUIDv5 namespace: ``uuid5(NAMESPACE_URL, "urn:kafka-pinecone-flink:record-id")``."""
MAX_ID_CHARS = 512

_NAMESPACE_BYTES = ID_NAMESPACE.bytes


def uuid_for(name: bytes) -> str:
    """``str(UUIDv5(ID_NAMESPACE, name))`` for any bytes, computed without building a ``uuid.UUID``."""
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def random_id() -> str:
    """A random UUIDv4, for ``id_strategy="none"``."""
    return str(uuid.uuid4())


def upsert_id(key: bytes | None, row: dict[str, Any], config: RouteConfig, *, exact: bool = False) -> str:
    """The id of an upsert of ``row``; raises ``MissingIdError``, ``InvalidIdError`` or ``IdTooLongError``."""
    strategy = config.id_strategy
    if strategy == "kafka":
        return _from_key_bytes(key, config)
    if strategy == "none":
        return random_id()
    path = _id_path(config)
    value = path.lookup(row)
    if value is MISSING or value is None:
        raise MissingIdError(f"the record has no id field {path.text!r}")
    return _format_text(field_text(value, path.text, exact=exact), config)


def delete_id(key: bytes | None, row: dict[str, Any] | None, config: RouteConfig, *, exact: bool = False) -> str:
    """The id a delete addresses: ``row`` is the deleted row if the record carries one, None for a tombstone."""
    strategy = config.id_strategy
    if strategy == "kafka":
        return _from_key_bytes(key, config)
    if strategy == "none":
        raise UnaddressableDeleteError(
            "a delete cannot be applied under id_strategy 'none': random ids cannot address an earlier record"
        )
    path = _id_path(config)
    if row is not None:
        value = path.lookup(row)
        if value is not MISSING and value is not None:
            return _format_text(field_text(value, path.text, exact=exact), config)
    return _format_text(_text_from_key(key, path), config)


def field_text(value: Any, field: str, *, exact: bool = False) -> str:
    """The text of an id field's value (see the module docstring); raises ``InvalidIdError``."""
    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:
        if not exact:
            check_exact(value)
        raise InvalidIdError(
            f"id field {field!r} holds the floating-point number {value!r}; ids must be strings, integers or booleans"
        )
    raise InvalidIdError(
        f"id field {field!r} holds a JSON {json_kind(value)}; ids must be strings, integers or booleans"
    )


def _id_path(config: RouteConfig) -> FieldPath:
    path = config.id_path
    if path is None:  # RouteConfig guarantees an id_field for the "field" strategy
        raise AssertionError("id_strategy 'field' without id_field")
    return path


def _from_key_bytes(key: bytes | None, config: RouteConfig) -> str:
    if not key:
        raise MissingIdError(f"the record has {'no' if key is None else 'an empty'} key; id_strategy 'kafka' needs one")
    if config.id_format == "uuid":
        return uuid_for(key)
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidIdError(
            f"the record key is not valid UTF-8 ({exc.reason} at byte {exc.start}); id_format 'raw' needs a text key"
        ) from None
    return _check_length(text)


def _text_from_key(key: bytes | None, path: FieldPath) -> str:
    if not key:
        raise MissingIdError(f"the delete carries no row with id field {path.text!r} and no key to take it from")
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidIdError(f"the delete's key is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    # Python's json, not orjson: keys are parsed only for deletes, and it keeps integers of any size exact.
    try:
        parsed: Any = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=unique_object)
    except DuplicateKey as exc:
        raise InvalidIdError(f"the delete's key is a JSON object with the key {exc.key!r} more than once") from None
    except (ValueError, RecursionError):
        return text  # not JSON: the key's own text
    if type(parsed) is dict:
        if parsed.keys() == {"schema", "payload"} and type(parsed["payload"]) is dict:
            parsed = parsed["payload"]
        value = path.lookup(parsed)
        if value is MISSING or value is None:
            raise MissingIdError(f"the delete's key is a JSON object without the id field {path.text!r}")
        return field_text(value, path.text, exact=True)
    kind = type(parsed)
    if kind is str or kind is int or kind is bool:
        return field_text(parsed, path.text, exact=True)
    return text  # a JSON float, array or null: the key's own text


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _format_text(text: str, config: RouteConfig) -> str:
    if not text:
        raise MissingIdError("the id is an empty string")
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        # Python's json reads "\ud800" (keys are parsed with it) into a str no UTF-8 encoder takes: hashing it, or
        # handing it to Flink's string coder as a raw id, would fail the job instead of this one record.
        raise InvalidIdError(
            f"the id is not valid Unicode (a lone surrogate {text[exc.start]!r} at character {exc.start}); "
            "ids must be UTF-8 text"
        ) from None
    if config.id_format == "uuid":
        return uuid_for(encoded)
    return _check_length(text)


def _check_length(text: str) -> str:
    if len(text) > MAX_ID_CHARS:
        raise IdTooLongError(f"id is {len(text)} characters long, more than Pinecone's {MAX_ID_CHARS}")
    return text
