"""Pytest fixtures for a real Kafka broker (one per test session, unique topics per test) and a standalone Flink
cluster (one per test module that asks for it).

Register with ``pytest_plugins = ["stack.pytest_plugin"]`` in the root conftest.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator

import pytest

from stack.cluster import FlinkCluster
from stack.kafka import KafkaBroker
from stack.paths import free_port


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A real single-node Kafka broker (KRaft) on free loopback ports, for the whole test session."""
    broker = KafkaBroker(tmp_path_factory.mktemp("kafka"), port=free_port(), controller_port=free_port())
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def kafka_topic(kafka_broker: KafkaBroker, request: pytest.FixtureRequest) -> Callable[..., str]:
    """Creates topics with names unique to the test: ``kafka_topic("in", partitions=2)``."""
    base = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:60].strip("-")

    def create(suffix: str = "t", partitions: int = 1) -> str:
        name = f"{base}-{suffix}-{uuid.uuid4().hex[:6]}"
        kafka_broker.create_topics([name], partitions=partitions)
        return name

    return create


@pytest.fixture(scope="module")
def flink_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlinkCluster]:
    """A standalone Flink cluster (a JobManager and a TaskManager JVM, 2 slots) on free loopback ports, for one
    test module; stopped afterwards with every process it started, whatever the tests did."""
    cluster = FlinkCluster(tmp_path_factory.mktemp("flink-cluster"), rest_port=free_port(), rpc_port=free_port())
    try:
        seconds = cluster.start()
        print(f"Flink cluster started in {seconds:.1f}s")  # shown with -s
        yield cluster
    finally:
        cluster.stop()
