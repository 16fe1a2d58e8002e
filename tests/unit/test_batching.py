"""MicroBatcher: batches per key, in order, sealed by size or linger; the work-conserving mode of the embed stage.
GroupsAhead: work on groups after their calls returned, results in the groups' order, everything on a marker.

Time is a ``FakeClock`` handed to the batcher: a linger elapses only when a test advances the clock, and processors
block on events the test releases, so nothing here measures or depends on wall-clock time.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from typing import Any

import pytest

from kafka_pinecone_flink.udfs.batching import GroupsAhead, MicroBatcher

pytestmark = pytest.mark.unit


class FakeTimer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Timers that fire only when the test calls ``advance``, in the order they fall due."""

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, FakeTimer, Callable[..., object], tuple[Any, ...]]] = []
        self._seq = 0

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> FakeTimer:
        timer = FakeTimer()
        self._seq += 1
        heapq.heappush(self._timers, (self.now + delay, self._seq, timer, callback, args))
        return timer

    @property
    def pending(self) -> list[float]:
        """When each timer that is still armed falls due."""
        return sorted(due for due, _, timer, _, _ in self._timers if not timer.cancelled)

    def advance(self, seconds: float) -> None:
        self.now += seconds
        while self._timers and self._timers[0][0] <= self.now:
            _, _, timer, callback, args = heapq.heappop(self._timers)
            if not timer.cancelled:
                callback(*args)


async def settle(turns: int = 50) -> None:
    """Let the event loop run every callback and task that is ready (no time passes)."""
    for _ in range(turns):
        await asyncio.sleep(0)


class Recorder:
    """A processor that records each batch; with ``gated``, each batch waits until the test opens its gate."""

    def __init__(self, gated: bool = False) -> None:
        self.gated = gated
        self.batches: list[list[int]] = []
        self.finished: list[list[int]] = []
        self.gates: list[asyncio.Event] = []

    async def __call__(self, _key: str, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        if self.gated:
            gate = asyncio.Event()
            self.gates.append(gate)
            await gate.wait()
        self.finished.append(list(items))
        return [item * 10 for item in items]


def test_items_are_batched_up_to_max_items_in_order_and_get_their_own_results() -> None:
    recorder = Recorder()
    clock = FakeClock()

    async def run() -> list[int]:
        batcher = MicroBatcher(recorder, key=lambda _: "k", max_items=3, linger_s=0.05, clock=clock)
        pending = asyncio.gather(*(batcher.submit(i) for i in range(7)))
        await settle()
        assert recorder.batches == [[0, 1, 2], [3, 4, 5]]  # full batches go at once; [6] waits for its linger
        clock.advance(0.05)
        return await pending

    assert asyncio.run(run()) == [i * 10 for i in range(7)]
    assert recorder.batches == [[0, 1, 2], [3, 4, 5], [6]]


def test_a_partial_batch_waits_for_the_linger_without_work_conserving() -> None:
    recorder = Recorder()
    clock = FakeClock()

    async def run() -> int:
        batcher = MicroBatcher(recorder, key=lambda _: "k", max_items=64, linger_s=0.3, clock=clock)
        result = asyncio.ensure_future(batcher.submit(1))
        await settle()
        assert clock.pending == [0.3]
        clock.advance(0.29)
        await settle()
        assert recorder.batches == [] and not result.done()  # not before the linger
        clock.advance(0.01)
        await settle()
        assert recorder.batches == [[1]]  # as soon as it has passed
        return await result

    assert asyncio.run(run()) == 10


def test_a_batch_sealed_by_size_cancels_its_linger_timer() -> None:
    recorder = Recorder()
    clock = FakeClock()

    async def run() -> None:
        batcher = MicroBatcher(recorder, key=lambda _: "k", max_items=2, linger_s=5.0, clock=clock)
        await asyncio.gather(batcher.submit(1), batcher.submit(2))
        assert clock.pending == []

    asyncio.run(run())
    assert recorder.batches == [[1, 2]]


def test_work_conserving_never_lets_the_processor_idle_while_items_wait() -> None:
    recorder = Recorder(gated=True)
    clock = FakeClock()

    async def run() -> list[int]:
        # The clock never advances: any wait for the 10 s linger would leave the later items unprocessed.
        batcher = MicroBatcher(
            recorder, key=lambda _: "k", max_items=64, linger_s=10.0, work_conserving=True, clock=clock
        )
        first = [asyncio.ensure_future(batcher.submit(i)) for i in range(3)]  # submitted together: one batch
        await settle()
        assert recorder.batches == [[0, 1, 2]]  # the processor was idle: sealed after one turn, no linger
        later = [asyncio.ensure_future(batcher.submit(i)) for i in range(3, 8)]
        await settle()
        assert recorder.batches == [[0, 1, 2]]  # the processor is busy: the later items gather in one batch
        recorder.gates[0].set()
        await settle()
        assert recorder.batches == [[0, 1, 2], [3, 4, 5, 6, 7]]  # ...which goes the moment it is free
        recorder.gates[1].set()
        return list(await asyncio.gather(*first, *later))

    assert asyncio.run(run()) == [i * 10 for i in range(8)]
    assert clock.now == 0.0


def test_work_conserving_still_fills_batches_to_max_items_under_load() -> None:
    recorder = Recorder(gated=True)
    clock = FakeClock()

    async def run() -> None:
        batcher = MicroBatcher(
            recorder, key=lambda _: "k", max_items=4, linger_s=10.0, work_conserving=True, clock=clock
        )
        pending = asyncio.gather(*(batcher.submit(i) for i in range(10)))
        await settle()
        while len(recorder.gates) > len(recorder.finished):
            recorder.gates[len(recorder.finished)].set()
            await settle()
        await pending

    asyncio.run(run())
    assert recorder.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_batches_of_one_key_never_overlap_and_keys_do_not_wait_for_each_other() -> None:
    recorder = Recorder(gated=True)
    clock = FakeClock()

    async def run() -> None:
        batcher = MicroBatcher(recorder, key=lambda item: item % 2, max_items=1, linger_s=1.0, clock=clock)
        pending = asyncio.gather(*(batcher.submit(i) for i in range(4)))
        await settle()
        assert recorder.batches == [[0], [1]]  # one batch per key at a time; both keys at once
        recorder.gates[1].set()  # key 1's first batch ends: its next one starts, key 0 still waits
        await settle()
        assert recorder.batches == [[0], [1], [3]]
        recorder.gates[0].set()
        await settle()
        assert recorder.batches == [[0], [1], [3], [2]]
        for gate in recorder.gates[2:]:
            gate.set()
        await pending

    asyncio.run(run())


def test_a_failing_batch_fails_its_items_and_the_batcher_goes_on() -> None:
    async def process(_key: str, items: list[int]) -> list[int]:
        if 4 in items:
            raise ValueError("batch with 4 failed")
        return items

    async def run() -> None:
        batcher = MicroBatcher(process, key=lambda _: "k", max_items=2, linger_s=3600.0, clock=FakeClock())
        results = await asyncio.gather(*(batcher.submit(i) for i in (1, 2, 3, 4)), return_exceptions=True)
        assert results[:2] == [1, 2]
        assert all(isinstance(r, ValueError) and "batch with 4 failed" in str(r) for r in results[2:])
        assert batcher.pending == 0
        # The batcher goes on after the failure.
        assert await asyncio.gather(batcher.submit(5), batcher.submit(6)) == [5, 6]

    asyncio.run(run())


def test_the_default_clock_is_the_running_event_loop() -> None:
    recorder = Recorder()

    async def run() -> int:
        batcher = MicroBatcher(recorder, key=lambda _: "k", max_items=64, linger_s=0.0)
        return await batcher.submit(7)

    assert asyncio.run(run()) == 70


def test_with_room_a_burst_is_one_batch_and_offer_seals_what_waited_while_the_processor_was_full() -> None:
    recorder = Recorder(gated=True)
    clock = FakeClock()
    room = [True]

    async def run() -> list[int]:
        batcher = MicroBatcher(
            recorder,
            key=lambda _: "k",
            max_items=64,
            linger_s=10.0,
            work_conserving=True,
            room=lambda: room[0],
            clock=clock,
        )
        burst = [asyncio.ensure_future(batcher.submit(i)) for i in range(5)]
        await settle()
        assert recorder.batches == [[0, 1, 2, 3, 4]]  # the processor cuts a batch itself: no split here
        room[0] = False  # the processor is full
        later = [asyncio.ensure_future(batcher.submit(i)) for i in range(5, 8)]
        await settle()
        assert len(recorder.batches) == 1 and batcher.pending == 3  # the later items wait together
        room[0] = True
        batcher.offer()
        await settle()
        assert recorder.batches[1] == [5, 6, 7]  # sealed at once, and processed while the first batch still works
        assert recorder.finished == []
        recorder.gates[1].set()
        recorder.gates[0].set()
        return list(await asyncio.gather(*burst, *later))

    assert asyncio.run(run()) == [i * 10 for i in range(8)]
    assert clock.now == 0.0


def with_room(recorder: Recorder, max_items: int) -> MicroBatcher[str, int, int]:
    """A work-conserving batcher of one key whose processor always has room; lingers never pass."""
    return MicroBatcher(
        recorder,
        key=lambda _: "k",
        max_items=max_items,
        linger_s=10.0,
        work_conserving=True,
        room=lambda: True,
        clock=FakeClock(),
    )


def test_offer_seals_nothing_while_a_sealed_batch_still_waits_to_be_handed_over() -> None:
    recorder = Recorder(gated=True)

    async def run() -> None:
        batcher = with_room(recorder, max_items=2)
        first = [asyncio.ensure_future(batcher.submit(i)) for i in range(3)]  # [0, 1] sealed full; 2 stays open
        await asyncio.sleep(0)  # the submits ran; the full batch's task has not taken it yet
        batcher.offer()
        await settle()
        assert recorder.batches == [[0, 1], [2]]  # 2 was sealed after the first batch was handed over, not with it
        for gate in recorder.gates:
            gate.set()
        await asyncio.gather(*first)

    asyncio.run(run())


@pytest.mark.parametrize(("room", "overlap"), [(None, 1), (True, 10)])
def test_without_room_batches_of_a_key_run_one_after_another_and_with_room_at_once(
    room: bool | None, overlap: int
) -> None:
    running = 0
    most = 0

    async def process(_key: str, items: list[int]) -> list[int]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        running -= 1
        return items

    async def run() -> list[int]:
        batcher = MicroBatcher(
            process,
            key=lambda _: "k",
            max_items=2,
            linger_s=10.0,
            room=None if room is None else (lambda: room),
            clock=FakeClock(),
        )
        results = await asyncio.gather(*(batcher.submit(i) for i in range(20)))
        await batcher.flush()
        assert batcher.pending == 0
        return list(results)

    assert asyncio.run(run()) == list(range(20))
    assert most == overlap


def test_flush_waits_for_every_batch_in_process() -> None:
    recorder = Recorder(gated=True)

    async def run() -> None:
        batcher = with_room(recorder, max_items=64)
        pending = asyncio.gather(*(batcher.submit(i) for i in range(4)))
        await settle()
        behind = asyncio.gather(*(batcher.submit(i) for i in range(4, 6)))
        await settle()
        assert recorder.batches == [[0, 1, 2, 3], [4, 5]]
        flushed = asyncio.ensure_future(batcher.flush())
        recorder.gates[0].set()
        await settle()
        assert not flushed.done()  # the second batch is still in process
        recorder.gates[1].set()
        await settle()
        assert flushed.done() and pending.done() and behind.done()

    asyncio.run(run())


# --- GroupsAhead --------------------------------------------------------------------------------------------------


class Gate:
    """A group's work that ends when the test opens its gate (or fails it)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.event = asyncio.Event()
        self.error: Exception | None = None
        self.started = False

    async def work(self) -> str:
        self.started = True
        await self.event.wait()
        if self.error is not None:
            raise self.error
        return self.name

    def open(self, error: Exception | None = None) -> None:
        self.error = error
        self.event.set()


def test_a_call_returns_at_once_and_later_calls_hand_on_the_groups_done_in_their_order() -> None:
    async def ordered() -> None:
        ahead: GroupsAhead[str] = GroupsAhead(limit=4)
        a, b, c = Gate("a"), Gate("b"), Gate("c")
        assert await ahead.take(a.work()) == []
        assert await ahead.take(b.work()) == []
        await settle()
        assert a.started and b.started  # both at work after their calls returned
        b.open()
        await settle()
        assert await ahead.take(c.work()) == []  # b is done, but a, before it, is not
        a.open()
        await settle()
        d = Gate("d")
        assert await ahead.take(d.work()) == ["a", "b"]  # c is still at work: it and d wait
        assert ahead.at_work == 2
        c.open()
        d.open()
        await settle()
        assert await ahead.take(None) == ["c", "d"]
        assert ahead.at_work == 0
        assert await ahead.take(None) == []

    asyncio.run(asyncio.wait_for(ordered(), timeout=10))


def test_a_call_that_does_not_work_ahead_returns_once_its_group_and_every_one_before_are_done() -> None:
    async def main() -> None:
        ahead: GroupsAhead[str] = GroupsAhead(limit=4)
        a, b = Gate("a"), Gate("b")
        assert await ahead.take(a.work()) == []
        call = asyncio.ensure_future(ahead.take(b.work(), wait=True))
        await settle()
        b.open()
        await settle()
        assert not call.done()  # its own group is done, the one before it is not
        a.open()
        assert await asyncio.wait_for(call, timeout=5) == ["a", "b"]
        assert ahead.at_work == 0

    asyncio.run(asyncio.wait_for(main(), timeout=10))


def test_a_marker_waits_for_every_group_and_returns_all_their_results() -> None:
    async def main() -> None:
        ahead: GroupsAhead[str] = GroupsAhead(limit=4)
        gates = [Gate(name) for name in "abc"]
        for gate in gates:
            assert await ahead.take(gate.work()) == []
        marker = asyncio.ensure_future(ahead.take(None))
        await settle()
        gates[2].open()
        gates[0].open()
        await settle()
        assert not marker.done()  # b is still at work
        gates[1].open()
        assert await asyncio.wait_for(marker, timeout=5) == ["a", "b", "c"]

    asyncio.run(asyncio.wait_for(main(), timeout=10))


def test_a_call_waits_while_the_groups_at_work_weigh_more_than_the_limit_unless_one_is_alone() -> None:
    async def main() -> None:
        ahead: GroupsAhead[str] = GroupsAhead(limit=10)
        big, small, tiny = Gate("big"), Gate("small"), Gate("tiny")
        assert await ahead.take(big.work(), weight=50) == []  # alone: taken although it weighs more than the limit
        second = asyncio.ensure_future(ahead.take(small.work(), weight=5))
        await settle()
        assert not second.done()  # 55 at work
        big.open()
        assert await asyncio.wait_for(second, timeout=5) == ["big"]
        assert await ahead.take(tiny.work(), weight=5) == []  # 5 + 5: within the limit
        small.open()
        tiny.open()
        assert await ahead.take(None) == ["small", "tiny"]

    asyncio.run(asyncio.wait_for(main(), timeout=10))


def test_a_call_waits_while_more_than_limit_groups_of_weight_one_are_at_work() -> None:
    async def main() -> None:
        ahead: GroupsAhead[str] = GroupsAhead(limit=2)
        a, b, c = Gate("a"), Gate("b"), Gate("c")
        await ahead.take(a.work())
        await ahead.take(b.work())
        third = asyncio.ensure_future(ahead.take(c.work()))
        await settle()
        assert not third.done()  # three at work, two allowed
        b.open()
        await settle()
        assert await asyncio.wait_for(third, timeout=5) == []  # room again; a is still first
        a.open()
        c.open()
        assert await ahead.take(None) == ["a", "b", "c"]

    asyncio.run(asyncio.wait_for(main(), timeout=10))


def test_calls_at_the_same_time_are_served_in_the_order_they_began_so_results_stay_in_group_order() -> None:
    async def main() -> None:
        ahead: GroupsAhead[str] = GroupsAhead(limit=1)
        a, b, c = Gate("a"), Gate("b"), Gate("c")
        await ahead.take(a.work())
        second = asyncio.ensure_future(ahead.take(b.work()))  # waits: two at work
        third = asyncio.ensure_future(ahead.take(c.work()))  # waits its turn behind the second
        marker = asyncio.ensure_future(ahead.take(None))
        await settle()
        assert not c.started  # not taken before the second call's turn ended
        a.open()
        assert await asyncio.wait_for(second, timeout=5) == ["a"]
        b.open()
        await settle()
        assert await asyncio.wait_for(third, timeout=5) == ["b"]
        c.open()
        assert await asyncio.wait_for(marker, timeout=5) == ["c"]

    asyncio.run(asyncio.wait_for(main(), timeout=10))


def test_a_failed_group_raises_from_the_call_that_reaches_it_and_from_every_call_after() -> None:
    async def main() -> None:
        ahead: GroupsAhead[str] = GroupsAhead(limit=4)
        a, b = Gate("a"), Gate("b")
        await ahead.take(a.work())
        await ahead.take(b.work())
        b.open(RuntimeError("model broken"))
        await settle()
        c = Gate("c")
        assert await ahead.take(c.work()) == []  # a, before the failure, is still at work
        a.open()
        c.open()
        with pytest.raises(RuntimeError, match="model broken"):
            await ahead.take(None)
        with pytest.raises(RuntimeError, match="model broken"):
            await ahead.take(None)

    asyncio.run(asyncio.wait_for(main(), timeout=10))


def test_cancel_stops_every_group_at_work() -> None:
    async def main() -> None:
        ahead: GroupsAhead[str] = GroupsAhead(limit=4)
        a = Gate("a")
        await ahead.take(a.work())
        await settle()
        task, _ = next(iter(ahead._groups))
        ahead.cancel()
        await settle()
        assert task.cancelled() and ahead.at_work == 0

    asyncio.run(asyncio.wait_for(main(), timeout=10))


def test_cancel_after_the_event_loop_has_closed_does_not_raise() -> None:
    ahead: GroupsAhead[str] = GroupsAhead(limit=4)
    loop = asyncio.new_event_loop()
    gate = Gate("a")

    async def start() -> None:
        await ahead.take(gate.work())
        await settle()  # the group waits on its gate

    loop.run_until_complete(start())
    loop.close()  # as Flink's async runner does before it closes the function
    ahead.cancel()
    assert ahead.at_work == 0


def test_the_limit_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="limit must be at least 1, got 0"):
        GroupsAhead(0)
