"""The cap on glibc's malloc arenas (stack.memory) in the processes the project starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafka_pinecone_flink.stack import memory

pytestmark = pytest.mark.unit


def test_the_cap_goes_into_an_environment_that_has_none_and_a_users_value_is_kept() -> None:
    env: dict[str, str] = {}
    memory.limit_in(env)
    assert env == {"MALLOC_ARENA_MAX": "2"}
    chosen = {"MALLOC_ARENA_MAX": "8"}
    memory.limit_in(chosen)
    assert chosen == {"MALLOC_ARENA_MAX": "8"}


def test_the_cluster_daemons_and_their_python_workers_inherit_the_cap(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from kafka_pinecone_flink.stack.cluster import FlinkCluster

    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    cluster = FlinkCluster(tmp_path, rest_port=18081, rpc_port=16123)
    assert cluster.daemon_environment()["MALLOC_ARENA_MAX"] == "2"
    monkeypatch.setenv("MALLOC_ARENA_MAX", "6")
    assert cluster.daemon_environment()["MALLOC_ARENA_MAX"] == "6"
