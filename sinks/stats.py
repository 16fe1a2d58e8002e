"""What the sink counts, behind a three-method protocol that a Flink adapter maps onto Flink metrics.

Counters (monotonic): ``requests`` (every request attempt sent to Pinecone, retries included) and ``retries``.
The outcome of each change (upserted, updated, deleted, superseded, dead-lettered) is not counted here: the writer
returns it, and the counts are the run totals of the JVM "Pinecone sink results" operator (``udfs.stage_batch``).
Histograms: ``batch_size`` (changes per ``write_batch``) and ``flush_latency_ms`` (wall time of one ``write_batch``).
Gauge: ``lag_ms``, at each acknowledged batch the time since the oldest Kafka timestamp in it.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

REQUESTS = "requests"
RETRIES = "retries"
COUNTERS = (REQUESTS, RETRIES)

BATCH_SIZE = "batch_size"
FLUSH_LATENCY_MS = "flush_latency_ms"
HISTOGRAMS = (BATCH_SIZE, FLUSH_LATENCY_MS)

LAG_MS = "lag_ms"
GAUGES = (LAG_MS,)

MAX_SAMPLES = 1_024
"""Histogram samples kept in memory by ``SinkStats`` (the most recent ones)."""


class SinkMetrics(Protocol):
    """Where the sink reports. Called from the sink's event loop only; implementations must be cheap."""

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``name`` (one of ``COUNTERS``)."""

    def observe(self, name: str, value: float) -> None:
        """Record one sample of the histogram ``name`` (one of ``HISTOGRAMS``)."""

    def gauge(self, name: str, value: float) -> None:
        """Set the gauge ``name`` (one of ``GAUGES``)."""


class SinkStats:
    """An in-memory ``SinkMetrics``: totals, the last ``MAX_SAMPLES`` samples per histogram, the last gauge values."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.samples: dict[str, deque[float]] = {name: deque(maxlen=MAX_SAMPLES) for name in HISTOGRAMS}
        self.gauges: dict[str, float] = {}

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def observe(self, name: str, value: float) -> None:
        self.samples.setdefault(name, deque(maxlen=MAX_SAMPLES)).append(value)

    def gauge(self, name: str, value: float) -> None:
        self.gauges[name] = value

    def __getitem__(self, name: str) -> int:
        return self.counters.get(name, 0)

    def __repr__(self) -> str:
        return f"SinkStats({self.counters}, gauges={self.gauges})"
