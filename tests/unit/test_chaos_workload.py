"""The chaos workload's expected state is the one the job's own stages (decode, then keyed dedup in partition order)
reach, and it is deterministic."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from chaos.workload import (
    DELETE_ROW,
    DIMENSION,
    DUPLICATE,
    INSERT,
    LATE_OLDER,
    NEWER_DELETE_FIRST,
    NEWER_UPDATE_FIRST,
    POISON,
    POISON_ERRORS,
    REINSERT,
    TOMBSTONE,
    UPDATE_METADATA,
    UPDATE_VECTOR,
    ExpectedDeadLetter,
    Workload,
    expected_metadata,
    generate,
    partition_for,
    value_digest,
)
from kafka_pinecone_flink.udfs.decode import Skip, decode
from kafka_pinecone_flink.udfs.dedup import Action, DedupState, decide
from kafka_pinecone_flink.udfs.errors import RecordError
from kafka_pinecone_flink.udfs.records import DELETE, SourceRecord
from kafka_pinecone_flink.udfs.route_config import RouteConfig

pytestmark = pytest.mark.unit

TOPICS = ("chaos-a", "chaos-b")
CONFIG = RouteConfig(
    dimension=DIMENSION,
    metric="cosine",
    id_strategy="field",
    id_field="id",
    id_format="raw",
    version_field="version",
)


@pytest.fixture(scope="module")
def workload() -> Workload:
    return generate(4000, seed=7, topics=TOPICS, partitions=3)


def _replay(
    workload: Workload,
) -> tuple[dict[str, dict[str, Any]], Counter[ExpectedDeadLetter], list[tuple[str, Action | None]]]:
    """Decode every record and dedup it per id, in the order of its partition, as the job does."""
    index: dict[str, dict[str, Any]] = {}
    dead: Counter[ExpectedDeadLetter] = Counter()
    decisions: list[tuple[str, Action | None]] = []
    states: dict[str, DedupState] = {}
    offsets: Counter[tuple[str, int]] = Counter()
    for record in workload.records:
        offset = offsets[(record.topic, record.partition)]
        offsets[(record.topic, record.partition)] += 1
        source = SourceRecord(record.topic, record.partition, offset, None, record.key, record.value)
        try:
            change = decode(source, CONFIG)
        except RecordError as exc:
            dead[ExpectedDeadLetter(record.key, exc.error_class, value_digest(record.value))] += 1
            decisions.append((record.kind, None))
            continue
        assert not isinstance(change, Skip)
        decision = decide(states.get(change.key), change)
        if decision.state is not None:
            states[change.key] = decision.state
        decisions.append((record.kind, decision.action))
        if decision.action is Action.EMIT:
            held = index.setdefault(change.namespace, {})
            if change.op == DELETE:
                held.pop(change.id, None)
            else:
                metadata = {k: float(v) if isinstance(v, int | float) else v for k, v in change.metadata.items()}
                held[change.id] = (tuple(change.values or ()), metadata)
    return index, dead, decisions


def test_the_same_seed_gives_the_same_records_byte_for_byte(workload: Workload) -> None:
    again = generate(4000, seed=7, topics=TOPICS, partitions=3)
    assert again.records == workload.records
    assert again.expected == workload.expected
    assert generate(4000, seed=8, topics=TOPICS, partitions=3).records != workload.records


def test_exactly_the_requested_number_of_records_is_produced(workload: Workload) -> None:
    assert len(workload.records) == 4000
    assert len(generate(1, seed=1, topics=TOPICS).records) == 1


def test_every_kind_of_change_and_poison_is_in_the_stream(workload: Workload) -> None:
    kinds = (
        INSERT,
        UPDATE_VECTOR,
        UPDATE_METADATA,
        DELETE_ROW,
        TOMBSTONE,
        REINSERT,
        DUPLICATE,
        NEWER_UPDATE_FIRST,
        NEWER_DELETE_FIRST,
        LATE_OLDER,
        POISON,
    )
    assert all(workload.kinds[kind] > 10 for kind in kinds), workload.kinds
    classes = Counter(letter.error_class for letter in workload.expected.dead_letters.elements())
    assert set(classes) == set(POISON_ERRORS.values())


def test_every_record_of_an_id_goes_to_the_partition_of_its_id(workload: Workload) -> None:
    for record in workload.records:
        if record.kind == POISON:
            continue
        record_id = record.key.decode() if record.key else ""
        if record_id.startswith("{"):
            record_id = json.loads(record_id)["id"]
        assert record.partition == partition_for(record_id, workload.partitions)


def test_decoding_and_deduplicating_with_the_jobs_stages_reaches_exactly_the_expected_state(
    workload: Workload,
) -> None:
    index, dead, _ = _replay(workload)
    expected = workload.expected
    assert set(index) == set(expected.alive)
    for namespace, held in index.items():
        want = {i: (v.values, dict(v.metadata)) for i, v in expected.alive[namespace].items()}
        assert held == want
        assert not set(held) & expected.deleted.get(namespace, frozenset())
    assert dead == expected.dead_letters


def test_a_late_older_version_is_always_skipped_as_stale_even_after_a_delete(workload: Workload) -> None:
    _, _, decisions = _replay(workload)
    late = [action for kind, action in decisions if kind == LATE_OLDER]
    assert late and all(action is Action.SKIP_STALE for action in late)
    # Some late older updates follow a delete of their id: they must not resurrect it.
    assert workload.kinds[NEWER_DELETE_FIRST] > 0


def test_an_exact_duplicate_is_never_applied(workload: Workload) -> None:
    _, _, decisions = _replay(workload)
    duplicates = [action for kind, action in decisions if kind == DUPLICATE]
    assert duplicates and all(action is not Action.EMIT for action in duplicates)


def test_a_reinsert_after_a_delete_is_applied_and_ends_alive_unless_deleted_again(workload: Workload) -> None:
    _, _, decisions = _replay(workload)
    reinserts = [action for kind, action in decisions if kind == REINSERT]
    assert reinserts and all(action is Action.EMIT for action in reinserts)
    last_kind: dict[str, str] = {}
    for record in workload.records:
        if record.kind != POISON and record.kind not in (DUPLICATE, LATE_OLDER):
            last_kind[record.key.decode() if record.key else ""] = record.kind
    alive_ids = {i for ids in workload.expected.alive.values() for i in ids}
    reinserted_last = [key for key, kind in last_kind.items() if kind == REINSERT]
    assert reinserted_last
    for key in reinserted_last:
        assert (json.loads(key)["id"] if key.startswith("{") else key) in alive_ids


def test_every_poison_record_is_rejected_with_its_expected_error_class(workload: Workload) -> None:
    poison = [r for r in workload.records if r.kind == POISON]
    assert sum(workload.expected.dead_letters.values()) == len(poison)
    keys = [r.key for r in poison]
    assert len(set(keys)) == len(keys), "each poison record has a unique key"
    by_key = {letter.key: letter.error_class for letter in workload.expected.dead_letters}
    for record in poison:
        with pytest.raises(RecordError) as caught:
            decode(SourceRecord(record.topic, record.partition, 0, None, record.key, record.value), CONFIG)
        assert caught.value.error_class == by_key[record.key]


def test_the_poison_share_is_close_to_the_one_asked_for() -> None:
    records = generate(5000, seed=3, topics=TOPICS, poison_share=0.1).records
    share = sum(r.kind == POISON for r in records) / len(records)
    assert 0.08 < share < 0.12
    assert not any(r.kind == POISON for r in generate(2000, seed=3, topics=TOPICS, poison_share=0).records)


def test_expected_metadata_keeps_every_field_but_the_vector_and_control_fields_with_numbers_as_floats() -> None:
    row = {"id": "x", "version": 5, "values": [1.0] * 8, "price": 1.5, "tags": ["a"], "__op": "u", "__deleted": "false"}
    assert expected_metadata(row) == {"id": "x", "version": 5.0, "price": 1.5, "tags": ["a"]}
    with pytest.raises(TypeError, match="no metadata of type dict"):
        expected_metadata({"nested": {"a": 1}})


def test_invalid_arguments_are_rejected_naming_the_argument() -> None:
    with pytest.raises(ValueError, match="events must be at least 1"):
        generate(0, seed=1, topics=TOPICS)
    with pytest.raises(ValueError, match="at least one topic"):
        generate(10, seed=1, topics=())
    with pytest.raises(ValueError, match="partitions must be at least 1"):
        generate(10, seed=1, topics=TOPICS, partitions=0)
    with pytest.raises(ValueError, match="poison_share"):
        generate(10, seed=1, topics=TOPICS, poison_share=1.0)
