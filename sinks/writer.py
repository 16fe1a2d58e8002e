"""The Pinecone writer: one namespace's batch of changes in, exactly one outcome per change out.

Guarantees of ``write_batch(namespace, changes)``:

- It returns only when every change is settled: ``Applied`` (upserted, updated, deleted, or superseded by a later
  change of the same id in the batch that was applied) or a ``DeadLetter`` (stage ``"sink"``) with Pinecone's reason.
  Otherwise it raises, and the caller must fail the job so that it replays from its last checkpoint:
  ``SinkUnavailableError`` (transient failures outlasted the retries), ``SinkFatalError`` (401/403/404 or an
  unexpected status) or, with ``error_tolerance="none"``, ``RecordRejectedError`` naming the first rejected record.
  Nothing is dropped silently, and because upserts and deletes are idempotent a replay rewrites the same state.
- Last operation per id wins inside a batch. If Pinecone rejects that operation, the previous operation of the id is
  tried instead (and so on), so the index ends as if the changes had been applied one by one, whatever the batch
  boundaries were: a replay that batches differently leaves the same index.
- A request that Pinecone rejects as malformed (400/413/422) is bisected until the offending records are isolated;
  they are dead-lettered, every other record is written.
- Deleting ids from a namespace that does not exist (Pinecone answers 404 "Namespace not found") is a no-op success.
- ``schema_evolution="none"``: before the first write to a namespace not yet seen to exist, the writer asks Pinecone
  which namespaces exist; the changes of a missing namespace are rejected with ``NamespaceMissingError`` (dead letters,
  or the job stops under ``error_tolerance="none"``). The answer is cached only when the namespace exists, so a
  namespace created later is picked up. ``require_namespaces`` is the same check for the namespaces known at start.

Requests of one batch are sent one after another (ids are distinct after collapsing, so order between them does not
matter, and Pinecone rate-limits per namespace). ``submit_group`` writes a group of changes (a batch handed over by
Flink) of one namespace that fits one request (at most ``batch_size`` changes) as one write of its own when no lane
of that namespace is writing or waits, fewer than ``max_concurrency`` such whole-group writes of the namespace are in
flight, and none of them holds one of the group's ids: every earlier write of its ids is then done, and one request
costs less than one per lane (each request costs the client and the server a fixed share, whatever its size). So
groups of distinct ids, the common case at full speed, go side by side as full requests. Otherwise, and for every
group that comes while a lane of its namespace writes or waits, it splits the group by lane = (namespace, a stable
hash of the id modulo ``max_concurrency``): every write of one id goes to the same lane, each lane writes one batch at
a time, and a lane's first write waits for every whole-group write of the namespace in flight; so up to
``max_concurrency`` requests per namespace are in flight either way. The lane's parts of the groups wait in
submission order; each write takes up to ``batch_size`` ids of them, across the parts of several groups (a part that
does not fit is split between writes, each id's changes in it kept together, so they collapse as when the part is
written alone), and a group gets its outcomes when every change of it is settled. So a later write of an id never
overtakes an earlier one (within a write, the collapse keeps its last operation), and requests fill up to ``batch_size``
when writes take long: the slower Pinecone answers, the fuller each request. If a write raises, every group with changes
in it gets the error (the job then replays them all) and the rest of those groups is not written; the lane goes on with
the other groups. Use one event loop.
"""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar, get_args

from pinecone import NotFoundError

from kafka_pinecone_flink.sinks import stats
from kafka_pinecone_flink.sinks.batch import DeleteRequest, UpsertRequest, collapse, pack
from kafka_pinecone_flink.sinks.client import IndexClient
from kafka_pinecone_flink.sinks.config import PineconeSinkConfig
from kafka_pinecone_flink.sinks.dead_letter import scrub
from kafka_pinecone_flink.sinks.retry import (
    RequestRejectedError,
    RetryObserver,
    RetryPolicy,
    SinkFatalError,
    call_with_retries,
)
from kafka_pinecone_flink.udfs.errors import RecordError, RecordRejectedError
from kafka_pinecone_flink.udfs.records import Change, DeadLetter

T = TypeVar("T")
RequestT = TypeVar("RequestT", UpsertRequest, DeleteRequest)
AppliedKind = Literal["upserted", "updated", "deleted", "superseded"]
APPLIED_KINDS: tuple[AppliedKind, ...] = get_args(AppliedKind)
SINK_STAGE: Literal["sink"] = "sink"


@dataclass(frozen=True, slots=True)
class Applied:
    """The change is reflected in Pinecone (or superseded by a later change of its id that is)."""

    kind: AppliedKind


UPSERTED = Applied("upserted")
UPDATED = Applied("updated")
DELETED = Applied("deleted")
SUPERSEDED = Applied("superseded")

Outcome = Applied | DeadLetter


class PineconeRejectedError(RecordError):
    """Pinecone (or the SDK's client-side validation) rejected this record."""


class NamespaceMissingError(RecordError):
    """``schema_evolution`` is ``"none"`` and the record's namespace does not exist in the index."""


def _now_ms() -> float:
    return time.time_ns() / 1_000_000


class _StatsObserver(RetryObserver):
    def __init__(self, metrics: stats.SinkMetrics) -> None:
        self._metrics = metrics

    def on_attempt(self) -> None:
        self._metrics.count(stats.REQUESTS)

    def on_retry(self, delay_s: float) -> None:
        self._metrics.count(stats.RETRIES)


class _Round:
    """Bookkeeping of one ``write_batch``: the outcome per position and the positions rejected in this round."""

    __slots__ = ("changes", "history", "outcomes", "rejected")

    def __init__(self, changes: Sequence[Change], history: dict[str, list[int]]) -> None:
        self.changes = changes
        self.history = history
        self.outcomes: list[Outcome | None] = [None] * len(changes)
        self.rejected: list[int] = []


@dataclass(frozen=True, slots=True, eq=False)
class _WholeWrite:
    """A group written alone (``PineconeWriter._write_whole``): its ids, and a future done when its write ends.
    Compared by identity: each is one write."""

    ids: frozenset[str]
    ended: asyncio.Future[None]


@dataclass(slots=True)
class _Part:
    """One group's changes of one lane, and the future of their outcomes. The lane's writes take it whole or, when it
    does not fit the room left in a write, in slices of whole ids (``units``), so that every change of one id in the
    part is in the same write and collapses there, as when the part is written alone."""

    changes: list[Change]
    future: asyncio.Future[list[Outcome]]
    outcomes: list[Outcome | None]
    settled: int = 0
    units: list[list[int]] | None = None
    """Set when the part is first split: the positions of each id's changes, ids in order of first appearance."""
    next_unit: int = 0
    """With ``units``: the first unit no write has taken yet."""


class PineconeWriter:
    """Writes changes to one Pinecone index through an ``IndexClient``; see the module docstring for guarantees."""

    def __init__(
        self,
        client: IndexClient,
        config: PineconeSinkConfig,
        *,
        metrics: stats.SinkMetrics | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        now_ms: Callable[[], float] = _now_ms,
    ) -> None:
        self._client = client
        self._config = config
        self.metrics: stats.SinkMetrics = metrics if metrics is not None else stats.SinkStats()
        self._observer = _StatsObserver(self.metrics)
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._monotonic = monotonic
        self._now_ms = now_ms
        self._policy = RetryPolicy(
            max_retries=config.max_retries,
            base_s=config.retry_interval_ms / 1000,
            cap_s=config.max_retry_interval_ms / 1000,
        )
        self._secrets = (config.api_key,)
        self._existing_namespaces: set[str] = set()
        self._lanes = config.max_concurrency
        self._waiting: dict[tuple[str, int], deque[_Part]] = {}
        """Per lane that is writing: the parts with changes not yet handed to a write, in submission order."""
        self._drains: dict[tuple[str, int], asyncio.Task[None]] = {}
        """The task that writes each lane's parts while it has any (held here: the loop keeps only weak references)."""
        self._whole: dict[str, list[_WholeWrite]] = {}
        """Per namespace: its whole-group writes in flight (``_write_whole``); the lanes wait for them to end."""

    # --- groups, per lane -----------------------------------------------------------------------------------------
    async def submit_group(self, changes: Sequence[Change]) -> list[Outcome]:
        """The outcomes of a group of changes (a batch handed over by Flink), in order, once all are written: in one
        write of its own when it fits one request, no lane of its namespace writes or waits, and the whole-group
        writes of its namespace in flight are fewer than ``max_concurrency`` and hold none of its ids; else split
        into lanes in order, each lane's part written now, or with the other parts that wait for the lane's write in
        flight right after it (see the module docstring)."""
        if changes and len(changes) <= self._config.batch_size:
            namespace = changes[0].namespace
            alone = self._whole.get(namespace, ())
            if (
                len(alone) < self._lanes
                and not any(lane[0] == namespace for lane in self._drains)
                and all(change.namespace == namespace for change in changes)
            ):
                ids = frozenset(change.id for change in changes)
                if all(ids.isdisjoint(write.ids) for write in alone):
                    return await self._write_whole(namespace, list(changes), ids)
        parts: dict[tuple[str, int], list[int]] = {}
        for position, change in enumerate(changes):
            parts.setdefault(lane_of(change, self._lanes), []).append(position)
        # Every lane's write is queued before the first await, so groups keep their submission order per lane.
        writes = [self._queue(lane, [changes[p] for p in positions]) for lane, positions in parts.items()]
        outcomes: list[Outcome | None] = [None] * len(changes)
        for positions, written in zip(parts.values(), await asyncio.gather(*writes), strict=True):
            for position, outcome in zip(positions, written, strict=True):
                outcomes[position] = outcome
        settled: list[Outcome] = []
        for maybe in outcomes:
            if maybe is None:  # unreachable: every position is in one part; never let a change pass unsettled
                raise RuntimeError("sink bug: a change of the group has no outcome")
            settled.append(maybe)
        return settled

    async def _write_whole(self, namespace: str, changes: list[Change], ids: frozenset[str]) -> list[Outcome]:
        """Write a group alone; the lanes of its namespace start writing only after it (``_drain``)."""
        write = _WholeWrite(ids, asyncio.get_running_loop().create_future())
        self._whole.setdefault(namespace, []).append(write)
        try:
            return await self.write_batch(namespace, changes)
        finally:
            writes = self._whole[namespace]
            writes.remove(write)
            if not writes:
                del self._whole[namespace]
            write.ended.set_result(None)

    def _queue(self, lane: tuple[str, int], changes: list[Change]) -> asyncio.Future[list[Outcome]]:
        part = _Part(changes, asyncio.get_running_loop().create_future(), [None] * len(changes))
        waiting = self._waiting.get(lane)
        if waiting is not None:
            waiting.append(part)
        else:
            self._waiting[lane] = deque([part])
            drain = self._drains[lane] = asyncio.ensure_future(self._drain(lane))
            drain.add_done_callback(lambda task: self._drain_ended(lane, task))
        return part.future

    async def _drain(self, lane: tuple[str, int]) -> None:
        """Write the lane's waiting changes, up to ``batch_size`` ids at a time, until none is left."""
        waiting = self._waiting[lane]
        slices: list[tuple[_Part, list[int] | None]] = []
        try:
            # Groups written alone may hold earlier changes of these ids: after them. None starts while this lane
            # exists (``submit_group``), so the ones in flight now are all there are.
            for write in list(self._whole.get(lane[0], ())):
                await asyncio.shield(write.ended)
            while slices := self._take(waiting):
                if len(slices) == 1 and slices[0][1] is None:
                    changes = slices[0][0].changes
                else:
                    changes = []
                    for part, positions in slices:
                        changes += part.changes if positions is None else [part.changes[p] for p in positions]
                try:
                    outcomes = await self.write_batch(lane[0], changes)
                except Exception as exc:  # noqa: BLE001 - raised to the caller of every part in the write
                    for part, _ in slices:
                        if not part.future.done():
                            part.future.set_exception(exc)
                    continue
                at = 0
                for part, positions in slices:
                    if positions is None:
                        count = len(part.changes)
                        part.outcomes = outcomes[at : at + count]  # type: ignore[assignment]
                    else:
                        count = len(positions)
                        for i, position in enumerate(positions, at):
                            part.outcomes[position] = outcomes[i]
                    part.settled += count
                    at += count
                    if part.settled == len(part.changes) and not part.future.done():
                        part.future.set_result(part.outcomes)  # type: ignore[arg-type]  # every slot is settled
            slices = []
        finally:
            # Normally nothing is left; when the loop cancels this task, nobody must wait for a write that never comes.
            for part, _ in slices:
                part.future.cancel()
            self._release(lane)

    def _drain_ended(self, lane: tuple[str, int], task: asyncio.Task[None]) -> None:
        """A drain cancelled before its first step never runs its ``finally``: release its lane here instead."""
        if self._drains.get(lane) is task:
            self._release(lane)

    def _release(self, lane: tuple[str, int]) -> None:
        """The lane has no drain any more: its waiting parts (none, unless the drain was cancelled) are cancelled."""
        for part in self._waiting.pop(lane, ()):
            part.future.cancel()
        del self._drains[lane]

    def _take(self, waiting: deque[_Part]) -> list[tuple[_Part, list[int] | None]]:
        """The next write's slices, from the front of the lane's waiting parts, in order, up to ``batch_size`` ids
        (each id's changes in a part stay together): (part, None) for a whole part, else (part, its positions). A part
        whose caller already has its answer (a failed write, a cancelled caller) is not written further."""
        room = self._config.batch_size
        slices: list[tuple[_Part, list[int] | None]] = []
        while waiting and room > 0:
            part = waiting[0]
            if part.future.done():
                waiting.popleft()
                continue
            if part.units is None:
                if len(part.changes) <= room:
                    slices.append((part, None))
                    room -= len(part.changes)
                    waiting.popleft()
                    continue
                part.units = list(collapse(part.changes)[1].values())  # each id's positions, in order
            taken = part.units[part.next_unit : part.next_unit + room]
            part.next_unit += len(taken)
            room -= len(taken)
            slices.append((part, sorted(position for unit in taken for position in unit)))
            if part.next_unit == len(part.units):
                waiting.popleft()
        return slices

    # --- namespaces ---------------------------------------------------------------------------------------------
    async def require_namespaces(self, namespaces: Iterable[str]) -> None:
        """With ``schema_evolution="none"``: raise ``SinkFatalError`` unless every namespace exists; else a no-op."""
        if self._config.schema_evolution != "none":
            return
        wanted = set(namespaces)
        missing = sorted(wanted - await self._refresh_namespaces())
        if missing:
            raise SinkFatalError(
                f"schema_evolution is 'none' but namespace(s) {missing} do not exist in Pinecone index "
                f"{self._config.index_name!r}: create them or set schema_evolution='basic'"
            )

    async def _refresh_namespaces(self) -> set[str]:
        existing = await self._call(self._client.namespaces, "describe_index_stats")
        self._existing_namespaces |= existing
        return existing

    # --- one batch ----------------------------------------------------------------------------------------------
    async def write_batch(self, namespace: str, changes: list[Change]) -> list[Outcome]:
        """One outcome per change, in order; raises if the batch cannot be settled (the job must then replay)."""
        started = self._monotonic()
        winners, history = collapse(changes)
        state = _Round(changes, history)
        if (
            self._config.schema_evolution == "none"
            and namespace not in self._existing_namespaces
            and namespace not in await self._refresh_namespaces()
        ):
            error = NamespaceMissingError(
                f"namespace {namespace!r} does not exist in index {self._config.index_name!r} and schema_evolution "
                "is 'none'"
            )
            for position in range(len(changes)):
                self._reject(state, position, error)
            winners = []
        candidates = winners
        while candidates:
            state.rejected = []
            await self._write_round(namespace, state, candidates)
            # A rejected operation hands its id over to the id's previous operation in the batch, if any.
            fallbacks = []
            for position in state.rejected:
                positions = history[changes[position].id]
                at = positions.index(position)
                if at > 0:
                    fallbacks.append(positions[at - 1])
            candidates = sorted(fallbacks)
        outcomes: list[Outcome] = []
        for outcome in state.outcomes:
            if outcome is None:  # unreachable by construction; never let a change pass unsettled
                raise RuntimeError("sink bug: a change of the batch has no outcome")
            outcomes.append(outcome)
        self._record_batch(changes, started)
        return outcomes

    async def _write_round(self, namespace: str, state: _Round, positions: list[int]) -> None:
        packed = pack(
            state.changes,
            positions,
            namespace,
            max_records=self._config.batch_size,
            max_bytes=self._config.max_request_bytes,
        )
        for position, error in packed.rejected:
            self._reject(state, position, error)
        for upsert in packed.upserts:
            await self._send_upsert(namespace, state, upsert)
        for delete in packed.deletes:
            await self._send_delete(namespace, state, delete)

    async def _send_upsert(self, namespace: str, state: _Round, request: UpsertRequest) -> None:
        async def upsert(part: UpsertRequest) -> None:
            await self._client.upsert(part.records, namespace)

        def describe(part: UpsertRequest) -> str:
            return f"upsert of {len(part.records)} records into namespace {namespace!r}"

        def applied(position: int) -> Applied:
            return UPDATED if state.changes[position].replaces else UPSERTED

        await self._send(namespace, state, request, upsert, describe, applied)

    async def _send_delete(self, namespace: str, state: _Round, request: DeleteRequest) -> None:
        async def delete(part: DeleteRequest) -> None:
            try:
                await self._client.delete(part.ids, namespace)
            except NotFoundError as exc:
                # Pinecone answers 404 "Namespace not found" for a namespace that never existed (or was deleted); an
                # emptied one stays and answers 200. Either way the ids are absent, which is what a delete asks for.
                # Any other 404 (a missing index) stays fatal.
                if "namespace" not in str(exc.message).lower():
                    raise

        def describe(part: DeleteRequest) -> str:
            return f"delete of {len(part.ids)} ids in namespace {namespace!r}"

        await self._send(namespace, state, request, delete, describe, lambda _: DELETED)

    async def _send(
        self,
        namespace: str,
        state: _Round,
        request: RequestT,
        send: Callable[[RequestT], Awaitable[None]],
        describe: Callable[[RequestT], str],
        applied: Callable[[int], Applied],
    ) -> None:
        """Send ``request`` (with retries); a request Pinecone rejects as malformed is bisected until each rejected
        record is alone, and rejected (``_reject``); every other record is applied."""
        try:
            await self._call(lambda: send(request), describe(request))
        except RequestRejectedError as exc:
            if len(request.positions) == 1:
                self._reject(state, request.positions[0], PineconeRejectedError(f"Pinecone rejected it: {exc.message}"))
                return
            for half in request.split(namespace):
                await self._send(namespace, state, half, send, describe, applied)
            return
        for position in request.positions:
            self._applied(state, position, applied(position))

    async def _call(self, operation: Callable[[], Awaitable[T]], what: str) -> T:
        started = self._monotonic()
        try:
            return await self._call_with_retries(operation, what)
        finally:
            self.metrics.observe(stats.REQUEST_LATENCY_MS, (self._monotonic() - started) * 1000)

    async def _call_with_retries(self, operation: Callable[[], Awaitable[T]], what: str) -> T:
        return await call_with_retries(
            operation,
            policy=self._policy,
            what=what,
            index_name=self._config.index_name,
            timeout_s=self._config.request_timeout_s,
            sleep=self._sleep,
            rng=self._rng,
            observer=self._observer,
            secrets=self._secrets,
        )

    # --- outcomes -----------------------------------------------------------------------------------------------
    def _applied(self, state: _Round, position: int, outcome: Applied) -> None:
        state.outcomes[position] = outcome
        for earlier in state.history[state.changes[position].id]:
            if earlier >= position:
                break
            if state.outcomes[earlier] is None:
                state.outcomes[earlier] = SUPERSEDED

    def _reject(self, state: _Round, position: int, error: RecordError) -> None:
        change = state.changes[position]
        message = scrub(error.message, self._secrets)
        if self._config.error_tolerance == "none":
            raise RecordRejectedError(change.source.coordinates, error.error_class, message, SINK_STAGE)
        state.outcomes[position] = DeadLetter(change.source, error.error_class, message, SINK_STAGE)
        state.rejected.append(position)

    def _record_batch(self, changes: Sequence[Change], started: float) -> None:
        metrics = self.metrics
        metrics.observe(stats.BATCH_SIZE, len(changes))
        metrics.observe(stats.FLUSH_LATENCY_MS, (self._monotonic() - started) * 1000)
        timestamps = [c.source.timestamp_ms for c in changes if c.source.timestamp_ms is not None]
        if timestamps:
            now_ms = self._now_ms()
            metrics.gauge(stats.LAG_MS, now_ms - min(timestamps))
            for timestamp in timestamps:
                metrics.observe(stats.FRESHNESS_MS, now_ms - timestamp)


def lane_of(change: Change, lanes: int) -> tuple[str, int]:
    """The lane of a change: its namespace and a hash of its id that is the same in every process and run."""
    if lanes == 1:
        return (change.namespace, 0)
    return (change.namespace, zlib.crc32(change.id.encode()) % lanes)


__all__ = [
    "APPLIED_KINDS",
    "DELETED",
    "SUPERSEDED",
    "UPDATED",
    "UPSERTED",
    "Applied",
    "NamespaceMissingError",
    "Outcome",
    "PineconeRejectedError",
    "PineconeWriter",
    "lane_of",
]
