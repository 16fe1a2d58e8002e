"""Pytest fixtures for a real Kafka broker: one broker per test session, unique topics per test.

Register with ``pytest_plugins = ["stack.pytest_plugin"]`` in the root conftest.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator

import pytest

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
