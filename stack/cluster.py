"""A standalone Flink cluster on this machine, started from the pip package (``start-cluster.sh`` done by hand).

A JobManager and a TaskManager run as separate JVMs, started with the package's own ``jobmanager.sh`` and
``taskmanager.sh``, configured from ``flink-conf/`` rendered by :func:`stack.flink.render_conf_dir` into
``<workdir>/flink-conf`` (with this cluster's ports, slots and Python interpreter), logging to
``<workdir>/flink-logs`` and writing pid files to ``<workdir>/pids``. Jobs are submitted the way users submit
them, with ``flink run``; savepoints, status and metrics go through the REST API.

Guarantees:

* ``start`` returns only once the REST API reports a registered TaskManager with free slots (polled, never a
  blind sleep); on failure it stops whatever it started and raises ``ClusterError`` with the log tails.
* Every process the cluster starts (both JVMs and the Python workers the TaskManager spawns) carries the
  environment variable ``KPF_FLINK_CLUSTER=<workdir>``; ``stop`` ends exactly those processes (SIGTERM, then
  SIGKILL after ``STOP_TIMEOUT_S``) and nothing else.
* ``kill_taskmanager`` SIGKILLs the TaskManager JVM whose pid its pid file names, after checking that the pid is
  that JVM (its command line and marker), so a recycled pid is never signalled.
* The daemons run in ``workdir``, so the Python workers import the job archive shipped with the job (``-pyfs``),
  never the sources of the directory the cluster was started from.

Command line::

    python -m stack.cluster start [--dir .run/cluster] [--rest-port 8081] [--rpc-port 6123] [--slots 2]
    python -m stack.cluster status | stop
    python -m stack.cluster conf --target DIR [--run-dir DIR] [--set KEY=VALUE ...]   (render only: containers)
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka_pinecone_flink.stack import memory
from kafka_pinecone_flink.stack.flink import render_conf_dir
from kafka_pinecone_flink.stack.paths import ROOT, RUN_DIR, MissingPrerequisiteError, connector_jar, free_port
from kafka_pinecone_flink.stack.processes import alive, send_signal, terminate, wait_gone

DEFAULT_REST_PORT = 8081
DEFAULT_RPC_PORT = 6123
DEFAULT_SLOTS = 2
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
SUBMIT_TIMEOUT_S = 300.0
"""``flink run`` starts a client JVM and the Python driver, which checks the index and builds the graph."""
SAVEPOINT_TIMEOUT_S = 180.0
"""A stop-with-savepoint waits for the sink to drain its batches (the savepoint is a checkpoint)."""
POLL_INTERVAL_S = 0.25
METRICS_PER_REQUEST = 40


def metric_operator(operator: str) -> str:
    """How an operator's name (as the Web UI shows it, e.g. ``Decode results``) appears in the ids of its metrics in
    the REST API: ``0.Decode_results.records_in``, the subtask, then the name with its spaces as underscores."""
    return operator.replace(" ", "_")


def select_metric_ids(
    ids: Iterable[str], match: Callable[[str], bool], operators: Iterable[str] | None = None
) -> list[str]:
    """The metric ids of a vertex (``<subtask>.<operator>.<name>``, or ``<subtask>.<name>`` for the task's own)
    whose name, the last dotted part, passes ``match``; with ``operators``, only those of these operators. A vertex is
    a chain of operators, and which operators it chains depends on the job's shape (at parallelism 1 the whole ingest
    job is one vertex), so a figure that one operator owns is read by its operator, never by its vertex."""
    keep = None if operators is None else {metric_operator(operator) for operator in operators}
    selected = []
    for metric_id in ids:
        parts = metric_id.split(".")
        if not match(parts[-1]):
            continue
        if keep is not None and (len(parts) < 3 or parts[1] not in keep):
            continue
        selected.append(metric_id)
    return selected


REST_TIMEOUT_S = 5.0
LOG_TAIL_LINES = 40

IDENT = "kpf"
"""``FLINK_IDENT_STRING``: names the pid and log files (the scripts use $USER otherwise, which may be unset)."""
MARKER_ENV = "KPF_FLINK_CLUSTER"
"""Set to the cluster's working directory in the environment of every process the cluster starts."""
DAEMON_WITHHELD_VARIABLES = ("PINECONE_API_KEY",)
"""Never in the daemons' environment (see ``FlinkCluster.daemon_environment``)."""
NAMESPACE = "kafka_pinecone_flink"
"""The one import name of the project's packages (see ``kafka_pinecone_flink/__init__.py``)."""
JOB_PACKAGES = ("jobs", "udfs", "sinks", "stack")
"""The project's packages the ingest job imports (folders of the repository, ``NAMESPACE.<folder>`` when imported);
shipped in a zip with ``-pyfs`` to the driver and the workers."""
JOB_MODULE = "kafka_pinecone_flink.jobs.ingest_job"
ARCHIVE_NAME = "kpf-job.zip"
ARCHIVE_DATE = (2000, 1, 1, 0, 0, 0)
TERMINAL_STATES = frozenset({"FINISHED", "CANCELED", "FAILED", "SUSPENDED"})
_JOB_ID = re.compile(r"JobID ([0-9a-f]{32})")
_JOBMANAGER_CLASS = "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint"
_TASKMANAGER_CLASS = "org.apache.flink.runtime.taskexecutor.TaskManagerRunner"


class ClusterError(RuntimeError):
    """The cluster or a job on it did not do what was asked; the message says what and where the logs are."""


def flink_home() -> Path:
    """The Flink distribution inside the pip package ``apache-flink`` (bin/, lib/, opt/)."""
    import pyflink

    home = Path(pyflink.__file__).resolve().parent
    if not (home / "bin" / "flink").exists():
        raise MissingPrerequisiteError(f"the apache-flink package at {home} has no bin/flink: reinstall it")
    return home


def build_job_archive(target: Path) -> Path:
    """Write the project's packages (``JOB_PACKAGES``, sources only) to the zip ``target`` and return it.

    ``-pyfs`` puts a directory itself, not its parent, on the PYTHONPATH (of the driver and of every Python worker),
    so passing ``jobs/`` would make ``config`` importable, not ``kafka_pinecone_flink.jobs.config``; a zip with
    ``kafka_pinecone_flink/__init__.py`` and the packages under it (the shape ``pip install .`` installs) makes
    ``import kafka_pinecone_flink.jobs`` work everywhere without installing the project, and puts no generic name
    on the workers' path. The archive is byte-for-byte reproducible (sorted entries, fixed timestamps), so the same
    sources always ship the same blob.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    files = [(f"{NAMESPACE}/__init__.py", ROOT / NAMESPACE / "__init__.py")]
    for package in JOB_PACKAGES:
        for path in sorted((ROOT / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
                files.append((f"{NAMESPACE}/{path.relative_to(ROOT).as_posix()}", path))
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, path in files:
            entry = zipfile.ZipInfo(name, date_time=ARCHIVE_DATE)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, path.read_bytes())
    partial.replace(target)  # never leave a half-written archive where a submission may read it
    return target


def flink_run_command(
    job_args: Sequence[str],
    *,
    archive: Path,
    savepoint: str | None = None,
    allow_non_restored_state: bool = False,
    detached: bool = True,
    flink: str | None = None,
    parallelism: int | None = None,
) -> list[str]:
    """The ``flink run`` command line that submits the ingest job with ``job_args`` (its own options).

    ``-pym jobs.ingest_job -pyfs ARCHIVE``: the driver runs the module from the archive (``build_job_archive``)
    that the Python workers import from too, so driver and workers always run the same sources (``-py
    jobs/ingest_job.py`` would also put ``jobs/`` itself on the driver's path). ``-j`` adds the Kafka connector
    jar to the job's classpath; ``-s`` restores from a savepoint, ``-n`` (``allow_non_restored_state``) even one
    holding state that no operator of the job takes; ``-p`` (``parallelism``) is the job's parallelism unless its
    own ``--flink.parallelism`` is given. ``--`` ends Flink's own options, so the job's ``--kafka.topics=...`` flags
    reach the module untouched.
    """
    command = [flink or str(flink_home() / "bin" / "flink"), "run"]
    if detached:
        command.append("-d")
    if savepoint is not None:
        command += ["-s", savepoint]
    if allow_non_restored_state:
        command.append("-n")
    if parallelism is not None:
        command += ["-p", str(parallelism)]
    command += ["-pym", JOB_MODULE, "-pyfs", str(archive), "-j", str(connector_jar().resolve()), "--", *job_args]
    return command


_REST_CLIENTS = threading.local()


def _rest_client() -> Any:
    """This thread's HTTP client for REST calls (kept: a new ``httpx`` client builds an SSL context with the CA bundle,
    several milliseconds of CPU, and pollers call the REST API several times a second)."""
    import httpx

    client = getattr(_REST_CLIENTS, "client", None)
    if client is None:
        client = httpx.Client(timeout=REST_TIMEOUT_S, trust_env=False)
        _REST_CLIENTS.client = client
    return client


class FlinkRestApi:
    """The JobManager's REST API (the Web UI's), for any cluster: jobs, their states, savepoints and metrics."""

    @property
    def rest_url(self) -> str:
        raise NotImplementedError

    def overview(self) -> dict[str, Any]:
        """``GET /overview``: TaskManagers, slots and job counts."""
        return dict(self._get("/overview"))

    def taskmanager_ids(self) -> set[str]:
        """Ids of the TaskManagers the JobManager lists (``GET /taskmanagers``)."""
        return {str(tm["id"]) for tm in self._get("/taskmanagers")["taskmanagers"]}

    def job_status(self, job_id: str) -> str:
        """The job's state as the JobManager reports it (``RUNNING``, ``FINISHED``, ``FAILED``, ...)."""
        return str(self._get(f"/jobs/{job_id}")["state"])

    def wait_for_state(self, job_id: str, states: Iterable[str], timeout_s: float = SUBMIT_TIMEOUT_S) -> str:
        """Poll until the job is in one of ``states`` and return it; ``ClusterError`` if it ends in another."""
        wanted = set(states)
        deadline = time.monotonic() + timeout_s
        state = "UNKNOWN"
        while time.monotonic() < deadline:
            state = self.job_status(job_id)
            if state in wanted:
                return state
            if state in TERMINAL_STATES:
                raise ClusterError(f"job {job_id} ended {state}: {self.job_exception(job_id)}")
            time.sleep(POLL_INTERVAL_S)
        raise ClusterError(f"job {job_id} still {state} after {timeout_s:.0f}s (wanted {sorted(wanted)})")

    def wait_until_running(self, job_id: str, timeout_s: float = SUBMIT_TIMEOUT_S) -> None:
        """Poll until the job and every one of its tasks runs (the job's RUNNING state precedes its tasks')."""
        deadline = time.monotonic() + timeout_s
        self.wait_for_state(job_id, {"RUNNING"}, timeout_s)
        while time.monotonic() < deadline:
            vertices = self._get(f"/jobs/{job_id}")["vertices"]
            if vertices and all(vertex["status"] == "RUNNING" for vertex in vertices):
                return
            time.sleep(POLL_INTERVAL_S)
        raise ClusterError(f"job {job_id}: not every task RUNNING after {timeout_s:.0f}s")

    def job_exception(self, job_id: str) -> str:
        """The root exception of a failed job (first lines), or an empty string."""
        with contextlib.suppress(ClusterError, KeyError):
            history = self._get(f"/jobs/{job_id}/exceptions")
            root = history.get("root-exception") or ""
            return "\n".join(str(root).splitlines()[:20])
        return ""

    def stop_with_savepoint(
        self, job_id: str, target: Path | str | None = None, timeout_s: float = SAVEPOINT_TIMEOUT_S
    ) -> str:
        """Stop the job with a savepoint (``flink stop``: sources stop, every record before the barrier is written,
        the savepoint completes, then the job finishes) and return the savepoint's location once the job is
        FINISHED. Without ``target`` the cluster's ``execution.checkpointing.savepoint-dir`` is used."""
        body: dict[str, Any] = {"drain": False}
        if target is not None:
            body["targetDirectory"] = str(target)
        trigger = self._post(f"/jobs/{job_id}/stop", body)["request-id"]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            answer = self._get(f"/jobs/{job_id}/savepoints/{trigger}")
            if answer["status"]["id"] == "COMPLETED":
                operation = answer.get("operation", {})
                if "location" in operation:
                    # The savepoint completes a moment before the job finishes: return once it has.
                    self.wait_for_state(job_id, {"FINISHED"}, max(deadline - time.monotonic(), POLL_INTERVAL_S))
                    return str(operation["location"])
                raise ClusterError(f"stop-with-savepoint of {job_id} failed: {_cause(operation)}")
            time.sleep(POLL_INTERVAL_S)
        raise ClusterError(f"stop-with-savepoint of {job_id} did not complete in {timeout_s:.0f}s")

    def cancel(self, job_id: str) -> None:
        """Cancel the job (its last retained checkpoint stays, see execution.checkpointing.externalized-...)."""
        self._request("PATCH", f"/jobs/{job_id}", params={"mode": "cancel"})

    def checkpoint_config(self, job_id: str) -> dict[str, Any]:
        """``GET /jobs/<id>/checkpoints/config``: the job's checkpointing as it runs (``interval`` in ms, ...)."""
        return dict(self._get(f"/jobs/{job_id}/checkpoints/config"))

    def completed_checkpoints(self, job_id: str) -> int:
        """How many checkpoints of the job have completed (``GET /jobs/<id>/checkpoints``), restarts included."""
        return int(self._get(f"/jobs/{job_id}/checkpoints")["counts"]["completed"])

    def rescale(self, job_id: str, parallelism: int) -> None:
        """Let the adaptive scheduler run every vertex of the running job at up to ``parallelism``
        (``PUT /jobs/<id>/resource-requirements``): it rescales the job in place, from its latest checkpoint, once
        the slots are there. Other schedulers refuse the request (``ClusterError``)."""
        path = f"/jobs/{job_id}/resource-requirements"
        requirements = self._get(path)
        for vertex in requirements.values():
            vertex["parallelism"]["upperBound"] = parallelism
        self._request("PUT", path, requirements)

    def vertices(self, job_id: str) -> list[dict[str, Any]]:
        """The job's vertices (chains of operators): ``id``, ``name``, ``status``, ``parallelism``, ..."""
        return list(self._get(f"/jobs/{job_id}")["vertices"])

    def metric_values(
        self, job_id: str, vertex_id: str, match: Callable[[str], bool], operators: Iterable[str] | None = None
    ) -> dict[str, float]:
        """The numeric values of the vertex's metrics, by id (``0.Pinecone_sink_results.upserted``), whose name (the
        id's last dotted part) passes ``match``, of its chained ``operators`` only when given (names as the Web UI
        shows them; ``select_metric_ids``)."""
        base = f"/jobs/{job_id}/vertices/{vertex_id}/metrics"
        ids = select_metric_ids((m["id"] for m in self._get(base)), match, operators)
        values: dict[str, float] = {}
        # The REST API takes the ids in the query string: ask in chunks to stay far from URL length limits.
        for start in range(0, len(ids), METRICS_PER_REQUEST):
            chunk = ",".join(ids[start : start + METRICS_PER_REQUEST])
            for metric in self._get(base, params={"get": chunk}):
                with contextlib.suppress(TypeError, ValueError):
                    values[metric["id"]] = float(metric["value"])
        return values

    def metrics(
        self, job_id: str, operators: Sequence[str], names: Iterable[str], aggregate: str = "sum"
    ) -> dict[str, float]:
        """The metrics ``names`` of the job's ``operators`` (names as the Web UI shows them, e.g. ``Pinecone sink
        results``), whichever vertices they run in, over all their subtasks: summed (counters), or with
        ``aggregate="max"`` the largest (gauges such as ``lag_ms``). A name not reported (yet) is absent: Python
        counters appear once they were first incremented."""
        wanted = set(names)
        vertices = [v for v in self.vertices(job_id) if any(operator in v["name"] for operator in operators)]
        if not vertices:
            raise ClusterError(f"job {job_id} has no vertex with an operator named like {list(operators)!r}")
        found: dict[str, list[float]] = {}  # by name: one value per subtask and operator
        for vertex in vertices:
            for metric_id, value in self.metric_values(
                job_id, str(vertex["id"]), wanted.__contains__, operators
            ).items():
                found.setdefault(metric_id.rsplit(".", 1)[-1], []).append(value)
        combine = max if aggregate == "max" else sum
        return {name: float(combine(values)) for name, values in found.items()}

    def jobs(self) -> list[dict[str, Any]]:
        """``GET /jobs/overview``: every job the JobManager knows, newest first."""
        return sorted(self._get("/jobs/overview")["jobs"], key=lambda job: -int(job.get("start-time", 0)))

    def _request(self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None) -> Any:
        import httpx

        try:
            response = _rest_client().request(method, self.rest_url + path, json=body, params=params)
        except httpx.HTTPError as exc:
            raise ClusterError(f"Flink REST API at {self.rest_url} not reachable: {exc}") from None
        if response.status_code >= 400:
            raise ClusterError(f"{method} {path} answered {response.status_code}: {response.text[:2000]}")
        return response.json() if response.content else None

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return self._request("GET", path, params=params)

    def _post(self, path: str, body: Any) -> Any:
        return self._request("POST", path, body=body)


@dataclass
class RestClient(FlinkRestApi):
    """The REST API of a cluster this process did not start (``kpf status --rest-url``)."""

    base_url: str

    @property
    def rest_url(self) -> str:
        return self.base_url.rstrip("/")


@dataclass
class FlinkCluster(FlinkRestApi):
    """One standalone session cluster: a JobManager and (at most) one TaskManager, all state under ``workdir``."""

    workdir: Path
    rest_port: int = DEFAULT_REST_PORT
    slots: int = DEFAULT_SLOTS
    rpc_port: int = DEFAULT_RPC_PORT
    python: str = sys.executable
    """The interpreter of the Python driver and workers (it must have the project's requirements)."""
    conf: Mapping[str, str] = field(default_factory=dict)
    """Further flat Flink settings, applied last."""

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir).resolve()

    # -- where things are ----------------------------------------------------------------------------------

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def conf_dir(self) -> Path:
        return self.workdir / "flink-conf"

    @property
    def log_dir(self) -> Path:
        return self.workdir / "flink-logs"

    @property
    def pid_dir(self) -> Path:
        return self.workdir / "pids"

    @property
    def savepoint_dir(self) -> Path:
        return self.workdir / "savepoints"

    def settings(self) -> dict[str, str]:
        """This cluster's overrides of ``flink-conf/config.yaml``."""
        return {
            "rest.port": str(self.rest_port),
            "jobmanager.rpc.port": str(self.rpc_port),
            "taskmanager.numberOfTaskSlots": str(self.slots),
            "python.executable": self.python,
            "python.client.executable": self.python,
            "env.pid.dir": str(self.pid_dir),
            **self.conf,
        }

    def environment(self) -> dict[str, str]:
        """The environment of the cluster's scripts and of ``flink run`` (the daemons inherit it)."""
        env = dict(os.environ)
        env.update(
            {
                "FLINK_CONF_DIR": str(self.conf_dir),
                "FLINK_LOG_DIR": str(self.log_dir),
                "FLINK_PID_DIR": str(self.pid_dir),
                "FLINK_IDENT_STRING": IDENT,
                MARKER_ENV: str(self.workdir),
            }
        )
        # The daemons, and the Python workers the TaskManager starts, inherit it (kafka_pinecone_flink.stack.memory).
        memory.limit_in(env)
        return env

    def daemon_environment(self) -> dict[str, str]:
        """The environment of the JobManager and TaskManager daemons: ``environment()`` without the Pinecone API
        key. The job's driver (``flink run``) reads the key and ships it inside the job; a TaskManager's environment
        is the environment of every Python worker it starts, which Beam logs whole at INFO when a worker stops."""
        env = self.environment()
        for name in DAEMON_WITHHELD_VARIABLES:
            env.pop(name, None)
        return env

    # -- lifecycle -----------------------------------------------------------------------------------------

    def start(self, timeout_s: float = START_TIMEOUT_S) -> float:
        """Render the configuration, start the JobManager and a TaskManager, and return the seconds it took once
        the REST API reports the TaskManager registered. A cluster already running from ``workdir`` is reused."""
        began = time.monotonic()
        if self.is_running():
            return 0.0
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        render_conf_dir(self.conf_dir, self.settings(), run_dir=self.workdir)
        try:
            self._script("jobmanager.sh", "start")
            self._script("taskmanager.sh", "start")
            self.wait_for_taskmanager(set(), timeout_s - (time.monotonic() - began))
        except BaseException:
            self.stop()
            raise
        return time.monotonic() - began

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """End every process of this cluster (running jobs are cancelled with it): SIGTERM, then SIGKILL."""
        terminate(self.processes(), timeout_s)
        for pid_file in self.pid_dir.glob("*.pid"):
            pid_file.unlink(missing_ok=True)

    def kill_taskmanager(self) -> int:
        """SIGKILL the TaskManager JVM, as a crash would; returns its pid. Its Python workers are left to die with
        their connection (``stop`` ends any that linger). Raises ``ClusterError`` if no TaskManager runs."""
        pid = self.taskmanager_pid()
        if pid is None:
            raise ClusterError(f"no TaskManager of the cluster in {self.workdir} is running")
        send_signal(pid, signal.SIGKILL)
        wait_gone([pid], STOP_TIMEOUT_S)
        return pid

    def taskmanager_pid(self) -> int | None:
        """The pid of this cluster's running TaskManager JVM (checked like ``kill_taskmanager`` does), or None."""
        return self._daemon_pid("taskexecutor", _TASKMANAGER_CLASS)

    def jobmanager_pid(self) -> int | None:
        """The pid of this cluster's running JobManager JVM, or None."""
        return self._daemon_pid("standalonesession", _JOBMANAGER_CLASS)

    def start_taskmanager(self, timeout_s: float = START_TIMEOUT_S) -> float:
        """Start another TaskManager and return the seconds until the JobManager has registered it (a new
        TaskManager id: a killed one stays listed until its heartbeat times out, so counting would be wrong)."""
        began = time.monotonic()
        known = self.taskmanager_ids()
        self._script("taskmanager.sh", "start")
        self.wait_for_taskmanager(known, timeout_s)
        return time.monotonic() - began

    def is_running(self) -> bool:
        """Whether this cluster's JobManager runs and answers REST requests."""
        if self.jobmanager_pid() is None:
            return False
        try:
            self.overview()
        except ClusterError:
            return False
        return True

    def wait_for_taskmanager(self, known: set[str], timeout_s: float) -> None:
        """Poll ``/taskmanagers`` until a TaskManager whose id is not in ``known`` is registered with free slots;
        ``ClusterError`` with the log tails if either JVM exits or the time runs out."""
        deadline = time.monotonic() + timeout_s
        last: Any = None
        while time.monotonic() < deadline:
            for name in ("standalonesession", "taskexecutor"):
                if not any(alive(pid) for pid in self._recorded_pids(name)):
                    raise ClusterError(f"the {name} process of {self.workdir} exited:\n{self.log_tail()}")
            with contextlib.suppress(ClusterError):
                last = self._get("/taskmanagers")["taskmanagers"]
                if any(str(tm["id"]) not in known and tm.get("freeSlots", 0) > 0 for tm in last):
                    return
            time.sleep(POLL_INTERVAL_S)
        raise ClusterError(f"no new TaskManager registered after {timeout_s:.0f}s ({last}):\n{self.log_tail()}")

    # -- jobs ----------------------------------------------------------------------------------------------

    def submit(
        self,
        job_args: Sequence[str],
        savepoint: str | None = None,
        timeout_s: float = SUBMIT_TIMEOUT_S,
        parallelism: int | None = None,
    ) -> str:
        """Submit the ingest job with ``flink run -d`` (restored from ``savepoint`` if given, with ``-p parallelism``
        if given) and return its job id once the JobManager has it. Raises ``ClusterError`` with the client's output
        if the submission fails."""
        archive = build_job_archive(self.workdir / ARCHIVE_NAME)
        command = flink_run_command(job_args, archive=archive, savepoint=savepoint, parallelism=parallelism)
        try:
            result = subprocess.run(
                command,
                cwd=ROOT,
                env=self.environment(),
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(f"flink run did not return in {timeout_s:.0f}s:\n{_text(exc.stdout)}") from None
        output = result.stdout + result.stderr
        found = _JOB_ID.search(output)
        if result.returncode != 0 or found is None:
            raise ClusterError(f"flink run failed (exit {result.returncode}):\n{output[-6000:]}")
        return found.group(1)

    def resume(self, savepoint: str, job_args: Sequence[str], parallelism: int | None = None) -> str:
        """Submit the job again from ``savepoint`` (its options and parallelism may differ: only its operators' uids
        must match)."""
        return self.submit(job_args, savepoint=savepoint, parallelism=parallelism)

    # -- processes and logs --------------------------------------------------------------------------------

    def processes(self) -> list[int]:
        """Pids of every live process of this cluster (those with ``KPF_FLINK_CLUSTER=<workdir>``)."""
        marker = f"{MARKER_ENV}={self.workdir}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if marker in environ.split(b"\0") and alive(int(entry.name)):
                found.append(int(entry.name))
        return found

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of the JobManager's and TaskManagers' logs and stdout files."""
        parts = []
        for path in sorted(self.log_dir.glob(f"flink-{IDENT}-*")):
            if path.suffix in (".log", ".out") and "client" not in path.name:
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path}\n" + "\n".join(text))
        return "\n".join(parts) or f"(no logs in {self.log_dir})"

    def _script(self, name: str, *args: str) -> None:
        # The daemons (and the Python workers, which run ``python -m ...`` and so put their working directory first
        # on sys.path) start in the cluster's working directory, not in the caller's: started from the repository
        # root, the workers would import the packages of the working tree as it is at each (re)start instead of the
        # job archive shipped with ``-pyfs``, and a task restarted after the sources changed would run other code.
        result = subprocess.run(
            ["bash", str(flink_home() / "bin" / name), *args],
            cwd=self.workdir,
            env=self.daemon_environment(),
            capture_output=True,
            text=True,
            timeout=STOP_TIMEOUT_S * 2,
            check=False,
        )
        if result.returncode != 0:
            raise ClusterError(f"{name} {' '.join(args)} failed ({result.returncode}): {result.stdout}{result.stderr}")

    def _recorded_pids(self, daemon: str) -> list[int]:
        """The pids ``flink-daemon.sh`` wrote for ``daemon``, oldest first (it appends one per start)."""
        try:
            lines = (self.pid_dir / f"flink-{IDENT}-{daemon}.pid").read_text().split()
        except FileNotFoundError:
            return []
        return [int(line) for line in lines if line.isdigit()]

    def _daemon_pid(self, daemon: str, java_class: str) -> int | None:
        """The newest pid in the daemon's pid file that really is this cluster's ``java_class`` JVM. (Right after
        the script returns, the pid may still be the shell forked to exec the JVM: callers that need the JVM
        itself are called on a started cluster.)"""
        for pid in reversed(self._recorded_pids(daemon)):
            if self._is_ours(pid, java_class):
                return pid
        return None

    def _is_ours(self, pid: int, java_class: str) -> bool:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            return False
        marker = f"{MARKER_ENV}={self.workdir}".encode()
        return java_class.encode() in cmdline and marker in environ and alive(pid)


def _cause(operation: Mapping[str, Any]) -> str:
    failure = operation.get("failure-cause", {})
    trace = str(failure.get("stack-trace", failure))
    return "\n".join(trace.splitlines()[:15])


def _text(data: str | bytes | None) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


def _setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _cluster_from_args(args: argparse.Namespace) -> FlinkCluster:
    return FlinkCluster(Path(args.dir), rest_port=args.rest_port, slots=args.slots, rpc_port=args.rpc_port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kafka_pinecone_flink.stack.cluster",
        description="A standalone Flink cluster (JobManager + TaskManager) from the apache-flink pip package.",
    )
    parser.add_argument("--dir", default=str(RUN_DIR / "cluster"), help="working directory (default: %(default)s)")
    parser.add_argument("--rest-port", type=int, default=DEFAULT_REST_PORT, help="Web UI / REST port (%(default)s)")
    parser.add_argument("--rpc-port", type=int, default=DEFAULT_RPC_PORT, help="JobManager RPC port (%(default)s)")
    parser.add_argument("--slots", type=int, default=DEFAULT_SLOTS, help="TaskManager slots (%(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("start", help="start the cluster and wait until a TaskManager is registered")
    sub.add_parser("stop", help="stop every process of the cluster")
    sub.add_parser("status", help="exit 0 if the cluster runs, 1 otherwise")
    conf = sub.add_parser(
        "conf",
        help="only render flink-conf/ for another Flink installation (e.g. a container) into --target",
        description="Render flink-conf/ with this interpreter as python.executable, state directories under "
        "--run-dir and the --set settings applied last (what the Docker images run before Flink starts).",
    )
    conf.add_argument("--target", required=True, help="the Flink configuration directory to write")
    conf.add_argument("--run-dir", default=str(RUN_DIR), help="checkpoints, savepoints, logs (default: %(default)s)")
    conf.add_argument("--set", type=_setting, action="append", default=[], metavar="KEY=VALUE", help="repeatable")
    args = parser.parse_args(argv)
    if args.command == "conf":
        settings = render_conf_dir(Path(args.target), dict(args.set), run_dir=Path(args.run_dir))
        print(f"Flink configuration written to {args.target} ({len(settings)} settings)")
        return 0
    if args.rest_port == 0:
        args.rest_port = free_port()
    cluster = _cluster_from_args(args)
    try:
        if args.command == "start":
            seconds = cluster.start()
            print(f"Flink cluster ready: Web UI {cluster.rest_url} ({seconds:.1f}s; logs: {cluster.log_dir})")
        elif args.command == "stop":
            cluster.stop()
            print("Flink cluster stopped")
        else:
            if not cluster.is_running():
                print(f"Flink cluster of {cluster.workdir}: not running")
                return 1
            overview = cluster.overview()
            print(
                f"Flink cluster at {cluster.rest_url}: {overview.get('taskmanagers', 0)} TaskManager(s), "
                f"{overview.get('slots-available', 0)}/{overview.get('slots-total', 0)} slots free, "
                f"{overview.get('jobs-running', 0)} job(s) running"
            )
    except (MissingPrerequisiteError, ClusterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
