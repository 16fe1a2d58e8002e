from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from pinecone import ApiError, NotFoundError, RateLimitError, ServiceError, UnauthorizedError

from kafka_pinecone_flink.sinks import stats
from kafka_pinecone_flink.sinks.batch import UpsertRecord
from kafka_pinecone_flink.sinks.config import ConfigError, PineconeSinkConfig
from kafka_pinecone_flink.sinks.retry import SinkFatalError, SinkUnavailableError
from kafka_pinecone_flink.sinks.writer import DELETED, SUPERSEDED, UPDATED, UPSERTED, Applied, PineconeWriter, lane_of
from kafka_pinecone_flink.udfs.errors import RecordRejectedError
from kafka_pinecone_flink.udfs.records import DELETE, UPSERT, Change, DeadLetter, Op, SourceRecord

pytestmark = pytest.mark.unit

KEY = "pcsk_3Zz9writerSECRET_42"


@dataclass(frozen=True)
class Stored:
    """A record as the fake index keeps it: what the sink's JSON for it says."""

    id: str
    values: list[float]
    sparse: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None

    @classmethod
    def of(cls, record: UpsertRecord) -> Stored:
        sent = orjson.loads(record.json)
        return cls(sent["id"], sent["values"], sent.get("sparseValues"), sent.get("metadata"))


class FakeIndex:
    """An in-memory ``IndexClient`` that can be told to fail.

    ``fail_with``: exceptions raised by the next calls, one per call, before anything is stored.
    ``bad_ids``: ids the "server" rejects with a 400 that names the id (the whole request fails, as Pinecone's does).
    """

    def __init__(self) -> None:
        self.store: dict[str, dict[str, Stored]] = {}
        self.calls: list[tuple[str, str, list[str]]] = []
        self.fail_with: list[Exception] = []
        self.bad_ids: set[str] = set()

    def _maybe_fail(self, ids: Sequence[str]) -> None:
        if self.fail_with:
            raise self.fail_with.pop(0)
        bad = [i for i in ids if i in self.bad_ids]
        if bad:
            raise ApiError(f"Invalid vector '{bad[0]}': metadata value must not be null", 400)

    async def upsert(self, records: Sequence[UpsertRecord], namespace: str) -> None:
        ids = [r.id for r in records]
        self.calls.append(("upsert", namespace, ids))
        self._maybe_fail(ids)
        self.store.setdefault(namespace, {}).update({r.id: Stored.of(r) for r in records})

    async def delete(self, ids: Sequence[str], namespace: str) -> None:
        self.calls.append(("delete", namespace, list(ids)))
        self._maybe_fail(ids)
        if namespace not in self.store:
            raise NotFoundError(f"Namespace '{namespace}' not found")
        for record_id in ids:
            self.store[namespace].pop(record_id, None)

    async def namespaces(self) -> set[str]:
        self.calls.append(("namespaces", "", []))
        if self.fail_with:
            raise self.fail_with.pop(0)
        return set(self.store)

    async def close(self) -> None:
        return None

    def ids(self, namespace: str = "ns") -> set[str]:
        return set(self.store.get(namespace, {}))


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def change(
    record_id: str,
    op: Op = UPSERT,
    *,
    offset: int = 0,
    namespace: str = "ns",
    values: list[float] | None = None,
    replaces: bool = False,
    timestamp_ms: int | None = 1_000,
) -> Change:
    source = SourceRecord("docs", 0, offset, timestamp_ms, record_id.encode(), b"{}")
    if op == UPSERT and values is None:
        values = [0.1, 0.2, 0.3]
    return Change(op=op, namespace=namespace, id=record_id, source=source, values=values, replaces=replaces)


def config(**overrides: Any) -> PineconeSinkConfig:
    options: dict[str, Any] = {"index_name": "docs", "api_key": KEY, "error_tolerance": "all"}
    options.update(overrides)
    return PineconeSinkConfig(**options)


class Ticks:
    """A monotonic clock that advances ``step`` seconds on every reading."""

    def __init__(self, start: float, step: float) -> None:
        self.now, self.step = start - step, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def make_writer(fake: FakeIndex, **overrides: Any) -> tuple[PineconeWriter, stats.SinkStats, Sleeps]:
    metrics, sleeps = stats.SinkStats(), Sleeps()
    writer = PineconeWriter(
        fake,
        config(**overrides),
        metrics=metrics,
        sleep=sleeps,
        rng=random.Random(5),
        monotonic=Ticks(10.0, 0.25),
        now_ms=lambda: 5_000.0,
    )
    return writer, metrics, sleeps


def write(writer: PineconeWriter, changes: list[Change], namespace: str = "ns") -> list[Any]:
    return asyncio.run(writer.write_batch(namespace, changes))


# --- happy path and collapsing ----------------------------------------------------------------------------------------
def test_upserts_and_deletes_are_written_and_each_change_gets_its_outcome() -> None:
    fake = FakeIndex()
    fake.store["ns"] = {"old": Stored("old", [1.0])}
    writer, metrics, _ = make_writer(fake)
    outcomes = write(writer, [change("a"), change("b", replaces=True), change("old", DELETE)])
    assert outcomes == [UPSERTED, UPDATED, DELETED]
    assert fake.ids() == {"a", "b"}
    assert metrics[stats.REQUESTS] == 2


def test_the_payload_carries_id_values_and_only_non_empty_metadata() -> None:
    fake = FakeIndex()
    writer, _, _ = make_writer(fake)
    with_meta = change("a")
    with_meta.metadata = {"title": "x"}
    write(writer, [with_meta, change("b")])
    assert fake.store["ns"]["a"] == Stored("a", [0.1, 0.2, 0.3], None, {"title": "x"})
    assert fake.store["ns"]["b"].metadata is None


def test_the_last_operation_per_id_wins_and_earlier_ones_are_superseded() -> None:
    fake = FakeIndex()
    writer, _, _ = make_writer(fake)
    outcomes = write(writer, [change("a", values=[1.0]), change("a", values=[2.0]), change("a", values=[3.0])])
    assert outcomes == [SUPERSEDED, SUPERSEDED, UPSERTED]
    assert fake.store["ns"]["a"].values == [3.0]
    assert fake.calls == [("upsert", "ns", ["a"])]


def test_a_delete_after_an_upsert_in_one_batch_sends_only_the_delete() -> None:
    fake = FakeIndex()
    fake.store["ns"] = {"a": Stored("a", [0.0])}
    writer, _, _ = make_writer(fake)
    outcomes = write(writer, [change("a"), change("a", DELETE)])
    assert outcomes == [SUPERSEDED, DELETED]
    assert fake.calls == [("delete", "ns", ["a"])]
    assert fake.ids() == set()


def test_an_upsert_after_a_delete_in_one_batch_sends_only_the_upsert() -> None:
    fake = FakeIndex()
    writer, _, _ = make_writer(fake)
    outcomes = write(writer, [change("a", DELETE), change("a", values=[4.0])])
    assert outcomes == [SUPERSEDED, UPSERTED]
    assert fake.calls == [("upsert", "ns", ["a"])]


def test_deleting_from_a_namespace_that_does_not_exist_is_a_successful_no_op() -> None:
    fake = FakeIndex()
    writer, _, _ = make_writer(fake)
    assert write(writer, [change("a", DELETE)]) == [DELETED]


def test_requests_respect_batch_size() -> None:
    fake = FakeIndex()
    writer, _, _ = make_writer(fake, batch_size=2)
    write(writer, [change(f"id{i}") for i in range(5)])
    assert [len(ids) for kind, _, ids in fake.calls if kind == "upsert"] == [2, 2, 1]


# --- retries -----------------------------------------------------------------------------------------------------
def test_a_429_is_retried_after_its_retry_after() -> None:
    fake = FakeIndex()
    fake.fail_with = [RateLimitError(retry_after=5.0)]
    writer, metrics, sleeps = make_writer(fake, retry_interval_ms=10, max_retry_interval_ms=10)
    assert write(writer, [change("a")]) == [UPSERTED]
    assert sleeps.delays == [5.0]
    assert metrics[stats.RETRIES] == 1 and metrics[stats.REQUESTS] == 2
    assert fake.ids() == {"a"}


def test_server_errors_are_retried_with_bounded_backoff() -> None:
    fake = FakeIndex()
    fake.fail_with = [ServiceError(), ServiceError("bad gateway", 502)]
    writer, metrics, sleeps = make_writer(fake, retry_interval_ms=1_000, max_retry_interval_ms=1_500)
    assert write(writer, [change("a")]) == [UPSERTED]
    assert len(sleeps.delays) == 2
    assert 0 <= sleeps.delays[0] <= 1.0 and 0 <= sleeps.delays[1] <= 1.5
    assert metrics[stats.RETRIES] == 2


def test_exhausted_retries_raise_sink_unavailable_and_settle_nothing() -> None:
    fake = FakeIndex()
    fake.fail_with = [ServiceError() for _ in range(4)]
    writer, metrics, sleeps = make_writer(fake, max_retries=3)
    with pytest.raises(SinkUnavailableError, match="failed after 4 attempts"):
        write(writer, [change("a")])
    assert len(sleeps.delays) == 3
    assert metrics[stats.REQUESTS] == 4 and fake.ids() == set()


# --- poison records --------------------------------------------------------------------------------------------
def test_a_400_is_narrowed_to_exactly_the_bad_records_and_the_rest_is_written() -> None:
    fake = FakeIndex()
    fake.bad_ids = {"id7", "id42"}
    writer, _, _ = make_writer(fake)
    changes = [change(f"id{i}", offset=i) for i in range(100)]
    outcomes = write(writer, changes)
    dead = {i: o for i, o in enumerate(outcomes) if isinstance(o, DeadLetter)}
    assert sorted(dead) == [7, 42]
    assert all(o == UPSERTED for i, o in enumerate(outcomes) if i not in dead)
    assert fake.ids() == {f"id{i}" for i in range(100)} - {"id7", "id42"}
    letter = dead[7]
    assert letter.stage == "sink" and letter.error_class == "PineconeRejectedError"
    assert letter.source is changes[7].source
    assert "HTTP 400" in letter.message and "Invalid vector 'id7'" in letter.message


def test_a_rejected_last_operation_falls_back_to_the_ids_previous_operation() -> None:
    fake = FakeIndex()
    writer, _, _ = make_writer(fake)
    good, bad = change("a", values=[1.0], offset=1), change("a", values=[2.0], offset=2)
    fake.fail_with = [ApiError("Vector dimension 1 does not match", 400)]  # the collapsed request: only "bad"
    outcomes = write(writer, [good, bad])
    assert outcomes[0] == UPSERTED
    assert isinstance(outcomes[1], DeadLetter) and outcomes[1].source.offset == 2
    assert fake.store["ns"]["a"].values == [1.0]  # as if applied one by one


def test_a_rejected_record_with_fail_fast_tolerance_stops_the_job_naming_its_coordinates() -> None:
    fake = FakeIndex()
    fake.bad_ids = {"id3"}
    writer, _, _ = make_writer(fake, error_tolerance="none")
    with pytest.raises(
        RecordRejectedError, match=r"record docs\[0\]@3 rejected in sink: PineconeRejectedError"
    ) as info:
        write(writer, [change(f"id{i}", offset=i) for i in range(6)])
    assert info.value.coordinates == "docs[0]@3"


def test_a_record_too_large_for_any_request_is_dead_lettered_and_the_rest_written() -> None:
    fake = FakeIndex()
    writer, _, _ = make_writer(fake, max_request_bytes=2_048)
    outcomes = write(writer, [change("big", values=[0.123456789] * 400), change("small")])
    assert isinstance(outcomes[0], DeadLetter) and outcomes[0].error_class == "RecordTooLargeError"
    assert outcomes[1] == UPSERTED
    assert fake.ids() == {"small"}


def test_a_dead_letter_message_never_contains_the_api_key() -> None:
    fake = FakeIndex()
    fake.fail_with = [ApiError(f"bad request from key {KEY}", 400)]
    writer, _, _ = make_writer(fake)
    (outcome,) = write(writer, [change("a")])
    assert isinstance(outcome, DeadLetter)
    assert KEY not in outcome.message and "bad request from key ***" in outcome.message


# --- fatal ---------------------------------------------------------------------------------------------------------
def test_a_401_stops_the_job_without_the_key_in_the_message() -> None:
    fake = FakeIndex()
    fake.fail_with = [UnauthorizedError(f"Invalid API key {KEY}")]
    writer, _, _ = make_writer(fake)
    with pytest.raises(SinkFatalError, match="rejected the API key for index 'docs'") as info:
        write(writer, [change("a")])
    assert KEY not in str(info.value)


def test_a_missing_index_stops_the_job() -> None:
    fake = FakeIndex()
    fake.fail_with = [NotFoundError("Index 'docs' not found")]
    writer, _, _ = make_writer(fake)
    with pytest.raises(SinkFatalError, match="index 'docs' was not found"):
        write(writer, [change("a")])


# --- schema evolution ------------------------------------------------------------------------------------------------
def test_with_schema_evolution_none_a_missing_namespace_dead_letters_its_changes() -> None:
    fake = FakeIndex()
    fake.store["known"] = {}
    writer, _, _ = make_writer(fake, schema_evolution="none")
    outcomes = write(writer, [change("a", namespace="new"), change("a", namespace="new")], namespace="new")
    assert all(isinstance(o, DeadLetter) and o.error_class == "NamespaceMissingError" for o in outcomes)
    assert "namespace 'new' does not exist in index 'docs'" in outcomes[0].message
    assert not any(kind == "upsert" for kind, _, _ in fake.calls)


def test_with_schema_evolution_none_an_existing_namespace_is_checked_once_then_cached() -> None:
    fake = FakeIndex()
    fake.store["known"] = {}
    writer, _, _ = make_writer(fake, schema_evolution="none")
    write(writer, [change("a", namespace="known")], namespace="known")
    write(writer, [change("b", namespace="known")], namespace="known")
    assert [kind for kind, _, _ in fake.calls] == ["namespaces", "upsert", "upsert"]


def test_with_schema_evolution_basic_no_namespace_check_is_made() -> None:
    fake = FakeIndex()
    writer, _, _ = make_writer(fake)
    write(writer, [change("a", namespace="new")], namespace="new")
    assert [kind for kind, _, _ in fake.calls] == ["upsert"]


def test_require_namespaces_names_the_missing_ones_when_schema_evolution_is_none() -> None:
    fake = FakeIndex()
    fake.store["a"] = {}
    writer, _, _ = make_writer(fake, schema_evolution="none")
    with pytest.raises(SinkFatalError, match=r"namespace\(s\) \['b', 'c'\] do not exist in Pinecone index 'docs'"):
        asyncio.run(writer.require_namespaces(["a", "b", "c"]))


# --- metrics, micro-batching -----------------------------------------------------------------------------------------
def test_batch_size_latency_and_lag_are_reported() -> None:
    fake = FakeIndex()
    writer, metrics, _ = make_writer(fake)
    write(writer, [change("a", timestamp_ms=4_000), change("b", timestamp_ms=4_500), change("c", timestamp_ms=None)])
    assert list(metrics.samples[stats.BATCH_SIZE]) == [3]
    # Clock readings: batch start 10.0, request start 10.25, request end 10.5, batch end 10.75.
    assert list(metrics.samples[stats.FLUSH_LATENCY_MS]) == [750.0]
    assert list(metrics.samples[stats.REQUEST_LATENCY_MS]) == [250.0]
    assert metrics.gauges[stats.LAG_MS] == 1_000.0
    # Freshness: Kafka timestamp to acknowledgement (now_ms = 5000), per record that has a timestamp.
    assert sorted(metrics.samples[stats.FRESHNESS_MS]) == [500.0, 1_000.0]
    assert metrics.windows[stats.FRESHNESS_MS].quantile(0.99) == 1_000.0


class SlowIndex(FakeIndex):
    """Each request takes a little while (``delays``); records how many requests were in flight at once. A request
    that carries the id ``refuse_request_with`` is answered 401."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.most_in_flight = 0
        self.refuse_request_with: str | None = None
        self.delays: list[float] = []
        """How long the next requests take, one per request; 10 ms each after them."""

    async def upsert(self, records: Sequence[UpsertRecord], namespace: str) -> None:
        if self.refuse_request_with in [record.id for record in records]:
            self.fail_with = [UnauthorizedError()]
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(self.delays.pop(0) if self.delays else 0.01)
        self.in_flight -= 1
        await super().upsert(records, namespace)


def test_requests_of_one_namespace_run_concurrently_up_to_max_concurrency() -> None:
    for lanes in (1, 4):
        fake = SlowIndex()
        writer = PineconeWriter(fake, config(batch_size=2, max_concurrency=lanes), sleep=Sleeps())
        assert write_group(writer, [change(f"id{i}") for i in range(64)]) == [UPSERTED] * 64
        assert len(fake.ids()) == 64
        assert fake.most_in_flight == lanes


def test_the_writes_of_one_id_stay_in_order_across_groups_in_flight() -> None:
    fake = SlowIndex()
    writer = PineconeWriter(fake, config(batch_size=1, max_concurrency=8), sleep=Sleeps())
    written: dict[str, list[float]] = {}
    upsert = fake.upsert

    async def record(records: Sequence[UpsertRecord], namespace: str) -> None:
        for record in records:
            written.setdefault(record.id, []).append(Stored.of(record).values[0])
        await upsert(records, namespace)

    fake.upsert = record  # type: ignore[method-assign]

    async def go() -> list[list[Any]]:
        # Ten groups in flight at once, each with a new version of five ids, one record per request: without lanes
        # keyed by id and kept in order across groups, a later version could be written before an earlier one.
        groups = [[change(f"id{n}", values=[float(g * 5 + n), 0.0, 1.0]) for n in range(5)] for g in range(10)]
        first = asyncio.ensure_future(writer.submit_group(groups[0]))
        await asyncio.sleep(0.005)  # the first group's writes are in flight when the others come
        rest = [writer.submit_group(group) for group in groups[1:]]
        return list(await asyncio.wait_for(asyncio.gather(first, *rest), timeout=5))

    outcomes = asyncio.run(go())
    for n in range(5):
        # One change per write (batch_size 1): every version of the id, in the groups' order.
        assert written[f"id{n}"] == [float(g * 5 + n) for g in range(10)]
        assert fake.store["ns"][f"id{n}"].values[0] == float(45 + n)
    assert outcomes == [[UPSERTED] * 5] * 10


def test_the_parts_that_wait_for_a_lane_are_written_together_in_fuller_requests() -> None:
    fake = SlowIndex()
    writer = PineconeWriter(fake, config(batch_size=100, max_concurrency=1), sleep=Sleeps())

    async def go() -> None:
        first = asyncio.ensure_future(writer.submit_group([change(f"a{i}") for i in range(10)]))
        await asyncio.sleep(0.005)
        # Three groups of 30 come while the first write is in flight: one request of 90 after it, not three of 30.
        rest = [writer.submit_group([change(f"g{g}-{i}") for i in range(30)]) for g in range(3)]
        results = await asyncio.wait_for(asyncio.gather(first, *rest), timeout=5)
        assert [len(r) for r in results] == [10, 30, 30, 30] and all(o == UPSERTED for r in results for o in r)

    asyncio.run(go())
    assert [len(ids) for kind, _, ids in fake.calls if kind == "upsert"] == [10, 90]
    assert fake.most_in_flight == 1


def test_a_lane_is_stable_for_an_id_and_spreads_ids() -> None:
    lanes = {lane_of(change(f"id{i}"), 4) for i in range(200)}
    assert lanes == {("ns", 0), ("ns", 1), ("ns", 2), ("ns", 3)}
    assert lane_of(change("abc"), 4) == lane_of(change("abc", offset=9), 4)
    assert lane_of(change("abc", namespace="other"), 1) == ("other", 0)


def test_applied_outcomes_are_shared_constants() -> None:
    assert Applied("upserted") == UPSERTED and UPSERTED.kind == "upserted"


# --- configuration (sinks/config.py) ---------------------------------------------------------------------------------
def test_the_config_repr_masks_the_api_key() -> None:
    text = repr(config())
    assert KEY not in text and "api_key='***'" in text and "index_name='docs'" in text
    assert KEY not in str(config())


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("batch_size", 0, "batch_size must be an integer in 1..1000, got 0"),
        ("batch_size", 1_001, "batch_size must be an integer in 1..1000, got 1001"),
        ("max_request_bytes", 3_000_000, "max_request_bytes must be an integer in 1024..2000000, got 3000000"),
        ("linger_ms", -1, "linger_ms must be an integer in 0..10000, got -1"),
        ("max_concurrency", 0, "max_concurrency must be an integer in 1..64, got 0"),
        ("max_retries", -1, "max_retries must be an integer in 0..100, got -1"),
        ("max_retry_interval_ms", 10, "max_retry_interval_ms must be an integer in 1000..600000, got 10"),
        ("request_timeout_s", 0, "request_timeout_s must be a number in (0, 600], got 0"),
        ("error_tolerance", "some", "error_tolerance must be one of ['none', 'all'], got 'some'"),
        ("schema_evolution", "full", "schema_evolution must be one of ['basic', 'none'], got 'full'"),
        ("index_name", "Docs_1", "index_name must be 1..45 lowercase letters, digits or '-'"),
        ("controller_host", "", "controller_host must be a non-empty URL"),
    ],
)
def test_an_invalid_option_is_named_with_its_value_and_range(option: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config(**{option: value})
    assert message in str(info.value)


def test_an_invalid_api_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError, match="api_key must be None or a non-empty string") as info:
        config(api_key=" pcsk_leaky_key_value\n")
    assert "leaky" not in str(info.value)


def test_the_config_defaults_are_valid_and_documented_values() -> None:
    defaults = PineconeSinkConfig(index_name="docs")
    assert (defaults.batch_size, defaults.linger_ms, defaults.max_retries) == (250, 100, 3)
    assert (defaults.retry_interval_ms, defaults.max_retry_interval_ms) == (1_000, 30_000)
    assert defaults.max_request_bytes < 2_000_000 and defaults.api_key is None


# --- submit_group: a group handed over by Flink ----------------------------------------------------------------------


def write_group(writer: PineconeWriter, changes: list[Change]) -> list[Any]:
    # sink.linger-ms at its maximum: a group that waited for it would run into the timeout.
    return asyncio.run(asyncio.wait_for(writer.submit_group(changes), timeout=5))


def test_a_group_gets_its_outcomes_in_order_without_waiting_for_the_linger() -> None:
    fake = FakeIndex()
    fake.store["b"] = {"gone": Stored("gone", [1.0])}
    writer = PineconeWriter(fake, config(linger_ms=10_000, max_concurrency=4), sleep=Sleeps())
    group = [
        change("x1", namespace="a"),
        change("gone", DELETE, namespace="b"),
        change("x2", namespace="b", replaces=True),
        change("x3", namespace="a"),
    ]
    assert write_group(writer, group) == [UPSERTED, DELETED, UPDATED, UPSERTED]
    assert fake.ids("a") == {"x1", "x3"} and fake.ids("b") == {"x2"}


def test_a_group_is_written_per_lane_in_requests_of_batch_size() -> None:
    fake = SlowIndex()
    writer = PineconeWriter(fake, config(batch_size=3, linger_ms=10_000, max_concurrency=4), sleep=Sleeps())
    group = [change(f"id{i}") for i in range(40)]
    assert write_group(writer, group) == [UPSERTED] * 40
    upserts = [ids for kind, _, ids in fake.calls if kind == "upsert"]
    assert sorted(i for ids in upserts for i in ids) == sorted(c.id for c in group)
    assert all(len(ids) <= 3 for ids in upserts)
    for ids in upserts:  # a request holds the ids of one lane only
        assert len({lane_of(change(i), 4) for i in ids}) == 1
    lanes = {lane_of(c, 4) for c in group}
    assert len(lanes) > 1 and fake.most_in_flight == len(lanes)
    for lane in lanes:  # each lane's ids are written in the group's order
        order = [c.id for c in group if lane_of(c, 4) == lane]
        assert [i for ids in upserts for i in ids if lane_of(change(i), 4) == lane] == order


def test_the_changes_of_a_lane_in_a_group_are_collapsed_together_whatever_the_batch_size() -> None:
    fake = FakeIndex()
    writer, _, _ = make_writer(fake, batch_size=2, max_concurrency=1)
    group = [change("a", values=[float(i)], offset=i) for i in range(5)]
    assert write_group(writer, group) == [SUPERSEDED] * 4 + [UPSERTED]
    assert fake.calls == [("upsert", "ns", ["a"])] and fake.store["ns"]["a"].values == [4.0]


def test_the_last_operation_of_an_id_within_a_group_wins() -> None:
    fake = FakeIndex()
    fake.store["ns"] = {"b": Stored("b", [9.0])}
    writer, _, _ = make_writer(fake, linger_ms=10_000, max_concurrency=1)
    group = [
        change("a", values=[1.0], offset=1),
        change("b", DELETE, offset=2),
        change("a", values=[2.0], offset=3),
        change("b", values=[3.0], offset=4, replaces=True),
    ]
    assert write_group(writer, group) == [SUPERSEDED, SUPERSEDED, UPSERTED, UPDATED]
    assert fake.store["ns"]["a"].values == [2.0] and fake.store["ns"]["b"].values == [3.0]
    assert [(kind, ids) for kind, _, ids in fake.calls] == [("upsert", ["a", "b"])]


def test_a_rejected_record_of_a_group_is_its_dead_letter_and_the_rest_is_written() -> None:
    fake = FakeIndex()
    fake.bad_ids = {"id3"}
    writer, _, _ = make_writer(fake, linger_ms=10_000, max_concurrency=1)
    group = [change(f"id{i}", offset=i) for i in range(6)]
    outcomes = write_group(writer, group)
    assert [o for i, o in enumerate(outcomes) if i != 3] == [UPSERTED] * 5
    letter = outcomes[3]
    assert isinstance(letter, DeadLetter) and letter.stage == "sink"
    assert letter.error_class == "PineconeRejectedError" and letter.source is group[3].source
    assert KEY not in letter.message
    assert fake.ids() == {f"id{i}" for i in range(6)} - {"id3"}


def test_a_later_group_writes_an_id_after_an_earlier_group() -> None:
    fake = SlowIndex()
    writer = PineconeWriter(fake, config(batch_size=2, linger_ms=10_000, max_concurrency=2), sleep=Sleeps())

    async def go() -> None:
        first = writer.submit_group([change(f"id{i}", values=[1.0, 0.0, float(i)]) for i in range(5)])
        second = writer.submit_group([change(f"id{i}", values=[2.0, 0.0, float(i)]) for i in range(5)])
        await asyncio.wait_for(asyncio.gather(first, second), timeout=5)

    asyncio.run(go())
    assert all(fake.store["ns"][f"id{i}"].values[0] == 2.0 for i in range(5))


def test_a_lane_fills_each_write_up_to_batch_size_across_groups_splitting_a_group_between_writes() -> None:
    fake = SlowIndex()
    writer = PineconeWriter(fake, config(batch_size=3, max_concurrency=1), sleep=Sleeps())
    done: list[str] = []

    async def group(name: str, size: int) -> list[Any]:
        outcomes = await writer.submit_group([change(f"{name}{i}") for i in range(size)])
        done.append(name)
        return outcomes

    async def go() -> list[Any]:
        first = asyncio.ensure_future(group("a", 1))
        await asyncio.sleep(0.005)
        waiting = [asyncio.ensure_future(group("x", 5)), asyncio.ensure_future(group("y", 2))]
        return list(await asyncio.wait_for(asyncio.gather(first, *waiting), timeout=5))

    assert asyncio.run(go()) == [[UPSERTED], [UPSERTED] * 5, [UPSERTED] * 2]
    assert [ids for kind, _, ids in fake.calls if kind == "upsert"] == [
        ["a0"],
        ["x0", "x1", "x2"],
        ["x3", "x4", "y0"],  # x's rest and the start of y share a request
        ["y1"],
    ]
    assert done == ["a", "x", "y"]  # x is answered when its second slice is written, before y's last


def test_a_group_split_between_writes_keeps_each_ids_changes_in_one_write() -> None:
    fake = SlowIndex()
    writer = PineconeWriter(fake, config(batch_size=2, max_concurrency=1), sleep=Sleeps())

    async def go() -> list[Any]:
        first = asyncio.ensure_future(writer.submit_group([change("a0")]))
        await asyncio.sleep(0.005)
        group = [change("p", values=[1.0]), change("q"), change("p", values=[2.0]), change("r")]
        return list(await asyncio.wait_for(asyncio.gather(first, writer.submit_group(group)), timeout=5))

    assert asyncio.run(go())[1] == [SUPERSEDED, UPSERTED, UPSERTED, UPSERTED]
    # Two ids per write: p (both of its changes, collapsed to the last) with q, then r.
    assert [ids for kind, _, ids in fake.calls if kind == "upsert"] == [["a0"], ["q", "p"], ["r"]]
    assert fake.store["ns"]["p"].values == [2.0]


def test_a_failed_write_does_not_write_the_rest_of_its_groups() -> None:
    fake = SlowIndex()
    writer = PineconeWriter(fake, config(batch_size=2, max_concurrency=1), sleep=Sleeps())
    fake.refuse_request_with = "x1"

    async def go() -> list[Any]:
        first = asyncio.ensure_future(writer.submit_group([change("a0")]))
        await asyncio.sleep(0.005)
        x = asyncio.ensure_future(writer.submit_group([change(f"x{i}") for i in range(4)]))
        y = asyncio.ensure_future(writer.submit_group([change("y0")]))
        return list(await asyncio.wait_for(asyncio.gather(first, x, y, return_exceptions=True), timeout=5))

    first, x, y = asyncio.run(go())
    assert first == [UPSERTED] and isinstance(x, SinkFatalError) and y == [UPSERTED]
    # x0 and x1 failed; x2 and x3 are never sent; y goes on.
    assert [ids for kind, _, ids in fake.calls if kind == "upsert"] == [["a0"], ["x0", "x1"], ["y0"]]


def test_a_failed_write_fails_its_group_and_the_write_queued_behind_it_goes_on() -> None:
    fake = SlowIndex()
    fake.fail_with = [UnauthorizedError()]
    writer = PineconeWriter(fake, config(max_concurrency=1), sleep=Sleeps())

    async def go() -> tuple[BaseException | list[Any], ...]:
        first = asyncio.ensure_future(writer.submit_group([change("a", values=[1.0, 0.0, 0.0])]))
        await asyncio.sleep(0.005)  # the first write is in flight: the second waits for it
        second = writer.submit_group([change("a", values=[2.0, 0.0, 0.0])])
        return tuple(await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), timeout=5))

    failed, written = asyncio.run(go())
    assert isinstance(failed, SinkFatalError)
    assert written == [UPSERTED] and fake.store["ns"]["a"].values[0] == 2.0


def test_a_failed_batch_of_parts_fails_every_group_in_it_and_the_lane_goes_on() -> None:
    fake = SlowIndex()
    writer = PineconeWriter(fake, config(max_concurrency=1), sleep=Sleeps())
    fake.refuse_request_with = "b"  # the request that carries the two waiting groups

    async def go() -> list[Any]:
        first = asyncio.ensure_future(writer.submit_group([change("a")]))
        await asyncio.sleep(0.005)
        waiting = [asyncio.ensure_future(writer.submit_group([change(i)])) for i in ("b", "c")]
        await asyncio.sleep(0.03)
        after = writer.submit_group([change("d")])
        return list(await asyncio.wait_for(asyncio.gather(first, *waiting, after, return_exceptions=True), timeout=5))

    first, second, third, after = asyncio.run(go())
    assert first == [UPSERTED] and after == [UPSERTED]
    assert isinstance(second, SinkFatalError) and third is second
    assert fake.ids() == {"a", "d"}
    assert [ids for kind, _, ids in fake.calls if kind == "upsert"] == [["a"], ["b", "c"], ["d"]]


def test_a_cancelled_write_leaves_no_caller_waiting() -> None:
    fake = SlowIndex()
    writer = PineconeWriter(fake, config(batch_size=1, max_concurrency=1), sleep=Sleeps())

    async def go() -> list[Any]:
        # Two ids in requests of one: the group goes through the lane, whose drain is writing "a" when cancelled.
        first = asyncio.ensure_future(writer.submit_group([change("a"), change("a2")]))
        await asyncio.sleep(0.005)
        second = asyncio.ensure_future(writer.submit_group([change("b")]))
        await asyncio.sleep(0)
        for task in list(writer._drains.values()):
            task.cancel()
        return list(await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), timeout=5))

    assert [type(result) for result in asyncio.run(go())] == [asyncio.CancelledError, asyncio.CancelledError]


def test_a_drain_cancelled_before_its_first_step_leaves_no_caller_waiting() -> None:
    fake = SlowIndex()
    writer = PineconeWriter(fake, config(batch_size=1, max_concurrency=1), sleep=Sleeps())

    async def go() -> tuple[Any, Any]:
        first = asyncio.ensure_future(writer.submit_group([change("a"), change("b")]))
        await asyncio.sleep(0)  # the group is queued and its lane's drain task made, but that task has not run yet
        (drain,) = writer._drains.values()
        drain.cancel()
        cancelled = (await asyncio.wait_for(asyncio.gather(first, return_exceptions=True), timeout=5))[0]
        # The lane was released: a later group gets a drain of its own and is written.
        return cancelled, await asyncio.wait_for(writer.submit_group([change("c"), change("d")]), timeout=5)

    cancelled, later = asyncio.run(go())
    assert isinstance(cancelled, asyncio.CancelledError) and later == [UPSERTED, UPSERTED]
    assert fake.ids() == {"c", "d"} and writer._drains == {} and writer._waiting == {}


# --- a group written whole --------------------------------------------------------------------------------------------


def test_a_group_that_fits_one_request_and_finds_its_namespace_idle_is_one_request() -> None:
    fake = SlowIndex()
    writer = PineconeWriter(fake, config(batch_size=40, max_concurrency=4), sleep=Sleeps())
    group = [change(f"id{i}") for i in range(40)]
    assert len({lane_of(c, 4) for c in group}) == 4  # split by lane, it would take four requests
    assert write_group(writer, group) == [UPSERTED] * 40
    assert fake.calls == [("upsert", "ns", [c.id for c in group])]


def test_groups_that_come_while_a_whole_group_is_written_wait_for_it_then_go_through_the_lanes() -> None:
    fake = SlowIndex()
    fake.delays = [0.05]  # the whole group's request is slow; the lanes' requests take the usual 10 ms
    writer = PineconeWriter(fake, config(batch_size=10, max_concurrency=4), sleep=Sleeps())

    async def go() -> list[list[Any]]:
        versions = [change(f"id{i}", values=[1.0, 0.0, 0.0]) for i in range(10)]
        first = asyncio.ensure_future(writer.submit_group(versions))
        await asyncio.sleep(0.005)
        # Both come while it is in flight: the larger one would go through the lanes anyway, the small one because
        # the namespace is busy. Written before the whole group ends, their versions would be overwritten by it.
        larger = writer.submit_group([change(f"id{i}", values=[2.0, 0.0, 0.0]) for i in range(20)])
        small = writer.submit_group([change(f"id{i}", values=[3.0, 0.0, 0.0]) for i in range(5)])
        return list(await asyncio.wait_for(asyncio.gather(first, larger, small), timeout=5))

    whole, larger, small = asyncio.run(go())
    assert whole == [UPSERTED] * 10 and small == [UPSERTED] * 5
    # A lane's waiting parts are written together: there, the small group's version supersedes the larger's.
    assert set(larger[:5]) <= {UPSERTED, SUPERSEDED} and larger[5:] == [UPSERTED] * 15
    assert {i: fake.store["ns"][f"id{i}"].values[0] for i in range(20)} == {i: 3.0 if i < 5 else 2.0 for i in range(20)}
    upserts = [ids for kind, _, ids in fake.calls if kind == "upsert"]
    assert upserts[0] == [f"id{i}" for i in range(10)] and len(upserts) > 2
    assert fake.most_in_flight > 1  # after the whole group, the lanes write side by side


def test_a_cancelled_whole_group_write_lets_the_groups_behind_it_be_written() -> None:
    fake = SlowIndex()
    fake.delays = [0.05]
    writer = PineconeWriter(fake, config(max_concurrency=2), sleep=Sleeps())

    async def go() -> tuple[Any, Any]:
        whole = asyncio.ensure_future(writer.submit_group([change("a", values=[1.0, 0.0, 0.0])]))
        await asyncio.sleep(0.005)
        behind = asyncio.ensure_future(writer.submit_group([change("a", values=[2.0, 0.0, 0.0])]))
        await asyncio.sleep(0)
        whole.cancel()
        return tuple(await asyncio.wait_for(asyncio.gather(whole, behind, return_exceptions=True), timeout=5))

    cancelled, written = asyncio.run(go())
    assert isinstance(cancelled, asyncio.CancelledError) and written == [UPSERTED]
    assert fake.store["ns"]["a"].values[0] == 2.0 and writer._whole == {}


def test_groups_of_distinct_ids_are_written_whole_side_by_side_up_to_max_concurrency() -> None:
    fake = SlowIndex()
    fake.delays = [0.05, 0.05]  # the first two requests are slow, so the third group comes while both are in flight
    writer = PineconeWriter(fake, config(batch_size=10, max_concurrency=2), sleep=Sleeps())
    groups = [[change(f"g{g}-{i}") for i in range(10)] for g in range(3)]

    async def go() -> list[list[Any]]:
        first, second = (asyncio.ensure_future(writer.submit_group(group)) for group in groups[:2])
        await asyncio.sleep(0.005)
        assert fake.in_flight == 2  # each a whole group, at once
        third = writer.submit_group(groups[2])  # two whole groups in flight: max_concurrency, so the lanes take it
        return list(await asyncio.wait_for(asyncio.gather(first, second, third), timeout=5))

    assert asyncio.run(go()) == [[UPSERTED] * 10] * 3
    upserts = [ids for kind, _, ids in fake.calls if kind == "upsert"]
    assert upserts[:2] == [[c.id for c in groups[0]], [c.id for c in groups[1]]]
    assert len(upserts) > 3 and sorted(id for ids in upserts[2:] for id in ids) == sorted(c.id for c in groups[2])
    assert fake.most_in_flight == 2 and writer._whole == {}


def test_a_group_that_shares_an_id_with_a_whole_group_in_flight_is_written_after_it() -> None:
    fake = SlowIndex()
    fake.delays = [0.05]  # the first group's request is slow, a later one would be done first
    writer = PineconeWriter(fake, config(batch_size=10, max_concurrency=4), sleep=Sleeps())

    async def go() -> list[list[Any]]:
        first = asyncio.ensure_future(writer.submit_group([change(f"id{i}", values=[1.0, 0.0, 0.0]) for i in range(5)]))
        await asyncio.sleep(0.005)
        # id4 again, with a later version: written beside the first group, its version would be overwritten by it.
        later = writer.submit_group([change(f"x{i}") for i in range(3)] + [change("id4", values=[2.0, 0.0, 0.0])])
        return list(await asyncio.wait_for(asyncio.gather(first, later), timeout=5))

    assert asyncio.run(go()) == [[UPSERTED] * 5, [UPSERTED] * 4]
    assert fake.store["ns"]["id4"].values[0] == 2.0
    upserts = [ids for kind, _, ids in fake.calls if kind == "upsert"]
    assert upserts[0] == [f"id{i}" for i in range(5)] and fake.most_in_flight > 1  # then the lanes, side by side
