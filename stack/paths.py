"""Where the project keeps the things set-up fetches and the things local runs write.

All paths are derived from the repository root so that every entry point (Makefile, CLI, pytest) agrees.
"""

from __future__ import annotations

import os
import random
import socket
import threading
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


EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_PORT_FLOOR = 10000
_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def ephemeral_port_range() -> tuple[int, int]:
    """The ports the kernel hands out for ``bind(port=0)`` and outgoing connections, inclusive.

    Linux says it in ``ip_local_port_range``; elsewhere Linux's default is assumed, which also lies below the IANA
    dynamic range (49152-65535) that macOS uses, so ports chosen outside it are outside both.
    """
    try:
        low, high = (int(part) for part in EPHEMERAL_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now, for a service that a test or a local run starts next.

    The port is not one the kernel would pick by itself: ``bind(port=0)`` returns a port of the ephemeral range,
    and between this call and the service binding it, any process's next ``bind(port=0)`` or outgoing connection
    (a JVM's RPC or Python gateway, a Kafka client) can take that same port; a Flink Web UI then fails with
    "Could not start rest endpoint on any port". So the port is drawn at random from outside the ephemeral range,
    checked free by binding it, and never handed out twice by one process.
    """
    low, high = ephemeral_port_range()
    candidates = [port for port in range(_PORT_FLOOR, 65536) if not low <= port <= high]
    for _ in range(200):
        port = random.choice(candidates)
        with _handed_out_lock:
            if port in _handed_out:
                continue
            if _bindable(port):
                _handed_out.add(port)
                return port
    raise OSError(f"no free TCP port on 127.0.0.1 outside the ephemeral range {low}-{high} after 200 tries")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
