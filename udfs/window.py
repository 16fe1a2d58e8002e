"""Percentiles over a sliding window, exposed as Flink gauges.

PyFlink's Python metrics are counters, meters, integer gauges and distributions (which reach Flink's metric
system as a value Prometheus cannot export), so a latency distribution is kept here, in the Python worker, and
published as integer gauges ``<name>_p50``, ``<name>_p95``, ``<name>_p99`` (and the window's maximum): the percentiles
of the samples of the last ``window_s`` seconds (at most ``max_samples``, the most recent), 0 when the window is
empty. Each subtask keeps its own window, so a percentile is per subtask (Prometheus label ``subtask_index``).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

QUANTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))
DEFAULT_WINDOW_S = 60.0
DEFAULT_MAX_SAMPLES = 4_096


class SlidingWindow:
    """The samples of the last ``window_s`` seconds (at most ``max_samples``), with nearest-rank percentiles.

    Not thread-safe beyond CPython's atomic deque appends: add from one thread; reading from another (Flink reads
    gauges at bundle ends) sees a consistent copy."""

    def __init__(
        self,
        window_s: float = DEFAULT_WINDOW_S,
        max_samples: int = DEFAULT_MAX_SAMPLES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self._clock = clock
        self._samples: deque[tuple[float, float]] = deque(maxlen=max_samples)
        self._version = 0
        self._cached: tuple[int, float, list[float]] | None = None

    def add(self, value: float) -> None:
        self._samples.append((self._clock(), value))
        self._version += 1

    def values(self) -> list[float]:
        """The samples inside the window, sorted."""
        now = self._clock()
        cached = self._cached
        # Recomputed when a sample was added or a second has passed (samples leave the window with time).
        if cached is not None and cached[0] == self._version and now - cached[1] < 1.0:
            return cached[2]
        horizon = now - self.window_s
        current = sorted(value for at, value in list(self._samples) if at >= horizon)
        self._cached = (self._version, now, current)
        return current

    def quantile(self, q: float) -> float:
        """The nearest-rank ``q`` quantile of the window's samples; 0.0 when it holds none."""
        current = self.values()
        if not current:
            return 0.0
        return current[min(len(current) - 1, max(0, math.ceil(q * len(current)) - 1))]

    def maximum(self) -> float:
        current = self.values()
        return current[-1] if current else 0.0


def register_percentiles(
    group: Any, name: str, window: SlidingWindow, scale: float = 1.0, max_suffix: str = "max"
) -> None:
    """Gauges ``<name>_p50/_p95/_p99`` and ``<name>_<max_suffix>`` on Flink metric group ``group``: the window's
    percentiles and maximum times ``scale``, rounded to integers (PyFlink gauges are integers)."""
    for suffix, q in QUANTILES:
        group.gauge(f"{name}_{suffix}", _reader(window, q, scale))
    group.gauge(f"{name}_{max_suffix}", lambda: round(window.maximum() * scale))


def _reader(window: SlidingWindow, q: float, scale: float) -> Callable[[], int]:
    return lambda: round(window.quantile(q) * scale)
