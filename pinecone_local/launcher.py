"""Start a pinecone_local server as a subprocess and control it (kill -9, stop, restart, faults).

Used by the test fixtures (``tests/fixtures/pinecone_local.py``), the demo, the benchmarks and the chaos harness:
``start_pinecone_local(...)`` returns once the server accepts connections; the returned ``LocalServer`` can
``kill()`` (SIGKILL), ``stop()`` and ``restart()`` it on the same port and data directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

import kafka_pinecone_flink

from .limits import DEFAULT_START_TIMEOUT_S, READY_POLL_INTERVAL_S

_ROOT = Path(kafka_pinecone_flink.__file__).resolve().parent.parent
"""The directory that holds ``kafka_pinecone_flink`` (the clone's root, or site-packages): the server's PYTHONPATH."""


@dataclass
class LocalServer:
    """A pinecone_local process: its URL, and controls to kill, stop, restart it and change its faults."""

    port: int
    process: subprocess.Popen[bytes]
    data_dir: Path | None
    api_key: str | None = field(default=None, repr=False)
    extra_args: tuple[str, ...] = ()
    log_path: Path | None = None

    @property
    def url(self) -> str:
        """Control-plane URL."""
        return f"http://127.0.0.1:{self.port}"

    def client(self, **kwargs: Any) -> Any:
        """A ``pinecone.Pinecone`` pointed at this server."""
        from pinecone import Pinecone

        return Pinecone(api_key=self.api_key or "local-test-key", host=self.url, **kwargs)

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        """Call the admin API and return the decoded JSON."""
        headers = {"Api-Key": self.api_key} if self.api_key else {}
        response = httpx.request(method, self.url + path, json=body, headers=headers, timeout=10)
        response.raise_for_status()
        return response.json()

    def set_faults(self, **changes: Any) -> Any:
        """``PUT /admin/faults`` with the given switches."""
        return self.admin("PUT", "/admin/faults", changes)

    def reset_faults(self) -> Any:
        """Turn every fault off."""
        return self.admin("POST", "/admin/faults/reset", {})

    def kill(self) -> None:
        """SIGKILL the process (no shutdown work at all) and wait for it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM (clean shutdown: compaction) and wait."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        """Start a new process on the same port and data directory (the old one must be gone)."""
        fresh = _spawn(self.data_dir, self.api_key, self.port, self.extra_args, self.log_path)
        self.process = fresh.process


def _spawn(
    data_dir: Path | None,
    api_key: str | None,
    port: int,
    extra_args: tuple[str, ...],
    log_path: Path | None,
) -> LocalServer:
    with tempfile.TemporaryDirectory(prefix="pinecone-local-") as tmp:
        port_file = Path(tmp) / "port"
        argv = [
            sys.executable,
            "-m",
            "kafka_pinecone_flink.pinecone_local",
            "serve",
            "--port",
            str(port),
            "--port-file",
            str(port_file),
        ]
        if data_dir is not None:
            argv += ["--data-dir", str(data_dir)]
        argv += list(extra_args)
        env = dict(os.environ)
        env.pop("PINECONE_LOCAL_API_KEY", None)
        if api_key:
            env["PINECONE_LOCAL_API_KEY"] = api_key
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
        log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        process = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + DEFAULT_START_TIMEOUT_S
        while not port_file.exists():
            if process.poll() is not None:
                raise RuntimeError(f"pinecone_local exited with {process.returncode} before it was ready")
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("pinecone_local did not become ready in time")
            time.sleep(READY_POLL_INTERVAL_S)
        bound = int(port_file.read_text())
    return LocalServer(bound, process, data_dir, api_key, extra_args, log_path)


def start_pinecone_local(
    data_dir: Path | None = None,
    api_key: str | None = None,
    port: int = 0,
    extra_args: tuple[str, ...] = (),
    log_path: Path | None = None,
) -> LocalServer:
    """Start a server process and return once it accepts connections. The caller stops it."""
    return _spawn(data_dir, api_key, port, extra_args, log_path)


def unique_index_name(prefix: str = "t") -> str:
    """A valid, unique index name."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
