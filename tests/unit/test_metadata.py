"""Metadata policy: which fields, how values convert, and what is rejected."""

from __future__ import annotations

import json
import random
from typing import Any

import orjson
import pytest

from kafka_pinecone_flink.udfs.decode_errors import (
    InvalidMetadataKeyError,
    MetadataKeyCollisionError,
    MetadataTooDeepError,
    MetadataTooLargeError,
)
from kafka_pinecone_flink.udfs.metadata import MAX_DEPTH, InexactNumberError, encode_metadata, flatten_metadata
from kafka_pinecone_flink.udfs.route_config import RouteConfig

pytestmark = pytest.mark.unit


def config(**options: Any) -> RouteConfig:
    return RouteConfig(dimension=3, metric="cosine", **options)


def flat(row: dict[str, Any], **options: Any) -> dict[str, Any]:
    return flatten_metadata(row, config(**options))


def test_every_field_but_the_vectors_and_control_fields_becomes_metadata() -> None:
    row = {"id": 7, "values": [1.0, 2.0, 3.0], "sparse": {"indices": [1], "values": [1.0]}, "title": "t",
           "__deleted": "false", "__source_ts_ms": 5, "__table": {"name": "docs"}}  # fmt: skip
    assert flat(row, sparse_field="sparse") == {"id": 7, "title": "t"}


def test_nested_objects_are_flattened_to_dotted_keys() -> None:
    row = {"a": {"b": 1, "c": {"d": "x"}}, "e": True}
    assert flat(row) == {"a.b": 1, "a.c.d": "x", "e": True}


def test_nulls_are_dropped_at_every_level() -> None:
    assert flat({"a": None, "b": {"c": None, "d": 1}, "e": "x"}) == {"b.d": 1, "e": "x"}


def test_an_empty_object_contributes_nothing() -> None:
    assert flat({"a": {}, "b": 1}) == {"b": 1}


def test_booleans_strings_and_floats_are_kept() -> None:
    assert flat({"a": True, "b": False, "c": "s", "d": 0.25, "e": -0.0}) == {
        "a": True, "b": False, "c": "s", "d": 0.25, "e": -0.0,
    }  # fmt: skip


def test_integers_up_to_two_to_the_53_stay_numbers_and_larger_ones_become_exact_strings() -> None:
    big = 2**53
    result = flat({"max": big, "min": -big, "over": big + 1, "under": -big - 1, "nested": {"over": 2**63 + 5}})
    assert result == {
        "max": big,
        "min": -big,
        "over": str(big + 1),
        "under": str(-big - 1),
        "nested.over": str(2**63 + 5),
    }
    assert type(result["max"]) is int


def test_a_list_of_strings_is_kept_and_an_empty_list_too() -> None:
    assert flat({"tags": ["a", "b"], "none": []}) == {"tags": ["a", "b"], "none": []}


def test_a_list_of_other_scalars_becomes_a_list_of_their_json_texts() -> None:
    assert flat({"mixed": [1, 2.5, True, None, "x", 2**60]}) == {"mixed": ["1", "2.5", "true", "null", "x", str(2**60)]}


def test_a_list_holding_objects_or_lists_becomes_one_json_string() -> None:
    result = flat({"items": [{"k": 1}, [2, 3]]})
    assert result == {"items": '[{"k":1},[2,3]]'}
    assert json.loads(result["items"]) == [{"k": 1}, [2, 3]]


def test_a_key_starting_with_a_dollar_is_rejected_not_renamed() -> None:
    with pytest.raises(InvalidMetadataKeyError, match=r"metadata key '\$type' is not allowed by Pinecone"):
        flat({"$type": "x", "a": 1})


def test_a_dollar_object_key_is_rejected_through_its_flattened_key() -> None:
    with pytest.raises(InvalidMetadataKeyError, match=r"'\$meta.a'"):
        flat({"$meta": {"a": 1}})


def test_a_dollar_inside_a_flattened_key_is_allowed_because_the_key_does_not_start_with_it() -> None:
    assert flat({"a": {"$b": 1}}) == {"a.$b": 1}


def test_an_empty_key_is_rejected() -> None:
    with pytest.raises(InvalidMetadataKeyError, match="metadata key '' is not allowed"):
        flat({"": 1})


def test_a_dollar_key_can_be_left_out_with_metadata_fields() -> None:
    assert flat({"$type": "x", "a": 1}, metadata_fields=("a",)) == {"a": 1}


@pytest.mark.parametrize("row", [{"a.b": 1, "a": {"b": 2}}, {"a": {"b": 2}, "a.b": 1}])
def test_two_fields_flattening_to_one_key_are_rejected_in_either_order(row: dict[str, Any]) -> None:
    with pytest.raises(MetadataKeyCollisionError, match=r"two fields flatten to the same metadata key 'a\.b'"):
        flat(row)


def nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"k": value}
    return value


def test_objects_nested_up_to_the_depth_limit_are_flattened() -> None:
    assert flat({"a": nested(MAX_DEPTH - 1, 1)}) == {"a" + ".k" * (MAX_DEPTH - 1): 1}


def test_objects_nested_beyond_the_depth_limit_are_rejected() -> None:
    with pytest.raises(MetadataTooDeepError, match="nested more than 32 levels deep"):
        flat({"a": nested(MAX_DEPTH, 1)})


def test_lists_nested_beyond_the_depth_limit_are_rejected() -> None:
    with pytest.raises(MetadataTooDeepError, match="metadata field 'a' is nested more than 32 levels"):
        flat({"a": [nested(MAX_DEPTH, 1)]})


def test_metadata_fields_selects_fields_by_literal_or_dotted_name_and_keeps_listed_control_fields() -> None:
    row = {"a": 1, "b": {"c": 2, "d": {"e": 3}}, "x.y": "literal", "__op": "c", "skip": "no"}
    result = flat(row, metadata_fields=("a", "b.d", "x.y", "__op", "absent"))
    assert result == {"a": 1, "b.d.e": 3, "x.y": "literal", "__op": "c"}


def test_a_float_that_may_be_a_misread_big_integer_asks_for_an_exact_reparse() -> None:
    row = {"n": 1.2345678901234568e29}
    with pytest.raises(InexactNumberError):
        flatten_metadata(row, config())
    with pytest.raises(InexactNumberError):
        flatten_metadata({"l": [1.0e20]}, config())
    with pytest.raises(InexactNumberError):
        flatten_metadata({"l": [{"x": -1.0e20}]}, config())
    assert flatten_metadata(row, config(), exact=True) == row


def test_ordinary_floats_do_not_ask_for_a_reparse() -> None:
    assert flat({"n": 1.5e300 / 1e290, "m": 9.0e18, "s": [0.5]}) == {"n": 1.5e10, "m": 9.0e18, "s": ["0.5"]}


def test_metadata_is_encoded_with_sorted_keys() -> None:
    assert encode_metadata({"b": 1, "a": "x"}, 100) == b'{"a":"x","b":1}'


def test_metadata_over_the_limit_is_rejected_with_its_size_and_the_limit() -> None:
    metadata = {"text": "x" * 40_960}
    with pytest.raises(MetadataTooLargeError, match="metadata is 40971 bytes as JSON, more than the limit of 40960"):
        encode_metadata(metadata, 40_960)


def test_metadata_exactly_at_the_limit_is_accepted() -> None:
    metadata = {"text": "x" * (40_960 - 11)}
    assert len(encode_metadata(metadata, 40_960)) == 40_960


# An independent statement of the policy, to check the fast path against on random rows.
def reference(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, dict):
            for member, member_value in value.items():
                put(f"{key}.{member}", member_value)
            return
        if isinstance(value, list):
            if all(isinstance(item, str) for item in value):
                converted: Any = value
            elif any(isinstance(item, dict | list) for item in value):
                converted = orjson.dumps(value).decode()
            else:
                converted = [item if isinstance(item, str) else orjson.dumps(item).decode() for item in value]
        elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
            converted = str(value)
        else:
            converted = value
        assert key not in out
        out[key] = converted

    for key, value in row.items():
        if key not in ("values",) and not key.startswith("__"):
            put(key, value)
    return out


def random_value(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(9 if depth < 3 else 6)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, 1, -7, 2**53, 2**53 + 1, -(2**60), 2**63 + 1])
    if choice == 3:
        return rng.choice([0.5, -1.25, 1e10, 3.0])
    if choice in (4, 5):
        return rng.choice(["", "x", "héllo", "a.b"])
    if choice == 6:
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(3))]
    if choice == 7:
        return [rng.choice(["a", "b"]) for _ in range(rng.randrange(3))]
    return {rng.choice(["p", "q", "e"]): random_value(rng, depth + 1) for _ in range(rng.randrange(3))}


def test_the_fast_path_agrees_with_the_policy_on_random_rows() -> None:
    rng = random.Random(20240601)
    collisions = 0
    for _ in range(2000):
        row = {rng.choice(["a", "b", "c", "__x", "values", "d.e", "d"]): random_value(rng) for _ in range(6)}
        try:
            expected: Any = reference(row)
        except AssertionError:
            expected = MetadataKeyCollisionError
        if expected is MetadataKeyCollisionError:
            collisions += 1
            with pytest.raises(MetadataKeyCollisionError):
                flat(row)
        else:
            assert flat(row) == expected, row
    assert collisions > 10  # both outcomes were exercised
