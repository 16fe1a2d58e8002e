"""Plays a ``chaos.workload`` through the ingest job while injecting faults, then prints the verdict.

    python -m chaos.run --events 20000 --faults throttle,burst5xx,server-kill,broker-restart,job-kill
    python -m chaos.run --cluster --events 15000 --rate 400 --faults 'burst5xx,savepoint,py-kill*2,tm-kill*3'
    make chaos    # the full suite: 100,000 events, 20 TaskManager kills and every other fault, CHAOS_REPORT.md

It starts its own Kafka broker (``stack.kafka.KafkaBroker``, free ports) and local Pinecone server
(``pinecone_local``, durable data dir), creates the topics (one namespace each, ``--partitions`` partitions) and an
8-dimensional cosine index, starts the job unbounded (a mini-cluster in its own process, or with ``--cluster`` a
standalone JobManager + TaskManager from ``stack.cluster``, Python workers in process mode), waits until it runs,
then produces the workload at ``--rate`` records/s (each record to its id's partition) while it injects the
``--faults`` in order: fault k of n fires at a random record position (seeded by ``--seed``) within half a segment
either side of k/(n+1) of the records, and at least a quarter segment after the previous fault recovered, and only
when produced records are not yet committed; production goes on while the fault is in effect and then waits until
the fault has recovered, so that every fault meets a job with work in flight. When production ends and the job's
committed offsets reach the end of every partition (everything checkpointed, so written), the job is stopped and
the index and dead-letter topic are compared with the expected state (``chaos.verify``). Exit 0 if the report is
ok, 1 if not, 2 if the run itself could not be carried out. ``--report PATH`` also writes the report as Markdown
(``chaos.report``: command line, machine, numbers, one row per fault with its recovery time, verdict); ``--json
PATH`` as JSON.

Faults (``FAULTS``; ``NAME*N`` repeats one):
  throttle        the local server answers upserts beyond 2 requests/s per namespace with 429 + Retry-After, 5 s
  burst5xx        half of the upserts and deletes answer 503, 5 s
  server-kill     kill -9 of the local server, 2 s down, restarted on the same port and data dir
  broker-restart  kill -9 of the Kafka broker, restarted on the same ports and data dir
  job-kill        (mini-cluster) kill -9 of the job's whole process group, restarted with the same consumer group:
                  restored from its last retained checkpoint (``--recovery checkpoint``, the default) or from the
                  group's committed offsets without state (``--recovery committed``)
  tm-kill         (``--cluster``) kill -9 of the TaskManager JVM, a new one started; Flink restores the job itself
  py-kill         (``--cluster``) kill -9 of one Python worker of the TaskManager (a ``python -m
                  pyflink.fn_execution.beam.beam_boot`` process under its JVM, picked at random, seeded); Flink
                  fails the task and restores the job from its last checkpoint (the harness checks that Flink
                  reports a restart, and notes it in the report if not)
  savepoint       (``--cluster``) stop the job with a savepoint (production goes on), then submit it again from
                  the savepoint with ``--sink.batch-size`` set to 25, 250, 25, ... in turn; the new job is tracked
                  from then on (restarts count Flink's restarts of every job plus these resubmissions)

Recovery time of a fault: from its injection to the first advance of the group's committed offsets (a completed
checkpoint with progress) after the fault is lifted (the server or broker back, a new TaskManager registered, the
job running again after a Python worker kill, the resumed job running).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chaos.report import FaultRecord, machine, write_markdown
from chaos.verify import Report, compare, read_dead_letters, read_index
from chaos.workload import DEFAULT_PARTITIONS, DIMENSION, JOB_ARGS, METRIC, Workload, generate
from kafka_pinecone_flink.jobs.checkpoints import find_checkpoints
from kafka_pinecone_flink.stack.cluster import ClusterError
from kafka_pinecone_flink.stack.kafka import KafkaBroker
from kafka_pinecone_flink.stack.paths import ROOT, RUN_DIR, free_port

FAULTS = ("throttle", "burst5xx", "server-kill", "broker-restart", "job-kill", "tm-kill", "py-kill", "savepoint")
MINI_CLUSTER_ONLY = frozenset({"job-kill"})
CLUSTER_ONLY = frozenset({"tm-kill", "py-kill", "savepoint"})
RECOVERY_MODES = ("checkpoint", "committed")

DEFAULT_EVENTS = 5_000
DEFAULT_SEED = 42
DEFAULT_RATE = 250
"""Records produced per second: slow enough that the faults land while the job has work in flight."""
DEFAULT_TOPICS = 2
DEFAULT_CHECKPOINT_INTERVAL_MS = 2_000
INDEX_NAME = "chaos"
DEAD_LETTER_TOPIC = "chaos-dead-letter"
API_KEY = "chaos-local-key"
"""The local server is started without a key check; the job insists on having one."""

PRODUCE_TICK_S = 0.1
FAULT_WINDOW_S = 5.0
THROTTLE_RPS = 2
BURST_ERROR_RATE = 0.5
SERVER_DOWN_S = 2.0
START_TIMEOUT_S = 240.0
RECOVERY_TIMEOUT_S = 240.0
IN_FLIGHT_WAIT_S = 10.0
DRAIN_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 30.0
POLL_S = 0.5
FAULT_JITTER = 0.5
"""Fault k fires at a random point within half a segment either side of k/(n+1) of the records (seeded)."""
SAVEPOINT_BATCH_SIZES = (25, 250)
"""``--sink.batch-size`` of the job resumed after each ``savepoint`` fault, in turn (the first job uses the
default, 100)."""
SAVEPOINT_ATTEMPTS = 3
RESTART_DETECT_S = 60.0
"""How long a ``py-kill`` waits for Flink to report the failure (a restart) before it notes that none came."""
WORKER_MODULE = "pyflink.fn_execution.beam.beam_boot"
"""The module a TaskManager's Python worker runs (``pyflink-udf-runner.sh``: ``python -m <it>``, in process mode)."""
PROC = Path("/proc")


class ChaosError(RuntimeError):
    """The run could not be carried out (a component did not start, the job died for good, no recovery)."""


@dataclass
class Options:
    events: int = DEFAULT_EVENTS
    seed: int = DEFAULT_SEED
    faults: tuple[str, ...] = ()
    rate: float = DEFAULT_RATE
    topics: int = DEFAULT_TOPICS
    partitions: int = DEFAULT_PARTITIONS
    recovery: str = "checkpoint"
    cluster: bool = False
    checkpoint_interval_ms: int = DEFAULT_CHECKPOINT_INTERVAL_MS
    run_dir: Path | None = None
    log: Callable[[str], None] = field(default=lambda line: print(line, flush=True))


# -- progress: the job's committed offsets ---------------------------------------------------------------------------


class Offsets:
    """Reads the consumer group's committed offsets, summed over every partition of the source topics."""

    def __init__(self, bootstrap_servers: str, group: str, topics: Sequence[str], partitions: int) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self._partitions = [TopicPartition(topic, p) for topic in topics for p in range(partitions)]
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap_servers, "group.id": group, "enable.auto.commit": False, "log_level": 0}
        )

    def committed(self) -> int | None:
        """Sum of committed offsets (a partition without one counts 0); None while the broker does not answer."""
        try:
            found = self._consumer.committed(self._partitions, timeout=5)
        except Exception:  # noqa: BLE001 - the broker may be down on purpose; progress is then unknown
            return None
        return sum(max(tp.offset, 0) for tp in found)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._consumer.close()


# -- the job, in a mini-cluster or on a standalone cluster -----------------------------------------------------------


def _rest_json(url: str) -> Any:
    import httpx

    return httpx.get(url, timeout=5, trust_env=False).json()


def flink_restarts(rest_url: str, job_id: str) -> int:
    """How often Flink restarted the job by itself: its ``numRestarts`` metric, or the number of failures in its
    exception history where the metric is not reported; 0 if neither can be read."""
    counts = [0]
    with contextlib.suppress(Exception):
        values = _rest_json(f"{rest_url}/jobs/{job_id}/metrics?get=numRestarts")
        counts.append(int(float(values[0]["value"])))
    with contextlib.suppress(Exception):
        counts.append(len(_rest_json(f"{rest_url}/jobs/{job_id}/exceptions")["exceptionHistory"]["entries"]))
    return max(counts)


def running_job(rest_url: str) -> str | None:
    """The id of the job whose every task runs, or None."""
    with contextlib.suppress(Exception):
        for job in _rest_json(f"{rest_url}/jobs")["jobs"]:
            if job["status"] == "RUNNING":
                detail = _rest_json(f"{rest_url}/jobs/{job['id']}")
                if detail["vertices"] and all(v["status"] == "RUNNING" for v in detail["vertices"]):
                    return str(job["id"])
    return None


def latest_checkpoint(checkpoints: Path) -> Path | None:
    """The newest completed checkpoint (``chk-N`` with ``_metadata``) under ``checkpoints/<job id>/``: the one
    ``kpf run --resume-from-latest`` takes (``jobs.checkpoints``)."""
    found = find_checkpoints(checkpoints)
    return found[0].path if found and found[0].complete else None


def python_worker_pids(parent: int, proc: Path = PROC) -> list[int]:
    """The pids of the Python workers descending from process ``parent`` (a TaskManager JVM), sorted: processes
    whose command line runs ``python -m pyflink.fn_execution.beam.beam_boot`` (not the shell script that starts
    them). The process tree is read from ``proc`` (``<pid>/stat`` for the parent, ``<pid>/cmdline``)."""
    children: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found = []
    pending = list(children.get(parent, []))
    seen = set(pending)
    while pending:
        pid = pending.pop()
        try:
            argv = (proc / str(pid) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if WORKER_MODULE.encode() in argv:
            found.append(pid)
        for child in children.get(pid, []):
            if child not in seen:
                seen.add(child)
                pending.append(child)
    return sorted(found)


def fault_positions(total: int, count: int, rng: random.Random) -> list[int]:
    """Where ``count`` faults fire among ``total`` records: fault k (1..count) at k/(count+1) of them, moved by a
    random amount within ``FAULT_JITTER`` of a segment either side; nondecreasing, within 1..total."""
    segment = total / (count + 1)
    positions: list[int] = []
    for number in range(1, count + 1):
        at = round(number * segment + rng.uniform(-FAULT_JITTER, FAULT_JITTER) * segment)
        positions.append(min(total, max(1, at, positions[-1] if positions else 1)))
    return positions


class MiniClusterJob:
    """The ingest job as users run it locally: ``python -m jobs.ingest_job`` in its own process group."""

    def __init__(self, run_dir: Path, base_args: list[str], log: Callable[[str], None]) -> None:
        self.run_dir = run_dir
        self.base_args = base_args
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.rest_url = ""
        self.job_id: str | None = None
        self.starts = 0
        self.flink_restarts = 0

    @property
    def checkpoints(self) -> Path:
        return self.run_dir / "flink" / "checkpoints"

    def start(self, restore: Path | None = None) -> float:
        began = time.monotonic()
        self.starts += 1
        port = free_port()
        self.rest_url = f"http://127.0.0.1:{port}"
        args = [*self.base_args, f"--flink.rest-port={port}", f"--flink.run-dir={self.run_dir / 'flink'}"]
        if restore is not None:
            args.append(f"--flink.conf=execution.state-recovery.path={restore.resolve().as_uri()}")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PINECONE_API_KEY": API_KEY}
        log_path = self.run_dir / f"job-{self.starts}.log"
        with open(log_path, "wb") as out:
            # A session of its own: kill -9 must take the JVM and the Python workers with it, as a crash would.
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kafka_pinecone_flink.jobs.ingest_job", *args],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = began + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ChaosError(f"the job exited with {self.process.returncode}:\n{_tail(log_path)}")
            self.job_id = running_job(self.rest_url)
            if self.job_id is not None:
                return time.monotonic() - began
            time.sleep(POLL_S)
        raise ChaosError(f"the job was not running after {START_TIMEOUT_S:.0f}s:\n{_tail(log_path)}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _note_restarts(self) -> None:
        if self.job_id is not None and self.alive():
            self.flink_restarts += flink_restarts(self.rest_url, self.job_id)

    def kill(self) -> None:
        """kill -9 of the job's whole process group (client, JVM, Python workers)."""
        self._note_restarts()
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> None:
        self._note_restarts()
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
        with contextlib.suppress(ProcessLookupError):  # workers left behind by a clean client exit
            os.killpg(self.process.pid, signal.SIGKILL)


class ClusterJob:
    """The ingest job on a standalone cluster (``stack.cluster.FlinkCluster``), for TaskManager and Python worker
    kills and stop-with-savepoint / resume. ``job_id`` is the job running now (a resume submits a new one)."""

    def __init__(self, run_dir: Path, base_args: list[str], checkpoint_interval_ms: int) -> None:
        from kafka_pinecone_flink.stack.cluster import FlinkCluster

        self.cluster = FlinkCluster(
            run_dir / "cluster",
            rest_port=free_port(),
            rpc_port=free_port(),
            conf={"execution.checkpointing.interval": f"{checkpoint_interval_ms}ms"},
        )
        self.base_args = base_args
        self.job_id: str | None = None
        self.job_ids: list[str] = []
        self.flink_restarts = 0
        """Restarts Flink made by itself, over every job this run submitted (final once ``stop`` returned)."""
        self.resubmits = 0
        """Submissions from a savepoint (``savepoint_and_resume``)."""
        self._restarts_of_stopped_jobs = 0
        self._stopped = False

    @property
    def rest_url(self) -> str:
        return self.cluster.rest_url

    def start(self) -> float:
        began = time.monotonic()
        self.cluster.start()
        self.job_id = self.cluster.submit(self.base_args)
        self.job_ids.append(self.job_id)
        self.cluster.wait_until_running(self.job_id)
        return time.monotonic() - began

    def restarts(self) -> int:
        """Flink's restarts of every job so far (the running one read from the REST API now)."""
        current = flink_restarts(self.rest_url, self.job_id) if self.job_id is not None else 0
        return self._restarts_of_stopped_jobs + current

    def kill_taskmanager(self) -> str:
        pid = self.cluster.kill_taskmanager()
        self.cluster.start_taskmanager()
        return f"TaskManager pid {pid} killed, a new one started"

    def kill_python_worker(self, rng: random.Random) -> tuple[str, bool]:
        """kill -9 of one of the TaskManager's Python worker processes, picked with ``rng``; returns what was done
        and whether Flink restarted the job (its restart count grew within ``RESTART_DETECT_S``), once every task
        runs again."""
        taskmanager = self.cluster.taskmanager_pid()
        if taskmanager is None:
            raise ChaosError("py-kill: no TaskManager runs")
        deadline = time.monotonic() + RESTART_DETECT_S
        while not (workers := python_worker_pids(taskmanager)):  # a task being (re)deployed starts its worker
            if time.monotonic() > deadline:
                raise ChaosError(f"py-kill: TaskManager {taskmanager} has no Python worker ({WORKER_MODULE})")
            time.sleep(POLL_S)
        before = self.restarts()
        pid = rng.choice(workers)
        os.kill(pid, signal.SIGKILL)
        detail = f"Python worker pid {pid} killed ({len(workers)} under TaskManager {taskmanager})"
        deadline = time.monotonic() + RESTART_DETECT_S
        while self.restarts() <= before:
            if time.monotonic() > deadline:
                return f"{detail}; Flink reported no restart within {RESTART_DETECT_S:.0f}s", False
            time.sleep(POLL_S)
        if self.job_id is not None:
            self.cluster.wait_until_running(self.job_id, RECOVERY_TIMEOUT_S)
        return detail, True

    def savepoint_and_resume(self) -> str:
        """Stop the job with a savepoint, then submit it again from that savepoint with the next of
        ``SAVEPOINT_BATCH_SIZES`` as ``--sink.batch-size``; the new job is tracked from then on."""
        if self.job_id is None:
            raise ChaosError("savepoint: no job runs")
        old = self.job_id
        location = self._stop_with_savepoint(old)
        # A finished job keeps its exception history (its restarts) in the JobManager's archive.
        self._restarts_of_stopped_jobs += flink_restarts(self.rest_url, old)
        size = SAVEPOINT_BATCH_SIZES[self.resubmits % len(SAVEPOINT_BATCH_SIZES)]
        self.job_id = None
        new = self.cluster.resume(location, [*self.base_args, f"--sink.batch-size={size}"])
        self.job_id = new
        self.job_ids.append(new)
        self.resubmits += 1
        self.cluster.wait_until_running(new)
        name = location.rstrip("/").rsplit("/", 1)[-1]
        return f"job {old[:8]} stopped with savepoint {name}; resumed as {new[:8]} with --sink.batch-size={size}"

    def _stop_with_savepoint(self, job_id: str) -> str:
        """``stop_with_savepoint``, tried again (once every task runs) if it fails while the job still runs, as it
        may when a checkpoint or a restart is under way."""
        for attempt in range(1, SAVEPOINT_ATTEMPTS + 1):
            try:
                return self.cluster.stop_with_savepoint(job_id)
            except ClusterError:
                if attempt == SAVEPOINT_ATTEMPTS or self.cluster.job_status(job_id) != "RUNNING":
                    raise
            self.cluster.wait_until_running(job_id)
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Cancel the job and stop the cluster (once; the restarts are read before)."""
        if self._stopped:
            return
        self._stopped = True
        self.flink_restarts = self.restarts()
        if self.job_id is not None:
            with contextlib.suppress(Exception):
                self.cluster.cancel(self.job_id)
        self.cluster.stop()


# -- the run ---------------------------------------------------------------------------------------------------------


class Producer:
    """Plays the workload into Kafka at a steady rate, each record to its partition, in a thread."""

    def __init__(self, bootstrap_servers: str, workload: Workload, rate: float) -> None:
        from confluent_kafka import Producer as KafkaProducer

        self._producer: Any = KafkaProducer(
            {"bootstrap.servers": bootstrap_servers, "enable.idempotence": True, "linger.ms": 5, "log_level": 3}
        )
        self._workload = workload
        self._rate = rate
        self.produced = 0
        self.limit = len(workload.records)
        """How far production may go for now (the run holds it back until a fault has recovered)."""
        self.errors: list[str] = []
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-producer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.errors.append(str(err))

    def _run(self) -> None:
        records = self._workload.records
        budget = 0.0
        last = time.monotonic()
        try:
            while self.produced < len(records):
                now = time.monotonic()
                budget += (now - last) * self._rate
                last = now
                room = min(self.limit, len(records)) - self.produced
                count = min(int(budget), room)
                if room <= 0:
                    budget = 0.0  # held back by a fault that has not recovered: no burst afterwards
                for record in records[self.produced : self.produced + max(count, 0)]:
                    self._producer.produce(
                        record.topic,
                        key=record.key,
                        value=record.value,
                        partition=record.partition,
                        on_delivery=self._delivered,
                    )
                if count > 0:
                    self.produced += count
                    budget -= count
                self._producer.poll(0)
                time.sleep(PRODUCE_TICK_S)
            remaining = self._producer.flush(RECOVERY_TIMEOUT_S)
            if remaining:
                self.errors.append(f"{remaining} records not delivered")
        finally:
            self.done.set()

    def join(self) -> None:
        """Wait until everything is delivered, then drop the client (so it does not outlive the broker)."""
        self.done.wait()
        self._producer = None
        if self.errors:
            raise ChaosError(f"producing the workload failed: {self.errors[:3]}")


class ChaosRun:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.log = options.log
        self.faults_done: list[str] = []
        self.recovery_times: list[float] = []
        self.fault_records: list[FaultRecord] = []
        self.harness_restarts = 0
        self.notes: list[str] = []
        self.rng = random.Random(f"chaos-faults:{options.seed}")
        """Where the faults fire and which Python worker is killed: the same seed, the same choices."""
        self.production_began = time.monotonic()

    def run(self) -> Report:
        from kafka_pinecone_flink.pinecone_local.launcher import start_pinecone_local

        options = self.options
        began = time.monotonic()
        run_dir = options.run_dir or Path(tempfile.mkdtemp(prefix="chaos-", dir=_ensure(RUN_DIR)))
        run_dir.mkdir(parents=True, exist_ok=True)
        self.log(f"chaos run in {run_dir}")
        topics = [f"chaos-{chr(ord('a') + i)}" for i in range(options.topics)]
        workload = generate(options.events, options.seed, topics, options.partitions)
        self.log(f"workload: {len(workload.records)} records, {dict(workload.kinds)}")
        broker = KafkaBroker(run_dir / "kafka", port=free_port(), controller_port=free_port())
        server: Any = None
        job: MiniClusterJob | ClusterJob | None = None
        offsets: Offsets | None = None
        try:
            broker.start()
            server = start_pinecone_local(
                data_dir=run_dir / "pinecone", log_path=run_dir / "pinecone.log", port=free_port()
            )
            broker.create_topics(topics, partitions=options.partitions)
            broker.create_topics([DEAD_LETTER_TOPIC])
            pinecone = server.client()
            pinecone.create_index(
                name=INDEX_NAME,
                dimension=DIMENSION,
                metric=METRIC,
                spec={"serverless": {"cloud": "aws", "region": "local"}},
            )
            group = f"chaos-{uuid.uuid4().hex[:8]}"
            base_args = [
                f"--kafka.bootstrap-servers={broker.bootstrap_servers}",
                f"--kafka.topics={','.join(topics)}",
                f"--kafka.group-id={group}",
                "--kafka.starting-position=committed",
                "--kafka.bounded=false",
                f"--pinecone.index={INDEX_NAME}",
                f"--pinecone.controller-host={server.url}",
                "--errors.tolerance=all",
                f"--errors.dead-letter-topic={DEAD_LETTER_TOPIC}",
                f"--flink.checkpoint-interval-ms={options.checkpoint_interval_ms}",
                *JOB_ARGS,
            ]
            if options.cluster:
                # The cluster's processes inherit this environment (the driver needs a key; the server checks none).
                os.environ.setdefault("PINECONE_API_KEY", API_KEY)
                job = ClusterJob(run_dir, base_args, options.checkpoint_interval_ms)
            else:
                job = MiniClusterJob(run_dir, base_args, self.log)
            self.log(f"job running after {job.start():.1f}s ({job.rest_url})")
            offsets = Offsets(broker.bootstrap_servers, group, topics, options.partitions)
            producer = Producer(broker.bootstrap_servers, workload, options.rate)
            total = len(workload.records)
            # Fault k fires at a random point around segment k of n+1 (``fault_positions``, and at least a quarter
            # segment after the previous fault recovered), while records are in flight; production goes on for half
            # a segment while it is in effect and then waits until it has recovered, so that no fault meets an idle
            # job.
            segment = max(1, total // (len(options.faults) + 1))
            positions = fault_positions(total, len(options.faults), self.rng)
            producer.limit = positions[0] + segment // 2 if options.faults else total
            self.production_began = time.monotonic()
            producer.start()
            for fault, position in zip(options.faults, positions, strict=True):
                fire_at = min(total, max(position, producer.produced + segment // 4))
                producer.limit = max(producer.limit, fire_at + segment // 2)
                while producer.produced < fire_at and not producer.done.is_set():
                    time.sleep(PRODUCE_TICK_S)
                self._wait_in_flight(offsets, producer)
                self._inject(fault, broker, server, job, offsets, producer, total)
            producer.limit = total
            producer.join()
            self.log(f"produced {total} records; draining")
            self._drain(offsets, total, job)
            job.stop()
            if isinstance(job, MiniClusterJob):
                self.harness_restarts = job.starts - 1
            else:
                self.harness_restarts = job.resubmits
                self.notes.append(
                    f"restarts: {job.flink_restarts} by Flink, {job.resubmits} resubmission(s) from a savepoint; "
                    f"jobs {', '.join(job.job_ids)}"
                )
            self.log("job stopped; verifying")
            report = compare(
                workload.expected,
                read_index(server.client().index(name=INDEX_NAME), workload.expected.namespaces),
                read_dead_letters(broker.bootstrap_servers, DEAD_LETTER_TOPIC),
                len(workload.records),
            )
            report.faults_injected = list(self.faults_done)
            report.restarts = self.harness_restarts + job.flink_restarts
            report.recovery_times_s = [round(t, 2) for t in self.recovery_times]
            report.wall_time_s = round(time.monotonic() - began, 1)
            report.notes = [f"run dir {run_dir}", *self.notes]
            return report
        finally:
            if offsets is not None:
                offsets.close()
            if job is not None:
                with contextlib.suppress(Exception):
                    job.stop()
            if server is not None:
                server.stop()
            broker.stop()

    # -- faults --------------------------------------------------------------------------------------------------

    def _inject(
        self,
        fault: str,
        broker: KafkaBroker,
        server: Any,
        job: MiniClusterJob | ClusterJob,
        offsets: Offsets,
        producer: Producer,
        total: int,
    ) -> None:
        committed = self._wait_progress(offsets, None, producer)
        injected = time.monotonic()
        produced = producer.produced
        self.log(f"fault {fault} at {produced}/{total} produced, {committed} committed")
        detail = ""
        try:
            detail = self._apply(fault, broker, server, job)
        except ClusterError as exc:
            raise ChaosError(f"fault {fault}: {exc}") from None
        self.faults_done.append(fault)
        lifted = self._wait_progress(offsets, None, producer)
        recovered = self._wait_progress(offsets, lifted, producer)
        recovery = time.monotonic() - injected
        self.recovery_times.append(recovery)
        self.fault_records.append(
            FaultRecord(fault, injected - self.production_began, produced, committed, recovery, detail)
        )
        self.log(f"recovered from {fault} in {recovery:.1f}s ({recovered} committed){'; ' + detail if detail else ''}")

    def _apply(self, fault: str, broker: KafkaBroker, server: Any, job: MiniClusterJob | ClusterJob) -> str:
        """Inject ``fault`` and return once it is lifted (the component is back); returns what was done."""
        detail = ""
        if fault == "throttle":
            server.set_faults(rate_limits={"upsert": THROTTLE_RPS})
            time.sleep(FAULT_WINDOW_S)
            server.reset_faults()
            detail = f"upserts beyond {THROTTLE_RPS}/s per namespace answered 429 for {FAULT_WINDOW_S:.0f}s"
        elif fault == "burst5xx":
            server.set_faults(error_rate=BURST_ERROR_RATE, error_status=503, error_kinds=["upsert", "delete"])
            time.sleep(FAULT_WINDOW_S)
            server.reset_faults()
            detail = f"{BURST_ERROR_RATE:.0%} of upserts and deletes answered 503 for {FAULT_WINDOW_S:.0f}s"
        elif fault == "server-kill":
            server.kill()
            time.sleep(SERVER_DOWN_S)
            server.restart()
            detail = f"server killed, restarted after {SERVER_DOWN_S:.0f}s"
        elif fault == "broker-restart":
            broker.kill()
            broker.start()
            detail = "broker killed and restarted"
        elif fault == "job-kill" and isinstance(job, MiniClusterJob):
            job.kill()
            restore = None
            if self.options.recovery == "checkpoint":
                restore = latest_checkpoint(job.checkpoints)
                if restore is None:
                    self.notes.append("job-kill: no completed checkpoint to restore; restarted from committed offsets")
            self.log(f"job killed; restarting from {restore or 'the committed offsets'}")
            job.start(restore)
            detail = f"restarted from {restore.name if restore else 'the committed offsets'}"
        elif fault == "tm-kill" and isinstance(job, ClusterJob):
            detail = job.kill_taskmanager()
        elif fault == "py-kill" and isinstance(job, ClusterJob):
            detail, restarted = job.kill_python_worker(self.rng)
            if not restarted:
                self.notes.append(f"py-kill #{self.faults_done.count(fault) + 1}: {detail}")
        elif fault == "savepoint" and isinstance(job, ClusterJob):
            detail = job.savepoint_and_resume()
        else:
            raise ChaosError(f"fault {fault!r} is not available in this mode")
        return detail

    def _wait_in_flight(self, offsets: Offsets, producer: Producer) -> None:
        """Wait (at most ``IN_FLIGHT_WAIT_S``) until some produced records are not committed yet."""
        deadline = time.monotonic() + IN_FLIGHT_WAIT_S
        while time.monotonic() < deadline and not producer.done.is_set():
            committed = offsets.committed()
            if committed is not None and committed < producer.produced:
                return
            time.sleep(PRODUCE_TICK_S)

    def _wait_progress(self, offsets: Offsets, baseline: int | None, producer: Producer) -> int:
        """The committed offsets once they are known and (with ``baseline``) have advanced past it, or cover
        everything produced while production is held back or finished (no further progress can come then)."""
        deadline = time.monotonic() + RECOVERY_TIMEOUT_S
        while time.monotonic() < deadline:
            committed = offsets.committed()
            if committed is not None:
                if baseline is None or committed > baseline:
                    return committed
                held = producer.done.is_set() or producer.produced >= producer.limit
                if held and committed >= producer.produced:
                    return committed
            time.sleep(POLL_S)
        raise ChaosError(f"no progress within {RECOVERY_TIMEOUT_S:.0f}s (committed offsets stuck at {baseline})")

    def _drain(self, offsets: Offsets, total: int, job: MiniClusterJob | ClusterJob) -> None:
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        committed: int | None = None
        while time.monotonic() < deadline:
            committed = offsets.committed()
            if committed is not None and committed >= total:
                return
            if isinstance(job, MiniClusterJob) and not job.alive():
                raise ChaosError(f"the job exited while draining:\n{_tail(job.run_dir / f'job-{job.starts}.log')}")
            time.sleep(POLL_S)
        raise ChaosError(f"not drained after {DRAIN_TIMEOUT_S:.0f}s: {committed} of {total} committed")


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _tail(path: Path, lines: int = 40) -> str:
    with contextlib.suppress(OSError):
        return "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:])
    return "(no output)"


def parse_faults(text: str, cluster: bool) -> tuple[str, ...]:
    """``"burst5xx,job-kill*2"`` -> the faults in order; raises ``ValueError`` naming an unknown or misplaced one."""
    faults: list[str] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, times = item.partition("*")
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r}; expected some of {', '.join(FAULTS)}")
        if cluster and name in MINI_CLUSTER_ONLY:
            raise ValueError(f"fault {name!r} is for the mini-cluster; with --cluster use tm-kill or py-kill")
        if not cluster and name in CLUSTER_ONLY:
            raise ValueError(f"fault {name!r} needs --cluster")
        if times and not (times.isdigit() and int(times) >= 1):
            raise ValueError(f"fault count in {item!r} must be a positive integer")
        faults += [name] * (int(times) if times else 1)
    return tuple(faults)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="records to produce (%(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="workload seed (%(default)s)")
    parser.add_argument("--faults", default="", help=f"comma-separated, in order, NAME or NAME*N: {', '.join(FAULTS)}")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="records produced per second (%(default)s)")
    parser.add_argument("--topics", type=int, default=DEFAULT_TOPICS, help="topics = namespaces (%(default)s)")
    parser.add_argument("--partitions", type=int, default=DEFAULT_PARTITIONS, help="per topic (%(default)s)")
    parser.add_argument("--recovery", choices=RECOVERY_MODES, default="checkpoint", help="after job-kill (%(default)s)")
    parser.add_argument("--cluster", action="store_true", help="a standalone JobManager + TaskManager")
    parser.add_argument("--checkpoint-interval-ms", type=int, default=DEFAULT_CHECKPOINT_INTERVAL_MS)
    parser.add_argument("--run-dir", type=Path, help="where logs, data and checkpoints go (default: a new dir in .run)")
    parser.add_argument("--json", type=Path, help="also write the report as JSON to this file")
    parser.add_argument("--report", type=Path, help="also write the report as Markdown to this file")
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(arguments)
    host = machine()
    try:
        faults = parse_faults(args.faults, args.cluster)
    except ValueError as exc:
        parser.error(str(exc))
    options = Options(
        events=args.events,
        seed=args.seed,
        faults=faults,
        rate=args.rate,
        topics=args.topics,
        partitions=args.partitions,
        recovery=args.recovery,
        cluster=args.cluster,
        checkpoint_interval_ms=args.checkpoint_interval_ms,
        run_dir=args.run_dir,
    )
    run = ChaosRun(options)
    try:
        report = run.run()
    except ChaosError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.render())
    if args.json:
        import json

        data = report.to_dict()
        data["faults"] = [asdict(record) for record in run.fault_records]
        args.json.write_text(json.dumps(data, indent=2))
    if args.report:
        command = shlex.join(["python", "-m", "chaos.run", *arguments])
        write_markdown(args.report, report, run.fault_records, command, host.finished())
        print(f"report written to {args.report}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
