"""Three changes this job makes to the Python worker that runs its stages (Apache Beam's SDK harness under PyFlink).

**Bundle ends without Beam's state-sampling thread.** For every bundle, Beam's ``StateSampler`` starts a thread that
wakes up and credits the elapsed time to the step the bundle is in (Beam's per-step msec counters). It sleeps 2 ms at
first, then 1.2 times longer each round, up to 200 ms. At the bundle's end, ``stop`` joins that thread, so the
bundle ends only when the thread next wakes up. For a bundle that ran about a second, that is up to 200 ms after its
last element. The Flink task waits for the end of a bundle before it sends the next one, so the whole stage
stands still meanwhile. In a py-spy profile of (a) in the mini-cluster, the bundle thread spent 12% of its time in
that join (BENCHMARKS.md, "Bundle ends without Beam's state sampler"). Flink forwards only a bundle's user metrics to
its own metric system, never these counters, so the sampling gains this job nothing.

``skip_state_sampling`` makes ``start`` and ``stop`` keep everything else they do (the current tracker, the
``started`` and ``finished`` flags that ``reset`` clears for the next bundle) without the thread. The step
transitions (``ScopedState``) still run; only the sampled times stay at zero. The change is made once per process,
when a stage module is imported: in the worker, that is while Beam builds the bundle's operators, before the first
bundle starts. A sampler already started with its thread is stopped the original way, so no thread is left behind.
If the installed Beam lacks what the change relies on, nothing is changed and bundles end as Beam made them.

**A garbage collector that leaves each stage's set-up alone.** CPython's cyclic collector runs its youngest
generation after every 700 container allocations beyond deallocations, and now and then a full collection that
walks every tracked object in the process. A stage allocates a few dozen containers per record, and the worker holds
hundreds of thousands of objects for good: Beam, gRPC, the Pinecone SDK, the model. In (a) in the mini-cluster
(40,000 records, 30 ms of added Pinecone latency) the sink's worker ran 442 young, 40 middle and 3 full collections,
the full ones 84-187 ms each with the whole process stopped, 0.7 s in all. ``settle_collector``, called at the end of
every stage's ``open``, moves what the process holds by then into the collector's permanent generation
(``gc.freeze``), which no collection walks, and raises the youngest generation's threshold to
``GC_GEN0_THRESHOLD``; the older generations keep Python's ratios. Memory held in cycles is still reclaimed, later
by the youngest threshold's ratio. Measured (BENCHMARKS.md, "A garbage collector that leaves the set-up alone"): that
run made no collection at all, and (a) under 30 ms of latency gained 7% in records/s on 6% less CPU.

**A failed group's error gives the group's size, not its content.** When an async stage's call fails (the sink under
``errors.tolerance=none``, or a bug), PyFlink's ``ResultHandler`` wraps the error in an exception whose message is
``str()`` of the whole input: for the sink, a group of up to ``batch.max-records`` changes, each a pickled record
with its metadata and vector. A sink group of 50 records with 2 KB of metadata each made a 131 KB first line of the
job's error, before the line that names the rejected record; a group of (a) makes megabytes, repeated in the
JobManager's log and the Web UI, with record content in them. ``summarise_failed_inputs`` makes that message say
what the input was (``a group of 250 items``) instead; the error under it, which names the record, is unchanged.
The input itself is put back once the message is made. If the installed PyFlink lacks what the change relies on,
nothing is changed.
"""

from __future__ import annotations

import gc
import logging
import threading
from typing import Any

_LOG = logging.getLogger(__name__)
_PATCHED = "_kpf_without_sampling_thread"
"""Set on Beam's sampler class once ``skip_state_sampling`` has changed it."""
_THREADLESS = "_kpf_threadless"
"""Set on a sampler started without its thread; its ``stop`` then has no thread to join."""
_SUMMARISED = "_kpf_summarised_inputs"
"""Set on PyFlink's ``ResultHandler`` once ``summarise_failed_inputs`` has changed it: PyFlink's own method."""


def prepare_stage_worker() -> None:
    """The changes of this module that a stage's worker needs before its first bundle: the bundle state samplers
    without their thread (``skip_state_sampling``) and failed groups named by their size (``summarise_failed_inputs``).
    Each is made once per process; call at the import of every Python stage's module."""
    skip_state_sampling()
    summarise_failed_inputs()


GC_GEN0_THRESHOLD = 100_000
"""Container allocations (beyond deallocations) between two collections of the youngest generation; Python's default
is 700. A group of records allocates tens of thousands: at 700 the collector ran several times per group."""


def settle_collector() -> None:
    """Freeze what the process holds now out of the cyclic garbage collector's reach and raise its youngest
    threshold to ``GC_GEN0_THRESHOLD`` (see the module docstring). Call it at the end of a stage's ``open``: what
    ``open`` made (clients, the model) is then frozen too. Calling it again freezes what was made since."""
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, middle, oldest)


def skip_state_sampling() -> bool:
    """Start and stop Beam's bundle state samplers without their sampling thread (see the module docstring), once per
    process. Returns True when the samplers work that way now, False when this Beam lacks what the change needs."""
    try:
        from apache_beam.runners.worker import statesampler
    except ImportError:
        return False
    sampler = getattr(statesampler, "StateSampler", None)
    if sampler is None or not hasattr(statesampler, "set_current_tracker"):
        return False
    if getattr(sampler, _PATCHED, False):
        return True
    if not all(callable(getattr(sampler, name, None)) for name in ("start", "stop", "reset")):
        return False
    stopped_with_join = sampler.stop

    def start(self: Any) -> None:
        self.tracked_thread = threading.current_thread()
        statesampler.set_current_tracker(self)
        self.started = True
        self.__dict__[_THREADLESS] = True

    def stop(self: Any) -> None:
        if not self.__dict__.pop(_THREADLESS, False):
            stopped_with_join(self)
            return
        statesampler.set_current_tracker(None)
        self.finished = True

    sampler.start = start
    sampler.stop = stop
    setattr(sampler, _PATCHED, True)
    _LOG.debug("Beam's bundle state samplers run without their sampling thread")
    return True


class InputSummary:
    """What a failed call's input was, for PyFlink's error message: its kind and size, never its content."""

    __slots__ = ("text",)

    def __init__(self, value: Any) -> None:
        if isinstance(value, list | tuple):
            self.text = f"a group of {len(value)} items (content left out)"
        else:
            self.text = f"one {type(value).__name__} (content left out)"

    def __str__(self) -> str:
        return self.text

    __repr__ = __str__


def summarise_failed_inputs() -> bool:
    """Make PyFlink name a failed async call's input by its size, not its content (see the module docstring), once
    per process. Returns True when failures are reported that way now, False when this PyFlink lacks what the change
    needs."""
    try:
        from pyflink.fn_execution.datastream.process.async_function import operation
    except ImportError:
        return False
    handler = getattr(operation, "ResultHandler", None)
    if handler is None:
        return False
    if getattr(handler, _SUMMARISED, False):
        return True
    complete_with_input = getattr(handler, "_complete_exceptionally_internal", None)
    if not callable(complete_with_input):
        return False

    def complete_exceptionally(self: Any, error: Exception) -> None:
        record = getattr(self, "_record", None)
        if record is None:
            complete_with_input(self, error)
            return
        self._record = InputSummary(record)
        try:
            complete_with_input(self, error)
        finally:
            self._record = record

    handler._complete_exceptionally_internal = complete_exceptionally
    setattr(handler, _SUMMARISED, complete_with_input)
    _LOG.debug("a failed async call's error names its input by size")
    return True
