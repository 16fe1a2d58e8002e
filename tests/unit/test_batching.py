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


def test_a_failing_batch_fails_its_items_and_the_batcher_goes_on() -> None:
    async def process(_key: str, items: list[int]) -> list[int]:
        if 4 in items:
            raise ValueError("batch with 4 failed")
        return items

    async def run() -> None:
        batcher = MicroBatcher(process, key=lambda _: "k", max_items=2, linger_s=3600.0)
        results = await asyncio.wait_for(
            asyncio.gather(*(batcher.submit(i) for i in (1, 2, 3, 4)), return_exceptions=True), timeout=10
        )
        assert results[:2] == [1, 2]
        assert all(isinstance(r, ValueError) and "batch with 4 failed" in str(r) for r in results[2:])
        assert batcher.pending == 0
        # The batcher goes on after the failure.
        assert await asyncio.wait_for(asyncio.gather(batcher.submit(5), batcher.submit(6)), timeout=10) == [5, 6]

    asyncio.run(run())
