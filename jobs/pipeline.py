"""The ingest pipeline's graph, wired from the stages' own functions:

    Kafka ─► Decode JVM ─┬─ (a direct call) ─────────────────────► Decode order ─► key_by(namespace, id) ─► Dedup
                         └─► Batch ─► Decode ─► Decode results ──┘                              (JVM state)
                               (Python, groups)
    └──────────────── one task: the source's, chained ─────────────────────┘
    ─► Batch ─► Embed (if configured) ─► Pinecone sink ─► Pinecone sink results
                (Python, groups)         (Python, groups)

    Decode results ─────────────────────────────────────────┬─► dead letters ─► dead-letter topic (exactly once)
    Pinecone sink results ─► Dead-letter values (with JVM decode)┘

Right after the source, the JVM ``PartitionLag`` operator (chained, rows pass unchanged) reports each partition's
records behind its latest offset, and the JVM decode path (``decode_stage``, option ``decode.jvm``) takes the records it
can decode exactly as Python would and hands the rest to the Python decode stage. Nothing here decides anything about
records; it only connects stages, names operators for the Web UI and sets each operator's types. Everything up to
``Decode order`` runs chained in the source's task, and the JVM decode stage hands its changes to ``Decode order``
(``io.github.kpf.decode.SequencedMerge``) by a direct call rather than through a network exchange of their own. At
parallelism 1 the dedup is keyed in place instead of through the keyed exchange (``dedup_in_source_task``), and the
whole pipeline up to the dead letters runs in the source's task. Python
never handles a record on its own: the JVM ``Batcher`` operators hand each Python stage lists of records (flushed before
every checkpoint barrier, at end of input, and after a short linger), and the JVM ``BatchResults`` operators unpack what
the Python stage made of a group (``udfs.stage_batch``). The keyed dedup runs in the JVM on records, between the two
groupings, so its per-id order, fencing and state are those of a record-level operator. With the model, the batcher
before it also hands on markers, on which the embed stage hands on every group it is still embedding
(``udfs.batching.GroupsAhead``): its call on a group returns at once, so the next group reaches it while the model
works.

A change the JVM decode path makes carries its Kafka record without the value (``FastDecoder.withValueRefetch``),
which is most of a record of pre-computed vectors: it would cross two exchanges, the dedup and the Python sink only to
be dropped there, and carrying it cost (a) about 40 CPU-microseconds per record (BENCHMARKS.md). The sink's dead
letters, the only place after decode that needs it, get it back from Kafka by their coordinates (``Dead-letter
values``, ``io.github.kpf.decode.ValueRefetch``).

What PyFlink forces: a Python stage's output is one type, so each stage returns one result row per group (records,
dead letters, counts) and the JVM splits it; the embed stage hands the sink Python objects (pickled), and the sink
hands back only dead letters and counts.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kafka_pinecone_flink.jobs.kafka_io import (
    SOURCE_COLUMNS,
    KafkaSourceOptions,
    partition_lag,
    raw_row_type,
    refetch_values,
    set_sink_uid,
    source_table_ddl,
    table_rows,
    write_raw,
)
from kafka_pinecone_flink.sinks.config import PineconeSinkConfig
from kafka_pinecone_flink.udfs.errors import RecordError
from kafka_pinecone_flink.udfs.route_config import RouteConfig
from kafka_pinecone_flink.udfs.stage_batch import DEFAULT_LINGER_MS, DEFAULT_MAX_BYTES, DEFAULT_MAX_RECORDS

SOURCE_TABLE = "kafka_source"
DEAD_LETTER_TABLE = "dead_letters"
EMBED_CAPACITY = 16
"""Groups in flight in the embed stage (it emits in order). At low load a group holds a few records: with room for
only one or two, each small group became a model call of its own and text freshness p99 rose from 2.5 to 5.4 s
(`make bench`, (b) in the mini-cluster); with room for several, their texts share the model's next pool."""
SINK_CAPACITY = 4
"""Groups in flight in the sink: the writer keeps the writes of each lane in order across them."""


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
    batch_max_records: int = DEFAULT_MAX_RECORDS
    """Records per group handed to a Python stage."""
    batch_max_bytes: int = DEFAULT_MAX_BYTES
    """Estimated bytes per group handed to a Python stage (a larger record is a group of its own)."""
    batch_linger_ms: int = DEFAULT_LINGER_MS
    """Longest wait of a partial group before decode (the group before the sink waits at most ``sink.linger_ms``)."""
    jvm_decode: bool = True
    """Let the JVM decode path take the records it can (``jvm_decode_topics``); False: Python decodes every record."""
    dedup_in_source_task: bool = True
    """Key the dedup in place, in the source's task, when the job allows it (``dedup_in_source_task``); False: always
    through the keyed exchange."""


def jvm_decode_topics(
    spec: PipelineSpec, unaligned_checkpoints: bool = False, chaining: bool = True
) -> tuple[str, ...]:
    """The topics whose records the JVM decode stage (``io.github.kpf.decode``) may take: none when it is switched
    off, or when the configuration needs what only the Python decoder does (random ids, chosen metadata fields, a
    topic pattern), with unaligned checkpoints (the stage was built for aligned barriers), or with operator chaining
    off (``SequencedMerge`` must run in the JVM decode stage's task); else every configured topic that routes to a
    namespace."""
    route = spec.route
    if (
        not spec.jvm_decode
        or unaligned_checkpoints
        or not chaining
        or route.id_strategy not in ("kafka", "field")
        or route.metadata_fields is not None
        or not spec.source.topics
    ):
        return ()
    topics = []
    for topic in spec.source.topics:
        try:
            route.namespace_for(topic)
        except RecordError:
            continue
        topics.append(topic)
    return tuple(topics)


def dedup_in_source_task(spec: PipelineSpec, env: Any) -> bool:
    """Whether the dedup runs keyed in place, in the source's task (``dedup.in-source-task``), rather than behind a
    keyed exchange: when the option is on, the job's parallelism is 1 and nothing rescales the job while it runs (not
    with the adaptive scheduler: ``DedupFunction.canRunInInputTask``). Saves (a) a serialization, an exchange and a
    task hand-over per record (BENCHMARKS.md); the state is the same in both shapes."""
    from pyflink.java_gateway import get_gateway

    if not spec.dedup_in_source_task:
        return False
    dedup = get_gateway().jvm.io.github.kpf.dedup
    return bool(dedup.DedupFunction.canRunInInputTask(env._j_stream_execution_environment))


def build(env: Any, t_env: Any, spec: PipelineSpec) -> None:
    """Add the ingest pipeline to ``env`` (a StreamExecutionEnvironment) and its table environment."""
    from pyflink.common import Time, Types
    from pyflink.datastream import AsyncDataStream

    from kafka_pinecone_flink.sinks import pinecone_sink
    from kafka_pinecone_flink.sinks.pinecone_sink import PineconeSinkFunction
    from kafka_pinecone_flink.udfs.decode_function import DecodeFunction
    from kafka_pinecone_flink.udfs.dedup import applied_groups, keyed_dedup
    from kafka_pinecone_flink.udfs.stage_batch import batch_results, batched, result_type

    t_env.execute_sql(source_table_ddl(SOURCE_TABLE, spec.source))
    rows = partition_lag(table_rows(t_env, SOURCE_TABLE), spec.source)

    jvm_topics = jvm_decode_topics(
        spec,
        env.get_checkpoint_config().is_unaligned_checkpoints_enabled(),
        env.is_chaining_enabled(),
    )
    decode = DecodeFunction(
        spec.route,
        spec.error_tolerance,
        spec.secrets,
        spec.dead_letter_max_bytes,
        topics=spec.source.topics,
        sequenced=bool(jvm_topics),
    )
    changes, decode_dead_letters = decode_stage(
        rows,
        spec.route,
        decode,
        jvm_topics,
        spec.batch_max_records,
        spec.batch_max_bytes,
        spec.batch_linger_ms,
        refetch_up_to=spec.dead_letter_max_bytes or 0,
    )
    deduped = keyed_dedup(changes, spec.state_ttl_ms, in_source_task=dedup_in_source_task(spec, env))
    deduped.name("Dedup").uid("dedup")
    # With the model, the group before it comes with markers: the embed stage works on a group after its call has
    # returned (udfs.batching.GroupsAhead) and hands on every result on a marker.
    to_sink = batched(
        deduped,
        spec.batch_max_records,
        spec.batch_max_bytes,
        spec.sink.linger_ms,
        "Batch for sink",
        marker_idle_ms=spec.sink.linger_ms if spec.embed is not None else None,
    )
    to_sink.uid("batch-sink")
    # Each group crosses to Python as one pickle of its changes (one pickle.loads, not a row and a pickle per change).
    to_sink = applied_groups(to_sink).name("Groups for Python").uid("applied-groups")
    if spec.embed is not None:
        from kafka_pinecone_flink.udfs.embed import EmbedFunction

        to_sink = AsyncDataStream.ordered_wait(
            to_sink,
            EmbedFunction(spec.embed, ahead_from=spec.batch_max_records),
            Time.milliseconds(0),
            capacity=EMBED_CAPACITY,
            output_type=Types.PICKLED_BYTE_ARRAY(),
        )
        to_sink.name("Embed").uid("embed-groups")
    sink = PineconeSinkFunction(spec.sink, spec.secrets, spec.dead_letter_max_bytes)
    sink_out = AsyncDataStream.unordered_wait(
        to_sink, sink, Time.milliseconds(0), capacity=SINK_CAPACITY, output_type=result_type(raw_row_type())
    )
    sink_out.name("Pinecone sink").uid("pinecone-sink-groups")
    sink_results, sink_dead_letters = batch_results(sink_out, "sink", raw_row_type(), pinecone_sink.COUNTS)
    sink_results.name("Pinecone sink results").uid("pinecone-sink-results")
    if jvm_topics:
        # The JVM decode path leaves each record's value out of its change; a dead letter after decode gets it back.
        sink_dead_letters = refetch_values(sink_dead_letters, spec.source)
        sink_dead_letters.name("Dead-letter values").uid("dead-letter-values")

    # Exactly-once: a replay after a crash must not dead-letter the same record twice (found by the chaos harness:
    # at-least-once resent every bad record between the restored checkpoint and the crash).
    table, name = write_raw(
        t_env,
        decode_dead_letters.union(sink_dead_letters),
        spec.source.bootstrap_servers,
        spec.dead_letter_topic,
        spec.kafka_properties,
        DEAD_LETTER_TABLE,
        transactional_id_prefix=f"kpf-dlq-{spec.source.group_id}",
    )
    statements = t_env.create_statement_set()
    statements.add_insert(name, table)
    statements.attach_as_datastream()
    set_sink_uid(env, DEAD_LETTER_TABLE)


def decode_stage(
    rows: Any,
    route: RouteConfig,
    decode: Any,
    jvm_topics: Sequence[str],
    max_records: int,
    max_bytes: int,
    linger_ms: int,
    refetch_up_to: int | None = None,
) -> tuple[Any, Any]:
    """The decode stage on the source ``rows``: its changes (``dedup.input`` rows, in their records' order) and its
    dead letters. The JVM decode stage takes what it can of ``jvm_topics``' records (none: Python decodes every
    record); ``decode`` (a ``udfs.decode_function.DecodeFunction``, ``sequenced`` when ``jvm_topics``) decodes the
    rest in groups of ``max_records`` / ``max_bytes`` / ``linger_ms``. ``refetch_up_to``: the JVM decode path leaves
    the value out of the change of a record whose dead letter would fit in that many bytes (0: any record), and the
    dead letters after decode must then go through ``kafka_io.refetch_values``; None: every change keeps its value."""
    from kafka_pinecone_flink.udfs import decode_function
    from kafka_pinecone_flink.udfs.dedup import input_type
    from kafka_pinecone_flink.udfs.stage_batch import batch_results, batched, result_type

    merge_token = None
    if jvm_topics:
        labels = [decode.namespace_label(t) for t in jvm_topics]
        merge_token, rows = _jvm_decode(rows, route, jvm_topics, labels, refetch_up_to)
    groups = batched(rows, max_records, max_bytes, linger_ms, "Batch for decode")
    groups.uid("batch-decode")
    decoded = groups.map(decode, output_type=result_type(input_type())).name("Decode").uid("decode")
    changes, dead_letters = batch_results(
        decoded, "decode", input_type(), decode.declared_counts(), per_namespace=decode_function.PER_NAMESPACE
    )
    changes.name("Decode results").uid("decode-results")
    if merge_token is not None:
        changes = _in_order(merge_token, changes)
    return changes, dead_letters


def fast_decoder(gateway: Any, route: RouteConfig, topics: Sequence[str], labels: Sequence[str]) -> Any:
    """The JVM decoder (``io.github.kpf.decode.FastDecoder``) for ``route``, taking the records of ``topics``, whose
    vector counts it labels ``labels`` (``DecodeFunction.namespace_label``), in the JVM of ``gateway``."""
    from kafka_pinecone_flink.udfs.stage_batch import java_strings

    return gateway.jvm.io.github.kpf.decode.FastDecoder(
        java_strings(gateway, topics),
        java_strings(gateway, [route.namespace_for(topic) for topic in topics]),
        java_strings(gateway, labels),
        route.id_strategy,
        route.id_format,
        route.id_field,
        route.vector_field,
        route.sparse_field,
        route.dimension,
        route.metric,
        route.version_field,
        route.max_metadata_bytes,
    )


def _jvm_decode(
    rows: Any, route: RouteConfig, topics: Sequence[str], labels: Sequence[str], refetch_up_to: int | None
) -> tuple[str, Any]:
    """The JVM decode stage on the source ``rows``: the token of the merge that takes its changes (with markers of the
    records it left to Python; ``_in_order``) and the rows it left to Python (the source columns and ``seq``);
    ``refetch_up_to`` as for ``decode_stage``."""
    from pyflink.datastream import DataStream
    from pyflink.java_gateway import get_gateway

    from kafka_pinecone_flink.udfs.stage_batch import java_strings

    gateway = get_gateway()
    package = gateway.jvm.io.github.kpf.decode
    decoder = fast_decoder(gateway, route, topics, labels)
    if refetch_up_to is not None:
        decoder = decoder.withValueRefetch(refetch_up_to)
    token = uuid.uuid4().hex
    function = package.FastDecodeFunction(decoder, java_strings(gateway, SOURCE_COLUMNS), token)
    j_changes = package.FastDecodeFunction.apply(rows._j_data_stream, function)
    DataStream(j_changes).name("Decode JVM").uid("decode-jvm")
    to_python = DataStream(j_changes.getSideOutput(function.toPython()))
    return token, to_python


def _in_order(merge_token: str, python_changes: Any) -> Any:
    """The changes of both decoders in their records' order: ``io.github.kpf.decode.SequencedMerge``, chained after
    the Python decode stage's ``python_changes``, where the JVM decode stage made with ``merge_token`` in the same task
    hands it its changes directly."""
    from pyflink.datastream import DataStream
    from pyflink.java_gateway import get_gateway

    package = get_gateway().jvm.io.github.kpf.decode
    merged = package.SequencedMerge.apply(python_changes._j_data_stream, merge_token)
    return DataStream(merged).name("Decode order").uid("decode-order")
