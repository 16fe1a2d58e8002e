"""The checkpoint-aware Pinecone sink as a Flink ``AsyncFunction``.

Each ``async_invoke`` parks its change in a per-namespace micro-batch of the ``PineconeWriter`` and returns once
that batch is written (or its record dead-lettered). Flink waits for every in-flight ``async_invoke`` at the end of
each bundle and before each checkpoint barrier, so a completed checkpoint means every earlier record is in Pinecone
or in the dead-letter output: the sink never holds records that a checkpoint has already covered. The linger
(``sink.linger-ms``) bounds how long a partial batch, and so a checkpoint, waits.

Apply it with ``AsyncDataStream.unordered_wait`` and a timeout of 0: per-record timers are costly, and every
Pinecone call is bounded by the writer's own timeout. Order per id is kept by the writer (one batch in flight per
namespace, in arrival order), not by the output mode.

Outputs: the ``DeadLetter`` records (its own and those passed through from upstream stages); applied changes emit
nothing. When the writer gives up (retries exhausted, a fatal error, or a rejected record under fail-fast) the
exception fails the task, and Flink restarts it from the last checkpoint: nothing is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from pyflink.datastream import RuntimeContext
from pyflink.datastream.functions import AsyncFunction

from sinks import stats
from sinks.client import open_index
from sinks.config import PineconeSinkConfig
from sinks.writer import PineconeWriter
from udfs.dedup import applied_change
from udfs.records import DeadLetter

FLINK_GAUGES = (*stats.COUNTERS, stats.LAG_MS)


class FlinkSinkMetrics(stats.SinkStats):
    """``SinkStats`` exposed as Flink gauges.

    Gauges rather than counters: ``async_invoke`` runs on the operator's asyncio thread, and Beam's counters only
    count in the thread that processes the bundle. Histograms are exposed as gauges over the recent samples.
    """

    def register(self, group: Any) -> None:
        for name in FLINK_GAUGES:
            group.gauge(name, self._reader(name))
        for name in stats.HISTOGRAMS:
            group.gauge(f"{name}_mean", self._summary(name, mean=True))
            group.gauge(f"{name}_max", self._summary(name, mean=False))

    def _reader(self, name: str) -> Any:
        if name in stats.GAUGES:
            return lambda: int(self.gauges.get(name, 0))
        return lambda: self.counters.get(name, 0)

    def _summary(self, name: str, *, mean: bool) -> Any:
        def read() -> int:
            samples = self.samples.get(name)
            if not samples:
                return 0
            return int(sum(samples) / len(samples)) if mean else int(max(samples))

        return read


class PineconeSinkFunction(AsyncFunction):
    """Writes changes (rows of the dedup operator, or ``Change`` records from the embed stage) to Pinecone; passes
    ``DeadLetter`` records through; emits dead letters only."""

    def __init__(self, config: PineconeSinkConfig) -> None:
        self._config = config
        self._writer: PineconeWriter | None = None
        self._client: Any = None

    def open(self, runtime_context: RuntimeContext) -> None:
        # The SDK logs every request at INFO: quiet when healthy.
        logging.getLogger("pinecone").setLevel(logging.WARNING)
        metrics = FlinkSinkMetrics()
        metrics.register(runtime_context.get_metrics_group())
        # open() runs before the operator's event loop exists; the data-plane client binds to the loop of its
        # first request, so describing the index in a short-lived loop here is safe.
        self._client = asyncio.run(open_index(self._config))
        self._writer = PineconeWriter(self._client, self._config, metrics=metrics)

    async def async_invoke(self, value: Any) -> list[DeadLetter]:
        value = applied_change(value)
        if isinstance(value, DeadLetter):
            return [value]
        if self._writer is None:
            raise RuntimeError("PineconeSinkFunction.async_invoke called before open()")
        outcome = await self._writer.submit(value)
        return [outcome] if isinstance(outcome, DeadLetter) else []

    def close(self) -> None:
        # The operator's loop is stopped by now; the writer holds nothing unsent (every batch was awaited).
        if self._client is not None:
            with contextlib.suppress(Exception):
                asyncio.run(self._client.close())
        self._client = None
        self._writer = None
