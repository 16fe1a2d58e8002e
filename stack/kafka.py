"""A real single-node Apache Kafka broker (KRaft, broker and controller in one JVM) on loopback.

The broker runs from the Maven Central classpath that set-up fetches (``jvm/pom.xml``, profile ``kafka``) with its
own data and log directory. Readiness is decided by polling the broker's metadata, never by sleeping.

Command line::

    python -m stack.kafka start [--dir .run/kafka] [--port 9092] [--controller-port 9093]
    python -m stack.kafka status | stop
    python -m stack.kafka create-topic NAME [--partitions N]

The options may come before or after the command (``--port X start`` and ``start --port X`` are the same).
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kafka_pinecone_flink.stack.paths import KAFKA_CLASSPATH_DIR, RUN_DIR, MissingPrerequisiteError
from kafka_pinecone_flink.stack.processes import alive, send_signal, terminate

DEFAULT_PORT = 9092
DEFAULT_CONTROLLER_PORT = 9093
DEFAULT_HEAP = "512m"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0

_LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.file.ref = file
"""


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home, "bin", "java") if java_home else None
    if candidate and candidate.exists():
        return str(candidate)
    found = shutil.which("java")
    if not found:
        raise MissingPrerequisiteError("java was not found on PATH (Java 17 is required): install a JDK 17")
    return found


def _classpath() -> str:
    jars = sorted(KAFKA_CLASSPATH_DIR.glob("*.jar"))
    if not any(j.name.startswith("kafka_2.13-") for j in jars):
        raise MissingPrerequisiteError(
            f"the Kafka broker classpath is missing from {KAFKA_CLASSPATH_DIR}: run `make setup` first"
        )
    return os.pathsep.join(str(j) for j in jars)


def _cluster_id() -> str:
    """A random Kafka cluster id: 16 bytes, URL-safe base64 without padding, as Kafka's Uuid prints them."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")


@dataclass
class KafkaBroker:
    """One broker process. ``start`` is idempotent for a broker already running from the same directory."""

    workdir: Path
    port: int = DEFAULT_PORT
    controller_port: int = DEFAULT_CONTROLLER_PORT
    heap: str = DEFAULT_HEAP
    log_level: str = "WARN"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_file(self) -> Path:
        return self.workdir / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.workdir / "broker.pid"

    # -- lifecycle -------------------------------------------------------------------------------------------

    def start(self, timeout_s: float = START_TIMEOUT_S) -> float:
        """Start the broker (formatting its storage on first use) and return once it answers metadata requests.

        Returns the seconds it took. Raises ``RuntimeError`` with the tail of the broker log if the process dies
        or does not become ready in ``timeout_s``.
        """
        began = time.monotonic()
        if self.pid() is not None and self.is_ready():
            return 0.0
        java, classpath = _java(), _classpath()
        self.workdir.mkdir(parents=True, exist_ok=True)
        properties = self._write_config()
        if not (self.data_dir / "meta.properties").exists():
            self._run_tool(
                java,
                classpath,
                [
                    "kafka.tools.StorageTool",
                    "format",
                    "--standalone",
                    # "=" form: a random id may begin with "-", which the tool would take for an option.
                    f"--cluster-id={_cluster_id()}",
                    f"--config={properties}",
                ],
            )
        with open(self.workdir / "broker.out", "ab") as out:
            proc = subprocess.Popen(
                [java, *self._jvm_options(), "-cp", classpath, "kafka.Kafka", str(properties)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        deadline = began + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise RuntimeError(f"Kafka broker exited with code {proc.returncode}:\n{self._log_tail()}")
            if self.is_ready():
                return time.monotonic() - began
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Kafka broker not ready after {timeout_s:.0f}s:\n{self._log_tail()}")

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the broker: SIGTERM (a controlled shutdown), then SIGKILL if it does not exit in time."""
        pid = self.pid()
        if pid is None:
            return
        terminate([pid], timeout_s)
        self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL the broker, as a crash would (for fault-injection tests)."""
        pid = self.pid()
        if pid is not None:
            send_signal(pid, signal.SIGKILL)
            while alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)

    def pid(self) -> int | None:
        """The pid of the running broker started from this directory, or None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if alive(pid) else None

    def is_ready(self) -> bool:
        """True when the broker answers a metadata request (the broker's own readiness, not the port's)."""
        from confluent_kafka.admin import AdminClient

        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1.0).close()
        except OSError:
            return False
        # log_level 0: a broker that is still starting is expected here, not worth librdkafka's error lines.
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "socket.timeout.ms": 1000, "log_level": 0})
        try:
            metadata = admin.list_topics(timeout=1.0)
        except Exception:  # noqa: BLE001 - any failure here only means "not ready yet"
            return False
        return bool(metadata.brokers)

    # -- topics ----------------------------------------------------------------------------------------------

    def create_topics(self, names: Iterable[str], partitions: int = 1, config: dict[str, str] | None = None) -> None:
        """Create topics and wait until each exists; an already existing topic is not an error."""
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        futures = admin.create_topics(
            [NewTopic(n, num_partitions=partitions, replication_factor=1, config=config or {}) for n in names],
            operation_timeout=30,
        )
        for name, future in futures.items():
            try:
                future.result(timeout=60)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise RuntimeError(f"could not create topic {name!r}: {exc.args[0].str()}") from None

    # -- internals -------------------------------------------------------------------------------------------

    def _write_config(self) -> Path:
        properties = self.workdir / "server.properties"
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",
            # A single node: every internal topic has one replica.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Consumers in tests join at once instead of waiting 3 s for more members.
            "group.initial.rebalance.delay.ms": "0",
        }
        properties.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        (self.workdir / "log4j2.properties").write_text(_LOG4J2.format(log=self.log_file, level=self.log_level))
        return properties

    def _jvm_options(self) -> list[str]:
        return [
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:TieredStopAtLevel=1",  # faster start; a test broker is never CPU-bound on the JIT
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.workdir}",
        ]

    def _run_tool(self, java: str, classpath: str, args: list[str]) -> None:
        result = subprocess.run(
            [java, *self._jvm_options(), "-cp", classpath, *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): {result.stdout}{result.stderr}")

    def _log_tail(self, lines: int = 40) -> str:
        text = ""
        for path in (self.workdir / "broker.out", self.log_file):
            if path.exists():
                text += "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:])
        return text or "(no broker output)"


def _broker_from_args(args: argparse.Namespace) -> KafkaBroker:
    return KafkaBroker(Path(args.dir), port=args.port, controller_port=args.controller_port)


def _add_common_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """The options every command takes. They are accepted before the command and after it: the top-level parser
    holds the defaults, each command's copy has none (``SUPPRESS``), so a value given before the command is kept
    unless the same option is given again after it."""

    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--dir", default=default(str(RUN_DIR / "kafka")), help=f"working directory (default: {RUN_DIR / 'kafka'})"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=default(int(os.environ.get("KPF_KAFKA_PORT", DEFAULT_PORT))),
        help=f"broker port (default: $KPF_KAFKA_PORT or {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--controller-port",
        type=int,
        default=default(int(os.environ.get("KPF_KAFKA_CONTROLLER_PORT", DEFAULT_CONTROLLER_PORT))),
        help=f"controller port (default: $KPF_KAFKA_CONTROLLER_PORT or {DEFAULT_CONTROLLER_PORT})",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kafka_pinecone_flink.stack.kafka", description="A local single-node Kafka broker."
    )
    _add_common_options(parser, defaults=True)
    sub = parser.add_subparsers(dest="command", required=True)
    commands = [
        sub.add_parser("start", help="start the broker (if not running) and wait until it is ready"),
        sub.add_parser("stop", help="stop the broker"),
        sub.add_parser("status", help="exit 0 if the broker is running and ready, 1 otherwise"),
    ]
    create = sub.add_parser("create-topic", help="create a topic on the running broker")
    create.add_argument("name")
    create.add_argument("--partitions", type=int, default=1)
    for command in [*commands, create]:
        _add_common_options(command, defaults=False)
    args = parser.parse_args(argv)
    broker = _broker_from_args(args)
    try:
        if args.command == "start":
            seconds = broker.start()
            print(f"Kafka broker ready at {broker.bootstrap_servers} ({seconds:.1f}s; log: {broker.log_file})")
        elif args.command == "stop":
            broker.stop()
            print("Kafka broker stopped")
        elif args.command == "status":
            ready = broker.pid() is not None and broker.is_ready()
            print(f"Kafka broker at {broker.bootstrap_servers}: {'ready' if ready else 'not running'}")
            return 0 if ready else 1
        elif args.command == "create-topic":
            broker.create_topics([args.name], partitions=args.partitions)
            print(f"topic {args.name} ready ({args.partitions} partitions)")
    except (MissingPrerequisiteError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
