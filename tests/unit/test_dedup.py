from __future__ import annotations

import pickle
from hashlib import blake2b

import cloudpickle
import pytest
from pyflink.datastream.state import StateTtlConfig

from udfs.dedup import Action, DedupFunction, DedupState, decide, state_ttl_config
from udfs.records import DELETE, UPSERT, Change, Op, SourceRecord

pytestmark = pytest.mark.unit

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


def test_a_first_upsert_is_emitted_as_an_insert_and_stored() -> None:
    c = change(version=3)
    decision = decide(None, c)
    assert decision.action is Action.EMIT
    assert c.replaces is False
    assert decision.state == DedupState(3, _hash("c1"), _hash("hello"), False)


def test_a_stale_version_never_overwrites_a_newer_one() -> None:
    c = change(version=4, content="older")
    decision = decide(live(version=5), c)
    assert decision.action is Action.SKIP_STALE
    assert decision.state is None
    assert c.replaces is False


def test_an_upsert_with_unchanged_content_is_skipped_and_raises_the_stored_version() -> None:
    decision = decide(live(version=5), change(version=7))
    assert decision.action is Action.SKIP_UNCHANGED
    assert decision.state == live(version=7)


def test_an_unchanged_upsert_with_the_same_version_leaves_the_state_as_is() -> None:
    decision = decide(live(version=5), change(version=5))
    assert decision.action is Action.SKIP_UNCHANGED
    assert decision.state is None


def test_an_upsert_without_content_hash_is_never_skipped_as_unchanged() -> None:
    state = DedupState(5, b"", None, False)
    c = change(version=5)
    c.content_hash = b""
    assert decide(state, c).action is Action.EMIT


def test_an_update_with_unchanged_text_is_emitted_and_marked_text_unchanged() -> None:
    c = change(version=6, content="new metadata", text="hello")
    decision = decide(live(version=5), c)
    assert decision.action is Action.EMIT
    assert c.replaces is True
    assert decision.text_unchanged is True
    assert decision.state is not None and decision.state.text_hash == live().text_hash


def test_an_update_with_new_text_is_not_marked_text_unchanged() -> None:
    decision = decide(live(version=5), change(version=6, content="c2", text="bye"))
    assert decision.action is Action.EMIT
    assert decision.text_unchanged is False
    assert decision.state == DedupState(6, _hash("c2"), _hash("bye"), False)


def test_equal_versions_are_not_stale_and_the_content_decides() -> None:
    changed = change(version=5, content="c2")
    assert decide(live(version=5), changed).action is Action.EMIT
    assert changed.replaces is True
    assert decide(live(version=5), change(version=5)).action is Action.SKIP_UNCHANGED


def test_a_change_without_version_is_ordered_by_arrival_and_keeps_the_stored_version() -> None:
    decision = decide(live(version=5), change(version=None, content="c2"))
    assert decision.action is Action.EMIT
    assert decision.state is not None and decision.state.version == 5
    late_older = decide(decision.state, change(version=4, content="c3"))
    assert late_older.action is Action.SKIP_STALE


def test_a_delete_of_a_live_record_is_emitted_and_leaves_a_tombstone() -> None:
    c = change(DELETE, version=6)
    decision = decide(live(version=5), c)
    assert decision.action is Action.EMIT
    assert c.replaces is True
    assert decision.state == tombstone(version=6)


def test_a_delete_tombstone_blocks_a_late_older_update() -> None:
    decision = decide(tombstone(version=6), change(version=5, content="c0"))
    assert decision.action is Action.SKIP_STALE
    assert decision.state is None


def test_a_repeated_delete_is_skipped_as_unchanged() -> None:
    decision = decide(tombstone(version=6), change(DELETE, version=6))
    assert decision.action is Action.SKIP_UNCHANGED
    assert decision.state is None


def test_a_repeated_delete_with_a_newer_version_raises_the_tombstone_version() -> None:
    decision = decide(tombstone(version=6), change(DELETE, version=9))
    assert decision.action is Action.SKIP_UNCHANGED
    assert decision.state == tombstone(version=9)


def test_a_delete_of_an_unknown_id_is_emitted_because_pinecone_may_hold_it() -> None:
    c = change(DELETE, version=1)
    decision = decide(None, c)
    assert decision.action is Action.EMIT
    assert c.replaces is False
    assert decision.state == tombstone(version=1)


def test_an_upsert_after_a_delete_is_a_reinsert_not_a_replacement() -> None:
    c = change(version=7)  # same content as before the delete
    decision = decide(tombstone(version=6), c)
    assert decision.action is Action.EMIT
    assert c.replaces is False
    assert decision.text_unchanged is False
    assert decision.state == live(version=7)


def test_the_state_round_trips_through_its_compact_tuple() -> None:
    state = DedupState(1_712_345_678_901, _hash("c"), None, True)
    stored = state.to_tuple()
    assert DedupState.from_tuple(pickle.loads(cloudpickle.dumps(stored))) == state
    # The tuple is what Flink pickles per key: it must stay far smaller than the pickled dataclass.
    assert len(cloudpickle.dumps(stored)) < len(cloudpickle.dumps(state))
    assert len(cloudpickle.dumps(live().to_tuple())) <= 60


def test_state_ttl_is_counted_from_the_last_write_and_never_returns_expired_state() -> None:
    config = state_ttl_config(7)
    assert config is not None
    assert config.get_ttl().to_milliseconds() == 7 * 24 * 3600 * 1000
    assert config.get_update_type() is StateTtlConfig.UpdateType.OnCreateAndWrite
    assert config.get_state_visibility() is StateTtlConfig.StateVisibility.NeverReturnExpired
    assert state_ttl_config(0) is None


def test_a_negative_state_ttl_is_rejected_naming_the_option() -> None:
    with pytest.raises(ValueError, match="state_ttl_days must be between 0 and 36500, got -1"):
        DedupFunction(state_ttl_days=-1)


class _FakeState:
    def __init__(self) -> None:
        self.stored: object = None

    def value(self) -> object:
        return self.stored

    def update(self, value: object) -> None:
        self.stored = value


class _FakeCounter:
    def __init__(self) -> None:
        self.count = 0

    def inc(self, n: int = 1) -> None:
        self.count += n


class _FakeMetrics:
    def __init__(self) -> None:
        self.counters: dict[str, _FakeCounter] = {}

    def counter(self, name: str) -> _FakeCounter:
        return self.counters.setdefault(name, _FakeCounter())


class _FakeRuntimeContext:
    def __init__(self) -> None:
        self.state = _FakeState()
        self.metrics = _FakeMetrics()
        self.descriptor: object = None

    def get_state(self, descriptor: object) -> _FakeState:
        self.descriptor = descriptor
        return self.state

    def get_metrics_group(self) -> _FakeMetrics:
        return self.metrics


def test_dedup_function_emits_skips_and_counts_through_keyed_state() -> None:
    ctx = _FakeRuntimeContext()
    function = DedupFunction(state_ttl_days=3)
    function.open(ctx)
    inputs = [
        change(version=1),
        change(version=1),  # unchanged
        change(version=3, content="c2", text="hello"),  # text unchanged
        change(version=2, content="c3"),  # stale
        change(DELETE, version=4),
    ]
    emitted = [out for c in inputs for out in function.process_element(c, None)]
    assert emitted == [inputs[0], inputs[2], inputs[4]]
    counts = {name: counter.count for name, counter in ctx.metrics.counters.items()}
    assert counts == {"records_in": 5, "skipped_unchanged": 1, "skipped_stale": 1, "text_unchanged": 1}
    assert ctx.state.stored == (4, _hash("delete"), None, True)
    assert ctx.descriptor._ttl_config is function._ttl  # type: ignore[attr-defined]
