"""The ingest job's configuration: its options declared once (``OPTIONS``), loaded and validated before any job graph
is built.

``load_job_config(argv, environ)`` reads the flags and the YAML file named by ``--config`` (see :mod:`jobs.options`
for the syntax and the precedence: defaults < file < flags), checks every value once, by its option, and every rule
between options, then builds each stage's own config (``KafkaSourceOptions``, ``PineconeSinkConfig``,
``EmbedConfig``; ``RouteConfig`` at start, when the index's dimension and metric are known). Every error is a
``JobConfigError`` that names the option it is about as it is raised. The Pinecone API key comes only from the
environment variable named by ``pinecone.api-key-env``.

The parts, by job: ``table`` (the options), ``checks`` (one value), ``rules`` (between options), ``settings`` (the
loaded ``JobConfig``), ``build`` (loading, and ``python -m jobs.config``).

Guarantees: a ``JobConfig`` exists only if everything is valid; ``repr``/``str`` of it never show the API key, a
secret Kafka property (``is_secret_kafka_property``) or Flink setting (``is_secret_flink_setting``): they print as
``'***'``; nor a credential inside a URL of any value (``jobs.masking.mask_urls``: ``https://***@host/?token=***``).

``python -m jobs.config --markdown`` prints the README's options table; ``python -m jobs.config [options]`` checks a
configuration and prints it, secrets masked.
"""

from __future__ import annotations

from kafka_pinecone_flink.jobs.config.build import load_job_config, main
from kafka_pinecone_flink.jobs.config.settings import (
    BatchSettings,
    DedupSettings,
    FlinkSettings,
    JobConfig,
    RouteSettings,
)
from kafka_pinecone_flink.jobs.config.table import BY_NAME, OPTIONS, markdown, parser
from kafka_pinecone_flink.jobs.options import JobConfigError

__all__ = [
    "BY_NAME",
    "OPTIONS",
    "BatchSettings",
    "DedupSettings",
    "FlinkSettings",
    "JobConfig",
    "JobConfigError",
    "RouteSettings",
    "load_job_config",
    "main",
    "markdown",
    "parser",
]
