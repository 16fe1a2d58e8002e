"""The ingest job's configuration: its options declared once (``OPTIONS``), loaded and validated before any job graph
is built.

``load_job_config(argv, environ)`` reads the flags and the YAML file named by ``--config`` (see :mod:`jobs.options`
for the syntax and the precedence: defaults < file < flags), checks every option and every rule between options, and
builds each stage's own config (``KafkaSourceOptions``, ``PineconeSinkConfig``, ``EmbedConfig``, a probe
``RouteConfig``), whose validation is re-used: their errors are re-raised as ``JobConfigError`` naming the flag. The
Pinecone API key comes only from the environment variable named by ``pinecone.api-key-env``.

Guarantees: a ``JobConfig`` exists only if everything is valid; ``repr``/``str`` of it never show the API key, a
secret Kafka property (``is_secret_kafka_property``) or Flink setting (``is_secret_flink_setting``): they print as
``'***'``; nor a credential inside a URL of any value (``jobs.masking.mask_urls``: ``https://***@host/?token=***``).

``python -m jobs.config --markdown`` prints the README's options table; ``python -m jobs.config [options]`` checks a
configuration and prints it, secrets masked.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import kafka_pinecone_flink.sinks.config as sink_config
import kafka_pinecone_flink.udfs.embed as embed_stage
from kafka_pinecone_flink.jobs.flink_env import under_flink_run
from kafka_pinecone_flink.jobs.kafka_io import STARTING_POSITIONS, KafkaSourceOptions
from kafka_pinecone_flink.jobs.masking import (  # noqa: F401 - SECRET_PROPERTY_MARKERS is re-exported
    SECRET_PROPERTY_MARKERS,
    is_secret_flink_setting,
    is_secret_kafka_property,
    mask_urls,
    url_secrets,
)
from kafka_pinecone_flink.jobs.options import (
    JobConfigError,
    Kind,
    MaskedMapping,
    Option,
    Resolved,
    build_parser,
    markdown_table,
    resolve,
    suggestion,
)
from kafka_pinecone_flink.sinks.config import PineconeSinkConfig
from kafka_pinecone_flink.stack.paths import RUN_DIR
from kafka_pinecone_flink.udfs.dedup import MAX_STATE_TTL_MS
from kafka_pinecone_flink.udfs.embed import EmbedConfig
from kafka_pinecone_flink.udfs.embed_model import DEFAULT_MODEL, DEVICES, ModelNotFoundError, resolve_model_path
from kafka_pinecone_flink.udfs.route_config import (
    DEFAULT_ID_FORMAT,
    DEFAULT_ID_STRATEGY,
    DEFAULT_NAMESPACE_TEMPLATE,
    DEFAULT_VECTOR_FIELD,
    ID_FORMATS,
    ID_STRATEGIES,
    MAX_METADATA_BYTES,
    MAX_TOPIC_CHARS,
    METRICS,
    RouteConfig,
)
from kafka_pinecone_flink.udfs.stage_batch import DEFAULT_LINGER_MS as DEFAULT_BATCH_LINGER_MS
from kafka_pinecone_flink.udfs.stage_batch import DEFAULT_MAX_BYTES as DEFAULT_BATCH_MAX_BYTES
from kafka_pinecone_flink.udfs.stage_batch import DEFAULT_MAX_RECORDS as DEFAULT_BATCH_MAX_RECORDS

__all__ = ["OPTIONS", "BatchSettings", "DedupSettings", "FlinkSettings", "JobConfig", "JobConfigError", "RouteSettings"]

PROG = "python -m kafka_pinecone_flink.jobs.ingest_job"
DESCRIPTION = "Keeps a Pinecone index in step with Kafka topics (Kafka -> decode -> dedup -> embed -> Pinecone)."
EPILOG = (
    "Precedence: defaults < the --config YAML file < flags. The Pinecone API key is never an option: it is read from\n"
    "the environment variable named by --pinecone.api-key-env (PINECONE_API_KEY unless changed)."
)

# --- defaults and limits that are the job's own (the stages' are imported) ------------------------------------------
DEFAULT_BOOTSTRAP_SERVERS = "127.0.0.1:9092"
DEFAULT_GROUP_ID = "kafka-pinecone-flink"
DEFAULT_STARTING_POSITION = "committed"
DEFAULT_API_KEY_ENV = "PINECONE_API_KEY"
DEFAULT_DEAD_LETTER_TOPIC = "pinecone-dead-letter"
DEFAULT_STATE_TTL = "0"
"""Keep dedup state forever: "a newer version is never overwritten by an older one" then holds for any replay.
A TTL bounds the state of a large id space at the cost of that promise beyond the TTL (see udfs/dedup.py)."""
DAY_MS = 86_400_000
DEFAULT_PARALLELISM = 1
MAX_PARALLELISM = 32_768
"""Flink's upper bound on (max) parallelism."""
DEFAULT_CHECKPOINT_INTERVAL_MS = 10_000
MIN_CHECKPOINT_INTERVAL_MS = 10
"""Flink rejects shorter checkpoint intervals."""
MAX_CHECKPOINT_INTERVAL_MS = DAY_MS
DEFAULT_REST_PORT = 8081
MAX_PORT = 65_535
MIN_REQUEST_TIMEOUT_S = 0.1
"""A Pinecone request cannot complete in less; the sink itself only requires > 0."""
MAX_BATCH_MAX_RECORDS = 100_000
MIB = 1024 * 1024
MIN_BATCH_MAX_BYTES = MIB
MAX_BATCH_MAX_BYTES = 256 * MIB
MAX_BATCH_LINGER_MS = 10_000
PROBE_DIMENSION = 1
"""RouteConfig needs the index's dimension and metric, known only at start; none of its other checks depend on them,
so the options are validated early with these placeholders."""
PROBE_METRIC = METRICS[0]

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
API_KEY_REFUSAL = (
    "the Pinecone API key is read only from the environment variable named by --pinecone.api-key-env "
    "(PINECONE_API_KEY by default), so that it never shows in process lists, shell history or config files"
)
REFUSED = {name: API_KEY_REFUSAL for name in ("pinecone.api-key", "pinecone.api_key", "pinecone.apikey", "api-key")}
"""Names that are deliberately not options, with the reason given to whoever tries one."""
RESERVED_FLINK_SETTINGS = {
    "rest.port": "set --flink.rest-port",
    "execution.checkpointing.interval": "set --flink.checkpoint-interval-ms",
    "parallelism.default": "set --flink.parallelism",
}
_TOPIC_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_PROPERTY_KEY_CHARS = _TOPIC_CHARS


# --- single-option checks: each returns what is expected when the value is wrong --------------------------------------


def _topic_problem(topic: str) -> str | None:
    if not 1 <= len(topic) <= MAX_TOPIC_CHARS or topic in (".", "..") or not set(topic) <= _TOPIC_CHARS:
        return f"Kafka topic names of 1 to {MAX_TOPIC_CHARS} characters from a-z A-Z 0-9 . _ - (not '.' or '..')"
    return None


def _check_topics(topics: tuple[str, ...]) -> str | None:
    return next((problem for topic in topics if (problem := _topic_problem(topic))), None)


def _check_bootstrap_servers(servers: str) -> str | None:
    for server in servers.split(","):
        host, colon, port = server.rpartition(":")
        if not colon or not host or any(c.isspace() for c in server) or not (port.isascii() and port.isdigit()):
            return "comma-separated host:port pairs, e.g. 127.0.0.1:9092,broker2:9092"
        if not 1 <= int(port) <= MAX_PORT:
            return f"ports from 1 to {MAX_PORT}"
    return None


def _check_env_name(name: str) -> str | None:
    if name.isascii() and name.replace("_", "").isalnum() and not name[0].isdigit():
        return None
    return "an environment variable name (letters, digits and '_', not starting with a digit)"


def _check_kafka_properties(properties: Mapping[str, str]) -> str | None:
    for key in properties:
        if not set(key) <= _PROPERTY_KEY_CHARS:
            return "Kafka client property names (a-z A-Z 0-9 . _ -) as keys"
        reason = RESERVED_KAFKA_PROPERTIES.get(key)
        if reason is not None:
            return f"no {key!r} property ({reason})"
    return None


def _check_flink_conf(settings: Mapping[str, str]) -> str | None:
    for key in settings:
        if not set(key) <= _PROPERTY_KEY_CHARS:
            return "Flink configuration keys (a-z A-Z 0-9 . _ -)"
        reason = RESERVED_FLINK_SETTINGS.get(key)
        if reason is not None:
            return f"no {key!r} setting ({reason})"
    return None


def _check_namespace_map(mapping: Mapping[str, str]) -> str | None:
    return next((f"topic names as keys: {problem}" for topic in mapping if (problem := _topic_problem(topic))), None)


def _check_model(model: str) -> str | None:
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


# --- the spec ---------------------------------------------------------------------------------------------------------

OPTIONS: tuple[Option, ...] = (
    # kafka
    Option(
        "kafka.bootstrap-servers",
        Kind.STR,
        "Kafka brokers to read from and to write dead letters to, as host:port pairs, comma-separated",
        default=DEFAULT_BOOTSTRAP_SERVERS,
        check=_check_bootstrap_servers,
        target="kafka.bootstrap_servers",
    ),
    Option(
        "kafka.topics",
        Kind.LIST,
        "Source topics, comma-separated; set this or kafka.topic-pattern",
        default=(),
        check=_check_topics,
        target="kafka.topics",
    ),
    Option(
        "kafka.topic-pattern",
        Kind.STR,
        "Java regular expression of the source topics (matched against whole names; new matching topics are picked "
        "up); set this or kafka.topics",
        target="kafka.topic_pattern",
    ),
    Option(
        "kafka.group-id",
        Kind.STR,
        "Consumer group: its committed offsets are where the job starts with starting-position committed",
        default=DEFAULT_GROUP_ID,
        target="kafka.group_id",
    ),
    Option(
        "kafka.starting-position",
        Kind.STR,
        "Where a job without checkpoint state starts: the group's committed offsets (earliest where none), the "
        "earliest or latest offsets, or kafka.starting-timestamp-ms. A job restored from a checkpoint or savepoint "
        "always resumes from the offsets in its state",
        default=DEFAULT_STARTING_POSITION,
        choices=STARTING_POSITIONS,
        target="kafka.starting_position",
    ),
    Option(
        "kafka.starting-timestamp-ms",
        Kind.INT,
        "Epoch milliseconds to start from; required with, and only with, starting-position timestamp",
        low=0,
        target="kafka.starting_timestamp_ms",
    ),
    Option(
        "kafka.property",
        Kind.MAP,
        "Kafka client property for the consumer and the dead-letter producer (security settings, e.g. "
        "security.protocol=SASL_SSL); repeatable. Values of keys containing password, secret, jaas, keystore.key, "
        "credentials or user.info are masked in every printed config, as are credentials inside any URL "
        "(user:password@, and query parameters such as token=, key=, secret=, sig=)",
        default={},
        secret=True,
        check=_check_kafka_properties,
    ),
    Option(
        "kafka.bounded",
        Kind.BOOL,
        "Stop at the offsets that are latest when the job starts (tests and backfills) instead of running forever",
        default=False,
        target="kafka.bounded",
    ),
    # pinecone
    Option(
        "pinecone.index",
        Kind.STR,
        "Name of the Pinecone index to write to; its dimension and metric are read from it at start",
        required=True,
        target="sink.index_name",
    ),
    Option(
        "pinecone.api-key-env",
        Kind.STR,
        "Name of the environment variable holding the Pinecone API key (the key itself is never an option). It may "
        "be unset only when pinecone.controller-host points at a server that needs no key",
        default=DEFAULT_API_KEY_ENV,
        secret=True,  # a key pasted here by mistake must not be echoed back
        check=_check_env_name,
    ),
    Option(
        "pinecone.host",
        Kind.STR,
        "Data-plane host override, e.g. the local server's http://127.0.0.1:5081",
        doc_default="(from the index)",
        target="sink.index_host",
    ),
    Option(
        "pinecone.controller-host",
        Kind.STR,
        "Control-plane override, e.g. http://127.0.0.1:5080 for the local server",
        doc_default="(Pinecone's cloud)",
        target="sink.controller_host",
    ),
    Option(
        "pinecone.namespace-template",
        Kind.STR,
        "Namespace of a topic's records; ${topic} is replaced by the topic name; an empty template writes to the "
        "default namespace. Use pinecone.namespace-map for exceptions",
        default=DEFAULT_NAMESPACE_TEMPLATE,
        allow_empty=True,
        target="route.namespace_template",
    ),
    Option(
        "pinecone.namespace-map",
        Kind.MAP,
        "Explicit namespace of a topic (topic=namespace, repeatable; an empty namespace is the default one); wins "
        "over the template",
        default={},
        check=_check_namespace_map,
        target="route.namespace_map",
    ),
    # id
    Option(
        "id.strategy",
        Kind.STR,
        "Where record ids come from: kafka = the record key; field = id.field of the value; none = a random id per "
        "record (insert-only: deletes cannot be addressed and a replay duplicates)",
        default=DEFAULT_ID_STRATEGY,
        choices=ID_STRATEGIES,
        target="route.id_strategy",
    ),
    Option(
        "id.field",
        Kind.STR,
        "Field of the value that holds the id (a dotted path such as after.id reaches into nested objects); required "
        "with, and only with, id.strategy field",
        target="route.id_field",
    ),
    Option(
        "id.format",
        Kind.STR,
        "uuid = a UUIDv5 derived from the key or field (stable, always a valid Pinecone id); raw = the text itself "
        "(1 to 512 characters)",
        default=DEFAULT_ID_FORMAT,
        choices=ID_FORMATS,
        target="route.id_format",
    ),
    # vector
    Option(
        "vector.field",
        Kind.STR,
        "Top-level field holding the dense vector; a record without one is embedded from its text when embedding is on",
        default=DEFAULT_VECTOR_FIELD,
        target="route.vector_field",
    ),
    Option(
        "vector.sparse-field",
        Kind.STR,
        'Top-level field holding a sparse vector {"indices": [...], "values": [...]}',
        doc_default="(no sparse vectors)",
        target="route.sparse_field",
    ),
    # embedding
    Option(
        "embedding.model",
        Kind.STR,
        f"{DEFAULT_MODEL} = the bundled all-MiniLM-L6-v2 (384 dimensions), or a local model directory; nothing is "
        "ever downloaded",
        default=DEFAULT_MODEL,
        check=_check_model,
        target="embed.model",
    ),
    Option(
        "embedding.text-fields",
        Kind.LIST,
        "Fields whose texts, joined by newlines, are embedded for records without a vector. Setting this or "
        "embedding.text-template turns embedding on",
        default=(),
        target="route.text_fields",
    ),
    Option(
        "embedding.text-template",
        Kind.STR,
        "Alternative to embedding.text-fields: a template such as '${title}. ${body}'",
        target="route.text_template",
    ),
    Option(
        "embedding.batch-size",
        Kind.INT,
        "Texts per batch the model runs (its forward pass); see embedding.pool-batches",
        default=embed_stage.DEFAULT_BATCH_SIZE,
        low=1,
        high=embed_stage.MAX_BATCH_SIZE,
        target="embed.batch_size",
    ),
    Option(
        "embedding.pool-batches",
        Kind.INT,
        "Batches of texts per model call: their texts are sorted by length first, so each batch pads less; 1 = one "
        "batch at a time, in arrival order",
        default=embed_stage.DEFAULT_POOL_BATCHES,
        low=1,
        high=embed_stage.MAX_POOL_BATCHES,
        target="embed.pool_batches",
    ),
    Option(
        "embedding.linger-ms",
        Kind.INT,
        "Longest wait for a partial batch of texts",
        default=embed_stage.DEFAULT_LINGER_MS,
        low=0,
        high=embed_stage.MAX_LINGER_MS,
        target="embed.linger_ms",
    ),
    Option(
        "embedding.cache-entries",
        Kind.INT,
        "Vectors kept by text hash so that an unchanged text is not embedded again; 0 disables the cache",
        default=embed_stage.DEFAULT_CACHE_ENTRIES,
        low=0,
        high=embed_stage.MAX_CACHE_ENTRIES,
        target="embed.cache_entries",
    ),
    Option(
        "embedding.device",
        Kind.STR,
        "Where the model runs; auto = cuda when available",
        default=EmbedConfig().device,
        choices=DEVICES,
        target="embed.device",
    ),
    Option(
        "embedding.torch-threads",
        Kind.INT,
        "torch intra-op threads of each Python worker; 0 = torch's default (one per core). With several slots per "
        "machine, give each about cores / slots",
        default=EmbedConfig().torch_threads,
        low=0,
        high=embed_stage.MAX_TORCH_THREADS,
        target="embed.torch_threads",
    ),
    # delete, schema
    Option(
        "delete.enabled",
        Kind.BOOL,
        "Whether tombstones and Debezium deletes delete the record (otherwise they are skipped and counted)",
        default=True,
        target="route.delete_enabled",
    ),
    Option(
        "schema.evolution",
        Kind.STR,
        "basic = upserts create namespaces as needed; none = a namespace must already exist",
        default=sink_config.DEFAULT_SCHEMA_EVOLUTION,
        choices=sink_config.SCHEMA_EVOLUTIONS,
        target="sink.schema_evolution",
    ),
    # dedup
    Option(
        "dedup.version-field",
        Kind.STR,
        "Field holding the source version (a number or an ISO-8601 time, e.g. ts_ms or source.lsn): a record older "
        "than the last applied version of its id is skipped",
        doc_default="(arrival order)",
        target="route.version_field",
    ),
    Option(
        "dedup.state-ttl",
        Kind.DURATION,
        "How long the per-id dedup state (versions, hashes, tombstones) is kept after its last write; 0 = forever. "
        "An id unseen for longer is forgotten, so a replay older than the TTL could re-apply stale records",
        default=0,
        doc_default=DEFAULT_STATE_TTL,
        low=0,
        high=MAX_STATE_TTL_MS,
    ),
    # metadata
    Option(
        "metadata.fields",
        Kind.LIST,
        "Fields stored as Pinecone metadata; empty = none; (all) = every field except the vectors and __ control "
        "fields",
        doc_default="(all)",
        target="route.metadata_fields",
    ),
    Option(
        "metadata.max-bytes",
        Kind.INT,
        "Largest JSON-encoded metadata accepted per record (Pinecone's limit is 40 KB)",
        default=MAX_METADATA_BYTES,
        low=1,
        high=MAX_METADATA_BYTES,
        target="route.max_metadata_bytes",
    ),
    # batch
    Option(
        "batch.max-records",
        Kind.INT,
        "Records per group handed to a Python stage (decode, embed, sink) by the JVM Batcher",
        default=DEFAULT_BATCH_MAX_RECORDS,
        low=1,
        high=MAX_BATCH_MAX_RECORDS,
        target="batch.max_records",
    ),
    Option(
        "batch.max-bytes",
        Kind.INT,
        "Estimated bytes per group handed to a Python stage (a larger record is a group of its own)",
        default=DEFAULT_BATCH_MAX_BYTES,
        low=MIN_BATCH_MAX_BYTES,
        high=MAX_BATCH_MAX_BYTES,
        target="batch.max_bytes",
    ),
    Option(
        "batch.linger-ms",
        Kind.INT,
        "Longest wait of a partial group before decode (groups are also handed on before every checkpoint and at "
        "the end of input); the group before the sink waits at most sink.linger-ms",
        default=DEFAULT_BATCH_LINGER_MS,
        low=0,
        high=MAX_BATCH_LINGER_MS,
        target="batch.linger_ms",
    ),
    # sink
    Option(
        "sink.batch-size",
        Kind.INT,
        "Records per Pinecone upsert request inside a group (a request is also cut at 2 MB)",
        default=sink_config.DEFAULT_BATCH_SIZE,
        low=1,
        high=sink_config.PINECONE_MAX_UPSERT_RECORDS,
        target="sink.batch_size",
    ),
    Option(
        "sink.max-retries",
        Kind.INT,
        "Retries of a failed retryable request (throttling, 5xx, timeouts) before the job fails",
        default=sink_config.DEFAULT_MAX_RETRIES,
        low=0,
        high=sink_config.MAX_MAX_RETRIES,
        target="sink.max_retries",
    ),
    Option(
        "sink.retry-interval-ms",
        Kind.INT,
        "First retry backoff; it doubles per retry, with full jitter",
        default=sink_config.DEFAULT_RETRY_INTERVAL_MS,
        low=1,
        high=sink_config.MAX_RETRY_INTERVAL_MS,
        target="sink.retry_interval_ms",
    ),
    Option(
        "sink.max-retry-interval-ms",
        Kind.INT,
        "Cap of the retry backoff (a longer Retry-After of a 429 wins); at least sink.retry-interval-ms",
        default=sink_config.DEFAULT_MAX_RETRY_INTERVAL_MS,
        low=1,
        high=sink_config.MAX_RETRY_INTERVAL_MS,
        target="sink.max_retry_interval_ms",
    ),
    Option(
        "sink.linger-ms",
        Kind.INT,
        "Longest wait of a partial group of changes before it is handed to the sink (the JVM Batcher before the "
        "sink; groups are also handed on before every checkpoint), which writes it at once",
        default=sink_config.DEFAULT_LINGER_MS,
        low=0,
        high=sink_config.MAX_LINGER_MS,
        target="sink.linger_ms",
    ),
    Option(
        "sink.max-concurrency",
        Kind.INT,
        "Upsert/delete requests in flight per namespace; ids are spread over them by a hash, so the writes of one id "
        "stay in order",
        default=sink_config.DEFAULT_MAX_CONCURRENCY,
        low=1,
        high=sink_config.MAX_MAX_CONCURRENCY,
        target="sink.max_concurrency",
    ),
    Option(
        "sink.request-timeout-s",
        Kind.FLOAT,
        "Timeout of one Pinecone request, in seconds",
        default=sink_config.DEFAULT_REQUEST_TIMEOUT_S,
        low=MIN_REQUEST_TIMEOUT_S,
        high=sink_config.MAX_REQUEST_TIMEOUT_S,
        target="sink.request_timeout_s",
    ),
    # errors
    Option(
        "errors.tolerance",
        Kind.STR,
        "none = a record that cannot be processed (bad JSON, wrong dimension, rejected by Pinecone) stops the job; "
        "all = it goes to errors.dead-letter-topic and the job goes on",
        default=sink_config.DEFAULT_ERROR_TOLERANCE,
        choices=sink_config.ERROR_TOLERANCES,
        target="sink.error_tolerance",
    ),
    Option(
        "errors.dead-letter-topic",
        Kind.STR,
        "Topic that receives every dead-lettered record: its original key, value and headers plus the error in "
        "headers; must not be a source topic",
        default=DEFAULT_DEAD_LETTER_TOPIC,
        check=_topic_problem,
    ),
    # flink
    Option(
        "flink.parallelism",
        Kind.INT,
        "Parallelism of every operator",
        default=DEFAULT_PARALLELISM,
        low=1,
        high=MAX_PARALLELISM,
    ),
    Option(
        "flink.checkpoint-interval-ms",
        Kind.INT,
        "Checkpoint interval; Kafka offsets are committed and dedup state saved on each checkpoint",
        default=DEFAULT_CHECKPOINT_INTERVAL_MS,
        low=MIN_CHECKPOINT_INTERVAL_MS,
        high=MAX_CHECKPOINT_INTERVAL_MS,
    ),
    Option(
        "flink.rest-port",
        Kind.INT,
        "Port of the local mini-cluster's Web UI and REST API; 0 = any free port (the bound address is printed)",
        default=DEFAULT_REST_PORT,
        low=0,
        high=MAX_PORT,
    ),
    Option(
        "flink.conf",
        Kind.MAP,
        "Any other Flink setting (key=value, repeatable), applied over flink-conf/config.yaml, e.g. "
        "restart-strategy.type=none. Values of keys Flink deems secret (containing password, secret, token, apikey, "
        "...) and credentials inside URLs are masked in every printed config",
        default={},
        check=_check_flink_conf,
    ),
    Option(
        "flink.run-dir",
        Kind.STR,
        "Directory for checkpoints, logs and the rendered Flink configuration; by default .run under the repository "
        "root, or $KPF_RUN_DIR when set",
        doc_default="(.run)",
    ),
)

BY_NAME: Mapping[str, Option] = {option.name: option for option in OPTIONS}
EMBEDDING_ONLY = (
    "embedding.model",
    "embedding.batch-size",
    "embedding.pool-batches",
    "embedding.linger-ms",
    "embedding.cache-entries",
    "embedding.device",
    "embedding.torch-threads",
)
"""Options that mean something only when embedding is on: setting one while it is off is an error, not a no-op."""


# --- the loaded configuration -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteSettings:
    """Everything ``RouteConfig`` needs except the index's dimension and metric (read from the index at start).

    Already validated against ``RouteConfig``'s own rules when the ``JobConfig`` was loaded."""

    namespace_template: str
    namespace_map: Mapping[str, str]
    id_strategy: str
    id_field: str | None
    id_format: str
    vector_field: str
    sparse_field: str | None
    text_fields: tuple[str, ...]
    text_template: str | None
    delete_enabled: bool
    version_field: str | None
    metadata_fields: tuple[str, ...] | None
    max_metadata_bytes: int


@dataclass(frozen=True)
class DedupSettings:
    """Dedup's settings: the version field (also in ``RouteSettings``: decode extracts it) and the state TTL."""

    version_field: str | None
    state_ttl_ms: int
    """0 = keep forever."""


@dataclass(frozen=True)
class BatchSettings:
    """The groups the JVM ``Batcher`` hands to the Python stages (``udfs.stage_batch``)."""

    max_records: int = DEFAULT_BATCH_MAX_RECORDS
    max_bytes: int = DEFAULT_BATCH_MAX_BYTES
    linger_ms: int = DEFAULT_BATCH_LINGER_MS
    """Of the group before decode; the group before the sink lingers ``sink.linger-ms``."""


@dataclass(frozen=True)
class FlinkSettings:
    parallelism: int
    checkpoint_interval_ms: int
    rest_port: int
    """0 = any free port."""
    run_dir: Path
    bounded: bool
    """The source stops at the offsets latest at start (``kafka.bounded``), so the job finishes."""
    conf: Mapping[str, str]
    """Further flat Flink settings (``flink.conf``); never one of the settings above."""


@dataclass(frozen=True)
class JobConfig:
    """The whole, validated configuration of the ingest job. Immutable; ``repr`` masks every secret.

    ``embed`` is None when embedding is off (neither ``embedding.text-fields`` nor ``embedding.text-template`` set).
    ``kafka.properties`` also go to the dead-letter producer.
    """

    kafka: KafkaSourceOptions
    sink: PineconeSinkConfig
    embed: EmbedConfig | None
    route: RouteSettings
    dedup: DedupSettings
    errors_tolerance: str
    dead_letter_topic: str
    flink: FlinkSettings
    api_key_env: str
    batch: BatchSettings = BatchSettings()

    def route_config(self, dimension: int, metric: str) -> RouteConfig:
        """The decode/route stage's config for an index of ``dimension`` and ``metric``; ``JobConfigError`` if the
        index's dimension or metric is not one RouteConfig accepts (the options themselves were validated at load)."""
        fields = {"dimension": "the index's dimension", "metric": "the index's metric"}
        return _translated(lambda: RouteConfig(dimension=dimension, metric=metric, **vars(self.route)), fields)

    def flink_overrides(self) -> dict[str, str]:
        """Flat Flink settings for ``jobs.flink_env.create_session``: ``flink.conf`` plus the port and the
        checkpoint interval (``rest.port`` 0 lets Flink pick a free port)."""
        return {
            **self.flink.conf,
            "rest.port": str(self.flink.rest_port),
            "execution.checkpointing.interval": f"{self.flink.checkpoint_interval_ms}ms",
        }

    def secrets(self) -> tuple[str, ...]:
        """Every secret value (the API key, secret Kafka properties and Flink settings, credentials inside URLs of
        any value): to scrub from dead-letter messages and logs, and to mask in printed commands."""
        found: list[str] = [] if self.sink.api_key is None else [self.sink.api_key]
        for values in (self.kafka.properties, self.flink.conf):
            if isinstance(values, MaskedMapping):
                found.extend(values.secret_values())
            for value in values.values():
                found.extend(url_secrets(value))
        for host in (self.sink.controller_host, self.sink.index_host):
            found.extend(url_secrets(host or ""))
        return tuple(dict.fromkeys(found))

    def __repr__(self) -> str:
        # The parts mask secrets by name; URLs may hold credentials in any field (a Pinecone host, say).
        shown = ", ".join(f"{item.name}={getattr(self, item.name)!r}" for item in fields(self))
        return mask_urls(f"{type(self).__name__}({shown})")

    __str__ = __repr__


def load_job_config(argv: Sequence[str], environ: Mapping[str, str]) -> JobConfig:
    """Parse and validate the job's configuration from ``argv`` (flags and ``--config FILE``) and ``environ`` (the API
    key). Raises ``JobConfigError`` for any invalid option or combination; ``--help`` prints help and exits."""
    resolved = resolve(OPTIONS, parser(), argv, REFUSED)
    _check_rules(resolved)
    return _build(resolved, environ)


def parser() -> Any:
    """The job's argparse parser (for ``--help``); ``load_job_config`` is the way to parse."""
    return build_parser(OPTIONS, PROG, DESCRIPTION, EPILOG)


def markdown() -> str:
    """The README's options table."""
    return markdown_table(OPTIONS)


# --- rules between options --------------------------------------------------------------------------------------------


def _check_rules(r: Resolved) -> None:
    _check_source(r)
    _check_ids(r)
    _check_embedding(r)


def _check_source(r: Resolved) -> None:
    topics, pattern = r["kafka.topics"], r["kafka.topic-pattern"]
    if topics and pattern is not None:
        raise JobConfigError(
            f"--kafka.topics ({','.join(topics)}) and --kafka.topic-pattern ({pattern!r}) are both set; "
            "expected exactly one of them"
        )
    if not topics and pattern is None:
        raise JobConfigError(
            "neither --kafka.topics nor --kafka.topic-pattern is set; expected exactly one of them "
            "(e.g. --kafka.topics orders,customers)"
        )
    position, timestamp = r["kafka.starting-position"], r["kafka.starting-timestamp-ms"]
    if position == "timestamp" and timestamp is None:
        raise JobConfigError(
            "--kafka.starting-timestamp-ms is required with --kafka.starting-position timestamp: "
            "the epoch milliseconds to start from"
        )
    if position != "timestamp" and timestamp is not None:
        expected = f"no value unless --kafka.starting-position is timestamp (it is {position})"
        raise r.error(BY_NAME["kafka.starting-timestamp-ms"], expected)
    dead_letter_topic = r["errors.dead-letter-topic"]
    if dead_letter_topic in topics or (pattern is not None and _matches(pattern, dead_letter_topic)):
        raise r.error(
            BY_NAME["errors.dead-letter-topic"],
            "a topic that is not a source topic (dead letters read back would be dead-lettered again, forever)",
        )
    unknown = [topic for topic in r["pinecone.namespace-map"] if topics and topic not in topics]
    if unknown:
        expected = f"only topics of --kafka.topics ({','.join(topics)}) as keys{suggestion(unknown[0], topics)}"
        raise r.error(BY_NAME["pinecone.namespace-map"], expected, value=unknown[0])


def _matches(pattern: str, topic: str) -> bool:
    """Whether the (Java) topic pattern matches ``topic`` as a whole; False if Python's ``re`` cannot read it."""
    try:
        return re.fullmatch(pattern, topic) is not None
    except re.error:
        return False


def _check_ids(r: Resolved) -> None:
    strategy = r["id.strategy"]
    if strategy == "field" and r["id.field"] is None:
        raise JobConfigError(
            "--id.field is required with --id.strategy field: the field of the value that holds the id"
        )
    if strategy != "field" and r["id.field"] is not None:
        raise r.error(BY_NAME["id.field"], f"no value unless --id.strategy is field (it is {strategy})")
    if strategy == "none":
        if "id.format" in r.given:
            raise r.error(BY_NAME["id.format"], "no value with --id.strategy none (ids are random UUIDs)")
        if r["delete.enabled"]:
            raise JobConfigError(
                "--id.strategy none cannot be used with --delete.enabled true: under 'none' every record gets a "
                "random id, so a tombstone or a Debezium delete cannot address the record it should remove. Set "
                "--delete.enabled false (deletes are then skipped and counted), or use --id.strategy kafka or field"
            )


def _check_embedding(r: Resolved) -> None:
    fields, template = r["embedding.text-fields"], r["embedding.text-template"]
    if fields and template is not None:
        raise JobConfigError(
            f"--embedding.text-fields ({','.join(fields)}) and --embedding.text-template ({template!r}) are both "
            "set; expected at most one of them"
        )
    if not fields and template is None:
        for name in EMBEDDING_ONLY:
            if name in r.given:
                raise r.error(
                    BY_NAME[name],
                    "no value while embedding is off: set --embedding.text-fields or --embedding.text-template to "
                    "turn it on",
                )


# --- building the stage configs ---------------------------------------------------------------------------------------


def _stage_values(r: Resolved, stage: str) -> dict[str, Any]:
    prefix = f"{stage}."
    return {o.target[len(prefix) :]: r[o.name] for o in OPTIONS if o.target and o.target.startswith(prefix)}


def _stage_flags(stage: str) -> dict[str, str]:
    prefix = f"{stage}."
    return {o.target[len(prefix) :]: o.flag for o in OPTIONS if o.target and o.target.startswith(prefix)}


def _api_key(r: Resolved, environ: Mapping[str, str]) -> str | None:
    name = r["pinecone.api-key-env"]
    key = environ.get(name) or None
    if key is None and r["pinecone.controller-host"] is None:
        raise JobConfigError(
            f"the Pinecone API key is missing: set the environment variable {name} (named by "
            "--pinecone.api-key-env), or point --pinecone.controller-host at a local server that needs none"
        )
    return key


def _build(r: Resolved, environ: Mapping[str, str]) -> JobConfig:
    api_key = _api_key(r, environ)
    kafka_values = _stage_values(r, "kafka")
    kafka_values["properties"] = MaskedMapping(r["kafka.property"], is_secret_kafka_property)
    kafka = _translated(lambda: KafkaSourceOptions(**kafka_values), _stage_flags("kafka"))

    sink_flags = _stage_flags("sink")
    sink_flags["api_key"] = f"the API key in ${r['pinecone.api-key-env']}"
    sink = _translated(lambda: PineconeSinkConfig(api_key=api_key, **_stage_values(r, "sink")), sink_flags)

    route = RouteSettings(**_stage_values(r, "route"))
    probe = {"dimension": PROBE_DIMENSION, "metric": PROBE_METRIC, **vars(route)}
    _translated(lambda: RouteConfig(**probe), _stage_flags("route"))

    embedding_on = bool(route.text_fields) or route.text_template is not None
    embed = (
        _translated(lambda: EmbedConfig(**_stage_values(r, "embed")), _stage_flags("embed")) if embedding_on else None
    )

    run_dir = r["flink.run-dir"]
    return JobConfig(
        kafka=kafka,
        sink=sink,
        embed=embed,
        route=route,
        dedup=DedupSettings(version_field=route.version_field, state_ttl_ms=r["dedup.state-ttl"]),
        errors_tolerance=r["errors.tolerance"],
        dead_letter_topic=r["errors.dead-letter-topic"],
        flink=FlinkSettings(
            parallelism=r["flink.parallelism"],
            checkpoint_interval_ms=r["flink.checkpoint-interval-ms"],
            rest_port=r["flink.rest-port"],
            run_dir=RUN_DIR if run_dir is None else Path(run_dir),
            bounded=kafka.bounded,
            conf=MaskedMapping(r["flink.conf"], is_secret_flink_setting),
        ),
        api_key_env=r["pinecone.api-key-env"],
        batch=BatchSettings(**_stage_values(r, "batch")),
    )


T = TypeVar("T")
_STAGE_PREFIXES = ("RouteConfig.", "embed ")
"""How RouteConfig and EmbedConfig prefix a field name in their messages."""


def _translated(build: Callable[[], T], flags: Mapping[str, str]) -> T:
    """``build()``, with a stage config's ValueError re-raised as a ``JobConfigError`` that names flags, not fields.

    The stages' messages name a field (``batch_size must be ...``, ``RouteConfig.sparse_field: ...``); every field
    name in the message is replaced by its flag, and the message is led by the first one.
    """
    try:
        return build()
    except ValueError as exc:  # RouteConfigError and the sink's ConfigError are ValueErrors too
        message = str(exc)
        for prefix in _STAGE_PREFIXES:
            message = message.replace(prefix, "")
        names = sorted(flags, key=len, reverse=True)
        pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
        first = pattern.search(message)
        translated = pattern.sub(lambda match: flags[match.group(1)], message)
        if first is not None and not translated.startswith(flags[first.group(1)]):
            translated = f"{flags[first.group(1)]}: {translated}"
        raise JobConfigError(translated) from exc


def main(argv: Sequence[str] | None = None) -> int:
    """``--markdown``: print the README's options table. Otherwise check the given options and print the config."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--markdown"]:
        sys.stdout.write(markdown())
        return 0
    try:
        config = load_job_config(args, os.environ)
    except JobConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
