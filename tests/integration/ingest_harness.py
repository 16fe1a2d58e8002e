"""Runs the ingest job the way users do (its own process, a Flink mini-cluster) against the session's real Kafka
broker and local Pinecone server, and reads back what it left: the index through the real SDK, and the dead-letter
topic."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka_pinecone_flink.stack.cluster import ClusterError, RestClient
from kafka_pinecone_flink.stack.flink import job_process_environment
from kafka_pinecone_flink.stack.kafka import KafkaBroker
from kafka_pinecone_flink.stack.kafka_client import Message, consume, produce
from kafka_pinecone_flink.stack.paths import ROOT, free_port

JOB_TIMEOUT_S = 420
Record = tuple[bytes | None, bytes | None]


def value(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


@dataclass
class IngestRun:
    """One job run: its process result, and readers for the index and the dead-letter topic."""

    broker: KafkaBroker
    index: Any
    dead_letter_topic: str
    result: subprocess.CompletedProcess[str]
    topics: list[str] = field(default_factory=list)
    run_dir: Path | None = None
    """The job's --flink.run-dir (rendered configuration, checkpoints, flink-logs/)."""

    @property
    def output(self) -> str:
        return self.result.stdout + self.result.stderr

    def snapshot(self, namespace: str) -> dict[str, tuple[tuple[float, ...], dict[str, Any]]]:
        """Every record of ``namespace``: id → (values rounded to 5 places, metadata)."""
        ids = [item.id for page in self.index.list(namespace=namespace) for item in _page_items(page)]
        records: dict[str, tuple[tuple[float, ...], dict[str, Any]]] = {}
        for start in range(0, len(ids), 200):
            fetched = self.index.fetch(ids=ids[start : start + 200], namespace=namespace)
            for record_id, vector in fetched.vectors.items():
                values = tuple(round(float(v), 5) for v in vector.values)
                records[record_id] = (values, dict(vector.metadata or {}))
        return records

    def dead_letters(self, expected: int | None = None) -> list[Message]:
        return consume(self.broker.bootstrap_servers, self.dead_letter_topic, expected=expected, timeout_s=30)


def _page_items(page: Any) -> Iterable[Any]:
    if isinstance(page, list):  # some SDK versions yield lists of ids
        return [type("Item", (), {"id": i})() for i in page]
    return getattr(page, "vectors", page)


@dataclass
class RunningJob:
    """What a ``during`` callback gets: the index, the job's Flink REST address, and its process."""

    index: Any
    rest_url: str
    process: subprocess.Popen[str]
    run_dir: Path | None = None
    dead_letter_topic: str | None = None

    def operator_metrics(
        self, operators: Sequence[str], names: Iterable[str], timeout_s: float = 120
    ) -> dict[str, float]:
        """Wait until the running job's ``operators`` (names as the Web UI shows them), in whichever vertices they
        run, report every metric named in ``names``; return them (name → value, summed over the operators and
        subtasks that report it: with the JVM decode path, Decode JVM and Decode results count their own records, as
        ``kpf status`` adds them up). By operator, not by vertex (``FlinkRestApi.metrics``): at parallelism 1 the
        whole job is one vertex, whose Dedup counts the decoders' records again."""
        client = RestClient(self.rest_url)
        wanted = tuple(names)
        deadline = time.monotonic() + timeout_s
        found: dict[str, float] = {}
        while time.monotonic() < deadline:
            try:
                running = [job["jid"] for job in client.jobs() if job["state"] == "RUNNING"]
                if running:
                    found = client.metrics(running[0], operators, wanted)
                    if set(found) == set(wanted):
                        return found
            except (ClusterError, KeyError, ValueError):
                pass
            time.sleep(0.5)
        raise AssertionError(f"metrics {wanted} of the operators {list(operators)} not all reported; last {found}")


def dead_letter_headers(message: Message) -> dict[str, str]:
    return {name: (data or b"").decode() for name, data in message.headers if name.startswith("kpf.")}


@dataclass
class IngestHarness:
    broker: KafkaBroker
    pinecone_url: str
    topic: Callable[..., str]
    tmp_path: Path
    pinecone: Any
    pinecone_admin: Callable[..., Any]

    def create_index(self, dimension: int, metric: str = "cosine") -> tuple[str, Any]:
        name = f"ingest-{uuid.uuid4().hex[:10]}"
        self.pinecone.create_index(
            name=name, dimension=dimension, metric=metric, spec={"serverless": {"cloud": "aws", "region": "local"}}
        )
        return name, self.pinecone.index(name=name)

    def run(
        self,
        records: dict[str, Sequence[Record]] | Sequence[Record],
        *args: str,
        dimension: int = 4,
        metric: str = "cosine",
        index: tuple[str, Any] | None = None,
        expect_success: bool = True,
        partitions: int = 1,
        during: Callable[[Any], None] | None = None,
        unbounded: bool = False,
        exact_topic_names: bool = False,
        api_key: str = "local-test-key",
    ) -> IngestRun:
        """Produce ``records`` (to one new topic, or to topics named by the dict's keys), run the job bounded, and
        return the run. In ``args``, ``@topic@`` stands for the (first) topic's name and ``@topic:NAME@`` for the
        topic of key NAME. ``during(job)`` is called in a thread while the job runs, with a ``RunningJob``;
        ``unbounded`` runs the job without an end and stops it (SIGTERM) once ``during`` has returned.
        ``exact_topic_names`` uses the dict's keys as topic names instead of unique names derived from them;
        ``api_key`` is the job's PINECONE_API_KEY (the local server accepts any)."""
        by_topic = records if isinstance(records, dict) else {"in": records}
        if exact_topic_names:
            self.broker.create_topics(list(by_topic), partitions=partitions)
            topics = {name: name for name in by_topic}
        else:
            topics = {name: self.topic(name, partitions=partitions) for name in by_topic}
        for name, topic_records in by_topic.items():
            if topic_records:
                produce(self.broker.bootstrap_servers, topics[name], topic_records)
        dead_letter_topic = self.topic("dlq")
        index_name, sdk_index = index or self.create_index(dimension, metric)
        formatted = []
        for arg in args:
            for name, topic in topics.items():
                arg = arg.replace(f"@topic:{name}@", topic)
            formatted.append(arg.replace("@topic@", next(iter(topics.values()))))
        rest_port = free_port()
        run_dir = self.tmp_path / uuid.uuid4().hex[:6]
        command = [
            sys.executable,
            "-m",
            "kafka_pinecone_flink.jobs.ingest_job",
            f"--kafka.bootstrap-servers={self.broker.bootstrap_servers}",
            f"--kafka.group-id=test-{uuid.uuid4().hex[:8]}",
            "--kafka.starting-position=earliest",
            f"--kafka.bounded={str(not unbounded).lower()}",
            f"--pinecone.index={index_name}",
            f"--pinecone.controller-host={self.pinecone_url}",
            "--errors.tolerance=all",
            f"--errors.dead-letter-topic={dead_letter_topic}",
            "--flink.checkpoint-interval-ms=1000",
            f"--flink.rest-port={rest_port}",
            f"--flink.run-dir={run_dir}",
            *formatted,
        ]
        if not any(arg.startswith("--kafka.topic-pattern") for arg in formatted):
            command.append(f"--kafka.topics={','.join(topics.values())}")
        env = job_process_environment({"PINECONE_API_KEY": api_key})
        if during is None:
            result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT_S)
        else:
            with subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            ) as job:
                running = RunningJob(sdk_index, f"http://127.0.0.1:{rest_port}", job, run_dir, dead_letter_topic)
                errors: list[BaseException] = []

                def call() -> None:
                    try:
                        during(running)
                    except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread below
                        errors.append(exc)
                    finally:
                        if unbounded:
                            job.terminate()

                helper = threading.Thread(target=call, daemon=True)
                helper.start()
                stdout, stderr = job.communicate(timeout=JOB_TIMEOUT_S)
                helper.join(timeout=30)
                if errors:
                    raise errors[0]
            result = subprocess.CompletedProcess(command, job.returncode, stdout, stderr)
        if expect_success:
            assert result.returncode == 0, f"job failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
        return IngestRun(self.broker, sdk_index, dead_letter_topic, result, list(topics.values()), run_dir)
