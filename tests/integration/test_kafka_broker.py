"""The local Kafka broker from the command line: start, create a topic, status, stop."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafka_pinecone_flink.stack import kafka
from kafka_pinecone_flink.stack.kafka_client import consume, produce
from kafka_pinecone_flink.stack.paths import free_port

pytestmark = pytest.mark.integration


def test_the_broker_starts_serves_a_topic_and_stops_from_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port, controller = free_port(), free_port()
    base = ["--dir", str(tmp_path), "--port", str(port), "--controller-port", str(controller)]
    try:
        assert kafka.main([*base, "start"]) == 0
        assert f"Kafka broker ready at 127.0.0.1:{port}" in capsys.readouterr().out
        assert kafka.main([*base, "start"]) == 0, "a second start of a running broker is not an error"
        assert kafka.main([*base, "create-topic", "cli-topic", "--partitions", "3"]) == 0
        assert kafka.main([*base, "status"]) == 0
        produce(f"127.0.0.1:{port}", "cli-topic", [(b"k", b"v")])
        assert [m.value for m in consume(f"127.0.0.1:{port}", "cli-topic", expected=1)] == [b"v"]
    finally:
        assert kafka.main([*base, "stop"]) == 0
    assert kafka.main([*base, "status"]) == 1
    assert not (tmp_path / "broker.pid").exists()


def test_a_restarted_broker_keeps_its_data(tmp_path: Path) -> None:
    broker = kafka.KafkaBroker(tmp_path, port=free_port(), controller_port=free_port())
    try:
        broker.start()
        broker.create_topics(["durable"])
        produce(broker.bootstrap_servers, "durable", [(b"k", b"before-restart")])
        broker.kill()
        broker.start()
        assert [m.value for m in consume(broker.bootstrap_servers, "durable", expected=1)] == [b"before-restart"]
    finally:
        broker.stop()
