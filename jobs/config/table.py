"""The ingest job's options, declared once: name, kind, default, bounds, help, the per-value check
(``jobs.config.checks``) and the stage-config field it feeds (``target``). The parser, the YAML loader and the
README's table are generated from it (``jobs.options``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kafka_pinecone_flink.sinks.config as sink_config
import kafka_pinecone_flink.sinks.embedding_health as embedding_health
import kafka_pinecone_flink.udfs.embed as embed_stage
from kafka_pinecone_flink.jobs.config import checks
from kafka_pinecone_flink.jobs.kafka_io import DEFAULT_PARTITION_LAG_INTERVAL_MS, STARTING_POSITIONS
from kafka_pinecone_flink.jobs.options import Kind, Option, build_parser, markdown_table
from kafka_pinecone_flink.sinks.config import host_problem, index_name_problem
from kafka_pinecone_flink.udfs.dedup import MAX_STATE_TTL_MS
from kafka_pinecone_flink.udfs.embed import EmbedConfig
from kafka_pinecone_flink.udfs.embed_model import DEFAULT_MODEL, DEVICES
from kafka_pinecone_flink.udfs.route_config import (
    DEFAULT_ID_FORMAT,
    DEFAULT_ID_STRATEGY,
    DEFAULT_NAMESPACE_TEMPLATE,
    DEFAULT_VECTOR_FIELD,
    ID_FORMATS,
    ID_STRATEGIES,
    MAX_CHUNK_TOKENS,
    MAX_METADATA_BYTES,
    namespace_template_problem,
    text_template_problem,
)
from kafka_pinecone_flink.udfs.stage_batch import DEFAULT_LINGER_MS as DEFAULT_BATCH_LINGER_MS
from kafka_pinecone_flink.udfs.stage_batch import DEFAULT_MAX_BYTES as DEFAULT_BATCH_MAX_BYTES
from kafka_pinecone_flink.udfs.stage_batch import DEFAULT_MAX_RECORDS as DEFAULT_BATCH_MAX_RECORDS

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
MAX_PARALLELISM = 32_768
"""Flink's upper bound on (max) parallelism."""
DEFAULT_CHECKPOINT_INTERVAL_MS = 10_000
MIN_CHECKPOINT_INTERVAL_MS = 10
"""Flink rejects shorter checkpoint intervals."""
MAX_CHECKPOINT_INTERVAL_MS = DAY_MS
DEFAULT_REST_PORT = 8081
MIN_REQUEST_TIMEOUT_S = 0.1
"""A Pinecone request cannot complete in less; the sink itself only requires > 0."""
MAX_BATCH_MAX_RECORDS = 100_000
MIB = 1024 * 1024
MIN_BATCH_MAX_BYTES = MIB
MAX_BATCH_MAX_BYTES = 256 * MIB
MAX_BATCH_LINGER_MS = 10_000

API_KEY_REFUSAL = (
    "the Pinecone API key is read only from the environment variable named by --pinecone.api-key-env "
    "(PINECONE_API_KEY by default), so that it never shows in process lists, shell history or config files"
)
REFUSED = {name: API_KEY_REFUSAL for name in ("pinecone.api-key", "pinecone.api_key", "pinecone.apikey", "api-key")}
"""Names that are deliberately not options, with the reason given to whoever tries one."""


# --- the spec ---------------------------------------------------------------------------------------------------------

OPTIONS: tuple[Option, ...] = (
    # kafka
    Option(
        "kafka.bootstrap-servers",
        Kind.STR,
        "Kafka brokers to read from and to write dead letters to, as host:port pairs, comma-separated",
        default=DEFAULT_BOOTSTRAP_SERVERS,
        check=checks.check_bootstrap_servers,
        target="kafka.bootstrap_servers",
    ),
    Option(
        "kafka.topics",
        Kind.LIST,
        "Source topics, comma-separated; set this or kafka.topic-pattern",
        default=(),
        check=checks.check_topics,
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
        check=checks.check_kafka_properties,
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
        check=index_name_problem,
    ),
    Option(
        "pinecone.api-key-env",
        Kind.STR,
        "Name of the environment variable holding the Pinecone API key (the key itself is never an option). It may "
        "be unset only when pinecone.controller-host points at a server that needs no key",
        default=DEFAULT_API_KEY_ENV,
        secret=True,  # a key pasted here by mistake must not be echoed back
        check=checks.check_env_name,
    ),
    Option(
        "pinecone.host",
        Kind.STR,
        "Data-plane host override, e.g. the local server's http://127.0.0.1:5081",
        doc_default="(from the index)",
        target="sink.index_host",
        check=host_problem,
    ),
    Option(
        "pinecone.controller-host",
        Kind.STR,
        "Control-plane override, e.g. http://127.0.0.1:5080 for the local server",
        doc_default="(Pinecone's cloud)",
        target="sink.controller_host",
        check=host_problem,
    ),
    Option(
        "pinecone.namespace-template",
        Kind.STR,
        "Namespace of a topic's records; ${topic} is replaced by the topic name; an empty template writes to the "
        "default namespace. Use pinecone.namespace-map for exceptions",
        default=DEFAULT_NAMESPACE_TEMPLATE,
        allow_empty=True,
        target="route.namespace_template",
        check=namespace_template_problem,
    ),
    Option(
        "pinecone.namespace-map",
        Kind.MAP,
        "Explicit namespace of a topic (topic=namespace, repeatable; an empty namespace is the default one); wins "
        "over the template",
        default={},
        check=checks.check_namespace_map,
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
        check=checks.check_model,
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
        check=text_template_problem,
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
        "CPU threads the model may use in each Python worker, shared by its lanes (embedding.lanes); 0 = one per "
        "core the worker may run on. With several slots per machine, give each about cores / slots",
        default=EmbedConfig().torch_threads,
        low=0,
        high=embed_stage.MAX_TORCH_THREADS,
        target="embed.torch_threads",
    ),
    Option(
        "embedding.lanes",
        Kind.INT,
        "Model calls at once in each Python worker, each on its own copy of the model (memory: one model per lane) "
        "with an equal share of embedding.torch-threads; with several lanes, each pool of texts is sorted by length "
        "and cut into as many batches as lanes, or a multiple, of nearly equal counts and at most "
        "embedding.batch-size texts, which the lanes take as they come free. 0 = automatic: on CPU "
        f"{embed_stage.AUTO_LANES} lanes (1 with a single thread), on a GPU 1. Lanes of one thread each keep the "
        "model's pace when other work takes part of a core (BENCHMARKS.md)",
        default=EmbedConfig().lanes,
        low=0,
        high=embed_stage.MAX_LANES,
        target="embed.lanes",
    ),
    # chunking
    Option(
        "chunking.tokens",
        Kind.INT,
        "Embed long texts whole: split each text into chunks of at most this many word pieces of the model's "
        "tokenizer (at most its window less 2: 254 for the default model), cut at paragraph and sentence ends, each "
        "written as its own vector <id>#<n> (README: Documents: chunking); 0 = off (one vector per record: the "
        "model reads only a text's first window of word pieces, and the texts_truncated metric counts the longer "
        "texts)",
        default=0,
        low=0,
        high=MAX_CHUNK_TOKENS,
        target="route.chunk_tokens",
    ),
    Option(
        "chunking.overlap",
        Kind.INT,
        "Word pieces each chunk repeats from the end of the one before (less than chunking.tokens)",
        default=0,
        low=0,
        high=MAX_CHUNK_TOKENS - 1,
        target="route.chunk_overlap",
    ),
    Option(
        "chunking.text-field",
        Kind.STR,
        "Metadata field that holds each chunk's text (every chunk's metadata must stay within metadata.max-bytes)",
        doc_default="(not stored)",
        target="route.chunk_text_field",
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
    Option(
        "dedup.in-source-task",
        Kind.BOOL,
        "At parallelism 1, run the dedup in the source's task, keyed without a keyed exchange (one subtask holds every "
        "id): no serialization and hand-over per record. The running job then cannot be rescaled in place, so it is "
        "off by itself at a higher parallelism and with the adaptive scheduler (jobmanager.scheduler=adaptive or "
        "scheduler-mode=reactive); false: always through the keyed exchange. A savepoint restores into either shape",
        default=True,
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
    Option(
        "decode.jvm",
        Kind.BOOL,
        "Decode the records that carry their own dense vector in the JVM when they have the common shape (a plain "
        "JSON object, flat metadata, numbers of at most 15 significant digits), with the Python decoder taking every "
        "other record and giving every dead letter; false: Python decodes every record. Off by itself with "
        "unaligned checkpoints, operator chaining off, random ids or chosen metadata fields",
        default=True,
        target="batch.jvm_decode",
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
        "Records per Pinecone upsert request (a request is also cut at 2 MB); a lane's request can carry the parts of "
        "several groups that waited for its previous write",
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
        "sink; groups are also handed on before every checkpoint), which writes it at once. Under a backlog a sink "
        "subtask's groups fill only if it gets at least batch.max-records changes per linger; short groups slow "
        "the whole job down",
        default=sink_config.DEFAULT_LINGER_MS,
        low=0,
        high=sink_config.MAX_LINGER_MS,
        target="sink.linger_ms",
    ),
    Option(
        "sink.max-concurrency",
        Kind.INT,
        "Upsert/delete requests in flight per namespace: groups of at most sink.batch-size changes with no id in "
        "common go side by side, one request each; when changes wait, ids are spread over lanes by a hash, so the "
        "writes of one id stay in order",
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
        check=checks.topic_problem,
    ),
    # metrics
    Option(
        "metrics.drift-reference-size",
        Kind.INT,
        "Embedding drift: the reference centroid of a namespace is the mean of the first N vectors (sampled) each "
        "sink subtask writes to it after start, unless metrics.drift-reference-file gives one",
        default=embedding_health.DEFAULT_REFERENCE_SIZE,
        low=1,
        high=embedding_health.MAX_REFERENCE_SIZE,
        target="sink.drift_reference_size",
    ),
    Option(
        "metrics.drift-window",
        Kind.INT,
        "Embedding drift: the recent centroid is an exponentially weighted mean in which each new vector weighs "
        "1/N (README: Monitoring)",
        default=embedding_health.DEFAULT_WINDOW,
        low=1,
        high=embedding_health.MAX_WINDOW,
        target="sink.drift_window",
    ),
    Option(
        "metrics.drift-reference-file",
        Kind.STR,
        'Embedding drift: a JSON file {"<namespace>": [centroid], "*": [centroid for any other namespace]} '
        "read when the job starts; fixes the reference across restarts and subtasks",
        doc_default="(the first vectors)",
        target="sink.drift_reference_file",
        check=checks.drift_reference_problem,
    ),
    Option(
        "metrics.partition-lag-interval-ms",
        Kind.INT,
        "Consumer lag per topic and partition (records_lag, README: Monitoring): how often each source subtask asks "
        "Kafka for the latest offsets of its partitions; 0 = no per-partition lag",
        default=DEFAULT_PARTITION_LAG_INTERVAL_MS,
        low=0,
        high=3_600_000,
        target="kafka.lag_interval_ms",
    ),
    # flink
    Option(
        "flink.parallelism",
        Kind.INT,
        "Parallelism of every operator. When it is not given, a local run uses 1 and a job submitted with flink run "
        "uses flink run -p, or else the cluster's parallelism.default; when given, it applies over both",
        doc_default="(1 locally; flink run: -p)",
        low=1,
        high=MAX_PARALLELISM,
    ),
    Option(
        "flink.checkpoint-interval-ms",
        Kind.INT,
        "Checkpoint interval; Kafka offsets are committed and dedup state saved on each checkpoint. When it is not "
        "given, a job submitted with flink run uses the cluster's execution.checkpointing.interval (or flink run "
        f"-D's) if it sets one; otherwise, and in a local run, {DEFAULT_CHECKPOINT_INTERVAL_MS:,} ms",
        doc_default=f"({DEFAULT_CHECKPOINT_INTERVAL_MS}; flink run: the cluster's)",
        low=MIN_CHECKPOINT_INTERVAL_MS,
        high=MAX_CHECKPOINT_INTERVAL_MS,
    ),
    Option(
        "flink.rest-port",
        Kind.INT,
        "Port of the local mini-cluster's Web UI and REST API; 0 = any free port (the bound address is printed)",
        default=DEFAULT_REST_PORT,
        low=0,
        high=checks.MAX_PORT,
    ),
    Option(
        "flink.conf",
        Kind.MAP,
        "Any other Flink setting (key=value, repeatable), applied over flink-conf/config.yaml, e.g. "
        "restart-strategy.type=none. Values of keys Flink deems secret (containing password, secret, token, apikey, "
        "...) and credentials inside URLs are masked in every printed config",
        default={},
        check=checks.check_flink_conf,
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
    "embedding.lanes",
    "chunking.tokens",
    "chunking.overlap",
    "chunking.text-field",
)
"""Options that mean something only when embedding is on: setting one while it is off is an error, not a no-op."""


def parser() -> Any:
    """The job's argparse parser (for ``--help``); ``jobs.config.load_job_config`` is the way to parse."""
    return build_parser(OPTIONS, PROG, DESCRIPTION, EPILOG)


def markdown() -> str:
    """The README's options table."""
    return markdown_table(OPTIONS)
