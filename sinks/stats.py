"""What the sink counts, behind a three-method protocol that a Flink adapter maps onto Flink metrics.

Counters (monotonic): ``requests`` (every request attempt sent to Pinecone, retries included) and ``retries``.
The outcome of each change (upserted, updated, deleted, superseded, dead-lettered) is not counted here: the writer
returns it, and the counts are the run totals of the JVM "Pinecone sink results" operator (``udfs.stage_batch``).
Histograms: ``batch_size`` (changes per ``write_batch``), ``flush_latency_ms`` (wall time of one ``write_batch``),
``request_latency_ms`` (wall time of one request to Pinecone, its retries included) and ``freshness_ms`` (per record
with a Kafka timestamp: the time from that timestamp to Pinecone's acknowledgement of the record's write).
Gauge: ``lag_ms``, at each acknowledged batch the time since the oldest Kafka timestamp in it.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from kafka_pinecone_flink.udfs.window import SlidingWindow

REQUESTS = "requests"
RETRIES = "retries"
COUNTERS = (REQUESTS, RETRIES)

BATCH_SIZE = "batch_size"
FLUSH_LATENCY_MS = "flush_latency_ms"
REQUEST_LATENCY_MS = "request_latency_ms"
FRESHNESS_MS = "freshness_ms"
HISTOGRAMS = (BATCH_SIZE, FLUSH_LATENCY_MS, REQUEST_LATENCY_MS, FRESHNESS_MS)
PERCENTILE_HISTOGRAMS = (FLUSH_LATENCY_MS, REQUEST_LATENCY_MS, FRESHNESS_MS)
"""Histograms also kept in a sliding window (``udfs.window``), for their percentiles."""

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
    """An in-memory ``SinkMetrics``: totals, the last ``MAX_SAMPLES`` samples per histogram, a sliding window
    (``windows``) per histogram of ``PERCENTILE_HISTOGRAMS``, the last gauge values."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.samples: dict[str, deque[float]] = {name: deque(maxlen=MAX_SAMPLES) for name in HISTOGRAMS}
        self.windows: dict[str, SlidingWindow] = {name: SlidingWindow() for name in PERCENTILE_HISTOGRAMS}
        self.gauges: dict[str, float] = {}

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def observe(self, name: str, value: float) -> None:
        self.samples.setdefault(name, deque(maxlen=MAX_SAMPLES)).append(value)
        window = self.windows.get(name)
        if window is not None:
            window.add(value)

    def gauge(self, name: str, value: float) -> None:
        self.gauges[name] = value

    def __getitem__(self, name: str) -> int:
        return self.counters.get(name, 0)

    def __repr__(self) -> str:
        return f"SinkStats({self.counters}, gauges={self.gauges})"
