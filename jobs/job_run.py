"""Running the built job to its end from the driver: the Web UI address, and what a failure prints.

Locally (a mini-cluster in this process) the job is submitted with ``execute_async``: the mini-cluster is up once
that returns, so the address its REST endpoint bound can be printed even with ``--flink.rest-port=0`` (any free
port), then the driver waits for the job's end. Under ``flink run`` the job is submitted with ``execute`` as before
(``flink run -d`` must return at once).

A failure prints its whole cause chain, outermost first, with every secret scrubbed: Flink hands the driver a py4j
wrapper ("An error occurred while calling o107.execute") around several Java exceptions, and the one that matters
(a ``RecordTooLargeException`` of the dead-letter producer, the Python error of a record under
``errors.tolerance=none``) is the innermost.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kafka_pinecone_flink.jobs.run_summary import summary_of
from kafka_pinecone_flink.sinks.dead_letter import MIN_SECRET_CHARS, scrub

MAX_CAUSES = 16
PYTHON_TRACEBACK = "Traceback (most recent call last)"


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


def bound_rest_address(job_client: Any) -> str | None:
    """The REST address (``http://host:port``) of the mini-cluster running ``job_client``'s job, None if unknown.

    PyFlink does not expose the mini-cluster; its Java job client (``MiniClusterJobClient``) holds it, and the
    mini-cluster knows the address its REST endpoint bound (``MiniCluster.getRestAddress``)."""
    try:
        j_client = job_client._j_job_client
        field = j_client.getClass().getDeclaredField("miniCluster")
        field.setAccessible(True)
        uri = field.get(j_client).getRestAddress().get()
        return f"{uri.getScheme()}://{uri.getHost()}:{uri.getPort()}"
    except Exception:  # noqa: BLE001 - another Flink version or client: the address is a convenience
        return None


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
            result = wait(job_client) if wait is not None else job_client.get_job_execution_result().result()
    except Exception as exc:  # noqa: BLE001 - the Java stack trace is in the log; the cause is what the user needs
        for line in failure_report(exc, secrets):
            print(line, file=sys.stderr)
        sys.stderr.flush()
        return 1
    summary = summary_of(result, time.monotonic() - started)
    if summary is not None:
        print("\n".join(summary.lines()), flush=True)
    return 0
