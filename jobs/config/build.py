"""Loading the ingest job's configuration: resolve the options (defaults < file < flags, each value checked once by
its option), check the rules between them, then build each stage's config from the checked values.

The stage configs (``KafkaSourceOptions``, ``PineconeSinkConfig``, ``EmbedConfig``, ``RouteConfig``) keep their own
checks for whoever builds them directly; every rule of theirs that an option can break is an option's check or a rule
of ``jobs.config.rules`` (with the same function or bounds where they share one), so building them here cannot fail
on a user's value, and no stage message has to be rewritten into option names.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kafka_pinecone_flink.jobs.config.rules import check_rules
from kafka_pinecone_flink.jobs.config.settings import (
    BatchSettings,
    DedupSettings,
    FlinkSettings,
    JobConfig,
    RouteSettings,
)
from kafka_pinecone_flink.jobs.config.table import OPTIONS, REFUSED, markdown, parser
from kafka_pinecone_flink.jobs.kafka_io import KafkaSourceOptions
from kafka_pinecone_flink.jobs.masking import is_secret_flink_setting, is_secret_kafka_property
from kafka_pinecone_flink.jobs.options import HIDDEN, JobConfigError, MaskedMapping, Resolved, option_message, resolve
from kafka_pinecone_flink.sinks.config import PineconeSinkConfig
from kafka_pinecone_flink.stack.paths import RUN_DIR
from kafka_pinecone_flink.udfs.embed import EmbedConfig


def load_job_config(argv: Sequence[str], environ: Mapping[str, str]) -> JobConfig:
    """Parse and validate the job's configuration from ``argv`` (flags and ``--config FILE``) and ``environ`` (the API
    key). Raises ``JobConfigError`` for any invalid option or combination; ``--help`` prints help and exits."""
    resolved = resolve(OPTIONS, parser(), argv, REFUSED)
    check_rules(resolved)
    return _build(resolved, environ)


def _stage_values(r: Resolved, stage: str) -> dict[str, Any]:
    """The values of the options that feed ``stage``'s config, by field name (``Option.target``)."""
    prefix = f"{stage}."
    return {o.target[len(prefix) :]: r[o.name] for o in OPTIONS if o.target and o.target.startswith(prefix)}


def _api_key(r: Resolved, environ: Mapping[str, str]) -> str | None:
    name = r["pinecone.api-key-env"]
    key = environ.get(name) or None
    if key is None and r["pinecone.controller-host"] is None:
        raise JobConfigError(
            f"the Pinecone API key is missing: set the environment variable {name} (named by "
            "--pinecone.api-key-env), or point --pinecone.controller-host at a local server that needs none"
        )
    if key is not None and key != key.strip():
        where = f"the API key in ${name} (named by --pinecone.api-key-env)"
        raise JobConfigError(option_message(where, HIDDEN, "a non-empty string without surrounding whitespace"))
    return key


def _build(r: Resolved, environ: Mapping[str, str]) -> JobConfig:
    api_key = _api_key(r, environ)
    kafka = KafkaSourceOptions(
        **_stage_values(r, "kafka"), properties=MaskedMapping(r["kafka.property"], is_secret_kafka_property)
    )
    route = RouteSettings(**_stage_values(r, "route"), chunk_model=r["embedding.model"])
    embedding_on = bool(route.text_fields) or route.text_template is not None
    run_dir = r["flink.run-dir"]
    return JobConfig(
        kafka=kafka,
        sink=PineconeSinkConfig(api_key=api_key, **_stage_values(r, "sink")),
        embed=EmbedConfig(**_stage_values(r, "embed"), chunk_text_field=r["chunking.text-field"])
        if embedding_on
        else None,
        route=route,
        dedup=DedupSettings(state_ttl_ms=r["dedup.state-ttl"], in_source_task=r["dedup.in-source-task"]),
        dead_letter_topic=r["errors.dead-letter-topic"],
        flink=FlinkSettings(
            parallelism=r["flink.parallelism"],
            checkpoint_interval_ms=r["flink.checkpoint-interval-ms"],
            rest_port=r["flink.rest-port"],
            run_dir=RUN_DIR if run_dir is None else Path(run_dir),
            conf=MaskedMapping(r["flink.conf"], is_secret_flink_setting),
        ),
        api_key_env=r["pinecone.api-key-env"],
        batch=BatchSettings(**_stage_values(r, "batch")),
    )


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
