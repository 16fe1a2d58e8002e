"""The local gateway JVM (it runs the mini-cluster) gets Flink's client options from flink-conf/, its heap cap
included: without one it grew to a quarter of the machine's memory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
from pathlib import Path
from kafka_pinecone_flink.jobs.flink_env import create_session
from pyflink.java_gateway import get_gateway
create_session(run_dir=Path(sys.argv[1]))
print("MAX_HEAP", get_gateway().jvm.java.lang.Runtime.getRuntime().maxMemory())
"""


def _max_heap(tmp_path: Path, jvm_args: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYFLINK_", "FLINK_")) and k != "JVM_ARGS"}
    if jvm_args is not None:
        env["JVM_ARGS"] = jvm_args
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("MAX_HEAP ")]
    return int(line.split()[1])


def test_the_mini_clusters_jvm_heap_is_capped_by_the_client_options(tmp_path: Path) -> None:
    assert _max_heap(tmp_path, None) <= 512 * 2**20


def test_the_users_jvm_args_come_last_and_win(tmp_path: Path) -> None:
    assert _max_heap(tmp_path, "-Xmx700m") > 600 * 2**20
