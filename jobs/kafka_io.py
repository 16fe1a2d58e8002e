"""Kafka tables of the job: the source that keeps every byte and coordinate, and raw-bytes sinks.

Why the Table API: the Python ``KafkaSource`` deserializes values only (no key, headers or offsets) and either
crashes on a tombstone (``SimpleStringSchema``) or drops it silently (``ByteArraySchema``). The SQL ``kafka``
connector with ``raw`` key and value formats plus ``METADATA`` columns gives key, value, topic, partition, offset,
headers and timestamp, and a tombstone arrives as a NULL value. ``to_data_stream`` then hands rows to Python.

Kafka headers arrive as a map: a header name repeated in one record keeps its last value (a connector limit).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from kafka_pinecone_flink.udfs.records import row_to_source_record

if TYPE_CHECKING:
    from pyflink.datastream import DataStream
    from pyflink.table import StreamTableEnvironment

StartingPosition = Literal["earliest", "latest", "committed", "timestamp"]
STARTING_POSITIONS: tuple[str, ...] = ("earliest", "latest", "committed", "timestamp")

DEFAULT_PARTITION_LAG_INTERVAL_MS = 10_000
SOURCE_COLUMNS = ("key", "value", "topic", "partition", "offset", "headers", "timestamp")
"""The columns of the source table (``source_table_ddl``), in order."""

_STARTUP_MODES = {
    "earliest": "earliest-offset",
    "latest": "latest-offset",
    "committed": "group-offsets",
    "timestamp": "timestamp",
}


@dataclass(frozen=True)
class KafkaSourceOptions:
    """Where and how the job reads Kafka.

    ``starting_position``: ``committed`` resumes from the consumer group's committed offsets (falling back to the
    earliest offset for partitions with none), ``earliest``/``latest`` ignore them, ``timestamp`` starts at
    ``starting_timestamp_ms``. A job restored from a checkpoint or savepoint always resumes from the offsets in
    its state, whatever this says. ``bounded`` stops at the offsets that are latest when the job starts.
    """

    bootstrap_servers: str
    topics: tuple[str, ...] = ()
    topic_pattern: str | None = None
    group_id: str = "kafka-pinecone-flink"
    starting_position: StartingPosition = "committed"
    starting_timestamp_ms: int | None = None
    properties: Mapping[str, str] = field(default_factory=dict)
    bounded: bool = False
    stopping_offsets: Mapping[int, int] | None = None
    """With ``bounded`` and one topic: the offset to stop at, per partition (``jobs.bounded``); else the latest."""
    lag_interval_ms: int = DEFAULT_PARTITION_LAG_INTERVAL_MS
    """How often the partition-lag operator (``partition_lag``) asks Kafka for the latest offsets; 0: no operator."""

    def __post_init__(self) -> None:
        if bool(self.topics) == bool(self.topic_pattern):
            raise ValueError("kafka: give either topics or a topic pattern (exactly one)")
        if self.starting_position not in STARTING_POSITIONS:
            raise ValueError(
                f"kafka.starting-position: {self.starting_position!r} is not one of {', '.join(STARTING_POSITIONS)}"
            )
        if (self.starting_position == "timestamp") != (self.starting_timestamp_ms is not None):
            raise ValueError("kafka.starting-timestamp-ms is required with, and only with, starting position timestamp")


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _with_clause(options: Mapping[str, str]) -> str:
    return ",\n  ".join(f"{_quote(k)} = {_quote(v)}" for k, v in options.items())


def source_table_ddl(table: str, options: KafkaSourceOptions) -> str:
    """``CREATE TABLE`` for the raw source: key and value as bytes plus every Kafka coordinate."""
    connector: dict[str, str] = {
        "connector": "kafka",
        "properties.bootstrap.servers": options.bootstrap_servers,
        "properties.group.id": options.group_id,
        "scan.startup.mode": _STARTUP_MODES[options.starting_position],
        "key.format": "raw",
        "key.fields": "key",
        "value.format": "raw",
        "value.fields-include": "EXCEPT_KEY",
    }
    if options.topics:
        connector["topic"] = ";".join(options.topics)
    else:
        connector["topic-pattern"] = str(options.topic_pattern)
    if options.starting_position == "committed":
        connector["properties.auto.offset.reset"] = "earliest"
    if options.starting_timestamp_ms is not None:
        connector["scan.startup.timestamp-millis"] = str(options.starting_timestamp_ms)
    if options.bounded and options.stopping_offsets is not None:
        connector["scan.bounded.mode"] = "specific-offsets"
        connector["scan.bounded.specific-offsets"] = ";".join(
            f"partition:{p},offset:{o}" for p, o in sorted(options.stopping_offsets.items())
        )
    elif options.bounded:
        connector["scan.bounded.mode"] = "latest-offset"
    for key, value in options.properties.items():
        connector[f"properties.{key}"] = value
    return f"""CREATE TABLE `{table}` (
  `key` BYTES,
  `value` BYTES,
  `topic` STRING METADATA VIRTUAL,
  `partition` INT METADATA VIRTUAL,
  `offset` BIGINT METADATA VIRTUAL,
  `headers` MAP<STRING, BYTES> METADATA VIRTUAL,
  `timestamp` TIMESTAMP_LTZ(3) METADATA VIRTUAL
) WITH (
  {_with_clause(connector)}
)"""


KAFKA_TRANSACTION_TIMEOUT_MS = 900_000
"""Kafka's default ``transaction.max.timeout.ms`` (15 min): above the checkpoint timeout, at most what brokers allow."""


def sink_table_ddl(
    table: str,
    bootstrap_servers: str,
    topic: str,
    properties: Mapping[str, str],
    transactional_id_prefix: str | None = None,
) -> str:
    """``CREATE TABLE`` for a raw-bytes Kafka sink that writes key, value and headers.

    Without ``transactional_id_prefix``: at-least-once (the producer is flushed on every checkpoint, so a completed
    checkpoint covers what was sent; a replay after a crash sends again). With it: exactly-once (Kafka transactions
    committed when a checkpoint completes: records appear to ``read_committed`` readers at checkpoints, and a replay
    never duplicates them). The prefix must be unique to the job writing the topic.
    """
    guarantee: dict[str, str] = {"sink.delivery-guarantee": "at-least-once"}
    if transactional_id_prefix is not None:
        guarantee = {
            "sink.delivery-guarantee": "exactly-once",
            "sink.transactional-id-prefix": transactional_id_prefix,
            "properties.transaction.timeout.ms": str(KAFKA_TRANSACTION_TIMEOUT_MS),
        }
    connector = {
        "connector": "kafka",
        "topic": topic,
        "properties.bootstrap.servers": bootstrap_servers,
        "key.format": "raw",
        "key.fields": "key",
        "value.format": "raw",
        "value.fields-include": "EXCEPT_KEY",
        **guarantee,
        **{f"properties.{k}": v for k, v in properties.items()},
    }
    return f"""CREATE TABLE `{table}` (
  `key` BYTES,
  `value` BYTES,
  `headers` MAP<STRING, BYTES> METADATA
) WITH (
  {_with_clause(connector)}
)"""


SOURCE_UID = "kafka-source"
"""The uid of the Kafka source operator (the source table's scan), whose state holds the offsets read. The Table API
gives its operators no uid, and Flink derives the id of an operator without one from its place in the graph: any
change to the job's shape (an operator added after the source, an option that adds or removes one) gave the source a
new id, and a savepoint's offsets no longer restored (``tests/integration/test_savepoint_upgrade.py``)."""
DEAD_LETTER_SINK_UID = "dead-letter-sink"
"""The uid of the dead-letter topic's Kafka sink (its writer; Flink names its committer's after it), whose state
holds the transactions of the exactly-once dead letters: fixed for the same reason as ``SOURCE_UID``."""
_SOURCE_TRANSFORMATIONS = frozenset({"SourceTransformation", "LegacySourceTransformation"})
_SINK_TRANSFORMATIONS = frozenset({"SinkTransformation", "LegacySinkTransformation"})


def table_rows(t_env: StreamTableEnvironment, table: str, uid: str = SOURCE_UID) -> DataStream:
    """The rows of source table ``table`` as a DataStream, its source operator with the uid ``uid``."""
    rows = t_env.to_data_stream(t_env.from_path(table))
    pending = [rows._j_data_stream.getTransformation()]
    sources = []
    while pending:
        transformation = pending.pop()
        if transformation.getClass().getSimpleName() in _SOURCE_TRANSFORMATIONS:
            sources.append(transformation)
        pending.extend(transformation.getInputs())
    if len(sources) != 1:
        raise RuntimeError(f"expected one source operator under table {table!r}, found {len(sources)}")
    sources[0].setUid(uid)
    return rows


def set_sink_uid(env: Any, table: str, uid: str = DEAD_LETTER_SINK_UID) -> None:
    """Give the sink of table ``table``, attached to ``env`` (a StreamExecutionEnvironment) by a statement set's
    ``attach_as_datastream``, the uid ``uid``."""
    sinks = [
        transformation
        for transformation in env._j_stream_execution_environment.getTransformations()
        if transformation.getClass().getSimpleName() in _SINK_TRANSFORMATIONS
        and transformation.getName().startswith(f"{table}[")
    ]
    if len(sinks) != 1:
        raise RuntimeError(f"expected one sink operator of table {table!r}, found {len(sinks)}")
    sinks[0].setUid(uid)


def read_source(t_env: StreamTableEnvironment, options: KafkaSourceOptions, table: str = "kafka_source") -> DataStream:
    """Register the source table and return its rows as a DataStream of :class:`SourceRecord`."""
    from pyflink.common import Types

    t_env.execute_sql(source_table_ddl(table, options))
    rows = table_rows(t_env, table)
    return rows.map(row_to_source_record, output_type=Types.PICKLED_BYTE_ARRAY()).name("Kafka records")


RAW_ROW_FIELDS = ["key", "value", "headers"]


def partition_lag(rows: DataStream, options: KafkaSourceOptions) -> DataStream:
    """``rows`` (of the source table) handed on by the JVM ``PartitionLag`` operator, which reports each partition's
    records behind its latest offset (README: Monitoring); ``rows`` itself when ``options.lag_interval_ms`` is 0.
    Kafka is asked with the source's own bootstrap servers and properties."""
    if options.lag_interval_ms == 0:
        return rows
    from pyflink.datastream import DataStream
    from pyflink.java_gateway import get_gateway

    gateway = get_gateway()
    j_rows = rows._j_data_stream
    operator = gateway.jvm.io.github.kpf.lag.PartitionLag.withAdmin(
        SOURCE_COLUMNS.index("topic"),
        SOURCE_COLUMNS.index("partition"),
        SOURCE_COLUMNS.index("offset"),
        options.lag_interval_ms,
        _java_properties(gateway, options),
    )
    return DataStream(j_rows.transform("Partition lag", j_rows.getType(), operator)).uid("partition-lag")


def refetch_values(dead_letters: DataStream, options: KafkaSourceOptions) -> DataStream:
    """``dead_letters`` (raw rows) with the Kafka value put back where the JVM decode path left it out of the change
    (``io.github.kpf.decode.ValueRefetch``): read at the record's coordinates, with the source's own bootstrap servers
    and properties."""
    from pyflink.datastream import DataStream
    from pyflink.java_gateway import get_gateway

    gateway = get_gateway()
    package = gateway.jvm.io.github.kpf.decode
    function = package.ValueRefetch(_java_properties(gateway, options))
    return DataStream(package.ValueRefetch.apply(dead_letters._j_data_stream, function))


def _java_properties(gateway: Any, options: KafkaSourceOptions) -> Any:
    """The source's Kafka client properties, bootstrap servers included, as ``java.util.Properties``."""
    properties = gateway.jvm.java.util.Properties()
    for key, value in options.properties.items():
        properties.setProperty(key, value)
    properties.setProperty("bootstrap.servers", options.bootstrap_servers)
    return properties


def raw_row_type() -> Any:
    """The Flink row type of a raw-bytes Kafka sink row (key, value, headers)."""
    from pyflink.common import Types

    return Types.ROW_NAMED(
        RAW_ROW_FIELDS,
        [
            Types.PRIMITIVE_ARRAY(Types.BYTE()),
            Types.PRIMITIVE_ARRAY(Types.BYTE()),
            Types.MAP(Types.STRING(), Types.PRIMITIVE_ARRAY(Types.BYTE())),
        ],
    )


def raw_row(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes | None]]) -> Any:
    """A row for :func:`raw_row_type` (later headers of the same name win)."""
    from pyflink.common import Row

    return Row(key, value, {name: value for name, value in headers})


def write_raw(
    t_env: StreamTableEnvironment,
    rows: DataStream,
    bootstrap_servers: str,
    topic: str,
    properties: Mapping[str, str],
    table: str,
    transactional_id_prefix: str | None = None,
) -> Any:
    """Register a raw Kafka sink table and return the insert (to add to the job's statement set)."""
    t_env.execute_sql(sink_table_ddl(table, bootstrap_servers, topic, properties, transactional_id_prefix))
    return t_env.from_data_stream(rows), table


_SHARED_PROPERTIES = frozenset(
    {
        "security.protocol",
        "sasl.mechanism",
        "sasl.kerberos.service.name",
        "ssl.endpoint.identification.algorithm",
        "ssl.key.password",
        "ssl.keystore.location",
        "ssl.keystore.password",
        "client.id",
        "client.dns.lookup",
    }
)
"""Kafka client properties with the same name and meaning in the Java client and in librdkafka."""

_JAAS_CREDENTIALS = re.compile(r"""(username|password)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|([^\s;]+))""")


def librdkafka_config(bootstrap_servers: str, properties: Mapping[str, str]) -> dict[str, str]:
    """A librdkafka (``confluent_kafka``) configuration for the brokers and the security settings of the job's (Java)
    Kafka properties: the ones both clients understand, and the user name and password of a PLAIN or SCRAM
    ``sasl.jaas.config``; Java-only settings (JKS stores, other login modules) cannot carry over. Used by the
    driver's own Kafka clients (the dead-letter topic check, the end of a resumed bounded run)."""
    config = {"bootstrap.servers": bootstrap_servers}
    for key, value in properties.items():
        if key in _SHARED_PROPERTIES:
            config[key] = value
    jaas = properties.get("sasl.jaas.config", "")
    if "PlainLoginModule" in jaas or "ScramLoginModule" in jaas:
        for match in _JAAS_CREDENTIALS.finditer(jaas):
            text = next(group for group in match.groups()[1:] if group is not None)
            config[f"sasl.{match.group(1)}"] = text.replace('\\"', '"')
    return config
