"""The JVM dedup operator's rules (``Dedup.java``) against their Python test oracle (``udfs.dedup.decide``).

The Java classes are called directly through PyFlink's Java gateway (one JVM for the test session, the jar that
set-up compiles): thousands of random change sequences, with integer, float, huge and missing versions, deletes,
empty and repeated hashes, must get the same decision and leave the same state in both.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from py4j.java_gateway import get_field

from kafka_pinecone_flink.udfs.dedup import Action, DedupState, decide, version_text
from kafka_pinecone_flink.udfs.records import DELETE, UPSERT, Change, SourceRecord
from tests.integration.jvm_dedup import dedup_package

pytestmark = pytest.mark.integration  # a JVM (PyFlink's Java gateway) for the module

SOURCE = SourceRecord(topic="t", partition=0, offset=0, timestamp_ms=None, key=b"k", value=b"{}")
ACTIONS = {0: Action.EMIT, 1: Action.SKIP_UNCHANGED, 2: Action.SKIP_STALE}
VERSIONS: list[int | float | None] = [None, None, 1, 2, 2.0, 2.5, 3, 10**30, 10**30 + 1, 1e30, -1, 0.1, 0]
HASHES = [b"", b"h1" * 8, b"h2" * 8, b"h3" * 8]
TEXT_HASHES = [None, b"t1" * 8, b"t2" * 8]


@pytest.fixture(scope="module")
def jvm() -> Iterator[Any]:
    yield dedup_package()


def _java_state(state: DedupState | None, jvm: Any) -> Any:
    if state is None:
        return None
    return jvm.DedupState(version_text(state.version), state.content_hash, state.text_hash, state.deleted, state.chunks)


def _same_state(java: Any, python: DedupState) -> bool:
    text = get_field(java, "version")
    version_matches = (
        text is None if python.version is None else Decimal(text) == Decimal(version_text(python.version) or "")
    )
    return (
        version_matches
        and bytes(get_field(java, "contentHash")) == python.content_hash
        and (None if get_field(java, "textHash") is None else bytes(get_field(java, "textHash"))) == python.text_hash
        and get_field(java, "deleted") == python.deleted
        and get_field(java, "chunks") == python.chunks
    )


def _random_change(rng: random.Random) -> Change:
    op = DELETE if rng.random() < 0.25 else UPSERT
    return Change(
        op=op,
        namespace="ns",
        id="a",
        source=SOURCE,
        version=rng.choice(VERSIONS),
        content_hash=rng.choice(HASHES),
        text_hash=None if op == DELETE else rng.choice(TEXT_HASHES),
        chunk_spans=None if op == DELETE else rng.choice([None, ((0, 1),), ((0, 1), (1, 2), (2, 3))]),
    )


def test_the_jvm_rules_decide_exactly_as_the_reference_model(jvm: Any) -> None:
    rng = random.Random(20261122)
    checked = 0
    for _ in range(250):
        state: DedupState | None = None
        java_state: Any = None
        for _ in range(16):
            change = _random_change(rng)
            expected = decide(state, change)
            got = jvm.Dedup.decide(
                java_state,
                change.op == DELETE,
                version_text(change.version),
                change.content_hash,
                change.text_hash,
                change.chunk_count,
            )
            where = f"state {state}, change {change.op} v={change.version!r} h={change.content_hash[:2]!r}"
            assert ACTIONS[get_field(got, "action")] is expected.action, where
            if expected.action is Action.EMIT:
                assert get_field(got, "replaces") == change.replaces, where
                assert get_field(got, "textUnchanged") == expected.text_unchanged, where
                assert get_field(got, "previousChunks") == change.previous_chunks, where
            new_java = get_field(got, "state")
            assert (new_java is None) == (expected.state is None), where
            if expected.state is not None:
                assert _same_state(new_java, expected.state), where
                state, java_state = expected.state, new_java
            checked += 1
    assert checked == 4000


def test_versions_compare_exactly_across_integers_floats_and_huge_numbers(jvm: Any) -> None:
    compare = jvm.Dedup.compareVersions
    assert compare(version_text(2), version_text(2.0)) == 0
    assert compare(version_text(10**30 + 1), version_text(10**30)) == 1
    # 2**53 + 1 is not a float: as doubles the two would be equal and the older change would not be fenced.
    assert compare(version_text(2**53 + 1), version_text(float(2**53))) == 1
    assert compare(version_text(0.1), version_text(0)) == 1
    assert compare(version_text(-1), version_text(0.5)) == -1


def test_state_expiry_counts_from_the_last_write_and_never_returns_expired_state(jvm: Any) -> None:
    descriptor = jvm.DedupFunction.stateDescriptor(7 * 86_400_000 + 1)
    assert descriptor.getName() == "dedup"
    ttl = descriptor.getTtlConfig()
    assert ttl.getTimeToLive().toMillis() == 7 * 86_400_000 + 1  # milliseconds, not rounded to days
    assert ttl.getUpdateType().name() == "OnCreateAndWrite"
    assert ttl.getStateVisibility().name() == "NeverReturnExpired"
    assert not jvm.DedupFunction.stateDescriptor(0).getTtlConfig().isEnabled()


def test_a_negative_ttl_is_refused_by_the_operator_too(jvm: Any) -> None:
    from py4j.protocol import Py4JJavaError

    with pytest.raises(Py4JJavaError, match="ttlMillis must be >= 0, got -1"):
        jvm.DedupFunction(-1)
