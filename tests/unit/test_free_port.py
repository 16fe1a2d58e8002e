"""``free_port`` hands out ports that no other process can be given by the kernel before the service binds them."""

from __future__ import annotations

import socket

import pytest

from kafka_pinecone_flink.stack import paths
from kafka_pinecone_flink.stack.paths import ephemeral_port_range, free_port

pytestmark = pytest.mark.unit


def test_ports_lie_outside_the_kernels_ephemeral_range_and_are_free() -> None:
    low, high = ephemeral_port_range()
    for _ in range(50):
        port = free_port()
        assert not low <= port <= high, f"{port} is in the ephemeral range {low}-{high}"
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))  # free: binding it works


def test_one_process_never_gets_the_same_port_twice() -> None:
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)


def test_a_port_something_listens_on_is_skipped(monkeypatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            spare = probe.getsockname()[1]
        draws = iter([taken, spare])
        monkeypatch.setattr(paths.random, "choice", lambda _candidates: next(draws))
        monkeypatch.setattr(paths, "_handed_out", set())
        assert free_port() == spare


def test_ephemeral_range_is_read_from_the_kernel(tmp_path, monkeypatch) -> None:
    range_file = tmp_path / "ip_local_port_range"
    range_file.write_text("40000\t50000\n")
    monkeypatch.setattr(paths, "EPHEMERAL_RANGE_FILE", range_file)
    assert ephemeral_port_range() == (40000, 50000)
    monkeypatch.setattr(paths, "EPHEMERAL_RANGE_FILE", tmp_path / "missing")
    assert ephemeral_port_range() == (32768, 60999)
