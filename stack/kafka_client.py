"""Small synchronous Kafka helpers for tools, the demo and tests: produce records, read a topic back."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Message:
    """A consumed Kafka message, with everything a test may assert on."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp_ms: int


def produce(
    bootstrap_servers: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None] | tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]],
    partition: int | None = None,
) -> int:
    """Produce ``(key, value[, headers])`` records synchronously; returns how many were acknowledged."""
    from confluent_kafka import Producer

    # log_level 3: a broker that has just started answers "coordinator load in progress" once (a retried warning);
    # delivery errors still surface through the callback below.
    producer = Producer(
        {"bootstrap.servers": bootstrap_servers, "enable.idempotence": True, "linger.ms": 5, "log_level": 3}
    )
    errors: list[str] = []
    count = 0

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    for record in records:
        key, value = record[0], record[1]
        headers: Any = record[2] if len(record) > 2 else None
        kwargs: dict[str, Any] = {"partition": partition} if partition is not None else {}
        producer.produce(topic, key=key, value=value, headers=headers, on_delivery=delivered, **kwargs)
        count += 1
        if count % 10_000 == 0:
            producer.poll(0)
    remaining = producer.flush(60)
    if errors or remaining:
        raise RuntimeError(f"produce to {topic} failed: {remaining} not delivered, errors: {errors[:3]}")
    return count


def consume(bootstrap_servers: str, topic: str, expected: int | None = None, timeout_s: float = 60.0) -> list[Message]:
    """Read a topic from the beginning: until ``expected`` messages (or more) arrived, or, without ``expected``,
    until it has been idle for two seconds. Raises if ``expected`` is not reached within ``timeout_s``."""
    from confluent_kafka import Consumer, KafkaError

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"test-reader-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout_s
    idle_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            if expected is not None and len(messages) >= expected:
                break
            if expected is None and messages and time.monotonic() - idle_since > 2.0:
                break
            msg: Any = consumer.poll(0.5)
            if msg is None:
                continue
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(f"consume {topic}: {error}")
            idle_since = time.monotonic()
            messages.append(
                Message(
                    topic=msg.topic(),
                    partition=msg.partition(),
                    offset=msg.offset(),
                    key=msg.key(),
                    value=msg.value(),
                    headers=tuple(msg.headers() or ()),
                    timestamp_ms=msg.timestamp()[1],
                )
            )
    finally:
        consumer.close()
    if expected is not None and len(messages) < expected:
        raise AssertionError(f"{topic}: expected {expected} messages, got {len(messages)} in {timeout_s:.0f}s")
    return messages
