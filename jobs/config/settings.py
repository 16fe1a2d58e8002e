"""The loaded configuration of the ingest job: what each stage gets, every value stored once. Immutable; ``repr`` masks
every secret."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from kafka_pinecone_flink.jobs.kafka_io import KafkaSourceOptions
from kafka_pinecone_flink.jobs.masking import mask_urls, url_secrets
from kafka_pinecone_flink.jobs.options import JobConfigError, MaskedMapping, show
from kafka_pinecone_flink.sinks.config import PineconeSinkConfig
from kafka_pinecone_flink.udfs.embed import EmbedConfig
from kafka_pinecone_flink.udfs.route_config import RouteConfig, RouteConfigError
from kafka_pinecone_flink.udfs.stage_batch import DEFAULT_LINGER_MS as DEFAULT_BATCH_LINGER_MS
from kafka_pinecone_flink.udfs.stage_batch import DEFAULT_MAX_BYTES as DEFAULT_BATCH_MAX_BYTES
from kafka_pinecone_flink.udfs.stage_batch import DEFAULT_MAX_RECORDS as DEFAULT_BATCH_MAX_RECORDS

INDEX_PROPERTIES = {"dimension": "the index's dimension", "metric": "the index's metric"}
"""The ``RouteConfig`` fields that are not options but read from the index at start, as messages name them."""
BUNDLE_SIZE_KEY = "python.fn-execution.bundle.size"
EMBED_BUNDLE_SIZE = 1
"""Python bundle size (groups) of a job that embeds. Flink hands a Python stage its input only when a bundle ends,
and a bundle end waits for the model to finish every text the bundle brought, so with bundles of several groups a
text waited for the bundle to fill or time out (flink-conf: 16 groups or 200 ms), then for the whole bundle's model
work: at half load the texts came in lumps of ~1 s and freshness p99 was 2.4-4.0 s. With one group per bundle a
group reaches the model as soon as the JVM Batcher hands it on, and the next group gathers what arrived meanwhile,
as a consumer loop would: p99 0.6-0.8 s (`benchmarks/compare.py`, (b) and (c), BENCHMARKS.md). Alone, this cost
catch-up speed: a bundle no longer overlapped one group's writes with the next group's model work, and (c) from a
backlog ran ~25% fewer records/s in the mini-cluster. The embed stage now works on a group after its call has returned
(``udfs.batching.GroupsAhead``, with markers from the JVM ``Batcher``), which won that back (BENCHMARKS.md, "The embed
stage works ahead"). A job without the model keeps flink-conf's 16: one group per bundle cost (a) 24% of its
records/s."""
CHECKPOINT_INTERVAL_KEY = "execution.checkpointing.interval"


@dataclass(frozen=True)
class RouteSettings:
    """Everything ``RouteConfig`` needs except the index's dimension and metric (read from the index at start).

    Its values passed the options' checks and rules when the ``JobConfig`` was loaded, which cover every rule of
    ``RouteConfig`` that an option can break."""

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
    chunk_tokens: int = 0
    chunk_overlap: int = 0
    chunk_text_field: str | None = None
    chunk_model: str = "default"
    """Not an option of its own: the embedding model, whose tokenizer counts the chunks' word pieces."""


@dataclass(frozen=True)
class DedupSettings:
    """Dedup's settings (the version it compares is extracted by decode: ``RouteSettings.version_field``)."""

    state_ttl_ms: int
    """0 = keep forever."""
    in_source_task: bool = True
    """``dedup.in-source-task``: at parallelism 1, key the dedup in place, in the source's task."""


@dataclass(frozen=True)
class BatchSettings:
    """The groups the JVM ``Batcher`` hands to the Python stages (``udfs.stage_batch``)."""

    max_records: int = DEFAULT_BATCH_MAX_RECORDS
    max_bytes: int = DEFAULT_BATCH_MAX_BYTES
    linger_ms: int = DEFAULT_BATCH_LINGER_MS
    """Of the group before decode; the group before the sink lingers ``sink.linger-ms``."""
    jvm_decode: bool = True
    """``decode.jvm``: the JVM decode path (``io.github.kpf.decode``) takes the records it can decode."""


@dataclass(frozen=True)
class FlinkSettings:
    parallelism: int | None
    """None: not given; the configuration's ``parallelism.default`` applies (flink-conf's 1 in a local run; under
    ``flink run``, its ``-p`` or the cluster's)."""
    checkpoint_interval_ms: int | None
    """None: not given; the configuration's ``execution.checkpointing.interval`` applies (a cluster's, under ``flink
    run``), or ``DEFAULT_CHECKPOINT_INTERVAL_MS`` where it sets none (``jobs.flink_env.create_session``)."""
    rest_port: int
    """0 = any free port."""
    run_dir: Path
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
    dead_letter_topic: str
    flink: FlinkSettings
    api_key_env: str
    batch: BatchSettings = BatchSettings()

    @property
    def errors_tolerance(self) -> str:
        """``errors.tolerance`` (kept by the sink's config, which applies it too)."""
        return self.sink.error_tolerance

    def route_config(self, dimension: int, metric: str) -> RouteConfig:
        """The decode/route stage's config for an index of ``dimension`` and ``metric``; ``JobConfigError`` if the
        index's dimension or metric is not one RouteConfig accepts (the options themselves were validated at load)."""
        try:
            return RouteConfig(dimension=dimension, metric=metric, **vars(self.route))
        except RouteConfigError as exc:
            what = INDEX_PROPERTIES.get(exc.option)
            if what is None:  # every other field is an option, checked when the config was loaded
                raise
            raise JobConfigError(f"{what}: {show(exc.value)} is not allowed; allowed: {exc.allowed}") from exc

    def flink_overrides(self) -> dict[str, str]:
        """Flat Flink settings for ``jobs.flink_env.create_session``: ``flink.conf`` plus the port (0 lets Flink pick
        a free port) and the checkpoint interval when given, and, for a job that embeds, Python bundles of one group
        (``EMBED_BUNDLE_SIZE``) unless ``flink.conf`` sets the bundle size itself."""
        bundle = {BUNDLE_SIZE_KEY: str(EMBED_BUNDLE_SIZE)} if self.embed is not None else {}
        interval = self.flink.checkpoint_interval_ms
        given = {} if interval is None else {CHECKPOINT_INTERVAL_KEY: f"{interval}ms"}
        return {**bundle, **self.flink.conf, "rest.port": str(self.flink.rest_port), **given}

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
