"""glibc's malloc arenas: the cap this project puts on them in the processes it starts.

glibc gives a thread that meets contention an arena of its own, up to eight per core, and memory freed in an arena
stays resident for that arena. The JVM, gRPC and Beam run dozens of threads, so a Python worker or a TaskManager holds
tens of megabytes per busy thread that it will not use again. With ``MALLOC_ARENA_MAX=2`` the standalone cluster of
``make bench`` peaked at 1.85 GiB on (a) instead of about 2.05 GiB with the same Flink memory settings (BENCHMARKS.md);
it is the usual setting for Flink with RocksDB (Flink's own Docker image preloads jemalloc instead).

A value the user has set is kept. glibc reads the variable once, when a process starts; for the process that is
already running (the job's driver, which hosts the mini-cluster's Python workers) ``limit_malloc_arenas`` asks glibc
directly with ``mallopt``.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import MutableMapping

VARIABLE = "MALLOC_ARENA_MAX"
ARENAS = 2
_M_ARENA_MAX = -8
"""``mallopt``'s parameter number for the arena cap (glibc's malloc.h)."""


def limit_in(environ: MutableMapping[str, str]) -> None:
    """Set the arena cap in ``environ`` (the environment of processes still to start) unless it is set there."""
    environ.setdefault(VARIABLE, str(ARENAS))


def limit_malloc_arenas() -> bool:
    """Cap the arenas of this process and of every process it starts from now on (``os.environ``), unless the user
    has chosen a value. Returns whether this process's allocator took the cap (False off glibc, or when the user's
    value applies)."""
    if VARIABLE in os.environ:
        return False
    limit_in(os.environ)
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):  # not glibc (macOS, musl without mallopt)
        return False
    return bool(mallopt(_M_ARENA_MAX, ARENAS))
