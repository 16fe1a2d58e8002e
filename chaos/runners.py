"""The two ways a chaos run runs the ingest job: ``MiniClusterJob`` (``python -m jobs.ingest_job`` in its own process
group, as users run it locally) and ``ClusterJob`` (a standalone cluster from ``stack.cluster``, for TaskManager and
Python worker kills and stop-with-savepoint / resume), and what they read from Flink's REST API and ``/proc``.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chaos.errors import ChaosError
from kafka_pinecone_flink.jobs.checkpoints import find_checkpoints
from kafka_pinecone_flink.stack.cluster import ClusterError
from kafka_pinecone_flink.stack.paths import ROOT, free_port

API_KEY = "chaos-local-key"
"""The local server is started without a key check; the job insists on having one."""
START_TIMEOUT_S = 240.0
RECOVERY_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 30.0
POLL_S = 0.5
SAVEPOINT_BATCH_SIZES = (25, 250)
"""``--sink.batch-size`` of the job resumed after each ``savepoint`` fault, in turn (the first job uses the
default, 100)."""
SAVEPOINT_ATTEMPTS = 3
RESTART_DETECT_S = 60.0
"""How long a ``py-kill`` waits for Flink to report the failure (a restart) before it notes that none came."""
WORKER_MODULE = "pyflink.fn_execution.beam.beam_boot"
"""The module a TaskManager's Python worker runs (``pyflink-udf-runner.sh``: ``python -m <it>``, in process mode)."""
PROC = Path("/proc")


def _rest_json(url: str) -> Any:
    import httpx

    return httpx.get(url, timeout=5, trust_env=False).json()


def flink_restarts(rest_url: str, job_id: str) -> int:
    """How often Flink restarted the job by itself: its ``numRestarts`` metric, or the number of failures in its
    exception history where the metric is not reported; 0 if neither can be read."""
    counts = [0]
    with contextlib.suppress(Exception):
        values = _rest_json(f"{rest_url}/jobs/{job_id}/metrics?get=numRestarts")
        counts.append(int(float(values[0]["value"])))
    with contextlib.suppress(Exception):
        counts.append(len(_rest_json(f"{rest_url}/jobs/{job_id}/exceptions")["exceptionHistory"]["entries"]))
    return max(counts)


def running_job(rest_url: str) -> str | None:
    """The id of the job whose every task runs, or None."""
    with contextlib.suppress(Exception):
        for job in _rest_json(f"{rest_url}/jobs")["jobs"]:
            if job["status"] == "RUNNING":
                detail = _rest_json(f"{rest_url}/jobs/{job['id']}")
                if detail["vertices"] and all(v["status"] == "RUNNING" for v in detail["vertices"]):
                    return str(job["id"])
    return None


def latest_checkpoint(checkpoints: Path) -> Path | None:
    """The newest completed checkpoint (``chk-N`` with ``_metadata``) under ``checkpoints/<job id>/``: the one
    ``kpf run --resume-from-latest`` takes (``jobs.checkpoints``)."""
    found = find_checkpoints(checkpoints)
    return found[0].path if found and found[0].complete else None


def python_worker_pids(parent: int, proc: Path = PROC) -> list[int]:
    """The pids of the Python workers descending from process ``parent`` (a TaskManager JVM), sorted: processes
    whose command line runs ``python -m pyflink.fn_execution.beam.beam_boot`` (not the shell script that starts
    them). The process tree is read from ``proc`` (``<pid>/stat`` for the parent, ``<pid>/cmdline``)."""
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found = []
    pending = list(children.get(parent, []))
    seen = set(pending)
    while pending:
        pid = pending.pop()
        try:
            argv = (proc / str(pid) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if WORKER_MODULE.encode() in argv:
            found.append(pid)
        for child in children.get(pid, []):
            if child not in seen:
                seen.add(child)
                pending.append(child)
    return sorted(found)


class MiniClusterJob:
    """The ingest job as users run it locally: ``python -m jobs.ingest_job`` in its own process group."""

    def __init__(self, run_dir: Path, base_args: list[str], log: Callable[[str], None]) -> None:
        self.run_dir = run_dir
        self.base_args = base_args
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.rest_url = ""
        self.job_id: str | None = None
        self.starts = 0
        self.flink_restarts = 0

    @property
    def checkpoints(self) -> Path:
        return self.run_dir / "flink" / "checkpoints"

    def start(self, restore: Path | None = None) -> float:
        began = time.monotonic()
        self.starts += 1
        port = free_port()
        self.rest_url = f"http://127.0.0.1:{port}"
        args = [*self.base_args, f"--flink.rest-port={port}", f"--flink.run-dir={self.run_dir / 'flink'}"]
        if restore is not None:
            args.append(f"--flink.conf=execution.state-recovery.path={restore.resolve().as_uri()}")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PINECONE_API_KEY": API_KEY}
        log_path = self.run_dir / f"job-{self.starts}.log"
        with open(log_path, "wb") as out:
            # A session of its own: kill -9 must take the JVM and the Python workers with it, as a crash would.
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kafka_pinecone_flink.jobs.ingest_job", *args],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = began + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ChaosError(f"the job exited with {self.process.returncode}:\n{tail(log_path)}")
            self.job_id = running_job(self.rest_url)
            if self.job_id is not None:
                return time.monotonic() - began
            time.sleep(POLL_S)
        raise ChaosError(f"the job was not running after {START_TIMEOUT_S:.0f}s:\n{tail(log_path)}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _note_restarts(self) -> None:
        if self.job_id is not None and self.alive():
            self.flink_restarts += flink_restarts(self.rest_url, self.job_id)

    def kill(self) -> None:
        """kill -9 of the job's whole process group (client, JVM, Python workers)."""
        self._note_restarts()
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> None:
        self._note_restarts()
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
        with contextlib.suppress(ProcessLookupError):  # workers left behind by a clean client exit
            os.killpg(self.process.pid, signal.SIGKILL)


class ClusterJob:
    """The ingest job on a standalone cluster (``stack.cluster.FlinkCluster``), for TaskManager and Python worker
    kills and stop-with-savepoint / resume. ``job_id`` is the job running now (a resume submits a new one)."""

    def __init__(self, run_dir: Path, base_args: list[str], checkpoint_interval_ms: int) -> None:
        from kafka_pinecone_flink.stack.cluster import FlinkCluster

        self.cluster = FlinkCluster(
            run_dir / "cluster",
            rest_port=free_port(),
            rpc_port=free_port(),
            conf={"execution.checkpointing.interval": f"{checkpoint_interval_ms}ms"},
        )
        self.base_args = base_args
        self.job_id: str | None = None
        self.job_ids: list[str] = []
        self.flink_restarts = 0
        """Restarts Flink made by itself, over every job this run submitted (final once ``stop`` returned)."""
        self.resubmits = 0
        """Submissions from a savepoint (``savepoint_and_resume``)."""
        self._restarts_of_stopped_jobs = 0
        self._stopped = False

    @property
    def rest_url(self) -> str:
        return self.cluster.rest_url

    def start(self) -> float:
        began = time.monotonic()
        self.cluster.start()
        self.job_id = self.cluster.submit(self.base_args)
        self.job_ids.append(self.job_id)
        self.cluster.wait_until_running(self.job_id)
        return time.monotonic() - began

    def restarts(self) -> int:
        """Flink's restarts of every job so far (the running one read from the REST API now)."""
        current = flink_restarts(self.rest_url, self.job_id) if self.job_id is not None else 0
        return self._restarts_of_stopped_jobs + current

    def kill_taskmanager(self) -> str:
        pid = self.cluster.kill_taskmanager()
        self.cluster.start_taskmanager()
        return f"TaskManager pid {pid} killed, a new one started"

    def kill_python_worker(self, rng: random.Random) -> tuple[str, bool]:
        """kill -9 of one of the TaskManager's Python worker processes, picked with ``rng``; returns what was done
        and whether Flink restarted the job (its restart count grew within ``RESTART_DETECT_S``), once every task
        runs again."""
        taskmanager = self.cluster.taskmanager_pid()
        if taskmanager is None:
            raise ChaosError("py-kill: no TaskManager runs")
        deadline = time.monotonic() + RESTART_DETECT_S
        while not (workers := python_worker_pids(taskmanager)):  # a task being (re)deployed starts its worker
            if time.monotonic() > deadline:
                raise ChaosError(f"py-kill: TaskManager {taskmanager} has no Python worker ({WORKER_MODULE})")
            time.sleep(POLL_S)
        before = self.restarts()
        pid = rng.choice(workers)
        os.kill(pid, signal.SIGKILL)
        detail = f"Python worker pid {pid} killed ({len(workers)} under TaskManager {taskmanager})"
        deadline = time.monotonic() + RESTART_DETECT_S
        while self.restarts() <= before:
            if time.monotonic() > deadline:
                return f"{detail}; Flink reported no restart within {RESTART_DETECT_S:.0f}s", False
            time.sleep(POLL_S)
        if self.job_id is not None:
            self.cluster.wait_until_running(self.job_id, RECOVERY_TIMEOUT_S)
        return detail, True

    def savepoint_and_resume(self) -> str:
        """Stop the job with a savepoint, then submit it again from that savepoint with the next of
        ``SAVEPOINT_BATCH_SIZES`` as ``--sink.batch-size``; the new job is tracked from then on."""
        if self.job_id is None:
            raise ChaosError("savepoint: no job runs")
        old = self.job_id
        location = self._stop_with_savepoint(old)
        # A finished job keeps its exception history (its restarts) in the JobManager's archive.
        self._restarts_of_stopped_jobs += flink_restarts(self.rest_url, old)
        size = SAVEPOINT_BATCH_SIZES[self.resubmits % len(SAVEPOINT_BATCH_SIZES)]
        self.job_id = None
        new = self.cluster.resume(location, [*self.base_args, f"--sink.batch-size={size}"])
        self.job_id = new
        self.job_ids.append(new)
        self.resubmits += 1
        self.cluster.wait_until_running(new)
        name = location.rstrip("/").rsplit("/", 1)[-1]
        return f"job {old[:8]} stopped with savepoint {name}; resumed as {new[:8]} with --sink.batch-size={size}"

    def _stop_with_savepoint(self, job_id: str) -> str:
        """``stop_with_savepoint``, tried again (once every task runs) if it fails while the job still runs, as it
        may when a checkpoint or a restart is under way."""
        for attempt in range(1, SAVEPOINT_ATTEMPTS + 1):
            try:
                return self.cluster.stop_with_savepoint(job_id)
            except ClusterError:
                if attempt == SAVEPOINT_ATTEMPTS or self.cluster.job_status(job_id) != "RUNNING":
                    raise
            self.cluster.wait_until_running(job_id)
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Cancel the job and stop the cluster (once; the restarts are read before)."""
        if self._stopped:
            return
        self._stopped = True
        self.flink_restarts = self.restarts()
        if self.job_id is not None:
            with contextlib.suppress(Exception):
                self.cluster.cancel(self.job_id)
        self.cluster.stop()


def tail(path: Path, lines: int = 40) -> str:
    with contextlib.suppress(OSError):
        return "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:])
    return "(no output)"
