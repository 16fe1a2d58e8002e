"""The decode stage end to end: record shapes, deletes, text, versions, hashes, and bad input of every kind."""

from __future__ import annotations

import json
import random
import re
import struct
import uuid
from datetime import UTC, datetime
from hashlib import blake2b, sha256
from typing import Any

import orjson
import pytest

from kafka_pinecone_flink.udfs.decode import DELETE_IGNORED, TOMBSTONE_IGNORED, Skip, decode, parse_version
from kafka_pinecone_flink.udfs.decode_errors import (
    DimensionMismatchError,
    DuplicateKeyError,
    EmptyValueError,
    InvalidEnvelopeError,
    InvalidIdError,
    InvalidJsonError,
    InvalidNamespaceError,
    InvalidSparseVectorError,
    InvalidVectorError,
    InvalidVersionError,
    MissingIdError,
    MissingVectorError,
    MissingVersionError,
    NonFiniteVectorError,
    NotAnObjectError,
    UnaddressableDeleteError,
    UnsupportedOperationError,
    ZeroVectorError,
)
from kafka_pinecone_flink.udfs.dedup import dedup_row
from kafka_pinecone_flink.udfs.errors import RecordError
from kafka_pinecone_flink.udfs.ids import ID_NAMESPACE
from kafka_pinecone_flink.udfs.records import DELETE, UPSERT, Change, SourceRecord, SparseVector
from kafka_pinecone_flink.udfs.route_config import RouteConfig

pytestmark = pytest.mark.unit

VECTOR = [0.1, 0.2, 0.3]


def config(**options: Any) -> RouteConfig:
    return RouteConfig(dimension=3, metric="cosine", **options)


DEFAULT = config()
BY_FIELD = config(id_strategy="field", id_field="id", id_format="raw")


def record(value: Any, key: bytes | None = b"k-1", topic: str = "docs") -> SourceRecord:
    """A source record; ``value`` is JSON-encoded unless it is bytes or None."""
    raw = value if value is None or isinstance(value, bytes) else orjson.dumps(value)
    return SourceRecord(topic=topic, partition=0, offset=5, timestamp_ms=1, key=key, value=raw)


def change(value: Any, cfg: RouteConfig = DEFAULT, key: bytes | None = b"k-1", topic: str = "docs") -> Change:
    result = decode(record(value, key, topic), cfg)
    assert isinstance(result, Change), result
    return result


def uuid_of(text: str) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, text))


# --- plain records ------------------------------------------------------------------------------------------------


def test_a_plain_record_becomes_an_upsert_with_id_namespace_vector_and_metadata() -> None:
    source = record({"values": VECTOR, "title": "hello", "n": 3})
    result = decode(source, DEFAULT)
    assert isinstance(result, Change)
    assert (result.op, result.namespace, result.id) == (UPSERT, "docs", uuid_of("k-1"))
    assert result.values == VECTOR
    assert result.metadata == {"title": "hello", "n": 3}
    assert result.source is source
    assert result.text is None and result.text_hash is None and result.version is None and result.sparse is None
    assert len(result.content_hash) == 16


def test_a_vector_given_as_a_json_string_is_accepted() -> None:
    assert change({"values": "[0.1, 0.2, 0.3]"}).values == VECTOR


def test_a_sparse_vector_is_decoded_and_kept_out_of_metadata() -> None:
    cfg = config(sparse_field="sparse")
    result = change({"values": VECTOR, "sparse": {"indices": [5, 1], "values": [0.5, 0.25]}, "a": 1}, cfg)
    assert result.sparse == SparseVector((5, 1), (0.5, 0.25))
    assert result.metadata == {"a": 1}


def test_the_namespace_comes_from_the_template_and_the_map() -> None:
    cfg = config(namespace_template="pinecone_${topic}", namespace_map={"special": "vip"})
    assert change({"values": VECTOR}, cfg, topic="orders").namespace == "pinecone_orders"
    assert change({"values": VECTOR}, cfg, topic="special").namespace == "vip"


def test_a_topic_rendering_an_invalid_namespace_is_rejected() -> None:
    with pytest.raises(InvalidNamespaceError, match="non-printable characters"):
        decode(record({"values": VECTOR}, topic="bad\x00topic"), DEFAULT)


# --- bad values ---------------------------------------------------------------------------------------------------


def test_an_empty_value_is_rejected_as_empty_not_as_a_delete() -> None:
    with pytest.raises(EmptyValueError, match="the record value is empty"):
        decode(record(b""), DEFAULT)


def test_invalid_json_is_rejected_with_the_parsers_reason() -> None:
    with pytest.raises(InvalidJsonError, match=r"not valid JSON: .* at line 1 column"):
        decode(record(b'{"values": [0.1, 0.2'), DEFAULT)


def test_invalid_utf8_is_rejected_as_invalid_json() -> None:
    with pytest.raises(InvalidJsonError, match="not valid UTF-8"):
        decode(record(b'{"t": "\xff"}'), DEFAULT)


@pytest.mark.parametrize("word", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_or_infinity_in_a_vector_array_is_rejected_and_named(word: bytes) -> None:
    value = b'{"values": [0.1, ' + word + b", 0.3]}"
    with pytest.raises(InvalidJsonError, match="NaN and Infinity are not valid JSON numbers"):
        decode(record(value), DEFAULT)


def test_nan_in_a_vector_string_is_rejected_as_non_finite() -> None:
    with pytest.raises(NonFiniteVectorError, match="element 1 is nan, not a finite number"):
        decode(record({"values": "[0.1, NaN, 0.3]"}), DEFAULT)


def test_a_number_too_large_for_a_double_is_rejected() -> None:
    with pytest.raises(InvalidJsonError, match="holds the number 1e400, out of the range of a 64-bit float"):
        decode(record(b'{"values": [1e400, 0.2, 0.3]}'), DEFAULT)


@pytest.mark.parametrize(("value", "kind"), [([1, 2], "array"), ("x", "string"), (5, "number"), (None, "null")])
def test_json_that_is_not_an_object_is_rejected(value: Any, kind: str) -> None:
    with pytest.raises(NotAnObjectError, match=f"the record value is a JSON {kind}, not an object"):
        decode(record(orjson.dumps(value)), DEFAULT)


def test_a_wrong_dimension_is_rejected() -> None:
    with pytest.raises(DimensionMismatchError, match="Vector dimension 2 does not match the dimension of the index 3"):
        decode(record({"values": [0.1, 0.2]}), DEFAULT)


def test_an_all_zero_vector_is_rejected_for_cosine_and_accepted_otherwise() -> None:
    with pytest.raises(ZeroVectorError, match="all-zero"):
        decode(record({"values": [0, 0, 0]}), DEFAULT)
    for metric in ("dotproduct", "euclidean"):
        assert change({"values": [0, 0, 0]}, RouteConfig(dimension=3, metric=metric)).values == [0.0, 0.0, 0.0]


def test_a_record_without_a_vector_is_rejected_when_no_text_is_configured() -> None:
    with pytest.raises(MissingVectorError, match="no vector in field 'values' and no text fields are configured"):
        decode(record({"title": "x"}), DEFAULT)
    with pytest.raises(MissingVectorError, match="no vector in field 'values'"):
        decode(record({"values": None, "title": "x"}), DEFAULT)


def test_a_missing_key_is_rejected_for_kafka_ids() -> None:
    with pytest.raises(MissingIdError, match="no key"):
        decode(record({"values": VECTOR}, key=None), DEFAULT)


def test_a_missing_id_field_is_rejected() -> None:
    with pytest.raises(MissingIdError, match="no id field 'id'"):
        decode(record({"values": VECTOR}), BY_FIELD)


# --- text ---------------------------------------------------------------------------------------------------------


def test_text_fields_are_joined_by_newlines_and_hashed_for_embedding() -> None:
    cfg = config(text_fields=("title", "body"))
    result = change({"title": "Hello", "body": "World", "n": 1}, cfg)
    assert result.text == "Hello\nWorld"
    assert result.values is None
    assert result.text_hash == blake2b(b"Hello\nWorld", digest_size=16).digest()
    assert result.metadata == {"title": "Hello", "body": "World", "n": 1}


def test_missing_null_and_empty_text_fields_are_skipped() -> None:
    cfg = config(text_fields=("a", "b", "c", "d"))
    assert change({"b": None, "c": "", "d": "only"}, cfg).text == "only"


def test_non_string_text_fields_contribute_their_json_text() -> None:
    cfg = config(text_fields=("n", "tags"))
    assert change({"n": 3, "tags": ["x", "y"]}, cfg).text == '3\n["x","y"]'


def test_a_record_with_neither_vector_nor_text_is_rejected() -> None:
    cfg = config(text_fields=("title",))
    with pytest.raises(MissingVectorError, match=r"no vector in field 'values' and no text in fields \['title'\]"):
        decode(record({"title": "   "}), cfg)


def test_a_text_template_is_rendered_with_missing_fields_as_empty() -> None:
    cfg = config(text_template="${title}. ${description}")
    assert change({"title": "A", "description": "B"}, cfg).text == "A. B"
    assert change({"title": "A"}, cfg).text == "A. "
    with pytest.raises(MissingVectorError, match="no text in template"):
        decode(record({"other": 1}), cfg)


def test_a_vector_wins_over_text() -> None:
    result = change({"values": VECTOR, "title": "t"}, config(text_fields=("title",)))
    assert result.values == VECTOR and result.text is None and result.text_hash is None


# --- Debezium -----------------------------------------------------------------------------------------------------


def envelope(op: str, before: Any = None, after: Any = None, **extra: Any) -> dict[str, Any]:
    return {"before": before, "after": after, "op": op, "ts_ms": 1_700_000_000_123, "source": {"lsn": 42}, **extra}


@pytest.mark.parametrize("op", ["c", "r", "u"])
def test_a_debezium_create_read_or_update_upserts_the_after_row(op: str) -> None:
    value = envelope(op, before={"id": 1, "values": [9, 9, 9]}, after={"id": 1, "values": VECTOR, "t": "new"})
    result = change(value, BY_FIELD)
    assert (result.op, result.id, result.values) == (UPSERT, "1", VECTOR)
    assert result.metadata == {"id": 1, "t": "new"}


def test_a_debezium_delete_deletes_the_before_row() -> None:
    result = change(envelope("d", before={"id": 7, "t": "old"}), BY_FIELD, key=b'{"id": 99}')
    assert (result.op, result.id, result.values, result.metadata) == (DELETE, "7", None, {})


def test_a_debezium_delete_without_before_takes_the_id_from_the_key() -> None:
    assert change(envelope("d"), BY_FIELD, key=b'{"id": 7}').id == "7"


def test_a_debezium_delete_under_kafka_ids_uses_the_key() -> None:
    assert change(envelope("d", before={"id": 7}), DEFAULT, key=b"k-7").id == uuid_of("k-7")


def test_a_schema_wrapped_debezium_envelope_is_unwrapped() -> None:
    wrapped = {"schema": {"type": "struct", "fields": []}, "payload": envelope("u", after={"id": 3, "values": VECTOR})}
    result = change(wrapped, BY_FIELD)
    assert (result.op, result.id) == (UPSERT, "3")
    assert "schema" not in result.metadata and "payload" not in result.metadata


def test_a_schema_wrapped_null_payload_is_a_tombstone() -> None:
    result = change({"schema": None, "payload": None}, DEFAULT, key=b"k-2")
    assert (result.op, result.id) == (DELETE, uuid_of("k-2"))


def test_a_schema_wrapped_non_object_payload_is_rejected() -> None:
    with pytest.raises(NotAnObjectError, match="payload is a JSON array"):
        decode(record({"schema": {}, "payload": [1]}), DEFAULT)


def test_an_upsert_envelope_without_an_after_row_is_rejected() -> None:
    with pytest.raises(InvalidEnvelopeError, match="Debezium op 'c' with 'after' a JSON null, not an object"):
        decode(record(envelope("c")), DEFAULT)


@pytest.mark.parametrize("op", ["t", "m", "x"])
def test_debezium_operations_other_than_crud_are_rejected(op: str) -> None:
    with pytest.raises(UnsupportedOperationError, match=f"Debezium op '{op}' cannot be applied to one record"):
        decode(record(envelope(op)), DEFAULT)


@pytest.mark.parametrize("flag", [{"__deleted": "true"}, {"__deleted": True}, {"__op": "d"}])
def test_a_flattened_debezium_delete_flag_makes_a_delete(flag: dict[str, Any]) -> None:
    result = change({"id": 4, "values": VECTOR, **flag}, BY_FIELD)
    assert (result.op, result.id) == (DELETE, "4")


def test_flattened_control_fields_are_stripped_from_an_upsert() -> None:
    value = {"id": 4, "values": VECTOR, "t": "x", "__deleted": "false", "__op": "u", "__source_ts_ms": 1}
    result = change(value, BY_FIELD)
    assert result.op == UPSERT
    assert result.metadata == {"id": 4, "t": "x"}


@pytest.mark.parametrize(
    ("flag", "fragment"), [({"__deleted": "yes"}, "__deleted is 'yes'"), ({"__op": "t"}, "__op is 't'")]
)
def test_an_unknown_flattened_delete_flag_is_rejected(flag: dict[str, Any], fragment: str) -> None:
    with pytest.raises(UnsupportedOperationError, match=fragment):
        decode(record({"id": 4, "values": VECTOR, **flag}), BY_FIELD)


# --- tombstones and disabled deletes ------------------------------------------------------------------------------


def test_a_tombstone_is_a_delete_addressed_by_the_key() -> None:
    result = change(None, DEFAULT, key=b"k-9")
    assert (result.op, result.namespace, result.id, result.version) == (DELETE, "docs", uuid_of("k-9"), None)
    assert result.content_hash == change(None, DEFAULT, key=b"other").content_hash


def test_a_tombstone_under_field_ids_reads_the_key() -> None:
    assert change(None, BY_FIELD, key=b'{"id": 12}').id == "12"


def test_a_tombstone_without_a_key_is_rejected() -> None:
    with pytest.raises(MissingIdError, match="no key"):
        decode(record(None, key=None), DEFAULT)


def test_a_tombstone_carries_no_version_even_when_a_version_field_is_configured() -> None:
    assert change(None, config(version_field="ts_ms")).version is None


def test_a_tombstone_is_skipped_when_deletes_are_disabled() -> None:
    assert decode(record(None), config(delete_enabled=False)) == Skip(TOMBSTONE_IGNORED)


@pytest.mark.parametrize(
    "value", [envelope("d", before={"id": 1}), {"id": 1, "__deleted": "true"}, {"id": 1, "__op": "d"}]
)
def test_an_explicit_delete_is_skipped_when_deletes_are_disabled(value: dict[str, Any]) -> None:
    cfg = config(id_strategy="field", id_field="id", delete_enabled=False)
    assert decode(record(value), cfg) == Skip(DELETE_IGNORED)


def test_a_delete_under_random_ids_is_rejected() -> None:
    with pytest.raises(UnaddressableDeleteError, match="id_strategy 'none'"):
        decode(record(None), config(id_strategy="none"))


# --- ids and big numbers ------------------------------------------------------------------------------------------


def test_field_ids_with_uuid_format_follow_the_documented_derivation() -> None:
    cfg = config(id_strategy="field", id_field="doc.id")
    assert change({"values": VECTOR, "doc": {"id": 42}}, cfg).id == uuid_of("42")


def test_integers_beyond_64_bits_keep_every_digit_in_ids_metadata_and_versions() -> None:
    big = 123456789012345678901234567890
    cfg = config(id_strategy="field", id_field="id", id_format="raw", version_field="v")
    value = b'{"id": %d, "values": [0.1, 0.2, 0.3], "n": %d, "v": %d, "l": [%d]}' % (big, big, big, big)
    result = change(value, cfg)
    assert result.id == str(big)
    assert result.metadata == {"id": str(big), "n": str(big), "v": str(big), "l": [str(big)]}
    assert result.version == big


def test_a_large_float_literal_stays_a_float_after_the_exact_reparse() -> None:
    assert change(b'{"values": [0.1, 0.2, 0.3], "x": 1e20}').metadata == {"x": 1e20}


# --- versions -----------------------------------------------------------------------------------------------------


def test_the_version_is_read_from_the_debezium_envelope_first() -> None:
    value = envelope("u", after={"id": 1, "values": VECTOR, "ts_ms": 5})
    assert change(value, config(version_field="ts_ms")).version == 1_700_000_000_123
    assert change(value, config(version_field="source.lsn")).version == 42


def test_the_version_falls_back_to_the_row_of_an_envelope() -> None:
    value = envelope("u", after={"id": 1, "values": VECTOR, "updated_at": "2024-01-02T03:04:05.000006Z"})
    expected = int(datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC).timestamp()) * 1_000_000 + 6
    assert change(value, config(version_field="updated_at")).version == expected


def test_a_delete_carries_the_version_of_its_envelope() -> None:
    assert change(envelope("d", before={"id": 1}), config(version_field="ts_ms")).version == 1_700_000_000_123


def test_a_flattened_record_reads_its_control_version_field() -> None:
    value = {"values": VECTOR, "__source_ts_ms": 1_700_000_000_999}
    assert change(value, config(version_field="__source_ts_ms")).version == 1_700_000_000_999


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (2**62 + 1, 2**62 + 1),
        (12.5, 12.5),
        ("1700000000123", 1_700_000_000_123),
        ("-5", -5),
        ("1970-01-01T00:00:01Z", 1_000_000),
        ("1970-01-01T00:00:01", 1_000_000),
        ("1970-01-01T01:00:01+01:00", 1_000_000),
        ("1970-01-01", 0),
        ("2024-06-01T12:00:00.123456+00:00", 1_717_243_200_123_456),
    ],
)
def test_versions_parse_to_exact_numbers(raw: Any, expected: int | float) -> None:
    parsed = parse_version(raw, "v")
    assert parsed == expected
    assert type(parsed) is type(expected)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("yesterday", "holds 'yesterday', neither a number nor an ISO-8601 timestamp"),
        ("", "neither a number nor an ISO-8601 timestamp"),
        (True, "holds a JSON boolean, not a number or a timestamp"),
        ({"a": 1}, "holds a JSON object"),
        ("9" * 5000, "too many digits"),
    ],
)
def test_an_unparseable_version_is_rejected(raw: Any, fragment: str) -> None:
    with pytest.raises(InvalidVersionError, match=fragment):
        parse_version(raw, "v")


@pytest.mark.parametrize("value", [{"values": VECTOR}, {"values": VECTOR, "ts": None}])
def test_a_missing_or_null_version_is_rejected_when_configured(value: dict[str, Any]) -> None:
    with pytest.raises(MissingVersionError, match="no version field 'ts'"):
        decode(record(value), config(version_field="ts"))


# --- hashes -------------------------------------------------------------------------------------------------------


def test_equal_content_gives_equal_hashes_whatever_the_key_order_or_number_spelling() -> None:
    first = change({"values": [1, 0, 0.5], "a": 1, "b": "x"}, key=b"one")
    second = change(b'{"b": "x", "values": [1.0, 0.0, 0.5], "a": 1}', key=b"two")
    assert first.content_hash == second.content_hash


@pytest.mark.parametrize(
    "other",
    [
        {"values": [0.1, 0.2, 0.31], "a": 1},
        {"values": VECTOR, "a": 2},
        {"values": VECTOR, "a": 1, "b": None, "c": True},
        {"values": VECTOR, "a": "1"},
    ],
)
def test_any_change_of_vector_or_metadata_changes_the_content_hash(other: dict[str, Any]) -> None:
    assert change({"values": VECTOR, "a": 1}).content_hash != change(other).content_hash


def test_the_sparse_vector_and_the_text_are_part_of_the_content_hash() -> None:
    sparse_cfg = config(sparse_field="s")
    base = change({"values": VECTOR, "s": {"indices": [1], "values": [0.5]}}, sparse_cfg)
    assert (
        base.content_hash != change({"values": VECTOR, "s": {"indices": [2], "values": [0.5]}}, sparse_cfg).content_hash
    )
    assert base.content_hash != change({"values": VECTOR}, sparse_cfg).content_hash
    text_cfg = config(text_fields=("t",), metadata_fields=())
    assert change({"t": "a"}, text_cfg).content_hash != change({"t": "b"}, text_cfg).content_hash


def test_the_content_hash_is_sha256_of_the_tagged_parts_cut_to_128_bits() -> None:
    # The JVM decoder (FastDecoder.contentHash) computes the same bytes; tests/integration/test_jvm_decode.py holds
    # the two to it on random records.
    metadata = b'{"a":1,"b":"x"}'
    expected = sha256(b"upsert\x00V" + struct.pack("<3d", *VECTOR) + b"M" + metadata).digest()[:16]
    assert change({"values": VECTOR, "b": "x", "a": 1}).content_hash == expected


def test_a_record_to_embed_keeps_its_blake2b_content_hash() -> None:
    # Changing it would embed every such record again after an upgrade (the hash is in the dedup state).
    text_cfg = config(text_fields=("t",), metadata_fields=())
    expected = blake2b(b"upsert\x00M{}Tred shoe", digest_size=16).digest()
    assert change({"t": "red shoe"}, text_cfg).content_hash == expected


def test_an_upsert_and_a_delete_never_share_a_content_hash() -> None:
    assert change({"values": VECTOR}).content_hash != change(None).content_hash


# --- robustness ---------------------------------------------------------------------------------------------------


def assert_decodes_or_rejects(source: SourceRecord, cfg: RouteConfig) -> None:
    try:
        result = decode(source, cfg)
    except RecordError as error:
        assert error.message
    else:
        assert isinstance(result, Change | Skip)
        assert_can_cross_into_flink(result)


def assert_can_cross_into_flink(result: Change | Skip) -> None:
    """What crosses into Flink and on to Pinecone must be valid Unicode (Flink strings, UTF-8 JSON)."""
    if isinstance(result, Change):
        row = dedup_row(result)
        row[0].encode("utf-8")
        result.namespace.encode("utf-8")
        orjson.dumps(result.metadata)  # raises on a str that is not valid UTF-8
        if result.text is not None:
            result.text.encode("utf-8")


FUZZ_CONFIGS = [
    DEFAULT,
    BY_FIELD,
    config(id_strategy="field", id_field="after.id", version_field="ts_ms", sparse_field="s", text_fields=("t",)),
    config(id_strategy="none", text_template="${t} ${u.v}", delete_enabled=False, metadata_fields=("a", "b.c")),
    config(id_format="raw", version_field="v", max_metadata_bytes=64),
]


def test_random_bytes_never_raise_anything_but_a_record_error() -> None:
    rng = random.Random(7)
    for _ in range(3000):
        value = rng.randbytes(rng.randrange(0, 40))
        key = rng.choice([None, b"", rng.randbytes(rng.randrange(1, 8))])
        for cfg in FUZZ_CONFIGS:
            assert_decodes_or_rejects(record(value, key=key), cfg)


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kinds = 10 if depth < 4 else 6
    choice = rng.randrange(kinds)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, -1, 3, 2**53 + 1, 2**64 - 1, 10**25, -(10**30)])
    if choice == 3:
        return rng.choice([0.0, 0.5, -2.5, 1e20, 1e-300, 1.7e308])
    if choice == 4:
        return rng.choice(
            ["", "d", "c", "true", "[0.1, 0.2, 0.3]", "[1, NaN, 2]", "2024-01-01T00:00:00Z", "$x", "x" * 600]
        )
    if choice == 5:
        return rng.choice([VECTOR, [0, 0, 0], [1, "a", 2], []])
    if choice in (6, 7):
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["values", "s", "id", "t", "u", "a", "b", "c", "op", "before", "after", "schema", "payload", "ts_ms",
            "v", "__deleted", "__op", "$bad", "", "indices", "a.b"]  # fmt: skip
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randrange(6))}


def test_random_json_never_raises_anything_but_a_record_error() -> None:
    rng = random.Random(11)
    outcomes: set[str] = set()
    for _ in range(4000):
        value = random_json(rng)
        text = json.dumps(value, separators=(",", ":")).encode()  # json: orjson refuses integers beyond 64 bits
        raw = text if rng.random() < 0.9 else text[:-1]
        keys = [None, b"k", b'{"id": 5}', b'{"schema": {}, "payload": {"after.id": "x"}}', b"\xff", LONE_SURROGATE_KEY]
        key = rng.choice(keys)
        for cfg in FUZZ_CONFIGS:
            try:
                result = decode(record(raw, key=key), cfg)
            except RecordError as error:
                outcomes.add(error.error_class)
            else:
                outcomes.add(type(result).__name__)
                assert_can_cross_into_flink(result)
    assert {"Change", "Skip", "InvalidJsonError", "NotAnObjectError", "MissingIdError", "InvalidIdError"} <= outcomes


def test_deeply_nested_json_is_rejected_not_crashed_on() -> None:
    for depth in (40, 500, 1000):
        value = b'{"values": [0.1, 0.2, 0.3], "t": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"
        for cfg in FUZZ_CONFIGS:
            assert_decodes_or_rejects(record(value), cfg)


# --- issue 15: one bad record must never stop the job -------------------------------------------------------------

LONE_SURROGATE_KEY = b'"\\ud800"'
"""A Kafka key holding the JSON string "\\ud800": Python's json reads it into a str that is not valid Unicode."""
FIELD_UUID = config(id_strategy="field", id_field="id")


@pytest.mark.parametrize("cfg", [BY_FIELD, FIELD_UUID], ids=["raw", "uuid"])
@pytest.mark.parametrize(
    "value",
    [None, {"schema": {}, "payload": None}, {"op": "d", "before": None, "after": None},
     {"op": "d", "before": {"other": 1}, "after": None}, {"__deleted": "true", "t": 1}, {"__op": "d"}],
    ids=["tombstone", "schema-tombstone", "debezium-null-before", "debezium-idless-before", "__deleted", "__op"],
)  # fmt: skip
def test_a_delete_whose_key_id_is_not_valid_unicode_is_an_invalid_id(cfg: RouteConfig, value: Any) -> None:
    with pytest.raises(InvalidIdError, match="the id is not valid Unicode"):
        decode(record(value, key=LONE_SURROGATE_KEY), cfg)


def test_every_change_decode_emits_can_cross_into_flink() -> None:
    # The dedup row's key is a Flink STRING; the pickled change is later sent to Pinecone as UTF-8 JSON.
    keys = [LONE_SURROGATE_KEY, b'{"id": "\\udfff"}', b"\xed\xa0\x80", b'"\\ud83d\\ude00"', b"ok"]
    values: list[Any] = [
        None,
        {"op": "d", "before": None, "after": None},
        {"__deleted": True},
        {"id": "x", "values": VECTOR},
    ]
    for cfg in [*FUZZ_CONFIGS, FIELD_UUID]:
        for key in keys:
            for value in values:
                assert_decodes_or_rejects(record(value, key=key), cfg)


@pytest.mark.parametrize(
    "value",
    [b'{"t": "\\ud800", "values": [0.1, 0.2, 0.3]}', b'{"t": "a\\udc00b", "values": [0.1, 0.2, 0.3]}',
     b'{"\\ud800": 1, "values": [0.1, 0.2, 0.3]}', b'{"id": "\\ud800", "values": [0.1, 0.2, 0.3]}'],
)  # fmt: skip
def test_a_lone_surrogate_escape_in_a_value_is_invalid_json_naming_it(value: bytes) -> None:
    with pytest.raises(InvalidJsonError, match=r"lone UTF-16 surrogate escape .*, which is not valid Unicode"):
        decode(record(value), BY_FIELD)


def test_a_lone_surrogate_after_a_huge_integer_is_still_invalid_json() -> None:
    # orjson stops at the integer; the exact re-read must not let the surrogate through.
    value = b'{"id": 1, "big": 1' + b"0" * 400 + b', "t": "\\ud800", "values": [0.1, 0.2, 0.3]}'
    with pytest.raises(InvalidJsonError, match="not valid Unicode"):
        decode(record(value), BY_FIELD)


@pytest.mark.parametrize(
    ("value", "offset"), [(b'{"t": "\xff"}', 7), (b'\xfe{"t": 1}', 0), (b'{"t": "\xed\xa0\x80"}', 7)]
)
def test_invalid_utf8_names_the_byte_offset(value: bytes, offset: int) -> None:
    with pytest.raises(InvalidJsonError, match=rf"^the record value is not valid UTF-8 \(byte offset {offset}\)$"):
        decode(record(value), DEFAULT)


def test_an_integer_beyond_a_double_is_kept_exact_like_one_within() -> None:
    for exponent in (308, 309, 400):
        result = change(json.dumps({"id": 1, "values": VECTOR, "n": 10**exponent}).encode(), BY_FIELD)
        assert result.metadata["n"] == str(10**exponent)


def test_an_integer_beyond_a_double_can_be_an_id_and_a_version() -> None:
    cfg = config(id_strategy="field", id_field="id", id_format="raw", version_field="v")
    result = change(json.dumps({"id": 10**309, "v": 10**320, "values": VECTOR}).encode(), cfg)
    assert (result.id, result.version) == (str(10**309), 10**320)


def test_an_integer_beyond_a_double_in_a_vector_says_so() -> None:
    with pytest.raises(InvalidVectorError, match="integer too large for a float"):
        decode(record(b'{"values": [1' + b"0" * 309 + b", 0.2, 0.3]}"), DEFAULT)


@pytest.mark.parametrize("number", [b"1e400", b"-1.5e999", b"1" + b"0" * 400 + b".0"])
def test_a_float_beyond_a_double_is_out_of_range(number: bytes) -> None:
    shown = re.escape(number[:20].decode())
    pattern = rf"^the record value holds the number {shown}\S*, out of the range of a 64-bit float$"
    with pytest.raises(InvalidJsonError, match=pattern):
        decode(record(b'{"values": [0.1, 0.2, 0.3], "n": ' + number + b"}"), DEFAULT)


def test_an_integer_of_more_digits_than_python_reads_is_too_large() -> None:
    with pytest.raises(InvalidJsonError, match=r"^the record value holds an integer of more than 4300 digits$"):
        decode(record(b'{"values": [0.1, 0.2, 0.3], "n": 1' + b"0" * 5000 + b"}"), DEFAULT)


def test_a_sparse_index_from_a_big_integer_is_shown_as_that_integer() -> None:
    cfg = config(sparse_field="s")
    value = b'{"values": [0.1, 0.2, 0.3], "s": {"indices": [1' + b"0" * 30 + b'], "values": [1.0]}}'
    with pytest.raises(InvalidSparseVectorError, match=f"index 0 is {10**30}, not an integer from 0 to 4294967295"):
        decode(record(value), cfg)


@pytest.mark.parametrize("value", [1e39, -3.5e38])
def test_sparse_and_dense_values_beyond_float32_are_both_rejected(value: float) -> None:
    with pytest.raises(InvalidSparseVectorError, match="not a finite 32-bit float"):
        decode(record({"values": VECTOR, "s": {"indices": [1], "values": [value]}}), config(sparse_field="s"))
    with pytest.raises(NonFiniteVectorError, match="not a finite 32-bit float"):
        decode(record({"values": [0.1, value, 0.3]}), DEFAULT)


@pytest.mark.parametrize(
    "value",
    [{"before": None, "after": {"id": 1, "values": VECTOR}}, {"before": {"id": 1}, "after": None},
     {"before": None, "after": {"id": 1, "t": "x"}, "source": {}, "ts_ms": 1}],
)  # fmt: skip
def test_an_envelope_without_op_is_an_unsupported_operation_not_a_missing_vector(value: dict[str, Any]) -> None:
    with pytest.raises(
        UnsupportedOperationError,
        match=r"^the record looks like a Debezium envelope \('before'/'after'\) but has no 'op'",
    ):
        decode(record(value), BY_FIELD)


def test_a_row_with_before_and_after_columns_and_a_vector_is_still_a_row() -> None:
    result = change({"id": 1, "before": "x", "after": "y", "values": VECTOR}, BY_FIELD)
    assert result.metadata == {"id": 1, "before": "x", "after": "y"}


# Duplicate keys: orjson keeps the last, silently. {"__deleted": "true", "__deleted": "false"} would upsert.
@pytest.mark.parametrize(
    ("value", "key"),
    [
        (b'{"__deleted": "true", "__deleted": "false", "id": 1, "values": [0.1, 0.2, 0.3]}', "__deleted"),
        (b'{"id": 1, "values": [0.1, 0.2, 0.3], "id": 2}', "id"),
        (b'{"op": "d", "before": {"id": 1}, "after": null, "op": "c"}', "op"),
        (b'{"op": "c", "before": null, "after": {"id": 1, "values": [0.1, 0.2, 0.3], "id": 2}}', "id"),
        (b'{"schema": {}, "payload": {"id": 1}, "payload": {"id": 1, "values": [0.1, 0.2, 0.3]}}', "payload"),
        (b'{"id": 1, "values": [0.1, 0.2, 0.3], "a": {"b": 1, "b": 2}}', "b"),
        (b'{"id": 1, "values": [0.1, 0.2, 0.3], "a": [{"b": 1, "b": 2}]}', "b"),
        (b'{"id": 1, "values": [0.1, 0.2, 0.3], "t": "x", "t" :"y"}', "t"),
        (b'{"id": 1, "values": [0.1, 0.2, 0.3], "t": "x", "t"\n\t :"y"}', "t"),
        (b'{"id": 1, "values": [0.1, 0.2, 0.3], "t": "x", "\\u0074": "y"}', "t"),
        (b'{"id": 1, "values": [0.1, 0.2, 0.3], "q": "say \\":", "r": 1, "r": 2}', "r"),
    ],
)
@pytest.mark.parametrize("padded", [False, True], ids=["short", "long"])
def test_a_duplicate_key_anywhere_in_the_value_is_rejected(value: bytes, key: str, padded: bool) -> None:
    value = pad(value) if padded else value
    with pytest.raises(
        DuplicateKeyError, match=f"^the record value has a JSON object with the key {key!r} more than once$"
    ):
        decode(record(value), BY_FIELD)


def pad(value: bytes) -> bytes:
    """``value`` with a leading field that makes it longer than 2 KB (long values are checked another way)."""
    return b'{"pad": [' + b"0.5, " * 600 + b'0.5], "pad:": "a: b", ' + value[1:]


@pytest.mark.parametrize(
    "value",
    [b'{"id": 1, "values": [0.1, 0.2, 0.3], "q": "say \\": and \\":"}', b'{"id" : 1, "values" :[0.1, 0.2, 0.3]}',
     b'{"id": 1, "values": [0.1, 0.2, 0.3], "a": {"id": 1}, "b": [{"id": 2}, {"id": 3}], "c": "x:y"}',
     b'{"id": 1, "values": [0.1, 0.2, 0.3], "k\\"": 1, "k": 2}'],
)  # fmt: skip
@pytest.mark.parametrize("padded", [False, True], ids=["short", "long"])
def test_values_without_duplicate_keys_are_accepted_whatever_their_spacing_and_strings(
    value: bytes, padded: bool
) -> None:
    assert change(pad(value) if padded else value, BY_FIELD).id == "1"


def test_a_record_that_brings_its_vector_is_encoded_for_the_upsert_request_once() -> None:
    change = decode(record({"values": VECTOR, "title": "T", "tags": ["a"], "n": 3}), DEFAULT)
    assert isinstance(change, Change)
    assert change.json is not None
    assert orjson.loads(change.json) == {"id": change.id, "values": VECTOR, "metadata": change.metadata}


def test_a_record_without_metadata_sends_none() -> None:
    change = decode(record({"values": VECTOR}), DEFAULT)
    assert isinstance(change, Change) and change.json is not None
    assert orjson.loads(change.json) == {"id": change.id, "values": VECTOR}


def test_a_text_to_embed_and_a_delete_have_no_request_json_yet() -> None:
    text = decode(record({"text": "hello"}), config(text_fields=("text",)))
    delete = decode(record(None), DEFAULT)
    assert isinstance(text, Change) and text.json is None
    assert isinstance(delete, Change) and delete.json is None
