"""Beam's bundle state sampler without its sampling thread (udfs.python_worker), on the installed Beam."""

from __future__ import annotations

import threading

import pytest
from apache_beam.runners.worker import statesampler
from apache_beam.utils.counters import CounterFactory

from kafka_pinecone_flink.udfs import python_worker

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _skipped() -> None:
    assert python_worker.skip_state_sampling()


def _threads() -> set[threading.Thread]:
    return set(threading.enumerate())


def test_a_bundle_starts_and_stops_its_sampler_without_a_thread() -> None:
    sampler = statesampler.StateSampler("step", CounterFactory())
    before = _threads()
    sampler.start()
    try:
        # Before the change, start() spawned the sampling thread that stop() then joined.
        assert _threads() == before
        assert statesampler.get_current_tracker() is sampler
        assert sampler.started and not sampler.finished
    finally:
        sampler.stop()
    assert statesampler.get_current_tracker() is None
    assert sampler.finished
    assert _threads() == before


def test_the_sampler_serves_bundle_after_bundle_as_beam_reuses_it() -> None:
    sampler = statesampler.StateSampler("step", CounterFactory())
    state = sampler.scoped_state("step", "process")
    before = _threads()
    for _ in range(5):
        sampler.reset()
        sampler.start()
        with state:
            assert sampler.current_state() is state
        sampler.stop()
    assert sampler.state_transition_count == 10
    assert _threads() == before


def test_a_sampler_started_with_its_thread_is_stopped_with_a_join() -> None:
    sampler = statesampler.StateSampler("step", CounterFactory())
    before = _threads()
    # Beam's own start (the compiled base class), as a sampler started before the change would have been.
    type(sampler).__mro__[1].start(sampler)
    assert len(_threads() - before) == 1
    sampler.stop()
    assert sampler.finished
    assert _threads() == before


def test_the_change_is_made_once_and_every_stage_module_makes_it() -> None:
    stop = statesampler.StateSampler.stop
    assert python_worker.skip_state_sampling()
    assert statesampler.StateSampler.stop is stop
    from kafka_pinecone_flink.sinks import pinecone_sink  # noqa: F401
    from kafka_pinecone_flink.udfs import decode_function, embed  # noqa: F401

    assert getattr(statesampler.StateSampler, python_worker._PATCHED)


def test_a_beam_without_the_sampler_is_left_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(statesampler, "set_current_tracker")
    assert not python_worker.skip_state_sampling()
