"""Running the built job to its end from the driver: the Web UI address, and what a failure prints.

Locally (a mini-cluster in this process) the job is submitted with ``execute_async``: the mini-cluster is up once
that returns, so the address its REST endpoint bound can be printed even with ``--flink.rest-port=0`` (any free
port), then the driver waits for the job's end. Under ``flink run`` the job is submitted with ``execute`` as before
(``flink run -d`` must return at once). While a local job runs, ``TaskManagerWatch`` starts a new TaskManager when
the mini-cluster has lost its own (a fatal error closes it, and the mini-cluster starts none).

A failure prints its whole cause chain, outermost first, with every secret scrubbed: Flink hands the driver a py4j
wrapper ("An error occurred while calling o107.execute") around several Java exceptions, and the one that matters
(a ``RecordTooLargeException`` of the dead-letter producer, the Python error of a record under
``errors.tolerance=none``) is the innermost.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.request import ProxyHandler, build_opener

from kafka_pinecone_flink.jobs.run_summary import summary_of
from kafka_pinecone_flink.sinks.dead_letter import MIN_SECRET_CHARS, scrub

MAX_CAUSES = 16
PYTHON_TRACEBACK = "Traceback (most recent call last)"
_NO_PROXY = build_opener(ProxyHandler({}))
"""The mini-cluster's REST endpoint is on this machine: never through a proxy from the environment."""
LOST_TASKMANAGER_GRACE_S = 10.0
"""How long a local run may be without a TaskManager before the watch starts a new one."""
MAX_TASKMANAGER_REPLACEMENTS = 5
"""TaskManagers the watch starts in one run; one more loss ends the run (``LOST_TASKMANAGERS_EXIT``)."""
LOST_TASKMANAGERS_EXIT = 75
"""The exit code of a local run that lost more TaskManagers than the watch replaces (EX_TEMPFAIL: run it again,
``--resume-from-latest``)."""


def withhold_secrets_from_workers(secrets: Iterable[str]) -> list[str]:
    """Remove from this process's environment every variable whose value holds one of ``secrets``; return their
    names.

    The driver has read the API key already (it travels inside the job's pickled sink configuration); the
    environment is what the JVM gateway this process starts inherits, and Beam logs the whole environment of a
    Python worker ("Closing environment ... payload") at INFO on every restart, cancel and end of the job.
    """
    wanted = [secret for secret in secrets if secret and len(secret) >= MIN_SECRET_CHARS]
    removed = [name for name, value in os.environ.items() if any(secret in value for secret in wanted)]
    for name in removed:
        del os.environ[name]
    return removed


def mini_cluster(job_client: Any) -> Any:
    """The Java ``MiniCluster`` running ``job_client``'s job, None if unknown.

    PyFlink does not expose the mini-cluster; its Java job client (``MiniClusterJobClient``) holds it."""
    try:
        j_client = job_client._j_job_client
        field = j_client.getClass().getDeclaredField("miniCluster")
        field.setAccessible(True)
        return field.get(j_client)
    except Exception:  # noqa: BLE001 - another Flink version or client
        return None


def bound_rest_address(job_client: Any) -> str | None:
    """The REST address (``http://host:port``) of the mini-cluster running ``job_client``'s job, None if unknown:
    the mini-cluster knows the address its REST endpoint bound (``MiniCluster.getRestAddress``)."""
    try:
        uri = mini_cluster(job_client).getRestAddress().get()
        return f"{uri.getScheme()}://{uri.getHost()}:{uri.getPort()}"
    except Exception:  # noqa: BLE001 - another Flink version or client: the address is a convenience
        return None


def registered_taskmanagers(rest_address: str) -> int | None:
    """How many TaskManagers the cluster at ``rest_address`` has registered (REST ``/taskmanagers``); None when
    the REST endpoint does not answer."""
    try:
        with _NO_PROXY.open(f"{rest_address.rstrip('/')}/taskmanagers", timeout=5) as response:
            return len(json.load(response)["taskmanagers"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class TaskManagerWatch:
    """Starts a new TaskManager in a local run's mini-cluster when it has had none for ``grace_s``.

    A TaskManager of the mini-cluster ends on a fatal error, and the mini-cluster does not start another: the
    job then waits for a slot forever (its restart strategy cannot place it). One such error is PyFlink's
    ``IllegalStateException: Reference count must not be negative``, raised when the job fails while its Python
    stages close (README, "Running on a Flink cluster"). On a cluster the supervisor of the TaskManager restarts
    it; here the watch does: it reads the registered TaskManagers from the REST endpoint every ``poll_s`` and,
    once one has been registered (or ``startup_s`` has passed) and none has been for ``grace_s``, starts one
    (``MiniCluster.startTaskManager``). The job then restarts from its last checkpoint, as after any other
    failure. After ``max_replacements`` it starts no more: the next loss calls ``give_up`` (the driver exits
    with ``LOST_TASKMANAGERS_EXIT``)."""

    def __init__(
        self,
        count: Callable[[], int | None],
        start_taskmanager: Callable[[], None],
        give_up: Callable[[str], None],
        log: Callable[[str], None],
        grace_s: float = LOST_TASKMANAGER_GRACE_S,
        poll_s: float = 2.0,
        max_replacements: int = MAX_TASKMANAGER_REPLACEMENTS,
        startup_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._count = count
        self._start = start_taskmanager
        self._give_up = give_up
        self._log = log
        self.grace_s = grace_s
        self.poll_s = poll_s
        self.max_replacements = max_replacements
        self.startup_s = startup_s
        self._clock = clock
        self._began = clock()
        self.replacements = 0
        self._seen = False
        self._lost_since: float | None = None
        self._stop = threading.Event()

    def check(self) -> None:
        """One look at the TaskManagers (what each poll does)."""
        registered = self._count()
        if registered is None:
            return
        if registered > 0:
            self._seen, self._lost_since = True, None
            return
        now = self._clock()
        if not self._seen and now - self._began < self.startup_s:
            return  # still starting: its TaskManager has not registered yet
        self._seen = True
        if self._lost_since is None:
            self._lost_since = now
            return
        if now - self._lost_since < self.grace_s:
            return
        self._lost_since = None
        if self.replacements >= self.max_replacements:
            self._give_up(
                f"the local mini-cluster lost its TaskManager again, after {self.replacements} replacement(s): the "
                "log says why (`TaskManager #<n> failed`); run the job again with `kpf run --resume-from-latest` "
                "and the same options"
            )
            return
        self.replacements += 1
        self._log(
            f"warning: the local mini-cluster had no TaskManager for {self.grace_s:.0f}s (the log says why: "
            f"`TaskManager #<n> failed`); started a new one ({self.replacements} of at most "
            f"{self.max_replacements}), and the job restarts from its last checkpoint"
        )
        self._start()

    def start(self) -> TaskManagerWatch:
        def loop() -> None:
            while not self._stop.wait(self.poll_s):
                try:
                    self.check()
                except Exception as exc:  # noqa: BLE001 - a watch must never end the run it watches
                    self._log(f"warning: the TaskManager watch failed: {exc}")

        threading.Thread(target=loop, name="kpf-taskmanager-watch", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()


def watch_taskmanagers(job_client: Any, rest_address: str | None) -> TaskManagerWatch | None:
    """A started ``TaskManagerWatch`` for the mini-cluster of ``job_client``'s job, None when the mini-cluster or its
    REST address is unknown."""
    cluster = mini_cluster(job_client)
    if cluster is None or not rest_address:
        return None

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def give_up(reason: str) -> None:
        log(f"error: {reason}")
        os._exit(LOST_TASKMANAGERS_EXIT)

    return TaskManagerWatch(
        lambda: registered_taskmanagers(rest_address), cluster.startTaskManager, give_up, log
    ).start()


def cause_chain(exc: BaseException) -> list[tuple[str, str]]:
    """``(class name, message)`` of ``exc`` and of every cause under it, outermost first.

    A py4j error carries the Java exception (``java_exception``), walked with ``getCause()``; a Python exception
    is walked with ``__cause__``/``__context__``."""
    chain: list[tuple[str, str]] = []
    java = getattr(exc, "java_exception", None)
    if java is not None:
        seen: set[int] = set()
        while java is not None and len(chain) < MAX_CAUSES:
            identity = int(java.hashCode()) if hasattr(java, "hashCode") else id(java)
            if identity in seen:
                break
            seen.add(identity)
            chain.append((str(java.getClass().getName()), str(java.getMessage() or "")))
            java = java.getCause()
        return chain
    current: BaseException | None = exc
    while current is not None and len(chain) < MAX_CAUSES:
        chain.append((type(current).__name__, str(current)))
        current = current.__cause__ or current.__context__
    return chain


def _python_error(message: str) -> str | None:
    """The last line of the last Python traceback in ``message`` (the error a Python worker raised)."""
    if PYTHON_TRACEBACK not in message:
        return None
    tail = message[message.rindex(PYTHON_TRACEBACK) :].splitlines()
    for line in reversed(tail):
        if line and not line.startswith((" ", "\t")) and ":" in line:
            return line.strip()
    return None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def failure_report(exc: BaseException, secrets: Sequence[str] = ()) -> list[str]:
    """The lines to print for a failed job: the root cause first, then the chain that led to it."""
    chain = cause_chain(exc)
    python_errors = [error for _, message in chain if (error := _python_error(message))]
    root_class, root_message = chain[-1] if chain else (type(exc).__name__, str(exc))
    if python_errors:
        root = python_errors[-1]
    else:
        root = f"{root_class}: {_first_line(root_message)}" if _first_line(root_message) else root_class
    lines = [f"error: the job failed: {scrub(root, secrets)}"]
    if len(chain) > 1:
        lines.append("caused by (outermost first):")
        for name, message in chain:
            first = _first_line(message)
            if first.startswith(PYTHON_TRACEBACK):
                first = "(a Python traceback, its error above)"
            lines.append(f"  {name}: {scrub(first, secrets)}" if first else f"  {name}")
    return lines


def run_to_end(
    session: Any,
    job_name: str,
    secrets: Sequence[str],
    local: bool,
    wait: Callable[[Any], Any] | None = None,
) -> int:
    """Submit the job built in ``session`` and wait for its end; 0 if it finished, 1 if it failed. ``wait`` (given
    the job client of a local run) replaces the plain wait for the job's result and returns it: a resumed bounded
    run ends itself there (jobs/bounded.py). A job that finished prints its closing summary (jobs/run_summary.py)."""
    started = time.monotonic()
    try:
        if not local:
            result = session.env.execute(job_name)
        else:
            job_client = session.env.execute_async(job_name)
            address = session.web_ui or bound_rest_address(job_client)
            if address and not session.web_ui:
                print(f"Flink Web UI: {address}", flush=True)
            watch = watch_taskmanagers(job_client, address)
            try:
                result = wait(job_client) if wait is not None else job_client.get_job_execution_result().result()
            finally:
                if watch is not None:
                    watch.stop()
    except Exception as exc:  # noqa: BLE001 - the Java stack trace is in the log; the cause is what the user needs
        for line in failure_report(exc, secrets):
            print(line, file=sys.stderr)
        sys.stderr.flush()
        return 1
    summary = summary_of(result, time.monotonic() - started)
    if summary is not None:
        print("\n".join(summary.lines()), flush=True)
    return 0
