"""Where the project keeps the things set-up fetches and the things local runs write.

All paths are derived from the repository root so that every entry point (Makefile, CLI, pytest) agrees.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import kafka_pinecone_flink

ROOT = Path(kafka_pinecone_flink.__file__).resolve().parent.parent
"""The directory that holds the ``kafka_pinecone_flink`` package: the repository root in a clone (where
``kafka_pinecone_flink/`` links to the package folders), site-packages when installed, the archive on a worker.
Subprocesses get it on their ``PYTHONPATH``; the package folders themselves never go there."""

JVM_DIR = Path(os.environ.get("KPF_JVM_DIR", ROOT / "build" / "jvm"))
"""Jars fetched from Maven Central by set-up (see jvm/pom.xml)."""

CONNECTOR_DIR = JVM_DIR / "connector"
KAFKA_CLASSPATH_DIR = JVM_DIR / "kafka"

KPF_JAR = Path(os.environ.get("KPF_JAR", ROOT / "build" / "kpf-flink.jar"))
"""The project's own JVM operators (``jvm/src``), compiled by set-up (``jvm/build-jar.sh``)."""

RUN_DIR = Path(os.environ.get("KPF_RUN_DIR", ROOT / ".run"))
"""Data, logs and pid files of local services started from the command line."""

FLINK_CONF_DIR = ROOT / "flink-conf"


class MissingPrerequisiteError(RuntimeError):
    """A tool or a fetched artefact the local stack needs is not there; the message says how to get it."""


def connector_jar() -> Path:
    """The shaded flink-sql-connector-kafka jar fetched by set-up."""
    jars = sorted(CONNECTOR_DIR.glob("flink-sql-connector-kafka-*.jar"))
    if not jars:
        raise MissingPrerequisiteError(
            f"the Flink Kafka connector jar is missing from {CONNECTOR_DIR}: run `make setup` first"
        )
    return jars[-1]


def kpf_jar() -> Path:
    """The jar of the project's JVM operators (the keyed dedup stage), compiled by set-up."""
    if not KPF_JAR.is_file():
        raise MissingPrerequisiteError(f"the project's JVM operators are missing ({KPF_JAR}): run `make setup` first")
    return KPF_JAR


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now (for tests and ad-hoc services)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
