"""``python -m pinecone_local start|status|stop`` manage a detached server."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pinecone_local", *args], capture_output=True, text=True, cwd=ROOT, timeout=60
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
