"""Process helpers shared by the local stack's launchers (Kafka broker, Flink cluster)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable


def alive(pid: int) -> bool:
    """True while ``pid`` runs. A zombie is not alive: one that is our child is reaped here."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not our child (e.g. daemonized by a script): ask /proc
        try:
            with open(f"/proc/{pid}/stat") as stat:
                return stat.read().split(") ", 1)[1][0] != "Z"
        except (OSError, IndexError):
            return False
    return reaped == 0


def send_signal(pid: int, sig: signal.Signals) -> None:
    """Signal ``pid``; a process that is already gone is not an error."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_gone(pids: Iterable[int], timeout_s: float) -> list[int]:
    """Wait until the processes are gone; return those still alive at the deadline."""
    remaining = list(pids)
    deadline = time.monotonic() + timeout_s
    while remaining and time.monotonic() < deadline:
        remaining = [pid for pid in remaining if alive(pid)]
        if remaining:
            time.sleep(0.1)
    return [pid for pid in remaining if alive(pid)]


def terminate(pids: Iterable[int], timeout_s: float) -> None:
    """SIGTERM, then SIGKILL what is still alive after ``timeout_s``, then wait for it to go."""
    pids = list(pids)
    for pid in pids:
        send_signal(pid, signal.SIGTERM)
    for pid in wait_gone(pids, timeout_s):
        send_signal(pid, signal.SIGKILL)
    wait_gone(pids, timeout_s)
