"""glibc's malloc arenas: the cap this project puts on them in the standalone cluster it starts.

glibc gives a thread that meets contention an arena of its own, up to eight per core, and memory freed in an arena
stays resident for that arena. A TaskManager and its Python workers run dozens of threads (the JVM's, gRPC's,
Beam's). With ``MALLOC_ARENA_MAX=2`` the standalone cluster of ``make bench`` peaked at 1,906 MiB on (a) instead of
1,954 MiB (2,071 against 2,139 MiB with a 2048m TaskManager), for the same CPU (20.3 against 22.0 CPU-seconds; one
run each, BENCHMARKS.md). Flink's own Docker image preloads jemalloc instead.

The mini-cluster's driver (the job's own process, which hosts the Python workers there) does not take the cap: in
interleaved runs it saved about 90 MiB but cost 18% more CPU per record (19.8-21.8 against 16.5-18.5 CPU-seconds for
20,000 records of (a)).

A value the user has set is kept.
"""

from __future__ import annotations

from collections.abc import MutableMapping

VARIABLE = "MALLOC_ARENA_MAX"
ARENAS = 2


def limit_in(environ: MutableMapping[str, str]) -> None:
    """Set the arena cap in ``environ`` (the environment of processes still to start) unless it is set there."""
    environ.setdefault(VARIABLE, str(ARENAS))
