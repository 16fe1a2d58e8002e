"""Sliding-window percentiles (udfs.window): nearest rank, the window forgets old samples, the gauges are integers."""

from __future__ import annotations

from typing import Any

import pytest

from kafka_pinecone_flink.udfs.window import SlidingWindow, register_percentiles

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_percentiles_are_nearest_rank_over_the_window() -> None:
    window = SlidingWindow(window_s=60, clock=Clock())
    for value in range(1, 101):
        window.add(value)
    assert (window.quantile(0.5), window.quantile(0.95), window.quantile(0.99), window.maximum()) == (50, 95, 99, 100)
    assert SlidingWindow().quantile(0.99) == 0.0


def test_samples_leave_the_window_with_time_and_with_the_sample_cap() -> None:
    clock = Clock()
    window = SlidingWindow(window_s=10, max_samples=1000, clock=clock)
    for _ in range(50):
        window.add(5000.0)
    clock.now += 11
    window.add(20.0)
    assert window.values() == [20.0]
    clock.now += 11
    assert window.quantile(0.5) == 0.0
    capped = SlidingWindow(window_s=10, max_samples=3, clock=clock)
    for value in (9.0, 1.0, 2.0, 3.0):
        capped.add(value)
    assert capped.maximum() == 3.0


def test_the_gauges_are_scaled_integers() -> None:
    gauges: dict[str, Any] = {}

    class Group:
        def gauge(self, name: str, read: Any) -> None:
            gauges[name] = read

    window = SlidingWindow(clock=Clock())
    register_percentiles(Group(), "norm_milli", window, scale=1000)
    window.add(0.9994)
    window.add(1.5)
    assert set(gauges) == {"norm_milli_p50", "norm_milli_p95", "norm_milli_p99", "norm_milli_max"}
    assert (gauges["norm_milli_p50"](), gauges["norm_milli_p99"]()) == (999, 1500)
    assert all(isinstance(read(), int) for read in gauges.values())
