"""MicroBatcher: batches per key, in order, sealed by size or linger; the work-conserving mode of the embed stage."""

from __future__ import annotations

import asyncio
import time

import pytest

from udfs.batching import MicroBatcher

pytestmark = pytest.mark.unit


class Recorder:
    """A processor that records each batch and takes ``seconds`` per batch."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.batches: list[list[int]] = []
        self.started: list[float] = []

    async def __call__(self, _key: str, items: list[int]) -> list[int]:
        self.started.append(time.monotonic())
        self.batches.append(list(items))
        await asyncio.sleep(self.seconds)
        return [item * 10 for item in items]


def test_items_are_batched_up_to_max_items_in_order_and_get_their_own_results() -> None:
    recorder = Recorder()

    async def run() -> list[int]:
        batcher = MicroBatcher(recorder, key=lambda _: "k", max_items=3, linger_s=0.05)
        return await asyncio.gather(*(batcher.submit(i) for i in range(7)))

    assert asyncio.run(run()) == [i * 10 for i in range(7)]
    assert recorder.batches == [[0, 1, 2], [3, 4, 5], [6]]


def test_a_partial_batch_waits_for_the_linger_without_work_conserving() -> None:
    recorder = Recorder()

    async def run() -> float:
        batcher = MicroBatcher(recorder, key=lambda _: "k", max_items=64, linger_s=0.3)
        began = time.monotonic()
        await batcher.submit(1)
        return time.monotonic() - began

    assert asyncio.run(run()) >= 0.29
    assert recorder.batches == [[1]]


def test_work_conserving_never_lets_the_processor_idle_while_items_wait() -> None:
    recorder = Recorder(seconds=0.1)

    async def run() -> float:
        # A linger of 10 s: any wait for it would show in the elapsed time.
        batcher = MicroBatcher(recorder, key=lambda _: "k", max_items=64, linger_s=10.0, work_conserving=True)
        began = time.monotonic()
        first = [asyncio.ensure_future(batcher.submit(i)) for i in range(3)]  # submitted together: one batch
        await asyncio.sleep(0.02)  # the processor is busy with them now
        later = [asyncio.ensure_future(batcher.submit(i)) for i in range(3, 8)]
        await asyncio.gather(*first, *later)
        return time.monotonic() - began

    elapsed = asyncio.run(run())
    assert recorder.batches == [[0, 1, 2], [3, 4, 5, 6, 7]]  # the later items waited only for the busy processor
    assert elapsed < 0.5
    assert recorder.started[1] - recorder.started[0] == pytest.approx(0.1, abs=0.05)


def test_work_conserving_still_fills_batches_to_max_items_under_load() -> None:
    recorder = Recorder(seconds=0.05)

    async def run() -> None:
        batcher = MicroBatcher(recorder, key=lambda _: "k", max_items=4, linger_s=10.0, work_conserving=True)
        await asyncio.gather(*(batcher.submit(i) for i in range(10)))

    asyncio.run(run())
    assert recorder.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


# --- submit_many: a group handed over at once ---------------------------------------------------------------------


def test_submit_many_returns_the_results_in_order_across_keys() -> None:
    seen: list[tuple[int, list[int]]] = []

    async def process(key: int, items: list[int]) -> list[str]:
        seen.append((key, list(items)))
        return [f"{key}:{item}" for item in items]

    async def run() -> list[str]:
        batcher = MicroBatcher(process, key=lambda item: item % 2, max_items=10, linger_s=3600.0)
        return await asyncio.wait_for(batcher.submit_many([5, 2, 7, 4, 1]), timeout=10)

    assert asyncio.run(run()) == ["1:5", "0:2", "1:7", "0:4", "1:1"]
    assert sorted(seen) == [(0, [2, 4]), (1, [5, 7, 1])]


def test_submit_many_processes_a_group_without_waiting_for_the_linger() -> None:
    recorder = Recorder()

    async def run() -> list[int]:
        batcher = MicroBatcher(recorder, key=lambda _: "k", max_items=64, linger_s=3600.0)
        # An hour's linger: the group completes only if its batch is sealed at once.
        return await asyncio.wait_for(batcher.submit_many([1, 2, 3]), timeout=10)

    assert asyncio.run(run()) == [10, 20, 30]
    assert recorder.batches == [[1, 2, 3]]


def test_submit_many_splits_a_group_larger_than_max_items() -> None:
    recorder = Recorder()

    async def run() -> list[int]:
        batcher = MicroBatcher(recorder, key=lambda _: "k", max_items=3, linger_s=3600.0)
        return await asyncio.wait_for(batcher.submit_many(list(range(7))), timeout=10)

    assert asyncio.run(run()) == [i * 10 for i in range(7)]
    assert recorder.batches == [[0, 1, 2], [3, 4, 5], [6]]


def test_a_group_queues_behind_an_earlier_sealed_batch_of_its_key() -> None:
    started: list[list[int]] = []
    finished: list[list[int]] = []
    gates: dict[int, asyncio.Event] = {}

    async def process(_key: str, items: list[int]) -> list[int]:
        started.append(list(items))
        await gates[items[0]].wait()
        finished.append(list(items))
        return items

    async def run() -> tuple[list[int], list[int]]:
        gates[1], gates[3] = asyncio.Event(), asyncio.Event()
        batcher = MicroBatcher(process, key=lambda _: "k", max_items=10, linger_s=3600.0)
        first = asyncio.ensure_future(batcher.submit_many([1, 2]))
        for _ in range(1000):
            if started:
                break
            await asyncio.sleep(0)
        assert started == [[1, 2]], "the first group was not processed at once"
        second = asyncio.ensure_future(batcher.submit_many([3, 4]))
        gates[3].set()  # the second group may go as soon as it is its turn
        for _ in range(20):
            await asyncio.sleep(0)
        assert started == [[1, 2]] and not second.done()  # it waits for the batch ahead of it
        gates[1].set()
        return await asyncio.wait_for(first, timeout=10), await asyncio.wait_for(second, timeout=10)

    assert asyncio.run(run()) == ([1, 2], [3, 4])
    assert started == [[1, 2], [3, 4]] and finished == [[1, 2], [3, 4]]


def test_a_failing_batch_fails_the_items_of_the_group() -> None:
    async def process(_key: str, items: list[int]) -> list[int]:
        if 4 in items:
            raise ValueError("batch with 4 failed")
        return items

    async def run() -> None:
        batcher = MicroBatcher(process, key=lambda _: "k", max_items=2, linger_s=3600.0)
        assert await asyncio.wait_for(batcher.submit_many([1, 2]), timeout=10) == [1, 2]
        with pytest.raises(ValueError, match="batch with 4 failed"):
            await asyncio.wait_for(batcher.submit_many([3, 4, 5]), timeout=10)
        assert batcher.pending == 0
        assert await asyncio.wait_for(batcher.submit_many([6]), timeout=10) == [
            6
        ]  # the batcher goes on after the failure

    asyncio.run(run())
