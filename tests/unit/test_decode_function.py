"""DecodeFunction on a group of Kafka source rows: one result row of dedup rows, dead-letter rows and counts."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from kafka_pinecone_flink.sinks.dead_letter import H_ERROR_CLASS, H_OFFSET, H_STAGE, H_TOPIC, from_kafka
from kafka_pinecone_flink.udfs.decode import decode
from kafka_pinecone_flink.udfs.decode_function import DecodeFunction
from kafka_pinecone_flink.udfs.dedup import dedup_row
from kafka_pinecone_flink.udfs.errors import RecordRejectedError
from kafka_pinecone_flink.udfs.records import Change, row_to_source_record
from kafka_pinecone_flink.udfs.route_config import RouteConfig

pytestmark = pytest.mark.unit

ROUTE = RouteConfig(dimension=3, metric="cosine", delete_enabled=False)
VECTOR = [0.1, 0.2, 0.3]


def source_row(offset: int, value: Any, key: bytes | None = b"k", headers: dict[str, bytes] | None = None) -> Any:
    """A row of the job's Kafka source table, as ``row_to_source_record`` reads it; ``value`` is JSON-encoded unless
    it is bytes or None."""
    raw = value if value is None or isinstance(value, bytes) else orjson.dumps(value)
    return {
        "topic": "docs",
        "partition": 2,
        "offset": offset,
        "timestamp": 1_700_000_000_000 + offset,
        "key": None if key is None else bytearray(key),
        "value": None if raw is None else bytearray(raw),
        "headers": {name: bytearray(v) for name, v in (headers or {}).items()},
    }


def expected_dedup_row(row: Any) -> Any:
    change = decode(row_to_source_record(row), ROUTE)
    assert isinstance(change, Change)
    return dedup_row(change)


GOOD_1 = source_row(10, {"values": VECTOR, "title": "a"}, key=b"k1")
BAD_JSON = source_row(11, b"{not json", key=b"k2", headers={"trace": b"t-1"})
TOMBSTONE = source_row(12, None, key=b"k3")
GOOD_2 = source_row(13, {"values": VECTOR, "title": "b"}, key=b"k4")
WRONG_DIMENSION = source_row(14, {"values": [1.0, 2.0]}, key=b"k5")


def run(rows: list[Any], tolerance: str = "all", secrets: tuple[str, ...] = ()) -> tuple[list[Any], list[Any], dict]:
    """The records, dead letters and per-job counts (the per-namespace ones left out) of decoding ``rows``."""
    result = DecodeFunction(ROUTE, tolerance, secrets).map(rows)
    records, dead_letters, counts = result[0], result[1], result[2]
    return list(records), list(dead_letters), {name: n for name, n in counts.items() if "@" not in name}


def test_good_records_become_dedup_rows_in_order() -> None:
    records, dead_letters, counts = run([GOOD_1, GOOD_2])
    assert records == [expected_dedup_row(GOOD_1), expected_dedup_row(GOOD_2)]
    assert dead_letters == []
    assert counts == {"records_in": 2, "decoded": 2}


def test_a_group_of_good_bad_and_skipped_records_is_counted_by_outcome() -> None:
    records, dead_letters, counts = run([GOOD_1, BAD_JSON, TOMBSTONE, GOOD_2, WRONG_DIMENSION])
    assert records == [expected_dedup_row(GOOD_1), expected_dedup_row(GOOD_2)]
    assert len(dead_letters) == 2
    assert counts == {"records_in": 5, "decoded": 2, "dead_lettered": 2, "skipped_tombstone_ignored": 1}


def test_a_bad_record_is_a_raw_dead_letter_row_with_its_bytes_and_kpf_headers() -> None:
    _, (letter_row, dimension_row), _ = run([BAD_JSON, GOOD_1, WRONG_DIMENSION])
    key, value, headers = letter_row[0], letter_row[1], letter_row[2]
    assert (key, value) == (b"k2", b"{not json")  # the original bytes
    assert headers["trace"] == b"t-1"  # the original headers are kept
    assert headers[H_ERROR_CLASS] == b"InvalidJsonError" and headers[H_STAGE] == b"decode"
    assert headers[H_TOPIC] == b"docs" and headers[H_OFFSET] == b"11"
    letter = from_kafka(key, value, list(headers.items()))
    assert (letter.source.partition, letter.source.offset, letter.source.timestamp_ms) == (2, 11, 1_700_000_000_011)
    assert dimension_row[2][H_ERROR_CLASS] == b"DimensionMismatchError"
    assert dimension_row[2][H_OFFSET] == b"14"


def test_a_dead_letter_message_is_scrubbed_of_the_secrets_and_cut_to_the_size_limit() -> None:
    secret = "s3cr3t-value-1234"
    route = RouteConfig(dimension=3, metric="cosine", version_field="v")
    row = source_row(20, {"values": VECTOR, "v": secret, "pad": "x" * 5000})
    unscrubbed = DecodeFunction(route, "all").map([row])[1][0]
    assert secret.encode() in unscrubbed[2]["kpf.error.message"]  # the message echoes the bad version
    (letter_row,) = DecodeFunction(route, "all", (secret,), dead_letter_max_bytes=2048).map([row])[1]
    assert secret.encode() not in letter_row[2]["kpf.error.message"]
    assert letter_row[2]["kpf.truncated"] == b"value" and len(letter_row[1]) < 2048


def test_an_empty_group_counts_nothing() -> None:
    assert run([]) == ([], [], {})


def test_fail_fast_stops_at_the_first_bad_record_naming_its_coordinates() -> None:
    with pytest.raises(RecordRejectedError) as info:
        run([GOOD_1, BAD_JSON, WRONG_DIMENSION], tolerance="none")
    assert info.value.coordinates == "docs[2]@11"
    assert info.value.error_class == "InvalidJsonError" and info.value.stage == "decode"
    assert str(info.value).startswith("record docs[2]@11 rejected in decode: InvalidJsonError:")


def test_fail_fast_lets_a_group_of_good_records_and_skips_through() -> None:
    records, _, counts = run([GOOD_1, TOMBSTONE], tolerance="none")
    assert records == [expected_dedup_row(GOOD_1)]
    assert counts == {"records_in": 2, "decoded": 1, "skipped_tombstone_ignored": 1}


def test_an_unknown_error_tolerance_is_rejected() -> None:
    with pytest.raises(ValueError, match="error tolerance must be 'none' or 'all', got 'some'"):
        DecodeFunction(ROUTE, "some")


def test_zero_and_non_finite_vectors_are_counted_apart_for_the_embedding_health_metrics() -> None:
    zero = source_row(20, {"values": [0, 0, 0]}, key=b"z")
    non_finite = source_row(21, b'{"values": "[1, NaN, 2]"}', key=b"n")
    _, dead_letters, counts = run([zero, non_finite, WRONG_DIMENSION, GOOD_1])
    assert len(dead_letters) == 3
    assert (counts["vectors_rejected_zero"], counts["vectors_rejected_non_finite"]) == (1, 1), counts


def test_the_vector_rejection_counts_exist_from_the_start() -> None:
    # A counter that first appears at 1 loses that increment in Prometheus's rate(): it must start at 0.
    from kafka_pinecone_flink.udfs.decode_function import COUNTS, VECTOR_REJECTIONS

    assert set(VECTOR_REJECTIONS.values()) <= set(COUNTS)


# --- per-namespace vector counts (README "Monitoring": rejected vectors per namespace) -------------------------------
def at(name: str, namespace: str) -> str:
    """A count of one namespace, as the JVM ``RunTotals`` reads it."""
    return f"{name}@{namespace}"


def per_namespace(counts: dict[str, int]) -> dict[str, int]:
    return {name: n for name, n in counts.items() if "@" in name}


def on_topic(topic: str, row: Any) -> Any:
    return {**row, "topic": topic}


def test_vectors_accepted_and_rejected_are_counted_per_namespace_of_their_topic() -> None:
    route = RouteConfig(dimension=3, metric="cosine", namespace_map={"docs": "documents"})
    zero = source_row(20, {"values": [0, 0, 0]}, key=b"z")
    non_finite = source_row(21, b'{"values": "[1, NaN, 2]"}', key=b"n")
    rows = [GOOD_1, zero, non_finite, GOOD_2, on_topic("news", GOOD_1), WRONG_DIMENSION, BAD_JSON, TOMBSTONE]
    counts = dict(DecodeFunction(route, "all").map(rows)[2])
    assert per_namespace(counts) == {
        at("vectors_accepted", "documents"): 2,  # namespace-map: docs -> documents
        at("vectors_rejected_zero", "documents"): 1,
        at("vectors_rejected_non_finite", "documents"): 1,
        at("vectors_accepted", "news"): 1,  # the template ${topic}
    }  # a wrong dimension, bad JSON and a delete are no accepted or rejected vector
    assert (counts["vectors_rejected_zero"], counts["vectors_rejected_non_finite"]) == (1, 1)  # per job, as before


def test_records_whose_text_the_job_embeds_are_not_counted_as_vectors() -> None:
    route = RouteConfig(dimension=3, metric="cosine", text_fields=("title",))
    counts = dict(DecodeFunction(route, "all").map([source_row(1, {"title": "a"}), GOOD_1])[2])
    assert per_namespace(counts) == {at("vectors_accepted", "docs"): 1}


def test_a_rejected_vector_whose_topic_cannot_be_routed_is_counted_under_the_unrouted_label() -> None:
    from kafka_pinecone_flink.udfs.decode_function import UNROUTED

    function = DecodeFunction(ROUTE, "all")
    assert function.namespace_label("x" * 600) == UNROUTED  # the ${topic} namespace would be too long
    assert function.namespace_label("docs") == "docs"


def test_the_namespaces_counted_are_bounded_and_the_rest_share_one_label() -> None:
    from kafka_pinecone_flink.udfs.decode_function import MAX_NAMESPACES, OTHER_NAMESPACES

    function = DecodeFunction(ROUTE, "all", topics=("docs",))
    rows = [
        on_topic(f"t{i}", source_row(i, {"values": [0, 0, 0]} if i % 2 else {"values": VECTOR})) for i in range(150)
    ]
    counts = per_namespace(dict(function.map(rows)[2]))
    namespaces = {name.split("@", 1)[1] for name in counts}
    # "docs" (a configured topic's namespace) is tracked from the start; 99 more, then the rest share one label.
    assert len(namespaces - {OTHER_NAMESPACES}) == MAX_NAMESPACES - 1 and OTHER_NAMESPACES in namespaces
    assert sum(counts.values()) == 150
    assert counts[at("vectors_accepted", "t0")] == 1 and counts[at("vectors_rejected_zero", "t1")] == 1
    # t99 ... t149 share it: 25 even (a vector), 26 odd (all zero).
    assert counts[at("vectors_accepted", OTHER_NAMESPACES)] == 25
    assert counts[at("vectors_rejected_zero", OTHER_NAMESPACES)] == 26
    # A later group: the tracked namespaces keep their labels, new ones still share the other label.
    later = per_namespace(
        dict(function.map([on_topic("t3", GOOD_1), on_topic("t149", GOOD_1), on_topic("new", GOOD_1)])[2])
    )
    assert later == {at("vectors_accepted", "t3"): 1, at("vectors_accepted", OTHER_NAMESPACES): 2}


def test_the_namespaces_of_the_configured_topics_are_declared_so_their_counts_exist_from_the_start() -> None:
    from kafka_pinecone_flink.udfs.decode_function import COUNTS, PER_NAMESPACE

    route = RouteConfig(dimension=3, metric="cosine", namespace_map={"a": "docs", "b": "docs"})
    function = DecodeFunction(route, "all", topics=("a", "b", "c", "y" * 600))  # the last renders no valid namespace
    assert function.declared_counts() == (
        *COUNTS,
        *(at(name, "docs") for name in PER_NAMESPACE),
        *(at(name, "c") for name in PER_NAMESPACE),
    )
    assert set(PER_NAMESPACE) == {"vectors_accepted", "vectors_rejected_zero", "vectors_rejected_non_finite"}
