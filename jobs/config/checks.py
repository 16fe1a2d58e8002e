"""Checks of one option's value, each written once: a check returns what is expected when the value is wrong, None
when it is fine (``jobs.options.Option.check``); the option layer puts it in the one message format
(``--name: got VALUE; expected WHAT``). Where a stage config checks the same rule (an index name, a host, a
namespace or text template), the option uses the stage's own function (``sinks.config.index_name_problem``, ...), so
the two cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping

from kafka_pinecone_flink.jobs.flink_env import under_flink_run
from kafka_pinecone_flink.udfs.embed_model import DEFAULT_MODEL, ModelNotFoundError, resolve_model_path
from kafka_pinecone_flink.udfs.route_config import MAX_TOPIC_CHARS, namespace_problem

MAX_PORT = 65_535
RESERVED_KAFKA_PROPERTIES = {
    "bootstrap.servers": "set it with --kafka.bootstrap-servers",
    "group.id": "set it with --kafka.group-id",
    "auto.offset.reset": "set --kafka.starting-position",
    "enable.auto.commit": "Flink commits offsets on checkpoints",
    "key.deserializer": "the connector reads raw bytes",
    "value.deserializer": "the connector reads raw bytes",
    "key.serializer": "the connector writes raw bytes",
    "value.serializer": "the connector writes raw bytes",
}
RESERVED_FLINK_SETTINGS = {
    "rest.port": "set --flink.rest-port",
    "execution.checkpointing.interval": "set --flink.checkpoint-interval-ms",
    "parallelism.default": "set --flink.parallelism",
}
TOPIC_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
PROPERTY_KEY_CHARS = TOPIC_CHARS


def topic_problem(topic: str) -> str | None:
    if not 1 <= len(topic) <= MAX_TOPIC_CHARS or topic in (".", "..") or not set(topic) <= TOPIC_CHARS:
        return f"Kafka topic names of 1 to {MAX_TOPIC_CHARS} characters from a-z A-Z 0-9 . _ - (not '.' or '..')"
    return None


def check_topics(topics: tuple[str, ...]) -> str | None:
    return next((problem for topic in topics if (problem := topic_problem(topic))), None)


def check_bootstrap_servers(servers: str) -> str | None:
    for server in servers.split(","):
        host, colon, port = server.rpartition(":")
        if not colon or not host or any(c.isspace() for c in server) or not (port.isascii() and port.isdigit()):
            return "comma-separated host:port pairs, e.g. 127.0.0.1:9092,broker2:9092"
        if not 1 <= int(port) <= MAX_PORT:
            return f"ports from 1 to {MAX_PORT}"
    return None


def check_env_name(name: str) -> str | None:
    if name.isascii() and name.replace("_", "").isalnum() and not name[0].isdigit():
        return None
    return "an environment variable name (letters, digits and '_', not starting with a digit)"


def check_kafka_properties(properties: Mapping[str, str]) -> str | None:
    return _check_settings(properties, RESERVED_KAFKA_PROPERTIES, "Kafka client property names", "as keys", "property")


def check_flink_conf(settings: Mapping[str, str]) -> str | None:
    return _check_settings(settings, RESERVED_FLINK_SETTINGS, "Flink configuration keys", "", "setting")


def _check_settings(
    settings: Mapping[str, str], reserved: Mapping[str, str], names: str, as_keys: str, noun: str
) -> str | None:
    """Keys of ``PROPERTY_KEY_CHARS`` only, none of them ``reserved`` (an option of its own, or the job's to set)."""
    for key in settings:
        if not set(key) <= PROPERTY_KEY_CHARS:
            return " ".join(filter(None, [f"{names} (a-z A-Z 0-9 . _ -)", as_keys]))
        reason = reserved.get(key)
        if reason is not None:
            return f"no {key!r} {noun} ({reason})"
    return None


def check_namespace_map(mapping: Mapping[str, str]) -> str | None:
    for topic, namespace in mapping.items():
        problem = topic_problem(topic)
        if problem is not None:
            return f"topic names as keys: {problem}"
        problem = namespace_problem(namespace)
        if problem is not None:
            return f"valid Pinecone namespaces as values ({problem})"
    return None


def check_model(model: str) -> str | None:
    if model == DEFAULT_MODEL or under_flink_run():
        # Under `flink run` this process may be a client whose machine lacks the directory that the TaskManagers
        # have; the embed tasks check it when they open (the start-up checks print a warning).
        return None
    try:
        resolve_model_path(model)
    except ModelNotFoundError:
        return (
            f"{DEFAULT_MODEL!r} (the bundled all-MiniLM-L6-v2) or a local model directory holding modules.json or "
            "config.json; models are never downloaded"
        )
    return None


def drift_reference_problem(path: str) -> str | None:
    from kafka_pinecone_flink.sinks.embedding_health import ReferenceFileError, load_reference

    try:
        load_reference(path)
    except ReferenceFileError as exc:
        return f"a JSON file of reference centroids ({exc})"
    return None
