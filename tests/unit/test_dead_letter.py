from __future__ import annotations

import pytest

from kafka_pinecone_flink.sinks.dead_letter import DLQ_HEADER_NAMES, from_kafka, scrub, to_kafka
from kafka_pinecone_flink.udfs.errors import MAX_MESSAGE_CHARS
from kafka_pinecone_flink.udfs.records import DeadLetter, SourceRecord

pytestmark = pytest.mark.unit

KEY = "pcsk_7Yq2secretVALUE_99"


def dead_letter(
    *,
    headers: tuple[tuple[str, bytes | None], ...] = (("trace", b"abc"), ("empty", None)),
    timestamp_ms: int | None = 1_700_000_000_123,
    message: str = "Pinecone rejected it: ApiError (HTTP 400): bad vector",
    key: bytes | None = b"\x00key",
    value: bytes | None = b'{"id": "a"}',
) -> DeadLetter:
    source = SourceRecord("docs", 3, 42, timestamp_ms, key, value, headers)
    return DeadLetter(source, "PineconeRejectedError", message, "sink")


def test_the_dead_letter_keeps_the_original_key_value_and_headers_byte_for_byte() -> None:
    key, value, headers = to_kafka(dead_letter())
    assert key == b"\x00key"
    assert value == b'{"id": "a"}'
    assert headers[:2] == [("trace", b"abc"), ("empty", None)]


def test_the_error_context_is_appended_as_kpf_headers() -> None:
    _, _, headers = to_kafka(dead_letter())
    assert headers[2:] == [
        ("kpf.error.class", b"PineconeRejectedError"),
        ("kpf.error.message", b"Pinecone rejected it: ApiError (HTTP 400): bad vector"),
        ("kpf.error.stage", b"sink"),
        ("kpf.source.topic", b"docs"),
        ("kpf.source.partition", b"3"),
        ("kpf.source.offset", b"42"),
        ("kpf.source.timestamp", b"1700000000123"),
    ]


def test_a_missing_source_timestamp_is_an_empty_header_value() -> None:
    _, _, headers = to_kafka(dead_letter(timestamp_ms=None))
    assert headers[-1] == ("kpf.source.timestamp", b"")


@pytest.mark.parametrize("timestamp_ms", [1_700_000_000_123, None])
def test_from_kafka_reverses_to_kafka(timestamp_ms: int | None) -> None:
    original = dead_letter(timestamp_ms=timestamp_ms)
    assert from_kafka(*to_kafka(original)) == original


def test_a_tombstone_with_no_key_round_trips() -> None:
    original = dead_letter(key=None, value=None, headers=())
    assert from_kafka(*to_kafka(original)) == original


def test_a_dead_letter_dead_lettered_again_carries_the_newest_context_only() -> None:
    first = dead_letter()
    key, value, headers = to_kafka(first)
    replayed = SourceRecord("docs-dlq", 0, 7, 5, key, value, tuple(headers))
    second = DeadLetter(replayed, "NamespaceMissingError", "namespace gone", "sink")
    decoded = from_kafka(*to_kafka(second))
    assert (decoded.error_class, decoded.message, decoded.stage) == ("NamespaceMissingError", "namespace gone", "sink")
    assert (decoded.source.topic, decoded.source.offset) == ("docs-dlq", 7)
    assert not any(name.startswith("kpf.") for name, _ in decoded.source.headers)
    assert decoded.source.headers == first.source.headers


def test_header_order_does_not_matter_because_the_table_sink_writes_a_map() -> None:
    original = dead_letter()
    key, value, headers = to_kafka(original)
    assert from_kafka(key, value, list(reversed(headers))).source.headers == tuple(reversed(original.source.headers))
    assert from_kafka(key, value, list(reversed(headers))).error_class == original.error_class


def test_a_record_without_the_context_headers_is_not_a_dead_letter() -> None:
    with pytest.raises(ValueError, match=r"not a dead-letter record: headers \['kpf\.error\.class'"):
        from_kafka(b"k", b"v", [("trace", b"abc")])


def test_a_dead_letter_with_a_non_numeric_offset_is_refused() -> None:
    key, value, headers = to_kafka(dead_letter())
    headers[DLQ_HEADER_NAMES.index("kpf.source.offset") - len(DLQ_HEADER_NAMES)] = ("kpf.source.offset", b"x1")
    with pytest.raises(ValueError, match=r"'kpf\.source\.offset' must be a decimal integer, got 'x1'"):
        from_kafka(key, value, headers)


def test_a_dead_letter_with_an_unknown_stage_is_refused() -> None:
    key, value, headers = to_kafka(dead_letter())
    headers[DLQ_HEADER_NAMES.index("kpf.error.stage") - len(DLQ_HEADER_NAMES)] = ("kpf.error.stage", b"moon")
    with pytest.raises(ValueError, match=r"'kpf\.error\.stage' must be one of"):
        from_kafka(key, value, headers)


def test_scrub_removes_a_known_secret_wherever_it_appears() -> None:
    assert scrub(f"request failed with key={KEY}!", [KEY]) == "request failed with key=***!"
    assert KEY not in scrub(f"x{KEY}y", [KEY])


@pytest.mark.parametrize(
    "text",
    [
        "headers: {'Api-Key': 'abcd1234efgh', 'User-Agent': 'x'}",
        'sent "api-key": "abcd1234efgh"',
        "Authorization: Bearer abcd1234efgh",
        "api_key=abcd1234efgh&x=1",
    ],
)
def test_scrub_masks_credential_shaped_text_even_for_an_unknown_secret(text: str) -> None:
    scrubbed = scrub(text)
    assert "abcd1234efgh" not in scrubbed
    assert "***" in scrubbed


def test_scrub_masks_pinecone_shaped_keys() -> None:
    assert scrub(f"unknown key {KEY} used") == "unknown key pcsk_*** used"


def test_scrub_leaves_ordinary_messages_alone() -> None:
    text = "Vector dimension 3 does not match the dimension of the index 8; the api key header was fine"
    assert scrub(text, ["abc"]) == text  # secrets shorter than 4 characters are not searched for


def test_scrub_truncates_long_messages_for_a_kafka_header() -> None:
    assert len(scrub("x" * 5_000)) == MAX_MESSAGE_CHARS


def test_to_kafka_scrubs_the_message_whichever_stage_wrote_it() -> None:
    _, _, headers = to_kafka(dead_letter(message=f"server said: invalid api-key: {KEY}"), secrets=[KEY])
    message = dict(headers)["kpf.error.message"]
    assert message is not None
    assert KEY.encode() not in message
    assert message.startswith(b"server said: invalid api-key: ***")
