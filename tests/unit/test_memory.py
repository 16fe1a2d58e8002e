"""The cap on glibc's malloc arenas (stack.memory) in the processes the project starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kafka_pinecone_flink.stack import memory


def test_the_cap_goes_into_an_environment_that_has_none_and_a_users_value_is_kept() -> None:
    env: dict[str, str] = {}
    memory.limit_in(env)
    assert env == {"MALLOC_ARENA_MAX": "2"}
    chosen = {"MALLOC_ARENA_MAX": "8"}
    memory.limit_in(chosen)
    assert chosen == {"MALLOC_ARENA_MAX": "8"}


def _limit_in_a_fresh_interpreter(env: dict[str, str]) -> dict[str, object]:
    code = (
        "import json, os, subprocess, sys\n"
        "from kafka_pinecone_flink.stack.memory import limit_malloc_arenas\n"
        "took = limit_malloc_arenas()\n"
        "child = subprocess.run([sys.executable, '-c', 'import os; print(os.environ.get(\"MALLOC_ARENA_MAX\"))'],"
        " capture_output=True, text=True, check=True).stdout.strip()\n"
        "print(json.dumps({'took': took, 'child': child}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_driver_takes_the_cap_itself_and_hands_it_to_what_it_starts() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    assert _limit_in_a_fresh_interpreter(env) == {"took": True, "child": "2"}


def test_the_driver_leaves_a_users_cap_alone() -> None:
    env = dict(os.environ, MALLOC_ARENA_MAX="4")
    assert _limit_in_a_fresh_interpreter(env) == {"took": False, "child": "4"}


def test_the_cluster_daemons_and_their_python_workers_inherit_the_cap(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from kafka_pinecone_flink.stack.cluster import FlinkCluster

    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    cluster = FlinkCluster(tmp_path, rest_port=18081, rpc_port=16123)
    assert cluster.daemon_environment()["MALLOC_ARENA_MAX"] == "2"
    monkeypatch.setenv("MALLOC_ARENA_MAX", "6")
    assert cluster.daemon_environment()["MALLOC_ARENA_MAX"] == "6"
