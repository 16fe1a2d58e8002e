"""Fixtures of the end-to-end tests of the ingest job."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from kafka_pinecone_flink.pinecone_local.launcher import LocalServer
from kafka_pinecone_flink.stack.kafka import KafkaBroker
from tests.integration.ingest_harness import IngestHarness


@pytest.fixture
def ingest(
    kafka_broker: KafkaBroker,
    kafka_topic: Callable[..., str],
    pinecone_local_server: LocalServer,
    tmp_path: Path,
) -> IngestHarness:
    """Runs the ingest job against the session's broker and local Pinecone server; see ``IngestHarness.run``."""
    return IngestHarness(
        kafka_broker,
        pinecone_local_server.url,
        kafka_topic,
        tmp_path,
        pinecone_local_server.client(),
        pinecone_local_server.admin,
    )
