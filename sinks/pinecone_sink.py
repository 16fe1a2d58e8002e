"""The checkpoint-aware Pinecone sink as a Flink ``AsyncFunction``, on groups of changes.

The JVM ``Batcher`` before it (``udfs.stage_batch``) hands over the applied changes of its subtask as one list, at
most ``sink.linger-ms`` after the first of them arrived and always before a checkpoint barrier. Each
``async_invoke`` writes its group through the ``PineconeWriter`` at once (``submit_group``: per lane, in arrival
order, behind the lane's write in flight, in requests of up to ``sink.batch-size`` ids that may also carry other
groups' changes) and returns once every change of the group is written or dead-lettered.
Flink waits for every in-flight ``async_invoke`` before it forwards a barrier, so a completed checkpoint means every
earlier record is in Pinecone or in the dead-letter output: the sink never holds records that a checkpoint has
already covered.

Apply it with ``AsyncDataStream.unordered_wait`` and a timeout of 0: every Pinecone call is bounded by the writer's
own timeout. Order per id is kept by the writer (the writes of one lane go strictly in arrival order, and groups are
invoked in arrival order), not by the output mode.

When the writer gives up (retries exhausted, a fatal error, or a rejected record under fail-fast) the exception
fails the task, and Flink restarts it from the last checkpoint: nothing is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any

from pyflink.datastream import RuntimeContext
from pyflink.datastream.functions import AsyncFunction

from kafka_pinecone_flink.sinks import stats
from kafka_pinecone_flink.sinks.client import open_index, quiet_request_logs
from kafka_pinecone_flink.sinks.config import PineconeSinkConfig
from kafka_pinecone_flink.sinks.embedding_health import EmbeddingHealth, load_reference
from kafka_pinecone_flink.sinks.writer import APPLIED_KINDS, PineconeWriter
from kafka_pinecone_flink.udfs.python_worker import settle_collector
from kafka_pinecone_flink.udfs.records import Change, DeadLetter
from kafka_pinecone_flink.udfs.stage_batch import DEAD_LETTERED, batch_result, dead_letter_row
from kafka_pinecone_flink.udfs.window import register_percentiles

CHUNK_OPERATIONS = "chunk_operations"
"""Operations of a document after its first (``udfs.chunking``): its further chunk upserts and deletes, applied."""
CHUNK_DEAD_LETTERED = "chunk_dead_lettered"
"""Those of them Pinecone rejected: each is a dead letter of the document's record, which its first operation
already counts."""
COUNTS = (*APPLIED_KINDS, DEAD_LETTERED)
"""The outcome counts of the sink's result rows, which exist from the start, at zero: the JVM run totals of the
"Pinecone sink results" operator (``<stage>_dead_lettered`` of an earlier stage appear when first counted)."""
FLINK_GAUGES = (*stats.COUNTERS, *stats.GAUGES)
"""The writer's figures exposed by the Python operator. The outcome counts are not among them: exposing them here
too, in the vertex the results operator is chained into, made every sum over the vertex count each write twice."""


class FlinkSinkMetrics(stats.SinkStats):
    """``SinkStats`` exposed as Flink gauges.

    Gauges rather than counters: ``async_invoke`` runs on the operator's asyncio thread, and Beam's counters only
    count in the thread that processes the bundle. Histograms are exposed as gauges over the recent samples
    (``<name>_mean``, ``<name>_max``) and, for ``stats.PERCENTILE_HISTOGRAMS``, as sliding-window percentiles
    (``<name>_p50``, ``_p95``, ``_p99``, ``_window_max``: ``udfs.window``).
    """

    def register(self, group: Any) -> None:
        for name in FLINK_GAUGES:
            group.gauge(name, self._reader(name))
        for name in stats.HISTOGRAMS:
            group.gauge(f"{name}_mean", self._summary(name, mean=True))
            group.gauge(f"{name}_max", self._summary(name, mean=False))
        for name, window in self.windows.items():
            register_percentiles(group, name, window, max_suffix="window_max")

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
    """Writes groups of changes to Pinecone and returns one ``batch_result`` row per group (``udfs.stage_batch``):
    no records, the group's dead letters as raw Kafka rows (its own and those of the embed stage), and the counts
    ``upserted``, ``updated``, ``deleted``, ``superseded``, ``dead_lettered`` (the sink's), ``embed_dead_lettered``;
    with chunking, a document's operations after its first count as ``chunk_operations`` / ``chunk_dead_lettered``.

    A group is a list of ``Change``s after dedup (the JVM ``Batcher``'s group, loaded in one piece:
    ``udfs.dedup.applied_groups``), or the list the embed stage returns (``Change`` and ``DeadLetter`` records)."""

    def __init__(
        self, config: PineconeSinkConfig, secrets: tuple[str, ...] = (), dead_letter_max_bytes: int | None = None
    ) -> None:
        self._config = config
        self._secrets = secrets
        self._max_bytes = dead_letter_max_bytes
        self._writer: PineconeWriter | None = None
        self._client: Any = None
        self._health: EmbeddingHealth | None = None
        # Read here, where the job is built: the file need not exist where the sink runs.
        self._drift_reference = (
            load_reference(config.drift_reference_file) if config.drift_reference_file is not None else None
        )

    def open(self, runtime_context: RuntimeContext) -> None:
        # httpx and the SDK log every request at INFO: quiet when healthy.
        quiet_request_logs()
        metrics = FlinkSinkMetrics()
        metrics.register(runtime_context.get_metrics_group())
        self._health = EmbeddingHealth(
            self._config.drift_reference_size, self._config.drift_window, self._drift_reference
        )
        self._health.register(runtime_context.get_metrics_group())
        # open() runs before the operator's event loop exists; the data-plane client binds to the loop of its
        # first request, so describing the index in a short-lived loop here is safe.
        self._client = asyncio.run(open_index(self._config))
        self._writer = PineconeWriter(self._client, self._config, metrics=metrics)
        settle_collector()

    async def async_invoke(self, value: Any) -> list[Any]:
        if self._writer is None:
            raise RuntimeError("PineconeSinkFunction.async_invoke called before open()")
        changes: list[Change] = []
        dead_letters = []
        counts: Counter[str] = Counter()
        for item in value:
            if isinstance(item, DeadLetter):
                counts[f"{item.stage}_{DEAD_LETTERED}"] += 1
                dead_letters.append(dead_letter_row(item, self._secrets, self._max_bytes))
            else:
                changes.append(item)
        outcomes = await self._writer.submit_group(changes)
        if self._health is not None:
            self._health.observe(changes)
        for change, outcome in zip(changes, outcomes, strict=True):
            # A document's chunk operations (udfs.chunking) count once, by the first; the others on their own.
            if isinstance(outcome, DeadLetter):
                counts[CHUNK_DEAD_LETTERED if change.follows else DEAD_LETTERED] += 1
                dead_letters.append(dead_letter_row(outcome, self._secrets, self._max_bytes))
            else:
                counts[CHUNK_OPERATIONS if change.follows else outcome.kind] += 1
        return [batch_result([], dead_letters, counts)]

    def close(self) -> None:
        # The operator's loop is stopped by now; the writer holds nothing unsent (every group was awaited).
        if self._client is not None:
            with contextlib.suppress(Exception):
                asyncio.run(self._client.close())
        self._client = None
        self._writer = None
