"""The ingest pipeline's graph, wired from the stages' own functions:

    Kafka ─► Decode ─► key_by(namespace, id) ─► Dedup ─► Embed (if configured) ─► Pinecone sink
               │                                           │                         │
               └──────────── dead letters ─────────────────┴─────────────────────────┴──► dead-letter topic

Nothing here decides anything about records; it only connects stages, names operators for the Web UI and sets
each operator's types. Decode hands rows to the JVM dedup operator (``udfs.dedup.input_type``), which hands rows of
(pickled change, replaces) on; every other Python operator's output is a pickled ``Change`` or ``DeadLetter``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobs.kafka_io import KafkaSourceOptions, raw_row, raw_row_type, source_table_ddl, write_raw
from sinks.config import PineconeSinkConfig
from sinks.dead_letter import to_kafka
from udfs.records import DeadLetter
from udfs.route_config import RouteConfig

SOURCE_TABLE = "kafka_source"
DEAD_LETTER_TABLE = "dead_letters"
EMBED_MIN_CAPACITY = 1000
"""Records in flight in the embed stage, at least: one bundle (python.fn-execution.bundle.size). The stage emits in
order, so a record waits for every earlier one; with less room than a bundle, the records behind the pool the model
encodes could not enter, the next pool could not fill, and the model would encode a text alone after every pool
(measured on the change stream, where one record in five needs the model: 203 rec/s with 512, 251 with pools of 1)."""
SINK_MIN_CAPACITY = 1000


@dataclass(frozen=True)
class PipelineSpec:
    """Everything the graph needs, already validated."""

    source: KafkaSourceOptions
    route: RouteConfig
    sink: PineconeSinkConfig
    embed: Any  # udfs.embed.EmbedConfig | None
    state_ttl_ms: int
    """Dedup state expiry after the last write; 0 = never."""
    error_tolerance: str
    dead_letter_topic: str
    kafka_properties: Mapping[str, str]
    secrets: tuple[str, ...] = ()
    """Values to scrub from dead-letter messages (the API key, secret Kafka properties)."""
    dead_letter_max_bytes: int | None = None
    """Largest dead letter the dead-letter topic accepts (``sinks.dead_letter.record_size``); larger ones are
    truncated. None: never truncate."""


class _DeadLetterRows:
    """Map function: ``DeadLetter`` → raw Kafka row. A class so that the secrets to scrub travel pickled, not global."""

    def __init__(self, secrets: tuple[str, ...], max_bytes: int | None = None) -> None:
        self._secrets = secrets
        self._max_bytes = max_bytes

    def __call__(self, dead_letter: DeadLetter) -> Any:
        key, value, headers = to_kafka(dead_letter, secrets=self._secrets, max_bytes=self._max_bytes)
        return raw_row(key, value, list(headers))


def build(env: Any, t_env: Any, spec: PipelineSpec) -> None:
    """Add the ingest pipeline to ``env`` (a StreamExecutionEnvironment) and its table environment."""
    from pyflink.common import Time, Types
    from pyflink.datastream import AsyncDataStream

    from sinks.pinecone_sink import PineconeSinkFunction
    from udfs.decode_function import DEAD_LETTERS, DecodeFunction
    from udfs.dedup import input_type, keyed_dedup

    pickled = Types.PICKLED_BYTE_ARRAY()
    t_env.execute_sql(source_table_ddl(SOURCE_TABLE, spec.source))
    rows = t_env.to_data_stream(t_env.from_path(SOURCE_TABLE))

    decoded = rows.process(DecodeFunction(spec.route, spec.error_tolerance), output_type=input_type()).name("Decode")
    decoded.uid("decode")
    deduped = keyed_dedup(decoded, spec.state_ttl_ms).name("Dedup").uid("dedup")
    to_sink = deduped
    if spec.embed is not None:
        from udfs.embed import EmbedFunction

        to_sink = AsyncDataStream.ordered_wait(
            deduped,
            EmbedFunction(spec.embed),
            Time.milliseconds(0),
            capacity=max(EMBED_MIN_CAPACITY, 2 * spec.embed.batch_size * spec.embed.pool_batches),
            output_type=pickled,
        )
        to_sink.name("Embed").uid("embed")
    sink_out = AsyncDataStream.unordered_wait(
        to_sink,
        PineconeSinkFunction(spec.sink),
        Time.milliseconds(0),
        capacity=max(SINK_MIN_CAPACITY, spec.sink.batch_size * 4),
        output_type=pickled,
    )
    sink_out.name("Pinecone sink").uid("pinecone-sink")

    dead_letters = decoded.get_side_output(DEAD_LETTERS).union(sink_out)
    dlq_rows = dead_letters.map(
        _DeadLetterRows(spec.secrets, spec.dead_letter_max_bytes), output_type=raw_row_type()
    ).name("Dead-letter records")
    # Exactly-once: a replay after a crash must not dead-letter the same record twice (found by the chaos harness:
    # at-least-once resent every bad record between the restored checkpoint and the crash).
    table, name = write_raw(
        t_env,
        dlq_rows,
        spec.source.bootstrap_servers,
        spec.dead_letter_topic,
        spec.kafka_properties,
        DEAD_LETTER_TABLE,
        transactional_id_prefix=f"kpf-dlq-{spec.source.group_id}",
    )
    statements = t_env.create_statement_set()
    statements.add_insert(name, table)
    statements.attach_as_datastream()
