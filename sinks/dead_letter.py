"""The dead-letter topic's record format, and the scrubbing of secrets from error messages.

A dead letter keeps the original Kafka key, value and headers byte for byte, so a replay tool can re-publish it
unchanged, and appends exactly ``DLQ_HEADER_NAMES`` with the error context. ``from_kafka`` reverses ``to_kafka``; it
reads the context by header name (the last occurrence wins), because the Kafka table sink that writes the dead-letter
topic stores headers as a map: header order is not kept, and a header name repeated in one record keeps one value.
So a dead letter that is replayed and dead-lettered again carries the newest context only.

Header values are UTF-8 text; partition and offset are decimal; the timestamp is decimal milliseconds, or empty when
the source record had none.

Size: a dead letter is its source record plus the context headers, so a source record close to the dead-letter
topic's ``max.message.bytes`` would not fit as it is (the producer or the broker would refuse it and fail the job).
``to_kafka(..., max_bytes=N)`` then replaces the value, and the key and the original headers if still needed, by a
prefix of what fits, and says so in ``kpf.truncated`` (e.g. ``value`` or ``value,key``) with the original sizes
(``kpf.original.value.size``, ``kpf.original.key.size``, ``kpf.original.headers.size``) and the value's SHA-256
(``kpf.original.value.sha256``); the coordinates in ``kpf.source.*`` find the original record. A truncated dead
letter cannot be replayed (``from_kafka`` refuses it): its bytes are not the original ones.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import cast, get_args

from kafka_pinecone_flink.udfs.errors import MAX_MESSAGE_CHARS
from kafka_pinecone_flink.udfs.records import DeadLetter, SourceRecord, Stage

HEADER_PREFIX = "kpf."
H_ERROR_CLASS = "kpf.error.class"
H_ERROR_MESSAGE = "kpf.error.message"
H_STAGE = "kpf.error.stage"
H_TOPIC = "kpf.source.topic"
H_PARTITION = "kpf.source.partition"
H_OFFSET = "kpf.source.offset"
H_TIMESTAMP = "kpf.source.timestamp"
DLQ_HEADER_NAMES = (H_ERROR_CLASS, H_ERROR_MESSAGE, H_STAGE, H_TOPIC, H_PARTITION, H_OFFSET, H_TIMESTAMP)
H_TRUNCATED = "kpf.truncated"
H_ORIGINAL_VALUE_SIZE = "kpf.original.value.size"
H_ORIGINAL_VALUE_SHA256 = "kpf.original.value.sha256"
H_ORIGINAL_KEY_SIZE = "kpf.original.key.size"
H_ORIGINAL_HEADERS_SIZE = "kpf.original.headers.size"
H_REFETCH_VALUE = "kpf.refetch.value"
"""Set on a change's record by the JVM decode path in place of its value (``SourceRecord.withoutValue`` in
jvm/src): a dead letter of that change has it, and the job's ``Dead-letter values`` operator (``ValueRefetch``) reads
the value back from Kafka at the ``kpf.source.*`` coordinates and drops it, before the dead-letter topic."""
TRUNCATION_HEADER_NAMES = (
    H_TRUNCATED,
    H_ORIGINAL_VALUE_SIZE,
    H_ORIGINAL_VALUE_SHA256,
    H_ORIGINAL_KEY_SIZE,
    H_ORIGINAL_HEADERS_SIZE,
)

KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1_048_588
"""The broker's default ``message.max.bytes`` (and so a topic's default ``max.message.bytes``): 1 MiB + 12."""
RECORD_MARGIN_BYTES = 1_024
"""Room left below the topic's limit for what Kafka adds around a record (batch header 61 bytes, record and header
length varints, attributes, timestamp and offset deltas): ``record_size`` counts the bytes that vary, this the rest."""
STAGES: tuple[str, ...] = get_args(Stage)

REDACTED = "***"
MIN_SECRET_CHARS = 4
"""Shorter "secrets" are not searched for: replacing every "ab" in a message would destroy it and protect nothing."""

# Anything shaped like a credential header or parameter ("Api-Key: x", "api_key='x'", "Authorization: Bearer x"),
# and Pinecone's key format ("pcsk_..."), whoever wrote it into a message.
_CREDENTIAL = re.compile(
    r"(?i)\b(api[-_]?key|authorization|proxy-authorization)(['\"]?\s*[:=]\s*)(bearer\s+|basic\s+)?"
    r"['\"]?[^\s'\",;)}\]]+"
)
_PINECONE_KEY = re.compile(r"\bpcsk_[A-Za-z0-9_\-]+")

Headers = list[tuple[str, bytes | None]]


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every one of ``secrets`` of at least ``MIN_SECRET_CHARS`` replaced by ``***``, longest first (so
    that a secret holding a shorter one is replaced whole)."""
    for secret in sorted((s for s in secrets if s and len(s) >= MIN_SECRET_CHARS), key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` without any of ``secrets`` and without anything shaped like a credential, at most 1000 characters."""
    text = redact(text, secrets)
    if "pcsk_" in text:
        text = _PINECONE_KEY.sub("pcsk_" + REDACTED, text)
    text = _CREDENTIAL.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3) or ''}{REDACTED}", text)
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


def dead_letter_max_bytes(max_message_bytes: int = KAFKA_DEFAULT_MAX_MESSAGE_BYTES) -> int:
    """The largest ``record_size`` of a dead letter for a topic whose ``max.message.bytes`` is the argument."""
    return max(max_message_bytes - RECORD_MARGIN_BYTES, 1)


_HEADER_OVERHEAD = 10
"""Per header: the varints of its name and value lengths (at most 5 bytes each)."""


def record_size(key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, bytes | None]]) -> int:
    """The bytes of a Kafka record that depend on its content (key, value, header names and values)."""
    size = len(key or b"") + len(value or b"")
    for name, data in headers:
        size += len(name.encode()) + len(data or b"") + _HEADER_OVERHEAD
    return size


def to_kafka(
    dead_letter: DeadLetter, secrets: Iterable[str | None] = (), max_bytes: int | None = None
) -> tuple[bytes | None, bytes | None, Headers]:
    """The dead-letter topic record for ``dead_letter``: original key and value, original headers plus the context.

    The message is scrubbed once more here (of ``secrets`` and of credential-shaped text), whichever stage wrote it.
    With ``max_bytes``, a record whose ``record_size`` would exceed it is truncated (see the module's doc).
    """
    source = dead_letter.source
    timestamp = b"" if source.timestamp_ms is None else str(source.timestamp_ms).encode()
    headers: Headers = list(source.headers)
    headers += [
        (H_ERROR_CLASS, dead_letter.error_class.encode()),
        (H_ERROR_MESSAGE, scrub(dead_letter.message, secrets).encode()),
        (H_STAGE, dead_letter.stage.encode()),
        (H_TOPIC, source.topic.encode()),
        (H_PARTITION, str(source.partition).encode()),
        (H_OFFSET, str(source.offset).encode()),
        (H_TIMESTAMP, timestamp),
    ]
    if max_bytes is None or record_size(source.key, source.value, headers) <= max_bytes:
        return source.key, source.value, headers
    return _truncated(source.key, source.value, list(source.headers), headers[len(source.headers) :], max_bytes)


def _truncated(
    key: bytes | None, value: bytes | None, original_headers: Headers, context: Headers, max_bytes: int
) -> tuple[bytes | None, bytes | None, Headers]:
    """Cut the value, then the key, then drop the original headers, until the record fits in ``max_bytes``."""
    parts: list[str] = []
    notes: Headers = []
    if value is not None:
        notes += [
            (H_ORIGINAL_VALUE_SIZE, str(len(value)).encode()),
            (H_ORIGINAL_VALUE_SHA256, hashlib.sha256(value).hexdigest().encode()),
        ]
    if key is not None:
        notes.append((H_ORIGINAL_KEY_SIZE, str(len(key)).encode()))
    headers_size = record_size(None, None, original_headers)
    notes.append((H_ORIGINAL_HEADERS_SIZE, str(headers_size).encode()))
    marker_room = len(H_TRUNCATED) + len("value,key,headers") + _HEADER_OVERHEAD

    def room(kept_key: bytes | None, kept_headers: Headers) -> int:
        return max_bytes - marker_room - record_size(kept_key, None, [*kept_headers, *context, *notes])

    full_value = value
    if value is not None:
        parts.append("value")
        value = value[: max(room(key, original_headers), 0)]
    if room(key, original_headers) < 0 and key is not None:
        parts.append("key")
        key = key[: max(len(key) + room(key, original_headers), 0)]
    if room(key, original_headers) < 0 and original_headers:
        parts.append("headers")
        original_headers = []
        if full_value is not None:  # what the headers took goes back to the value
            value = full_value[: max(room(key, []), 0)]
    marker: Headers = [(H_TRUNCATED, ",".join(parts).encode())]
    return key, value, [*original_headers, *context, *marker, *notes]


def _text(name: str, value: bytes | None) -> str:
    if value is None:
        raise ValueError(f"dead-letter header {name!r} has no value")
    return value.decode("utf-8", errors="replace")


def _integer(name: str, value: bytes | None) -> int:
    text = _text(name, value)
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"dead-letter header {name!r} must be a decimal integer, got {text!r}") from None


def from_kafka(key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, bytes | None]]) -> DeadLetter:
    """The ``DeadLetter`` a dead-letter topic record was written from; raises ``ValueError`` if it is not one."""
    all_headers = list(headers)
    # By name, last occurrence wins: the Kafka table sink writes headers as a map, so their order is not kept.
    context = {name: value for name, value in all_headers if name in DLQ_HEADER_NAMES}
    missing = [name for name in DLQ_HEADER_NAMES if name not in context]
    if missing:
        raise ValueError(f"not a dead-letter record: headers {missing} are missing")
    truncated = [value for name, value in all_headers if name == H_TRUNCATED]
    if truncated:
        raise ValueError(
            f"a truncated dead letter ({H_TRUNCATED}={_text(H_TRUNCATED, truncated[-1])}): its key, value or headers "
            "are not the original ones; read the original at its kpf.source.* coordinates"
        )
    stage = _text(H_STAGE, context[H_STAGE])
    if stage not in STAGES:
        raise ValueError(f"dead-letter header {H_STAGE!r} must be one of {list(STAGES)}, got {stage!r}")
    raw_timestamp = context[H_TIMESTAMP]
    source = SourceRecord(
        topic=_text(H_TOPIC, context[H_TOPIC]),
        partition=_integer(H_PARTITION, context[H_PARTITION]),
        offset=_integer(H_OFFSET, context[H_OFFSET]),
        timestamp_ms=_integer(H_TIMESTAMP, raw_timestamp) if raw_timestamp else None,
        key=key,
        value=value,
        headers=tuple((name, data) for name, data in all_headers if name not in DLQ_HEADER_NAMES),
    )
    return DeadLetter(
        source=source,
        error_class=_text(H_ERROR_CLASS, context[H_ERROR_CLASS]),
        message=_text(H_ERROR_MESSAGE, context[H_ERROR_MESSAGE]),
        stage=cast(Stage, stage),
    )
