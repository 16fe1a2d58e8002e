"""Beam's bundle state sampler without its sampling thread (udfs.python_worker), on the installed Beam."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

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


@pytest.fixture
def collector_restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_settle_collector_freezes_what_the_process_holds_and_raises_the_youngest_threshold(
    collector_restored: None,
) -> None:
    gc.set_threshold(700, 10, 10)
    held = _Cycle()
    python_worker.settle_collector()
    assert gc.get_threshold() == (python_worker.GC_GEN0_THRESHOLD, 10, 10)
    assert gc.get_freeze_count() > 0
    # Frozen: no collection walks what was there at the call (gc.get_objects lists only the three generations).
    assert not any(obj is held for gen in range(3) for obj in gc.get_objects(generation=gen))
    # Made later: still tracked, and a cycle of it is still reclaimed.
    later = _Cycle()
    assert any(obj is later for gen in range(3) for obj in gc.get_objects(generation=gen))
    before = gc.get_freeze_count()
    del later
    assert gc.collect() >= 1
    assert gc.get_freeze_count() == before


def test_every_stage_settles_the_collector_when_it_opens(monkeypatch: pytest.MonkeyPatch) -> None:
    from kafka_pinecone_flink.sinks import pinecone_sink
    from kafka_pinecone_flink.udfs import decode_function, embed
    from kafka_pinecone_flink.udfs.route_config import RouteConfig
    from tests.unit.test_sink_writer import FakeIndex, config

    settled: list[str] = []
    for module in (decode_function, embed, pinecone_sink):
        monkeypatch.setattr(module, "settle_collector", lambda name=module.__name__: settled.append(name))

    async def open_index(_config: Any) -> FakeIndex:
        return FakeIndex()

    monkeypatch.setattr(pinecone_sink, "open_index", open_index)
    monkeypatch.setattr(embed, "load_encoder", lambda *args, **kwargs: object())
    context = _Context()
    decode_function.DecodeFunction(RouteConfig(dimension=3, metric="cosine"), "all").open(context)
    embed.EmbedFunction(embed.EmbedConfig()).open(context)
    pinecone_sink.PineconeSinkFunction(config()).open(context)
    assert settled == [decode_function.__name__, embed.__name__, pinecone_sink.__name__]


class _Context:
    """A runtime context whose metric group takes every gauge and sub-group."""

    def get_metrics_group(self) -> Any:
        return self

    def gauge(self, name: str, obj: Any) -> None:
        pass

    def add_group(self, *names: str) -> Any:
        return self


# -- summarise_failed_inputs ----------------------------------------------------------------------------------------


def _failed_call(record: Any) -> tuple[list[Exception], list[Any], Any]:
    """A PyFlink ``ResultHandler`` for ``record`` whose call fails: the errors it reports, what it completes with."""
    from pyflink.fn_execution.datastream.process.async_function.operation import ResultHandler

    reported: list[Exception] = []
    completed: list[Any] = []

    class _Future:
        def complete(self, result: Any) -> None:
            completed.append(result)

    handler = ResultHandler("Stage", lambda value: [], reported.append, record, _Future())
    handler.complete_exceptionally(ValueError("record t[0]@7 rejected in sink"))
    return reported, completed, handler


def test_a_failed_group_is_reported_by_its_size_with_its_error_and_kept() -> None:
    assert python_worker.summarise_failed_inputs()
    group = [b"secret-looking metadata " * 100 for _ in range(250)]
    reported, completed, handler = _failed_call(group)
    (error,) = reported
    message = str(error)
    assert "a group of 250 items (content left out)" in message
    assert "secret-looking" not in message and len(message) < 500
    # The error that names the record is still there, as PyFlink's second argument.
    assert isinstance(error.args[1], ValueError) and "t[0]@7" in str(error.args[1])
    assert completed == [[]]
    assert handler._record is group


def test_without_the_change_pyflink_puts_the_whole_group_in_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the change is for: PyFlink's own method, as installed, writes ``str()`` of the input."""
    from pyflink.fn_execution.datastream.process.async_function.operation import ResultHandler

    assert python_worker.summarise_failed_inputs()
    monkeypatch.setattr(
        ResultHandler, "_complete_exceptionally_internal", getattr(ResultHandler, python_worker._SUMMARISED)
    )
    reported, _, _ = _failed_call([b"secret-looking metadata " * 100 for _ in range(250)])
    assert "secret-looking" in str(reported[0]) and len(str(reported[0])) > 100_000


def test_one_input_that_is_not_a_group_is_named_by_its_type() -> None:
    assert python_worker.summarise_failed_inputs()
    reported, _, _ = _failed_call(b"x" * 10_000)
    assert "one bytes (content left out)" in str(reported[0]) and "xxxx" not in str(reported[0])


def test_a_pyflink_without_the_handler_is_left_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyflink.fn_execution.datastream.process.async_function import operation

    monkeypatch.delattr(operation, "ResultHandler")
    assert not python_worker.summarise_failed_inputs()


@pytest.mark.parametrize("module", ["kafka_pinecone_flink.udfs.embed", "kafka_pinecone_flink.sinks.pinecone_sink"])
def test_each_async_stage_module_makes_the_change_on_its_own(module: str) -> None:
    """In a fresh interpreter (as in a Python worker), importing the stage's module alone is enough."""
    check = (
        f"import {module}\n"
        "from pyflink.fn_execution.datastream.process.async_function.operation import ResultHandler\n"
        f"assert getattr(ResultHandler, {python_worker._SUMMARISED!r}, False)\n"
        "from apache_beam.runners.worker import statesampler\n"
        f"assert getattr(statesampler.StateSampler, {python_worker._PATCHED!r}, False)\n"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
