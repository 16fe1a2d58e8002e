"""Micro-batching for async Flink functions.

Flink's Python ``AsyncFunction`` calls ``async_invoke`` once per record, and before every checkpoint barrier (in
fact at the end of every bundle) it waits until every in-flight call has returned. A function that parks each
record in a batch and returns when the batch has been processed is therefore checkpoint-safe: a completed
checkpoint implies every earlier record's batch was processed. The linger bounds how long a partial batch waits,
which also bounds how long a checkpoint can wait for it.

``MicroBatcher`` is that mechanism, independent of Flink: ``submit(item)`` returns the item's result once its batch
has been processed. Batches are formed per key, in submission order, and processed one after another per key, or, for
a processor that says when it has ``room`` (the embed stage's model lanes), as they are sealed.

Lingers are timers of a ``Clock`` (``call_later``): by default the running event loop, in tests a fake clock that
moves only when the test advances it.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")
K = TypeVar("K", bound=Hashable)


class Timer(Protocol):
    """A timer a ``Clock`` armed (``asyncio.TimerHandle`` is one)."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Where a batcher's lingers are timed: ``call_later(delay, callback, *args)`` calls ``callback(*args)`` on the
    batcher's event loop once ``delay`` seconds have passed, unless the returned timer is cancelled first."""

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Timer: ...


class LoopClock:
    """The running event loop's clock (the default)."""

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback, *args)


@dataclass
class _Batch(Generic[T, R]):
    items: list[T] = field(default_factory=list)
    futures: list[asyncio.Future[R]] = field(default_factory=list)
    size: int = 0
    timer: Timer | None = None


class MicroBatcher(Generic[K, T, R]):
    """Groups submitted items into batches per key and hands each batch to ``process``.

    A batch is sealed when adding an item would exceed ``max_items`` or ``max_bytes`` (as measured by ``size_of``),
    or when its first item has waited ``linger_s``. ``process(key, items)`` must return one result per item, in
    order; if it raises, every item of the batch fails with that exception. Must be used from one event loop;
    ``submit`` adds the item before its first suspension, so items submitted in order are batched in order.

    ``work_conserving``: a batch waits for more items only while the key's previous batch is being processed. An
    item that finds the processor idle is sealed after one turn of the event loop (so that items submitted together
    still share a batch), and when the processor finishes and nothing is queued, the open batch goes at once instead
    of lingering. For a processor whose cost is per batch *and* which is the bottleneck (the embedding model), this
    never lets it idle while items wait; under load batches still fill to ``max_items``.

    ``room``: for a processor that works on several batches at once and queues what it cannot start yet (the embed
    stage, whose model lanes take a pool's texts in pieces as they come free): ``room()`` says whether it could start
    more work now. With it, every sealed batch goes to ``process`` at once (their results may come back in any order,
    each to its own items), "idle" means ``room()`` with no sealed batch still to hand over, and the owner calls
    ``offer()`` when the processor gains room, which seals a work-conserving batcher's open batch. Without it, the
    batches of one key are processed one after another, and "idle" means none is in process.

    ``clock`` times the lingers (default: the running event loop).
    """

    def __init__(
        self,
        process: Callable[[K, list[T]], Awaitable[Sequence[R]]],
        *,
        key: Callable[[T], K],
        max_items: int,
        linger_s: float,
        size_of: Callable[[T], int] | None = None,
        max_bytes: int | None = None,
        work_conserving: bool = False,
        room: Callable[[], bool] | None = None,
        clock: Clock | None = None,
    ) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        if linger_s < 0:
            raise ValueError(f"linger_s must not be negative, got {linger_s}")
        self._process = process
        self._key = key
        self._max_items = max_items
        self._linger_s = linger_s
        self._size_of = size_of
        self._max_bytes = max_bytes
        self._work_conserving = work_conserving
        self._room = room
        self._clock: Clock = clock if clock is not None else LoopClock()
        self._open: dict[K, _Batch[T, R]] = {}
        self._sealed: dict[K, deque[_Batch[T, R]]] = {}
        self._workers: dict[K, set[asyncio.Task[None]]] = {}

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        key = self._key(item)
        batch = self._add(key, item, future)
        if len(batch.items) >= self._max_items or self._linger_s == 0:
            self._seal(key)
        elif self._work_conserving and self._idle(key) and len(batch.items) == 1:
            asyncio.get_running_loop().call_soon(self._seal_if_idle, key, batch)
        return await future

    def _add(self, key: K, item: T, future: asyncio.Future[R]) -> _Batch[T, R]:
        """Adds ``item`` to the open batch of ``key`` (sealing it first if the item's bytes would not fit)."""
        size = self._size_of(item) if self._size_of is not None else 0
        batch = self._open.get(key)
        if batch is not None and self._max_bytes is not None and batch.items and batch.size + size > self._max_bytes:
            self._seal(key)
            batch = None
        if batch is None:
            batch = _Batch()
            self._open[key] = batch
            if self._linger_s > 0:
                batch.timer = self._clock.call_later(self._linger_s, self._seal_if_open, key, batch)
        batch.items.append(item)
        batch.futures.append(future)
        batch.size += size
        return batch

    async def flush(self) -> None:
        """Seal every open batch and wait until every sealed batch has been processed."""
        for key in list(self._open):
            self._seal(key)
        while self._workers:
            await asyncio.gather(*(task for tasks in self._workers.values() for task in tasks), return_exceptions=True)

    @property
    def pending(self) -> int:
        """Items submitted and not yet processed."""
        open_items = sum(len(b.items) for b in self._open.values())
        return open_items + sum(len(b.items) for q in self._sealed.values() for b in q)

    def _seal_if_open(self, key: K, batch: _Batch[T, R]) -> None:
        if self._open.get(key) is batch:
            self._seal(key)

    def offer(self) -> None:
        """The processor has room again (see ``room``): a work-conserving batcher seals its open batches now."""
        if self._work_conserving:
            for key in list(self._open):
                if self._idle(key):
                    self._seal(key)

    def _idle(self, key: K) -> bool:
        """Whether the processor could start a batch of ``key`` now."""
        if self._room is None:
            return key not in self._workers
        return not self._sealed.get(key) and self._room()

    def _seal_if_idle(self, key: K, batch: _Batch[T, R]) -> None:
        if self._open.get(key) is batch and self._idle(key):
            self._seal(key)

    def _seal(self, key: K) -> None:
        batch = self._open.pop(key)
        if batch.timer is not None:
            batch.timer.cancel()
        self._sealed.setdefault(key, deque()).append(batch)
        tasks = self._workers.setdefault(key, set())
        if self._room is not None or not tasks:  # with room, each batch goes to the processor at once
            task = asyncio.get_running_loop().create_task(self._drain(key))
            tasks.add(task)
            task.add_done_callback(functools.partial(self._release, key))

    async def _drain(self, key: K) -> None:
        queue = self._sealed[key]
        try:
            while queue:
                batch = queue.popleft()
                if self._room is not None:
                    # Once the processor has taken this batch (up to its first wait), it may still have room.
                    asyncio.get_running_loop().call_soon(self.offer)
                try:
                    results = await self._process(key, batch.items)
                    if len(results) != len(batch.items):
                        raise RuntimeError(f"batch processor returned {len(results)} results for {len(batch.items)}")
                except BaseException as exc:
                    for future in batch.futures:
                        if not future.done():
                            future.set_exception(exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for future, result in zip(batch.futures, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            current = asyncio.current_task()
            if current is not None:
                self._release(key, current)
        if self._work_conserving and key in self._open and self._idle(key):
            self._seal(key)  # the processor is free now: the open batch goes without lingering

    def _release(self, key: K, task: asyncio.Task[None]) -> None:
        """``task`` no longer works for ``key`` (it ended, or was cancelled before it began)."""
        tasks = self._workers.get(key)
        if tasks is None:
            return
        tasks.discard(task)
        if not tasks:
            del self._workers[key]
            if not self._sealed.get(key):
                self._sealed.pop(key, None)


class GroupsAhead(Generic[R]):
    """Work on groups that goes on after the call that brought the group has returned, with results handed on in
    the groups' order: for a Flink async stage whose next group reaches Python only when the call before returns (a
    bundle of one group, ``jobs.config.settings.EMBED_BUNDLE_SIZE``), so that its next group's work can overlap this
    one's instead of waiting for it.

    ``take(work, weight)`` starts ``work`` (the group's coroutine) and returns the results of the earliest groups that
    are done, in order, none of them later than the first group still at work (possibly none). It waits while the groups
    at work weigh more than ``limit`` together (the embed stage weighs a group by the texts it sends to the model),
    unless only one is at work: so a checkpoint, which waits for every group, waits for about ``limit`` of work at most
    besides the largest group. ``take(work, weight, wait=True)`` does not work ahead: it returns once ``work`` and every
    group before it are done, with all their results (the embed stage's way with a partial group: no backlog, and a
    text's wait matters more than the model's idle time). ``take(None)`` (a marker: the JVM ``Batcher`` hands on an
    empty group before every checkpoint barrier, at the end of input and after a quiet time) waits for every group and
    returns all their results, so the call on the marker returns only once every earlier group is done: Flink waits for
    it before it forwards the barrier. A group that failed raises its exception from the call that reaches it and from
    every call after (which fails the task; Flink restarts from the last checkpoint).

    Calls are served one at a time in the order they began, so the results of all calls together come in the groups'
    order; with ``AsyncDataStream.ordered_wait`` Flink emits them in that order too. Use from one event loop.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self._limit = limit
        self._groups: deque[tuple[asyncio.Task[R], int]] = deque()
        self._turn = asyncio.Lock()

    async def take(self, work: Awaitable[R] | None, weight: int = 1, *, wait: bool = False) -> list[R]:
        async with self._turn:
            if work is not None:
                self._groups.append((asyncio.ensure_future(work), weight))
                while not wait:
                    busy = [(group, w) for group, w in self._groups if not group.done()]
                    if len(busy) <= 1 or sum(w for _, w in busy) <= self._limit:
                        break
                    await asyncio.wait([group for group, _ in busy], return_when=asyncio.FIRST_COMPLETED)
            if (work is None or wait) and self._groups:
                await asyncio.wait([group for group, _ in self._groups])
            done: list[R] = []
            while self._groups and self._groups[0][0].done():
                done.append(self._groups[0][0].result())  # a failure raises and stays first: every later call raises
                self._groups.popleft()
            return done

    @property
    def at_work(self) -> int:
        """Groups taken and not yet handed on."""
        return len(self._groups)

    def cancel(self) -> None:
        """Stop every group still at work (the task is closing; what was not handed on is replayed after a
        restart). Safe after the event loop has closed (Flink closes the function after its loop): the groups end with
        the loop then."""
        for group, _ in self._groups:
            if not group.get_loop().is_closed():
                group.cancel()
        self._groups.clear()
