"""Id strategies and formats; the UUID derivation is pinned against the standard library's uuid5."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest

from kafka_pinecone_flink.udfs.decode_errors import (
    IdTooLongError,
    InvalidIdError,
    MissingIdError,
    UnaddressableDeleteError,
)
from kafka_pinecone_flink.udfs.ids import ID_NAMESPACE, delete_id, field_text, upsert_id, uuid_for
from kafka_pinecone_flink.udfs.metadata import InexactNumberError
from kafka_pinecone_flink.udfs.route_config import RouteConfig

pytestmark = pytest.mark.unit


def config(**options: Any) -> RouteConfig:
    return RouteConfig(dimension=3, metric="cosine", **options)


KAFKA_UUID = config()
KAFKA_RAW = config(id_format="raw")
FIELD_UUID = config(id_strategy="field", id_field="id")
FIELD_RAW = config(id_strategy="field", id_field="id", id_format="raw")
NONE = config(id_strategy="none")


def test_the_project_namespace_is_derived_as_documented() -> None:
    assert uuid.uuid5(uuid.NAMESPACE_URL, "urn:kafka-pinecone-flink:record-id") == ID_NAMESPACE


def test_uuid_for_matches_the_standard_uuid5_for_utf8_names() -> None:
    for name in ["doc-1", "", "héllo wörld", "x" * 1000]:
        assert uuid_for(name.encode()) == str(uuid.uuid5(ID_NAMESPACE, name))


def test_uuid_for_hashes_arbitrary_key_bytes_as_documented() -> None:
    key = b"\xff\x00\xfe binary"
    expected = uuid.UUID(bytes=hashlib.sha1(ID_NAMESPACE.bytes + key).digest()[:16], version=5)
    assert uuid_for(key) == str(expected)
    assert uuid.UUID(uuid_for(key)).version == 5


def test_kafka_uuid_ids_are_the_uuid5_of_the_key_bytes() -> None:
    assert upsert_id(b"order-42", {}, KAFKA_UUID) == str(uuid.uuid5(ID_NAMESPACE, "order-42"))


def test_kafka_raw_ids_are_the_key_text() -> None:
    assert upsert_id("clé-1".encode(), {}, KAFKA_RAW) == "clé-1"


def test_an_invalid_utf8_key_is_rejected_for_raw_ids() -> None:
    with pytest.raises(InvalidIdError, match=r"record key is not valid UTF-8 \(invalid start byte at byte 1\)"):
        upsert_id(b"a\xffb", {}, KAFKA_RAW)


def test_an_invalid_utf8_key_is_fine_for_uuid_ids() -> None:
    assert upsert_id(b"a\xffb", {}, KAFKA_UUID) == uuid_for(b"a\xffb")


def test_a_missing_or_empty_key_is_rejected_for_kafka_ids() -> None:
    with pytest.raises(MissingIdError, match="the record has no key; id_strategy 'kafka' needs one"):
        upsert_id(None, {}, KAFKA_UUID)
    with pytest.raises(MissingIdError, match="the record has an empty key"):
        upsert_id(b"", {}, KAFKA_RAW)


def test_a_raw_id_of_512_characters_is_accepted_and_513_rejected() -> None:
    assert upsert_id(b"k" * 512, {}, KAFKA_RAW) == "k" * 512
    with pytest.raises(IdTooLongError, match="id is 513 characters long, more than Pinecone's 512"):
        upsert_id(b"k" * 513, {}, KAFKA_RAW)
    with pytest.raises(IdTooLongError, match="id is 600 characters long"):
        upsert_id(None, {"id": "é" * 600}, FIELD_RAW)


def test_uuid_ids_are_never_too_long() -> None:
    assert len(upsert_id(b"k" * 10_000, {}, KAFKA_UUID)) == 36


@pytest.mark.parametrize(
    ("value", "text"), [("doc-1", "doc-1"), (42, "42"), (-7, "-7"), (10**30, "1" + "0" * 30), (True, "true")]
)
def test_field_ids_use_the_documented_text_of_the_value(value: Any, text: str) -> None:
    assert upsert_id(None, {"id": value}, FIELD_UUID) == str(uuid.uuid5(ID_NAMESPACE, text))
    assert upsert_id(None, {"id": value}, FIELD_RAW) == text


def test_a_dotted_id_field_is_walked_through_nested_objects() -> None:
    nested = config(id_strategy="field", id_field="after.id", id_format="raw")
    assert upsert_id(None, {"after": {"id": "n-1"}}, nested) == "n-1"


def test_a_literal_dotted_key_wins_over_the_nested_path() -> None:
    nested = config(id_strategy="field", id_field="a.b", id_format="raw")
    assert upsert_id(None, {"a.b": "literal", "a": {"b": "nested"}}, nested) == "literal"


@pytest.mark.parametrize(("row", "fragment"), [({}, "no id field 'id'"), ({"id": None}, "no id field 'id'"),
                                                ({"id": ""}, "the id is an empty string")])  # fmt: skip
def test_a_missing_null_or_empty_id_field_is_rejected(row: dict[str, Any], fragment: str) -> None:
    with pytest.raises(MissingIdError, match=fragment):
        upsert_id(b"key", row, FIELD_UUID)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (1.5, "holds the floating-point number 1.5; ids must be strings, integers or booleans"),
        ({"a": 1}, "holds a JSON object; ids must be"),
        ([1], "holds a JSON array; ids must be"),
    ],
)
def test_an_id_field_that_cannot_be_an_id_is_rejected(value: Any, fragment: str) -> None:
    with pytest.raises(InvalidIdError, match=fragment):
        upsert_id(None, {"id": value}, FIELD_UUID)


def test_field_text_of_a_misread_big_integer_asks_for_an_exact_reparse() -> None:
    with pytest.raises(InexactNumberError):
        field_text(1.2345678901234568e29, "id")


def test_none_ids_are_fresh_random_uuid4s() -> None:
    first, second = upsert_id(b"same", {"id": 1}, NONE), upsert_id(b"same", {"id": 1}, NONE)
    assert first != second
    assert uuid.UUID(first).version == 4


def test_a_delete_under_none_is_rejected_as_unaddressable() -> None:
    with pytest.raises(UnaddressableDeleteError, match="cannot be applied under id_strategy 'none'"):
        delete_id(b"key", {"id": 1}, NONE)


def test_a_kafka_delete_is_addressed_by_its_key() -> None:
    assert delete_id(b"order-42", None, KAFKA_UUID) == upsert_id(b"order-42", {}, KAFKA_UUID)


def test_a_field_delete_takes_the_id_from_the_deleted_row() -> None:
    assert delete_id(b'{"id": 99}', {"id": 7}, FIELD_RAW) == "7"


@pytest.mark.parametrize(
    "key",
    [b'{"id": 7}', b'{"schema": {"type": "struct"}, "payload": {"id": 7}}', b"7", b'"7"', b"  7 "],
)
def test_a_field_delete_without_a_row_addresses_the_same_record_from_the_key(key: bytes) -> None:
    assert delete_id(key, None, FIELD_UUID) == upsert_id(None, {"id": 7}, FIELD_UUID)


def test_a_field_delete_whose_row_lacks_the_field_falls_back_to_the_key() -> None:
    assert delete_id(b'{"id": "a-1"}', {"other": 1}, FIELD_RAW) == "a-1"


def test_a_plain_text_key_is_its_own_text_for_field_deletes() -> None:
    assert delete_id(b"doc-1", None, FIELD_RAW) == "doc-1"
    assert delete_id(b"1.50", None, FIELD_RAW) == "1.50"


def test_a_key_holding_a_big_integer_keeps_every_digit() -> None:
    assert delete_id(b'{"id": 123456789012345678901234567890}', None, FIELD_RAW) == "123456789012345678901234567890"


def test_a_key_object_without_the_id_field_is_rejected() -> None:
    with pytest.raises(MissingIdError, match="key is a JSON object without the id field 'id'"):
        delete_id(b'{"other": 1}', None, FIELD_UUID)


def test_a_field_delete_with_neither_row_nor_key_is_rejected() -> None:
    with pytest.raises(MissingIdError, match="carries no row with id field 'id' and no key"):
        delete_id(None, None, FIELD_UUID)


def test_a_field_delete_with_an_invalid_utf8_key_is_rejected() -> None:
    with pytest.raises(InvalidIdError, match="the delete's key is not valid UTF-8"):
        delete_id(b"\xff", None, FIELD_UUID)


# --- ids must be valid Unicode (Flink string fields and Pinecone ids are UTF-8) -----------------------------------
# Python's json (used for keys) reads a lone surrogate escape such as "\ud800" into a str that cannot be encoded as
# UTF-8: hashing it (uuid ids) or handing it to Flink's string coder (raw ids) would crash the job.

LONE_SURROGATE_KEYS = [b'"\\ud800"', b'{"id": "\\udc00x"}', b'{"schema": {}, "payload": {"id": "a\\ud83d"}}']


@pytest.mark.parametrize("cfg", [FIELD_UUID, FIELD_RAW], ids=["uuid", "raw"])
@pytest.mark.parametrize("key", LONE_SURROGATE_KEYS)
def test_a_key_holding_a_lone_surrogate_escape_is_an_invalid_id(cfg: RouteConfig, key: bytes) -> None:
    with pytest.raises(InvalidIdError, match=r"the id is not valid Unicode \(a lone surrogate '\\ud"):
        delete_id(key, None, cfg)


@pytest.mark.parametrize("row", [None, {"other": 1}, {"id": None}])
def test_a_delete_without_the_id_in_its_row_checks_the_key_text_too(row: dict[str, Any] | None) -> None:
    with pytest.raises(InvalidIdError, match="not valid Unicode"):
        delete_id(b'"\\ud800"', row, FIELD_RAW)


@pytest.mark.parametrize("cfg", [FIELD_UUID, FIELD_RAW], ids=["uuid", "raw"])
def test_a_field_id_holding_a_lone_surrogate_is_an_invalid_id(cfg: RouteConfig) -> None:
    # orjson refuses such values, so a row cannot carry one today; the check guards every other way in.
    with pytest.raises(InvalidIdError, match="not valid Unicode"):
        upsert_id(None, {"id": "x\ud800"}, cfg)


def test_a_valid_surrogate_pair_escape_in_a_key_is_a_normal_character() -> None:
    assert delete_id(b'"\\ud83d\\ude00"', None, FIELD_RAW) == "\U0001f600"
    assert delete_id(b'"\\ud83d\\ude00"', None, FIELD_UUID) == str(uuid.uuid5(ID_NAMESPACE, "\U0001f600"))


def test_a_key_object_with_the_id_field_twice_is_an_invalid_id() -> None:
    with pytest.raises(InvalidIdError, match="the delete's key is a JSON object with the key 'id' more than once"):
        delete_id(b'{"id": 1, "id": 2}', None, FIELD_RAW)
