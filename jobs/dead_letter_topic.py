"""Checks of the dead-letter topic before the job is submitted, and the sizing of the dead-letter producer.

With ``errors.tolerance=all`` the first bad record is written to the dead-letter topic. A topic that does not exist
(brokers with ``auto.create.topics.enable=false``, the default of this project's local broker) made the Kafka
producer fail with "Topic ... not present in metadata" after its ``max.block.ms``, and the job restarted forever;
so the driver asks the brokers first, with the job's own Kafka properties, and stops naming the topic.

The same call reads the topic's ``max.message.bytes`` (the broker's ``message.max.bytes`` unless the topic
overrides it): a dead letter is its source record plus the ``kpf.*`` headers, so a source record close to that
limit would not fit. The dead-letter producer's ``max.request.size`` is raised above it (the producer would refuse
such a record first), and records that still would not fit are truncated (``sinks.dead_letter.to_kafka``).

The check uses librdkafka (``confluent_kafka``), whose property names differ from the Java client's for some
security settings: the ones both understand are passed, a PLAIN or SCRAM ``sasl.jaas.config`` becomes
``sasl.username``/``sasl.password``. When the brokers cannot be asked (unreachable, not authorised to describe
topics, a Java-only security setting), the job goes on with a warning and the default limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kafka_pinecone_flink.jobs.kafka_io import librdkafka_config
from kafka_pinecone_flink.sinks.dead_letter import (
    KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
    RECORD_MARGIN_BYTES,
    dead_letter_max_bytes,
)

CHECK_TIMEOUT_S = 15.0


class DeadLetterTopicError(RuntimeError):
    """The dead-letter topic cannot receive dead letters; the message names it and says what to do."""


@dataclass(frozen=True)
class DeadLetterTarget:
    """What the driver learnt about the dead-letter topic."""

    max_message_bytes: int
    """The topic's ``max.message.bytes`` (Kafka's default when it could not be read)."""
    warning: str | None = None
    """Why the topic could not be checked, if it could not."""

    def producer_properties(self, properties: Mapping[str, str]) -> dict[str, str]:
        """The dead-letter producer's properties: ``properties`` plus a ``max.request.size`` above the topic's
        limit, unless ``properties`` sets one."""
        merged = dict(properties)
        merged.setdefault("max.request.size", str(self.max_message_bytes + 2 * RECORD_MARGIN_BYTES))
        return merged

    def record_max_bytes(self, properties: Mapping[str, str]) -> int:
        """The largest dead letter (``sinks.dead_letter.record_size``) the topic and the producer accept."""
        limit = self.max_message_bytes
        explicit = properties.get("max.request.size")
        if explicit is not None and explicit.strip().isdigit():
            limit = min(limit, int(explicit))
        return dead_letter_max_bytes(limit)


def create_command(topic: str, bootstrap_servers: str) -> str:
    return (
        f"kafka-topics.sh --bootstrap-server {bootstrap_servers} --create --topic {topic} "
        "(or, for the local broker of this project: .venv/bin/python -m kafka_pinecone_flink.stack.kafka create-topic "
        f"{topic}); if the source topics may hold records near the brokers' message.max.bytes, also give the "
        "dead-letter topic a larger max.message.bytes (see README.md, Dead letters)"
    )


def check_dead_letter_topic(
    bootstrap_servers: str,
    topic: str,
    properties: Mapping[str, str],
    timeout_s: float = CHECK_TIMEOUT_S,
) -> DeadLetterTarget:
    """Ask the brokers whether ``topic`` exists and what its ``max.message.bytes`` is.

    Raises ``DeadLetterTopicError`` when the brokers answer that the topic does not exist; returns a target with
    a ``warning`` when they cannot be asked."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, ConfigResource

    default = KAFKA_DEFAULT_MAX_MESSAGE_BYTES
    try:
        # log_level 0: librdkafka's own connection errors would print to stderr; the outcome is reported below.
        admin = AdminClient({**librdkafka_config(bootstrap_servers, properties), "log_level": 0})
        metadata = admin.list_topics(topic, timeout=timeout_s)
    except KafkaException as exc:
        return DeadLetterTarget(default, f"could not check dead-letter topic {topic!r}: {_describe(exc)}")
    found = metadata.topics.get(topic)
    if found is None or (found.error is not None and found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
        raise DeadLetterTopicError(
            f"dead-letter topic {topic!r} does not exist on {bootstrap_servers} (errors.tolerance=all writes every "
            f"bad record there, and a missing topic would fail and restart the job at the first one). Create it: "
            f"{create_command(topic, bootstrap_servers)}; or name another with --errors.dead-letter-topic"
        )
    if found.error is not None:
        return DeadLetterTarget(default, f"could not check dead-letter topic {topic!r}: {found.error.str()}")
    try:
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
        configs = admin.describe_configs([resource], request_timeout=timeout_s)[resource].result(timeout=timeout_s)
        entry = configs.get("max.message.bytes")
        if entry is None or entry.value is None:
            return DeadLetterTarget(default)
        return DeadLetterTarget(int(entry.value))
    except (KafkaException, ValueError) as exc:
        return DeadLetterTarget(default, f"could not read max.message.bytes of {topic!r}: {_describe(exc)}")


def _describe(exc: BaseException) -> str:
    error: Any = exc.args[0] if exc.args else None
    return str(error.str()) if error is not None and hasattr(error, "str") else str(exc)
