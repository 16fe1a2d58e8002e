"""``python -m pinecone_local start|status|stop`` manage a detached server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kafka_pinecone_flink.stack.paths import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kafka_pinecone_flink.pinecone_local", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_start_waits_until_ready_and_stop_ends_the_process(tmp_path: Path) -> None:
    port, pid_file = free_port(), tmp_path / "server.pid"
    started = run("start", "--port", str(port), "--pid-file", str(pid_file), "--data-dir", str(tmp_path / "d"))
    try:
        assert started.returncode == 0, started.stderr
        assert run("status", "--port", str(port)).returncode == 0
        assert pid_file.exists()
        assert run("start", "--port", str(port), "--pid-file", str(pid_file)).returncode == 1
    finally:
        stopped = run("stop", "--pid-file", str(pid_file))
    assert stopped.returncode == 0
    assert not pid_file.exists()
    assert run("status", "--port", str(port)).returncode == 1
    assert (tmp_path / "d" / "snapshot.bin").exists()


def test_options_are_accepted_before_the_command_and_after_a_faults_action(tmp_path: Path) -> None:
    """``--port X start`` and ``faults show --port X`` name the same server as ``start --port X`` and
    ``faults --port X show`` (they failed with "invalid choice" and "unrecognized arguments")."""
    port, pid_file = free_port(), tmp_path / "server.pid"
    started = run("--port", str(port), "start", "--pid-file", str(pid_file))
    try:
        assert started.returncode == 0, started.stderr
        assert run("status", "--port", str(port)).returncode == 0
        shown = run("faults", "show", "--port", str(port))
        assert shown.returncode == 0, shown.stderr
        assert run("faults", "--port", str(port), "set", "--latency-ms", "7").returncode == 0
        assert '"latency_ms": 7' in run("faults", "show", "--port", str(port)).stdout.replace(".0", "")
        assert run("faults", "reset", "--port", str(port)).returncode == 0
        assert run("--port", str(port), "status").returncode == 0
    finally:
        assert run("stop", "--pid-file", str(pid_file)).returncode == 0
