"""The dead-letter topic's record format, and the scrubbing of secrets from error messages.

A dead letter keeps the original Kafka key, value and headers byte for byte, so a replay tool can re-publish it
unchanged, and appends exactly ``DLQ_HEADER_NAMES`` with the error context. ``from_kafka`` reverses ``to_kafka``; it
reads the context by header name (the last occurrence wins), because the Kafka table sink that writes the dead-letter
topic stores headers as a map: header order is not kept, and a header name repeated in one record keeps one value.
So a dead letter that is replayed and dead-lettered again carries the newest context only.

Header values are UTF-8 text; partition and offset are decimal; the timestamp is decimal milliseconds, or empty when
the source record had none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import cast, get_args

from udfs.errors import MAX_MESSAGE_CHARS
from udfs.records import DeadLetter, SourceRecord, Stage

HEADER_PREFIX = "kpf."
H_ERROR_CLASS = "kpf.error.class"
H_ERROR_MESSAGE = "kpf.error.message"
H_STAGE = "kpf.error.stage"
H_TOPIC = "kpf.source.topic"
H_PARTITION = "kpf.source.partition"
H_OFFSET = "kpf.source.offset"
H_TIMESTAMP = "kpf.source.timestamp"
DLQ_HEADER_NAMES = (H_ERROR_CLASS, H_ERROR_MESSAGE, H_STAGE, H_TOPIC, H_PARTITION, H_OFFSET, H_TIMESTAMP)
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


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` without any of ``secrets`` and without anything shaped like a credential, at most 1000 characters."""
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET_CHARS and secret in text:
            text = text.replace(secret, REDACTED)
    if "pcsk_" in text:
        text = _PINECONE_KEY.sub("pcsk_" + REDACTED, text)
    text = _CREDENTIAL.sub(lambda m: f"{m.group(1)}{m.group(2)}{m.group(3) or ''}{REDACTED}", text)
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


def to_kafka(dead_letter: DeadLetter, secrets: Iterable[str | None] = ()) -> tuple[bytes | None, bytes | None, Headers]:
    """The dead-letter topic record for ``dead_letter``: original key and value, original headers plus the context.

    The message is scrubbed once more here (of ``secrets`` and of credential-shaped text), whichever stage wrote it.
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
    return source.key, source.value, headers


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
