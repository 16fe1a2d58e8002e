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

from jobs.bounded import BoundedRun
from jobs.config import JobConfig, JobConfigError, load_job_config
from jobs.flink_env import create_session, under_flink_run
from jobs.pipeline import PipelineSpec, build
from sinks.client import IndexInfo, open_index
from sinks.retry import SinkFatalError, SinkUnavailableError
from sinks.writer import PineconeWriter
from udfs.route_config import RouteConfig

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
        from udfs.embed_model import ModelNotFoundError, resolve_model_path

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
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    flink = config.flink
    # A bounded run's end when resumed from a checkpoint is the driver's to decide (issue 15, jobs/bounded.py).
    bounded = None
    if config.kafka.bounded and not under_flink_run():
        bounded = BoundedRun.prepare(config.kafka, config.flink_overrides(), Path(flink.run_dir))
    session = create_session(config.flink_overrides(), run_dir=Path(flink.run_dir), parallelism=flink.parallelism)
    spec = PipelineSpec(
        source=config.kafka if bounded is None else bounded.source_options(),
        route=route,
        sink=config.sink,
        embed=config.embed,
        state_ttl_ms=config.dedup.state_ttl_ms,
        error_tolerance=config.errors_tolerance,
        dead_letter_topic=config.dead_letter_topic,
        kafka_properties=config.kafka.properties,
        secrets=config.secrets(),
    )
    build(session.env, session.t_env, spec)
    if session.web_ui:
        print(f"Flink Web UI: {session.web_ui}", flush=True)
    try:
        if bounded is None:
            session.env.execute(JOB_NAME)
        else:
            bounded.execute(session.env, JOB_NAME)
    except Exception as exc:  # noqa: BLE001 - the Java stack trace is in the log; the cause is what the user needs
        print(f"error: the job failed: {_root_cause(exc)}", file=sys.stderr)
        return 1
    return 0


def _root_cause(exc: BaseException) -> str:
    """The innermost Python error in a Flink job failure (Flink wraps it in several Java exceptions)."""
    text = str(exc)
    marker = "Traceback (most recent call last)"
    if marker in text:
        tail = text[text.rindex(marker) :].splitlines()
        for line in reversed(tail):
            if line and not line.startswith(" ") and ":" in line and not line.startswith("\tat "):
                return line.strip()
    return text.splitlines()[0] if text else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
