"""The faults a chaos run injects (see ``chaos.run`` for what each does), where they fire, and how each is applied."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from chaos.errors import ChaosError
from chaos.runners import ClusterJob, MiniClusterJob, latest_checkpoint
from kafka_pinecone_flink.stack.kafka import KafkaBroker

FAULTS = ("throttle", "burst5xx", "server-kill", "broker-restart", "job-kill", "tm-kill", "py-kill", "savepoint")
MINI_CLUSTER_ONLY = frozenset({"job-kill"})
CLUSTER_ONLY = frozenset({"tm-kill", "py-kill", "savepoint"})
RECOVERY_MODES = ("checkpoint", "committed")
FAULT_WINDOW_S = 5.0
THROTTLE_RPS = 2
BURST_ERROR_RATE = 0.5
SERVER_DOWN_S = 2.0
FAULT_JITTER = 0.5
"""Fault k fires at a random point within half a segment either side of k/(n+1) of the records (seeded)."""


def parse_faults(text: str, cluster: bool) -> tuple[str, ...]:
    """``"burst5xx,job-kill*2"`` -> the faults in order; raises ``ValueError`` naming an unknown or misplaced one."""
    faults: list[str] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, times = item.partition("*")
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r}; expected some of {', '.join(FAULTS)}")
        if cluster and name in MINI_CLUSTER_ONLY:
            raise ValueError(f"fault {name!r} is for the mini-cluster; with --cluster use tm-kill or py-kill")
        if not cluster and name in CLUSTER_ONLY:
            raise ValueError(f"fault {name!r} needs --cluster")
        if times and not (times.isdigit() and int(times) >= 1):
            raise ValueError(f"fault count in {item!r} must be a positive integer")
        faults += [name] * (int(times) if times else 1)
    return tuple(faults)


def fault_positions(total: int, count: int, rng: random.Random) -> list[int]:
    """Where ``count`` faults fire among ``total`` records: fault k (1..count) at k/(count+1) of them, moved by a
    random amount within ``FAULT_JITTER`` of a segment either side; nondecreasing, within 1..total."""
    segment = total / (count + 1)
    positions: list[int] = []
    for number in range(1, count + 1):
        at = round(number * segment + rng.uniform(-FAULT_JITTER, FAULT_JITTER) * segment)
        positions.append(min(total, max(1, at, positions[-1] if positions else 1)))
    return positions


def apply(
    fault: str,
    broker: KafkaBroker,
    server: Any,
    job: MiniClusterJob | ClusterJob,
    *,
    recovery: str,
    rng: random.Random,
    log: Callable[[str], None],
    notes: list[str],
    occurrence: int,
) -> str:
    """Inject ``fault`` (the ``occurrence``-th of its name) and return once it is lifted (the component is back);
    returns what was done. ``recovery``: where a killed mini-cluster job restarts from (``RECOVERY_MODES``); what the
    report should note goes to ``notes``."""
    detail = ""
    if fault == "throttle":
        server.set_faults(rate_limits={"upsert": THROTTLE_RPS})
        time.sleep(FAULT_WINDOW_S)
        server.reset_faults()
        detail = f"upserts beyond {THROTTLE_RPS}/s per namespace answered 429 for {FAULT_WINDOW_S:.0f}s"
    elif fault == "burst5xx":
        server.set_faults(error_rate=BURST_ERROR_RATE, error_status=503, error_kinds=["upsert", "delete"])
        time.sleep(FAULT_WINDOW_S)
        server.reset_faults()
        detail = f"{BURST_ERROR_RATE:.0%} of upserts and deletes answered 503 for {FAULT_WINDOW_S:.0f}s"
    elif fault == "server-kill":
        server.kill()
        time.sleep(SERVER_DOWN_S)
        server.restart()
        detail = f"server killed, restarted after {SERVER_DOWN_S:.0f}s"
    elif fault == "broker-restart":
        broker.kill()
        broker.start()
        detail = "broker killed and restarted"
    elif fault == "job-kill" and isinstance(job, MiniClusterJob):
        job.kill()
        restore = None
        if recovery == "checkpoint":
            restore = latest_checkpoint(job.checkpoints)
            if restore is None:
                notes.append("job-kill: no completed checkpoint to restore; restarted from committed offsets")
        log(f"job killed; restarting from {restore or 'the committed offsets'}")
        job.start(restore)
        detail = f"restarted from {restore.name if restore else 'the committed offsets'}"
    elif fault == "tm-kill" and isinstance(job, ClusterJob):
        detail = job.kill_taskmanager()
    elif fault == "py-kill" and isinstance(job, ClusterJob):
        detail, restarted = job.kill_python_worker(rng)
        if not restarted:
            notes.append(f"py-kill #{occurrence}: {detail}")
    elif fault == "savepoint" and isinstance(job, ClusterJob):
        detail = job.savepoint_and_resume()
    else:
        raise ChaosError(f"fault {fault!r} is not available in this mode")
    return detail
