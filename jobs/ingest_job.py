"""The ingest job: keeps a Pinecone index in step with Kafka topics (see README.md for every option and policy).

    python -m jobs.ingest_job --kafka.topics=products --pinecone.index=products [options]

Before anything is submitted, the configuration is validated and the index is described once: a missing index,
rejected credentials, an embedding model whose dimension differs from the index's, or (with
``schema.evolution=none``) a missing namespace stop the job here with a message naming the cause. Exit codes:
0 done (a bounded run drained its input), 1 the job or a start-up check failed, 2 bad configuration.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from kafka_pinecone_flink.jobs.bounded import BoundedRun
from kafka_pinecone_flink.jobs.config import JobConfig, JobConfigError, load_job_config
from kafka_pinecone_flink.jobs.config.table import DEFAULT_CHECKPOINT_INTERVAL_MS
from kafka_pinecone_flink.jobs.dead_letter_topic import DeadLetterTarget, DeadLetterTopicError, check_dead_letter_topic
from kafka_pinecone_flink.jobs.flink_env import create_session, under_flink_run
from kafka_pinecone_flink.jobs.job_run import run_to_end, withhold_secrets_from_workers
from kafka_pinecone_flink.jobs.kafka_io import KafkaSourceOptions
from kafka_pinecone_flink.jobs.pipeline import PipelineSpec, build
from kafka_pinecone_flink.sinks.client import IndexInfo, open_index
from kafka_pinecone_flink.sinks.dead_letter import KAFKA_DEFAULT_MAX_MESSAGE_BYTES, scrub
from kafka_pinecone_flink.sinks.retry import SinkFatalError, SinkUnavailableError
from kafka_pinecone_flink.sinks.writer import PineconeWriter
from kafka_pinecone_flink.udfs.route_config import RouteConfig

JOB_NAME = "kafka-pinecone-ingest"


class StartupError(RuntimeError):
    """A check before submission failed; the message says what to fix."""


def embedding_dimension(model_dir: Path) -> int | None:
    """The output dimension a sentence-transformers model directory declares, read from its module configs (no
    model load): the last Dense layer's ``out_features``, else the Pooling layer's ``word_embedding_dimension``."""
    try:
        modules = json.loads((model_dir / "modules.json").read_text())
    except (OSError, ValueError):
        return None
    dimension: int | None = None
    for module in modules:
        try:
            config = json.loads((model_dir / module.get("path", "") / "config.json").read_text())
        except (OSError, ValueError):
            continue
        if "out_features" in config:
            dimension = int(config["out_features"])
        elif "word_embedding_dimension" in config:
            dimension = int(config["word_embedding_dimension"])
    return dimension


async def _check_index(config: JobConfig, known_namespaces: list[str]) -> IndexInfo:
    client = await open_index(config.sink)
    try:
        if known_namespaces:
            await PineconeWriter(client, config.sink).require_namespaces(known_namespaces)
        return client.info
    finally:
        await client.close()


def startup_checks(config: JobConfig) -> RouteConfig:
    """Describe the index, build the routing with its dimension and metric, and check what can be checked."""
    topics = list(config.kafka.topics)
    probe = config.route_config(1, "dotproduct")  # namespaces do not depend on the dimension
    namespaces = sorted({probe.namespace_for(topic) for topic in topics}) if topics else []
    try:
        info = asyncio.run(_check_index(config, namespaces))
    except (SinkFatalError, SinkUnavailableError) as exc:
        raise StartupError(str(exc)) from None
    if info.dimension is None or info.metric is None:
        raise StartupError(f"Pinecone index {info.name!r} is not a dense index (no dimension and metric)")
    if config.embed is not None:
        from kafka_pinecone_flink.udfs.embed_model import ModelNotFoundError, resolve_model_path

        try:
            model_path = resolve_model_path(config.embed.model)
        except ModelNotFoundError as exc:
            if not under_flink_run():
                raise StartupError(str(exc)) from None
            # Submitted to a cluster: the model directory may exist on the TaskManagers only. Each embed task
            # checks again when it opens (and fails naming the path), so the submission goes on.
            print(f"warning: {exc}; not checked here, the TaskManagers load it", file=sys.stderr)
            return config.route_config(info.dimension, info.metric)
        model_dimension = embedding_dimension(model_path)
        if model_dimension is not None and model_dimension != info.dimension:
            raise StartupError(
                f"--embedding.model produces {model_dimension}-dimensional vectors but index {info.name!r} has "
                f"dimension {info.dimension}"
            )
    return config.route_config(info.dimension, info.metric)


def main(argv: list[str] | None = None) -> int:
    try:
        config = load_job_config(sys.argv[1:] if argv is None else argv, os.environ)
    except JobConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        route = startup_checks(config)
        dead_letters = dead_letter_checks(config)
    except (StartupError, DeadLetterTopicError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    withhold_secrets_from_workers(config.secrets())
    flink = config.flink
    # A bounded run's end when resumed from a checkpoint is the driver's to decide (issue 15, jobs/bounded.py).
    bounded = None
    if config.kafka.bounded and not under_flink_run():
        bounded = BoundedRun.prepare(config.kafka, config.flink_overrides(), Path(flink.run_dir))
    session = create_session(
        config.flink_overrides(),
        run_dir=Path(flink.run_dir),
        parallelism=flink.parallelism,
        checkpoint_interval_ms=DEFAULT_CHECKPOINT_INTERVAL_MS,
    )
    spec = pipeline_spec(config, route, dead_letters, None if bounded is None else bounded.source_options())
    build(session.env, session.t_env, spec)
    if session.web_ui:
        print(f"Flink Web UI: {session.web_ui}", flush=True)
    wait = None if bounded is None else bounded.wait
    return run_to_end(session, JOB_NAME, config.secrets(), local=not under_flink_run(), wait=wait)


def pipeline_spec(
    config: JobConfig, route: RouteConfig, dead_letters: DeadLetterTarget, source: KafkaSourceOptions | None = None
) -> PipelineSpec:
    """What ``jobs.pipeline.build`` needs, from the job's ``config``, the ``route`` of the index it writes
    (``startup_checks``) and its ``dead_letters`` target (``dead_letter_checks``); ``source``: the Kafka source's
    options when not ``config.kafka`` (a bounded run's, ``BoundedRun.source_options``)."""
    return PipelineSpec(
        source=config.kafka if source is None else source,
        route=route,
        sink=config.sink,
        embed=config.embed,
        state_ttl_ms=config.dedup.state_ttl_ms,
        error_tolerance=config.errors_tolerance,
        dead_letter_topic=config.dead_letter_topic,
        kafka_properties=dead_letters.producer_properties(config.kafka.properties),
        secrets=config.secrets(),
        dead_letter_max_bytes=dead_letters.record_max_bytes(config.kafka.properties),
        batch_max_records=config.batch.max_records,
        batch_max_bytes=config.batch.max_bytes,
        batch_linger_ms=config.batch.linger_ms,
        jvm_decode=config.batch.jvm_decode,
        dedup_in_source_task=config.dedup.in_source_task,
    )


def dead_letter_checks(config: JobConfig) -> DeadLetterTarget:
    """With errors.tolerance=all: the dead-letter topic must exist; its size limit sizes the dead letters."""
    if config.errors_tolerance != "all":
        return DeadLetterTarget(KAFKA_DEFAULT_MAX_MESSAGE_BYTES)
    target = check_dead_letter_topic(config.kafka.bootstrap_servers, config.dead_letter_topic, config.kafka.properties)
    if target.warning:
        print(f"warning: {scrub(target.warning, config.secrets())}; assuming it exists", file=sys.stderr)
    return target


if __name__ == "__main__":
    sys.exit(main())
