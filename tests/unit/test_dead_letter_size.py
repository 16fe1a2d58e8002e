"""Dead letters that would not fit the dead-letter topic: truncated, marked, never refused by Kafka."""

from __future__ import annotations

import hashlib

import pytest

from kafka_pinecone_flink.sinks.dead_letter import (
    KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
    dead_letter_max_bytes,
    from_kafka,
    record_size,
    to_kafka,
)
from kafka_pinecone_flink.udfs.records import DeadLetter, SourceRecord

pytestmark = pytest.mark.unit

LIMIT = dead_letter_max_bytes(KAFKA_DEFAULT_MAX_MESSAGE_BYTES)


def dead_letter(value: bytes | None, key: bytes | None = b"k", headers: tuple = (("trace", b"t"),)) -> DeadLetter:
    source = SourceRecord("docs", 0, 7, 1_700_000_000_000, key, value, headers)
    return DeadLetter(source, "MetadataTooLargeError", "metadata is 1048000 bytes", "decode")


def test_the_default_limit_is_kafkas_default_message_size_less_a_margin() -> None:
    assert 1_040_000 < LIMIT < KAFKA_DEFAULT_MAX_MESSAGE_BYTES


def test_a_dead_letter_that_fits_is_unchanged() -> None:
    letter = dead_letter(b"x" * 1000)
    assert to_kafka(letter, max_bytes=LIMIT) == to_kafka(letter)


def test_a_value_near_kafkas_limit_is_cut_to_fit_and_marked() -> None:
    value = b"v" * 1_048_300
    assert record_size(*to_kafka(dead_letter(value))) > LIMIT  # as it is, it would not fit
    key, cut, headers = to_kafka(dead_letter(value), max_bytes=LIMIT)
    named = dict(headers)
    assert record_size(key, cut, headers) <= LIMIT
    assert key == b"k" and cut is not None and value.startswith(cut) and len(cut) > LIMIT - 2_000
    assert named["kpf.truncated"] == b"value"
    assert named["kpf.original.value.size"] == b"1048300"
    assert named["kpf.original.value.sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert named["trace"] == b"t"  # original headers kept when the value alone makes room
    assert (named["kpf.source.topic"], named["kpf.source.offset"]) == (b"docs", b"7")


def test_a_huge_key_is_cut_too_and_the_value_emptied() -> None:
    key, value, headers = to_kafka(dead_letter(b"v" * 10, key=b"k" * 2_000_000), max_bytes=LIMIT)
    named = dict(headers)
    assert record_size(key, value, headers) <= LIMIT
    assert named["kpf.truncated"] == b"value,key" and named["kpf.original.key.size"] == b"2000000"
    assert value == b"" and key is not None and len(key) > LIMIT - 2_000


def test_huge_original_headers_are_dropped_last() -> None:
    headers_in = (("big", b"h" * 2_000_000),)
    key, value, headers = to_kafka(dead_letter(b"v" * 500, headers=headers_in), max_bytes=LIMIT)
    named = dict(headers)
    assert record_size(key, value, headers) <= LIMIT
    assert "big" not in named and named["kpf.truncated"] == b"value,key,headers"
    assert value == b"v" * 500 and key == b""  # what the headers took went back to the value


def test_a_tombstone_with_a_huge_key_is_marked_key() -> None:
    key, value, headers = to_kafka(dead_letter(None, key=b"k" * 2_000_000), max_bytes=LIMIT)
    assert value is None and dict(headers)["kpf.truncated"] == b"key"
    assert record_size(key, value, headers) <= LIMIT


def test_a_truncated_dead_letter_cannot_be_replayed() -> None:
    with pytest.raises(ValueError, match="truncated dead letter"):
        from_kafka(*to_kafka(dead_letter(b"v" * 1_048_300), max_bytes=LIMIT))
