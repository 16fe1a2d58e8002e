"""The dedup rules, each run against their Python test oracle (``udfs.dedup.decide``) here and against the JVM rules
the job uses (``Dedup.java``, through the Java gateway) by tests/integration/test_dedup_rules_jvm.py, which runs
every test of this module that takes ``decide``; the operator itself is tested in JUnit
(jvm/src/test/java/io/github/kpf/dedup, ``make test-jvm``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from hashlib import blake2b

import pytest
from pyflink.common import Row

from kafka_pinecone_flink.udfs.dedup import (
    MAX_STATE_TTL_MS,
    Action,
    Decision,
    DedupState,
    applied_change,
    check_ttl_ms,
    dedup_row,
    version_text,
)
from kafka_pinecone_flink.udfs.dedup import decide as oracle_decide
from kafka_pinecone_flink.udfs.records import DELETE, UPSERT, Change, Op, SourceRecord

pytestmark = pytest.mark.unit

Decide = Callable[[DedupState | None, Change], Decision]


@pytest.fixture
def decide() -> Decide:
    """The rules under test: the Python oracle's (tests/integration/test_dedup_rules_jvm.py: the JVM's)."""
    return oracle_decide


SOURCE = SourceRecord(topic="t", partition=0, offset=0, timestamp_ms=None, key=b"k", value=b"{}")


def _hash(text: str) -> bytes:
    return blake2b(text.encode(), digest_size=16).digest()


def change(op: Op = UPSERT, *, version: int | None = None, content: str = "c1", text: str | None = "hello") -> Change:
    if op == DELETE:
        return Change(op=DELETE, namespace="ns", id="a", source=SOURCE, version=version, content_hash=_hash("delete"))
    return Change(
        op=UPSERT,
        namespace="ns",
        id="a",
        source=SOURCE,
        text=text,
        version=version,
        content_hash=_hash(content),
        text_hash=_hash(text) if text is not None else None,
    )


def live(version: int | None = 5, content: str = "c1", text: str = "hello") -> DedupState:
    return DedupState(version, _hash(content), _hash(text), False)


def tombstone(version: int | None = 5) -> DedupState:
    return DedupState(version, _hash("delete"), None, True)


def test_a_first_upsert_is_emitted_as_an_insert_and_stored(decide: Decide) -> None:
    c = change(version=3)
    decision = decide(None, c)
    assert decision.action is Action.EMIT
    assert c.replaces is False
    assert decision.state == DedupState(3, _hash("c1"), _hash("hello"), False)


def test_a_stale_version_never_overwrites_a_newer_one(decide: Decide) -> None:
    c = change(version=4, content="older")
    decision = decide(live(version=5), c)
    assert decision.action is Action.SKIP_STALE
    assert decision.state is None
    assert c.replaces is False


def test_an_upsert_with_unchanged_content_is_skipped_and_raises_the_stored_version(decide: Decide) -> None:
    decision = decide(live(version=5), change(version=7))
    assert decision.action is Action.SKIP_UNCHANGED
    assert decision.state == live(version=7)


def test_an_unchanged_upsert_with_the_same_version_leaves_the_state_as_is(decide: Decide) -> None:
    decision = decide(live(version=5), change(version=5))
    assert decision.action is Action.SKIP_UNCHANGED
    assert decision.state is None


def test_an_upsert_without_content_hash_is_never_skipped_as_unchanged(decide: Decide) -> None:
    state = DedupState(5, b"", None, False)
    c = change(version=5)
    c.content_hash = b""
    assert decide(state, c).action is Action.EMIT


def test_an_update_with_unchanged_text_is_emitted_and_marked_text_unchanged(decide: Decide) -> None:
    c = change(version=6, content="new metadata", text="hello")
    decision = decide(live(version=5), c)
    assert decision.action is Action.EMIT
    assert c.replaces is True
    assert decision.text_unchanged is True
    assert decision.state is not None and decision.state.text_hash == live().text_hash


def test_an_update_with_new_text_is_not_marked_text_unchanged(decide: Decide) -> None:
    decision = decide(live(version=5), change(version=6, content="c2", text="bye"))
    assert decision.action is Action.EMIT
    assert decision.text_unchanged is False
    assert decision.state == DedupState(6, _hash("c2"), _hash("bye"), False)


def test_equal_versions_are_not_stale_and_the_content_decides(decide: Decide) -> None:
    changed = change(version=5, content="c2")
    assert decide(live(version=5), changed).action is Action.EMIT
    assert changed.replaces is True
    assert decide(live(version=5), change(version=5)).action is Action.SKIP_UNCHANGED


def test_a_change_without_version_is_ordered_by_arrival_and_keeps_the_stored_version(decide: Decide) -> None:
    decision = decide(live(version=5), change(version=None, content="c2"))
    assert decision.action is Action.EMIT
    assert decision.state is not None and decision.state.version == 5
    late_older = decide(decision.state, change(version=4, content="c3"))
    assert late_older.action is Action.SKIP_STALE


def test_a_delete_of_a_live_record_is_emitted_and_leaves_a_tombstone(decide: Decide) -> None:
    c = change(DELETE, version=6)
    decision = decide(live(version=5), c)
    assert decision.action is Action.EMIT
    assert c.replaces is True
    assert decision.state == tombstone(version=6)


def test_a_delete_tombstone_blocks_a_late_older_update(decide: Decide) -> None:
    decision = decide(tombstone(version=6), change(version=5, content="c0"))
    assert decision.action is Action.SKIP_STALE
    assert decision.state is None


def test_a_repeated_delete_is_skipped_as_unchanged(decide: Decide) -> None:
    decision = decide(tombstone(version=6), change(DELETE, version=6))
    assert decision.action is Action.SKIP_UNCHANGED
    assert decision.state is None


def test_a_repeated_delete_with_a_newer_version_raises_the_tombstone_version(decide: Decide) -> None:
    decision = decide(tombstone(version=6), change(DELETE, version=9))
    assert decision.action is Action.SKIP_UNCHANGED
    assert decision.state == tombstone(version=9)


def test_a_delete_of_an_unknown_id_is_emitted_because_pinecone_may_hold_it(decide: Decide) -> None:
    c = change(DELETE, version=1)
    decision = decide(None, c)
    assert decision.action is Action.EMIT
    assert c.replaces is False
    assert decision.state == tombstone(version=1)


def test_an_upsert_after_a_delete_is_a_reinsert_not_a_replacement(decide: Decide) -> None:
    c = change(version=7)  # same content as before the delete
    decision = decide(tombstone(version=6), c)
    assert decision.action is Action.EMIT
    assert c.replaces is False
    assert decision.text_unchanged is False
    assert decision.state == live(version=7)


def test_versions_become_exact_decimal_text() -> None:
    assert version_text(None) is None
    assert version_text(7) == "7"
    assert version_text(-3) == "-3"
    assert version_text(2**80) == str(2**80)  # every digit of a big integer
    assert version_text(2.5) == "2.5"
    # The exact binary value, not the shortest repr: 0.1 and the integer 0 must not compare as the repr would.
    assert Decimal(version_text(0.1) or "") == Decimal.from_float(0.1) and version_text(0.1) != "0.1"
    assert Decimal(version_text(1e22) or "") == Decimal(10**22)


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
def test_a_version_that_is_not_a_finite_number_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="finite number"):
        version_text(bad)


def test_a_change_travels_to_the_jvm_operator_and_back_intact() -> None:
    c = change(version=12, text="hello")
    row = dedup_row(c).as_dict()
    assert [row[name] for name in ("key", "delete", "version", "content_hash", "text_hash")] == [
        c.key,
        False,
        "12",
        c.content_hash,
        c.text_hash,
    ]
    assert row["chunks"] == 0
    back = applied_change(Row(payload=row["payload"], replaces=True, previous_chunks=3))
    assert back.replaces is True and back.previous_chunks == 3
    assert (back.key, back.text, back.version, back.content_hash) == (c.key, "hello", 12, c.content_hash)
    c.chunk_spans = ((0, 2), (2, 5))
    chunked = dedup_row(c).as_dict()
    assert chunked["chunks"] == 2
    assert applied_change(Row(payload=chunked["payload"], replaces=False, previous_chunks=0)).chunk_spans == (
        (0, 2),
        (2, 5),
    )
    delete_row = dedup_row(change(DELETE, version=None)).as_dict()
    assert delete_row["delete"] is True and delete_row["version"] is None and delete_row["text_hash"] is None


@pytest.mark.parametrize("bad", [-1, MAX_STATE_TTL_MS + 1])
def test_a_state_ttl_out_of_range_is_rejected(bad: int) -> None:
    with pytest.raises(ValueError, match=f"between 0 and {MAX_STATE_TTL_MS} ms, got {bad}"):
        check_ttl_ms(bad)
