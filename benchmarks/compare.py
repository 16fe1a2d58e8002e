"""This job next to what users would write instead, measured side by side in one run on the same data.

    make bench                                    # the full comparison (~17-25 min on 2 cores)
    .venv/bin/python benchmarks/compare.py [--quick] [--workloads vectors,text,changes]
        [--contenders tutorial,handmade,job-mini,job-cluster,raw] [--sizes vectors=100000,text=3000,changes=5000]
        [--tutorial-sizes vectors=5000,text=600,changes=600] [--updates-per-id 9] [--fresh-seconds 20]
        [--vector-rounds 3] [--out DIR] [--update-benchmarks] [--job-option=--batch.max-records=200 ...]

One Kafka broker, one local Pinecone server (``pinecone_local --ack-log``, in memory, restarted empty before each
contender: its CPU per record grows with the vectors it holds, and deleting indexes gives little of it back, so a
server shared in turn would charge each contender for the ones before it) and, when ``job-cluster`` is chosen, one
standalone Flink cluster (one TaskManager, 2 slots) serve every contender. Each workload is produced once to a topic
of 2 partitions, followed by one sentinel record per partition. Contenders, one at a time, each reading the workload
topic from the beginning with its own consumer group and writing to its own fresh index (384-d, cosine):

* ``tutorial``: a consumer loop that embeds (if needed) and upserts one record at a time; on the first N records of
  the topic only (``--tutorial-sizes``: it is slow), its rate measured on those;
* ``handmade``: batched reads, batched ``model.encode``, batches of 200 upserted by 4 threads, no fault tolerance;
* ``job-mini``: ``python -m jobs.ingest_job`` in its Flink mini-cluster (parallelism 1);
* ``job-cluster``: the same job submitted with ``flink run`` to the standalone cluster, parallelism 2;
* ``raw``: the limit: (a) upserts of the same pre-built records alone (SDK, 200 per batch, 4 threads), (b)
  ``model.encode`` alone on the same texts (batches of 64), (c) ``model.encode`` of only the texts that changed,
  expressed as records of the stream per second.

Workloads: ``vectors`` (a) 384-d vectors + ~1 KB metadata; ``text`` (b) product texts to embed; ``changes`` (c)
inserts, then ``--updates-per-id`` updates per id of which exactly 80% leave the embedded text unchanged.

How each figure is measured:

* records/s: from the server's acknowledgement log (one line per written record and its time): the records the
  contender consumed x the share of acknowledgements between the 10th and the 90th percentile of their times /
  that window (``compare_lib.steady_rate``), so start-up, the first batch (prepared before the first write) and the
  tail are left out the same way for every contender; start-up (JVM, Flink, model load, submission) = launch to
  the first acknowledgement, reported apart. The end is observed the same way for everyone: every sentinel
  acknowledged (tutorial: its N records), then no further acknowledgement for 1.5 s. The raw model times its own
  ``encode`` call.
* freshness: then, while the contender still runs, records are produced to a second topic it reads (into the same
  namespace as the first) at 50% of its measured rate for ``--fresh-seconds``: new records for (a) and (b), updates
  of the backlog's ids for (c), 80% of them leaving the text unchanged (``compare_lib.fresh_records``); latency =
  first acknowledgement of the id at or after the record's Kafka timestamp - that timestamp (same machine clock,
  ``time.time()``); p50/p95/p99 and lost records are reported.
* CPU: CPU seconds of the contender's whole process tree (the consumer; the job's driver, JVM and Python workers;
  the cluster's JobManager, TaskManager and workers) between the first and the last acknowledgement, read from
  /proc every 0.2 s and interpolated; cores = CPU seconds / that window. The same, and records/s, over the run's
  second half (``compare_lib.warm_window``: the acknowledgements from the 50th to the 90th percentile) go to the
  notes, and (a)'s CPU target is also given for it. For a contender with JVMs, the notes also give the part of both
  that the JVMs' JIT compiler threads used (``JitThreads``; ``jit_cpu_s`` and ``warm_jit_cpu_s`` in results.json):
  in a run of a few seconds a JVM is still compiling its code while the records flow, in its second half too.
  Peak RSS: the largest sum of the tree's resident memory over the contender's whole run. Beside the tree, in the
  same samples: the whole host's busy CPU (/proc/stat) and the CPU of the services every contender shares (the local
  Pinecone server, the Kafka broker), over the same window; a note gives the host's busy cores and each service's
  CPU per record written: on 2 cores they take part of what a contender could use, and a contender that is bound by
  the host's cores rather than by its own loop loses records/s to them.
* ratios: records/s over the hand-made consumer's and over the raw limit's, on the same workload. When other
  contenders run with it, the raw limit is measured twice, first and last on its workload, and counts as the mean of
  the two (both rates are in its notes): the host's speed drifts by several percent over a workload's minutes, and
  the job contenders run last.
* rounds of (a): after the first round, the hand-made consumer and each job contender run ``--vector-rounds`` - 1
  more times on (a), in turn, without the freshness phase; (a)'s records/s and CPU targets take the median of the
  rounds' ratios, each job against its own round's hand-made consumer (``compare_lib.round_ratios``), and every round
  is printed under the table: a run of a few seconds on a shared host is too noisy to judge a target on one pair.

Writes ``results.md``, ``results.json`` and ``results.png`` to ``--out`` (default ``.run/bench-compare``) and prints
the table; ``--update-benchmarks`` also puts the results into BENCHMARKS.md between its markers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.compare_lib import (
    CONTENDER_TITLES,
    CONTENDERS,
    DIMENSION,
    RAW_LIMIT_OF,
    ROUND_CONTENDERS,
    SERVICE_TITLES,
    WORKLOAD_ALIASES,
    WORKLOADS,
    ProcessSample,
    Record,
    Result,
    bracketed,
    cpu_seconds,
    encode_record,
    evaluate_targets,
    fill_ratios,
    fresh_records,
    generate,
    host_cores,
    host_share,
    jit_seconds,
    jit_share,
    latencies,
    parse_choice,
    parse_sizes,
    peak_rss_bytes,
    percentile,
    rate,
    render_markdown,
    render_rounds,
    render_targets,
    render_text,
    save_chart,
    service_seconds,
    steady_rate,
    texts_to_embed,
    warm_window,
)
from kafka_pinecone_flink.stack.paths import ROOT, RUN_DIR, free_port

DEFAULT_SIZES = {"vectors": 100_000, "text": 3_000, "changes": 5_000}
"""(a) runs 100,000 records (11-15 s for each contender): on 20,000 (2-3 s) the jobs' JVMs are still compiling their
code while the records flow (their JIT compiler threads took 31-41% of the jobs' CPU there, BENCHMARKS.md), so those
runs measured a JVM's warm-up more than the pipeline a long-running job runs."""
DEFAULT_TUTORIAL_SIZES = {"vectors": 5_000, "text": 600, "changes": 600}
QUICK_SIZES = {"vectors": 1_000, "text": 600, "changes": 600}
QUICK_TUTORIAL_SIZES = {"vectors": 300, "text": 30, "changes": 30}
PARTITIONS = 2
DEFAULT_VECTOR_ROUNDS = 3
"""(a)'s runs last seconds, and on a shared 2-core host two runs of one build differ by up to 2x in records/s: its
targets are judged on the median of three rounds, each job against the hand-made consumer of its own round."""
QUIET_S = 1.5
FAILURE_CHECK_S = 1.0
"""How often a wait for a contender's acknowledgements asks whether it failed: at most once a second, so that
the benchmark's own polling loads the contender (for the cluster, its JobManager) as little as it can."""
SAMPLE_INTERVAL_S = 0.2
PHASE_TIMEOUT_S = 900.0
FRESH_MAX_RECORDS = 20_000
FRESH_GRACE_S = 30.0
STOP_TIMEOUT_S = 20.0
MARKERS = ("<!-- compare:start -->", "<!-- compare:end -->")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


class BenchError(RuntimeError):
    """A contender failed; the message says which and why."""


# -- process sampling ----------------------------------------------------------------------------------------------


def stat_fields(path: str) -> list[bytes] | None:
    """The fields of a ``/proc`` ``stat`` file (of a process or a thread) after its name: state, parent pid, ...;
    None when it is gone."""
    try:
        with open(path, "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2 :].split()


def cpu_of(fields: Sequence[bytes]) -> float:
    """User + system CPU seconds from ``stat_fields``."""
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def host_busy_seconds() -> float | None:
    """CPU seconds the whole host has been busy since it booted: every CPU's time in /proc/stat but idle and iowait
    (guest time is already in user time)."""
    try:
        with open("/proc/stat", "rb") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


def proc_table() -> dict[int, tuple[int, float, int]]:
    """Every process: pid → (parent pid, CPU seconds, resident bytes), from /proc/<pid>/stat."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = stat_fields(f"/proc/{entry}/stat")
        if fields is not None:
            table[int(entry)] = (int(fields[1]), cpu_of(fields), int(fields[21]) * _PAGE)
    return table


def tree(roots: Sequence[int], table: dict[int, tuple[int, float, int]]) -> set[int]:
    """``roots`` and all their descendants that are alive in ``table``."""
    children: dict[int, list[int]] = defaultdict(list)
    for pid, (parent, _, _) in table.items():
        children[parent].append(pid)
    found, todo = set(), [r for r in roots if r in table]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children[pid])
    return found


JIT_THREAD_NAMES = (b"C1 CompilerThre", b"C2 CompilerThre")
"""HotSpot's JIT compiler threads (``C1 CompilerThread0`` ...), as /proc has their names: cut to 15 characters."""
JIT_RESCAN_S = 1.0
"""How often each process's threads are listed again: HotSpot starts and ends compiler threads as its queue grows
and shrinks, and reading every thread of a JVM at each sample would cost the benchmark's process more CPU."""


class JitThreads:
    """The JIT compiler threads of the JVMs among a tree's processes, and the CPU seconds of each: how much of a
    contender's CPU went to compiling its Java code rather than running it."""

    def __init__(self) -> None:
        self._threads: dict[int, list[int]] = {}
        self._listed: dict[int, float] = {}

    @staticmethod
    def compiler_threads(pid: int) -> list[int]:
        try:
            with open(f"/proc/{pid}/comm", "rb") as handle:
                if handle.read().strip() != b"java":
                    return []
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            return []
        found = []
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/comm", "rb") as handle:
                    if handle.read().startswith(JIT_THREAD_NAMES):
                        found.append(int(tid))
            except OSError:
                continue
        return found

    def cpu(self, pids: set[int], now: float) -> dict[int, float]:
        """Thread id → CPU seconds, for every compiler thread of the JVMs among ``pids``."""
        for pid in [p for p in self._threads if p not in pids]:
            del self._threads[pid], self._listed[pid]
        found = {}
        for pid in pids:
            if now - self._listed.get(pid, float("-inf")) >= JIT_RESCAN_S:
                self._listed[pid] = now
                self._threads[pid] = self.compiler_threads(pid)
            for tid in self._threads[pid]:
                fields = stat_fields(f"/proc/{pid}/task/{tid}/stat")
                if fields is not None:
                    found[tid] = cpu_of(fields)
        return found


class Sampler(threading.Thread):
    """Samples the CPU time and RSS of a process tree, and the CPU time of its JVMs' JIT compiler threads, every
    ``SAMPLE_INTERVAL_S``; and with them the whole host's busy CPU time and the CPU time of each shared service
    (``services``: name → pid, the process alone)."""

    def __init__(self, roots: Callable[[], Sequence[int]], services: Mapping[str, int] | None = None) -> None:
        super().__init__(daemon=True)
        self.roots = roots
        self.services = dict(services or {})
        self.samples: list[ProcessSample] = []
        self._jit = JitThreads()
        self._stop_event = threading.Event()

    def sample(self) -> None:
        table = proc_table()
        pids = tree(self.roots(), table)
        now = time.time()
        self.samples.append(
            ProcessSample(
                now,
                {p: table[p][1] for p in pids},
                sum(table[p][2] for p in pids),
                self._jit.cpu(pids, now),
                host_busy_seconds(),
                {name: table[pid][1] for name, pid in self.services.items() if pid in table},
            )
        )

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(SAMPLE_INTERVAL_S)

    def stop(self) -> list[ProcessSample]:
        self._stop_event.set()
        self.join()
        self.sample()
        return self.samples


# -- acknowledgements ----------------------------------------------------------------------------------------------


class AckLog:
    """Tails the server's ``--ack-log``: per (index, namespace), each id's acknowledgement times."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self.acks: dict[tuple[str, str], list[tuple[float, str]]] = defaultdict(list)

    def refresh(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            stamp, index, namespace, vector_id = line.decode().split("\t", 3)
            self.acks[(index, namespace)].append((float(stamp), vector_id))

    def of(self, index: str, namespace: str) -> list[tuple[float, str]]:
        self.refresh()
        return self.acks.get((index, namespace), [])

    def times_by_id(self, index: str, namespace: str) -> dict[str, list[float]]:
        """Each id's acknowledgement times, in order."""
        times: dict[str, list[float]] = defaultdict(list)
        for stamp, vector_id in self.of(index, namespace):
            times[vector_id].append(stamp)
        for stamps in times.values():
            stamps.sort()
        return times


# -- contender processes -------------------------------------------------------------------------------------------


class Handle:
    """A running contender: its process tree, whether it failed, how to stop it."""

    def pids(self) -> list[int]:
        raise NotImplementedError

    def failure(self) -> str | None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class ProcessHandle(Handle):
    def __init__(self, command: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def pids(self) -> list[int]:
        return [self.process.pid]

    def exited(self) -> bool:
        return self.process.poll() is not None

    def failure(self) -> str | None:
        if self.process.poll() is None or self.process.returncode == 0:
            return None
        return f"exited {self.process.returncode}:\n{self.log.read_text(errors='replace')[-3000:]}"

    def stop(self) -> None:
        """SIGTERM to the contender's process group (the job's JVM and workers too), SIGKILL after a while."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(STOP_TIMEOUT_S)
                # the leader is gone: end what is left of its group
                if sig == signal.SIGTERM:
                    time.sleep(1.0)
                    os.killpg(self.process.pid, signal.SIGKILL)
                return
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                return


class ClusterJobHandle(Handle):
    def __init__(self, cluster: Any, job_args: list[str]) -> None:
        self.cluster = cluster
        self.job_id: str | None = None
        self.job_args = job_args

    def submit(self) -> None:
        self.job_id = self.cluster.submit(self.job_args)

    def pids(self) -> list[int]:
        return list(self.cluster.processes())

    def failure(self) -> str | None:
        if self.job_id is None:
            return None
        state = self.cluster.job_status(self.job_id)
        if state in ("FAILED", "CANCELED", "FINISHED", "SUSPENDED"):
            return f"job {self.job_id} {state}: {self.cluster.job_exception(self.job_id)}"
        return None

    def stop(self) -> None:
        if self.job_id is not None:
            self.cluster.cancel(self.job_id)
            self.cluster.wait_for_state(self.job_id, {"CANCELED"}, timeout_s=60)


# -- the run -------------------------------------------------------------------------------------------------------


class FailureCheck:
    """``handle.failure()``, asked at most once every ``FAILURE_CHECK_S`` (for the cluster, each ask is a REST call
    the JobManager serves); ``None`` between asks."""

    def __init__(self, handle: Handle) -> None:
        self._handle = handle
        self._asked = 0.0

    def __call__(self) -> str | None:
        if time.time() - self._asked < FAILURE_CHECK_S:
            return None
        self._asked = time.time()
        return self._handle.failure()


@dataclass
class Prepared:
    """A workload on the broker: its topic (= namespace), records, sentinel ids and the raw limit's input."""

    workload: str
    topic: str
    records: list[Record]
    sentinels: list[str]
    raw_data: Path
    raw_texts: int = 0


@dataclass
class Bench:
    args: argparse.Namespace
    workdir: Path
    broker: Any
    server: Any
    acks: AckLog
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    cluster: Any = None
    pinecone: Any = None

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    def services(self) -> dict[str, int]:
        """The shared services' pids, by ``compare_lib.SERVICE_TITLES`` name (a broker not running is left out)."""
        found = {"server": self.server.process.pid}
        broker = self.broker.pid()
        if broker is not None:
            found["broker"] = broker
        return found

    def fresh_server(self) -> None:
        """Restart the local server empty on its port (its ack log is appended to, so earlier runs' lines stay)."""
        from pinecone import Pinecone

        self.server.stop()
        self.server.restart()
        self.pinecone = Pinecone(api_key="bench", host=self.server.url)

    def create_index(self, name: str) -> None:
        spec = {"serverless": {"cloud": "aws", "region": "local"}}
        self.pinecone.create_index(name=name, dimension=DIMENSION, metric="cosine", spec=spec)

    # -- data --------------------------------------------------------------------------------------------------

    def prepare(self, workload: str) -> Prepared:
        from kafka_pinecone_flink.stack.kafka_client import produce

        size = self.args.sizes[workload]
        records = generate(workload, size, self.args.updates_per_id)
        topic = f"bench-{workload}-{self.run_id}"
        self.broker.create_topics([topic], partitions=PARTITIONS)
        produce(self.broker.bootstrap_servers, topic, (encode_record(r) for r in records))
        sentinels = []
        for partition in range(PARTITIONS):
            _key, doc = generate(workload, 1, 0, seed=1000 + partition)[0]
            sentinel = f"zz-end-{partition}"
            produce(self.broker.bootstrap_servers, topic, [encode_record((sentinel, doc))], partition=partition)
            sentinels.append(sentinel)
        raw_data = self.workdir / f"raw-{workload}.json"
        texts = 0
        if workload == "vectors":
            raw_data.write_text("\n".join(json.dumps(r) for r in records))
        else:
            needed = texts_to_embed(records, only_changed=workload == "changes")
            texts = len(needed)
            raw_data.write_text(json.dumps(needed))
        return Prepared(workload, topic, records, sentinels, raw_data, texts)

    # -- contenders --------------------------------------------------------------------------------------------

    def job_args(self, data: Prepared, index: str, topics: list[str], group: str, parallelism: int) -> list[str]:
        dead_letters = f"dlq-{index}"
        self.broker.create_topics([dead_letters])
        args = [
            f"--kafka.bootstrap-servers={self.broker.bootstrap_servers}",
            f"--kafka.topics={','.join(topics)}",
            f"--kafka.group-id={group}",
            "--kafka.starting-position=earliest",
            f"--pinecone.index={index}",
            f"--pinecone.controller-host={self.server.url}",
            "--id.format=raw",
            "--errors.tolerance=all",
            f"--errors.dead-letter-topic={dead_letters}",
            f"--flink.parallelism={parallelism}",
            # Every topic writes into the first one's namespace: the freshness phase updates the backlog's ids.
            *(f"--pinecone.namespace-map={topic}={topics[0]}" for topic in topics[1:]),
            *self.args.job_option,
        ]
        if data.workload != "vectors":
            args.append("--embedding.text-fields=title,description")
            # One Python worker per slot, each with its own model: share the cores between them, as the README
            # advises, instead of letting each run one torch thread per core.
            args.append(f"--embedding.torch-threads={max(1, (os.cpu_count() or 1) // parallelism)}")
        return args

    def launch(self, contender: str, data: Prepared, index: str, fresh_topic: str, limit: int | None) -> Handle:
        group = f"bench-{index}"
        topics = [data.topic, fresh_topic]
        log = self.workdir / f"{index}.log"
        if contender in ("tutorial", "handmade"):
            command = [
                sys.executable,
                str(ROOT / "benchmarks" / "compare_contenders.py"),
                contender,
                f"--bootstrap={self.broker.bootstrap_servers}",
                f"--topics={','.join(topics)}",
                f"--group={group}",
                f"--controller={self.server.url}",
                f"--index={index}",
                f"--namespace={data.topic}",
            ]
            if data.workload != "vectors":
                command.append("--embed")
            if limit is not None:
                command.append(f"--limit={limit}")
            return ProcessHandle(command, log)
        if contender == "job-mini":
            from kafka_pinecone_flink.stack.flink import job_process_environment

            run_dir = tempfile.mkdtemp(prefix="run-", dir=self.workdir)
            args = [*self.job_args(data, index, topics, group, 1), "--flink.rest-port=0", f"--flink.run-dir={run_dir}"]
            return ProcessHandle(
                [sys.executable, "-m", "kafka_pinecone_flink.jobs.ingest_job", *args], log, job_process_environment()
            )
        if contender == "job-cluster":
            return ClusterJobHandle(self.cluster, self.job_args(data, index, topics, group, 2))
        raise ValueError(contender)

    def wait_until_done(
        self, handle: Handle, index: str, namespace: str, sentinels: list[str] | None, count: int
    ) -> None:
        """Until every sentinel (or ``count`` acknowledgements, without sentinels) is in, then QUIET_S of quiet."""
        deadline = time.time() + self.args.phase_timeout
        failed = FailureCheck(handle)
        pending = set(sentinels or ())
        checked = 0
        while time.time() < deadline:
            failure = failed()
            if failure:
                raise BenchError(failure)
            acks = self.acks.of(index, namespace)
            # Only the acknowledgements since the last look: this loop shares the host with the contender.
            pending.difference_update(vector_id for _, vector_id in acks[checked:])
            checked = len(acks)
            complete = not pending if sentinels else len(acks) >= count
            if complete and time.time() - acks[-1][0] >= QUIET_S:
                return
            time.sleep(0.2)
        raise BenchError(f"{index}: not done after {self.args.phase_timeout:.0f}s")

    def freshness(self, result: Result, data: Prepared, index: str, fresh_topic: str, handle: Handle) -> None:
        from confluent_kafka import Producer

        if not result.rps:
            return
        target = result.rps / 2
        count = max(min(int(target * self.args.fresh_seconds), self.args.fresh_max), 10)
        records = [encode_record(r) for r in fresh_records(data.workload, count, data.records)]
        producer = Producer({"bootstrap.servers": self.broker.bootstrap_servers, "linger.ms": 5, "log_level": 3})
        produced: list[tuple[str, float]] = []
        began = time.time()
        for n, (key, value) in enumerate(records):
            delay = began + n / target - time.time()
            if delay > 0:
                time.sleep(delay)
            stamp_ms = int(time.time() * 1000)
            producer.produce(fresh_topic, key=key, value=value, timestamp=stamp_ms)
            produced.append((key.decode(), stamp_ms / 1000))
            producer.poll(0)
        producer.flush(30)
        result.fresh_rate = count / max(time.time() - began, 1e-3)
        deadline = time.time() + FRESH_GRACE_S
        found, missing = latencies(produced, {})
        failed = FailureCheck(handle)
        while time.time() < deadline and not failed():
            # The fresh topic writes into the backlog's namespace (see launch), where the backlog is acknowledged.
            found, missing = latencies(produced, self.acks.times_by_id(index, data.topic))
            if not missing:
                break
            time.sleep(0.2)
        result.fresh_records, result.fresh_missing = len(produced), missing
        result.p50_ms, result.p95_ms, result.p99_ms = (
            None if p is None else p * 1000 for p in (percentile(found, q) for q in (50, 95, 99))
        )
        repeat_s = len({key for key, _ in produced}) / result.fresh_rate  # how often one id comes again
        if len(produced) > len({key for key, _ in produced}) and found and max(found) >= repeat_s / 2:
            result.notes.append(
                f"freshness: each id was updated every {repeat_s:.1f} s, not much more than the latencies "
                f"(up to {max(found):.1f} s): an acknowledgement may be matched to the update before; p99 may be low"
            )

    def measure(self, contender: str, data: Prepared, again: str = "", fresh: bool = True) -> Result:
        """One contender on one workload; ``again``: a tag for a further measurement in this run (an index of its
        own); ``fresh``: with the freshness phase."""
        label = CONTENDER_TITLES[contender]
        if contender == "raw":
            label = f"raw limit: {RAW_LIMIT_OF[data.workload]}"
        result = Result(data.workload, contender, label)
        index = f"{contender}{again}-{data.workload}-{self.run_id}"
        self.fresh_server()
        self.create_index(index)
        fresh_topic = f"fresh-{index}"
        self.broker.create_topics([fresh_topic], partitions=PARTITIONS)
        size = len(data.records)
        limit = None
        if contender == "tutorial" and self.args.tutorial_sizes[data.workload] < size:
            limit = self.args.tutorial_sizes[data.workload]
            result.notes.append(f"ran on the first {limit:,} of {size:,} records; its rate is measured on those")
        result.records = limit or size + len(data.sentinels)
        self.log(f"{data.workload}: {label} ...")
        launched = time.time()
        if contender == "raw":
            result.records = size
            return self.measure_raw(result, data, index, launched)
        handle = self.launch(contender, data, index, fresh_topic, limit)
        sampler = Sampler(handle.pids, self.services())
        sampler.start()
        start: float | None = None
        end: float | None = None
        try:
            if isinstance(handle, ClusterJobHandle):
                handle.submit()
            self.wait_until_done(handle, index, data.topic, None if limit else data.sentinels, limit or 0)
            times = [stamp for stamp, _ in self.acks.of(index, data.topic)]
            start, end = min(times), max(times)
            result.rps, result.window_s = self.timed(result, times)
            result.startup_s = start - launched
            warm = warm_window(times, result.records)
            if fresh:
                self.freshness(result, data, index, fresh_topic, handle)
        except RuntimeError as exc:  # BenchError, or ClusterError from a submission
            result.notes.append(f"failed: {(str(exc).splitlines() or [''])[0][:300]}")
            self.log(f"  FAILED: {exc}")
            start = end = warm = None
        finally:
            try:
                handle.stop()
            finally:
                samples = sampler.stop()
        self.account(result, samples, start, end)
        self.account_warm(result, samples, warm)
        p99 = f"p99 {result.p99_ms or 0:,.0f} ms" if fresh else "no freshness phase"
        per_record = "-" if result.cpu_s is None else f"{result.cpu_s / result.records * 1e6:,.0f}"
        self.log(
            f"  {result.records:,} records, {result.rps or 0:,.1f} rec/s, {per_record} µs of CPU per record, "
            f"start-up {result.startup_s or 0:.1f}s, {p99}, peak {result.peak_rss_mb or 0:,.0f} MiB, "
            f"host {result.host_cores or 0:.2f} cores busy"
        )
        return result

    def measure_raw(self, result: Result, data: Prepared, index: str, launched: float) -> Result:
        script = str(ROOT / "benchmarks" / "compare_contenders.py")
        output = self.workdir / f"{index}.result.json"
        if data.workload == "vectors":
            command = [script, "raw-upsert", f"--data={data.raw_data}", f"--controller={self.server.url}"]
            command += [f"--index={index}", f"--namespace={data.topic}"]
        else:
            command = [script, "raw-model", f"--data={data.raw_data}", f"--result={output}"]
            if data.workload == "changes":
                result.notes.append(f"encodes the {data.raw_texts:,} texts that changed; rate = stream records/s")
        handle = ProcessHandle([sys.executable, *command], self.workdir / f"{index}.log")
        sampler = Sampler(handle.pids, self.services())
        sampler.start()
        while not handle.exited():
            time.sleep(0.2)
        samples = sampler.stop()
        start = end = None
        if handle.failure():
            result.notes.append(f"failed: {handle.failure()}")
        elif data.workload == "vectors":
            times = [stamp for stamp, _ in self.acks.of(index, data.topic)]
            start, end = min(times), max(times)
            result.rps, result.window_s = self.timed(result, times)
            result.startup_s = start - launched
        else:
            measured = json.loads(output.read_text())
            start, end = measured["start"], measured["end"]
            result.rps, result.window_s, result.startup_s = (
                rate(result.records, start, end),
                end - start,
                start - launched,
            )
        self.account(result, samples, start, end)
        self.log(f"  {result.rps or 0:,.1f} rec/s")
        return result

    @staticmethod
    def timed(result: Result, ack_times: list[float]) -> tuple[float | None, float | None]:
        rps, window = steady_rate(ack_times, result.records)
        if rps is None:
            result.notes.append("too few records to time: everything was acknowledged at once")
        return rps, window

    @staticmethod
    def account_warm(result: Result, samples: list[ProcessSample], warm: tuple[float, float, float] | None) -> None:
        """The second half's records/s and CPU (``compare_lib.warm_window``), and a note that gives them."""
        if warm is None:
            return
        start, end, records = warm
        result.warm_cpu_s = cpu_seconds(samples, start, end)
        if result.warm_cpu_s is None or not records:
            return
        result.warm_rps, result.warm_records = records / (end - start), records
        result.warm_jit_cpu_s = jit_seconds(samples, start, end)
        result.notes.append(
            f"second half of the run (acknowledgements from the 50th to the 90th percentile): "
            f"{result.warm_rps:,.0f} rec/s, {result.warm_cpu_s / records * 1e6:,.0f} µs of CPU per record"
            + jit_share(result.warm_jit_cpu_s, result.warm_cpu_s, records)
        )

    @staticmethod
    def account(result: Result, samples: list[ProcessSample], start: float | None, end: float | None) -> None:
        result.peak_rss_mb = peak_rss_bytes(samples) / 2**20 if samples else None
        if start is None or end is None:
            return
        result.cpu_s = cpu_seconds(samples, start, end)
        if result.cpu_s is not None and end > start:
            result.cores = result.cpu_s / (end - start)
        result.jit_cpu_s = jit_seconds(samples, start, end)
        if result.cpu_s is not None and result.jit_cpu_s is not None and result.records:
            result.notes.append(
                f"from the first acknowledgement to the last: {result.cpu_s:,.1f} CPU-s, "
                f"{result.cpu_s / result.records * 1e6:,.0f} µs per record"
                + jit_share(result.jit_cpu_s, result.cpu_s, result.records)
            )
        result.host_cores = host_cores(samples, start, end)
        for name in SERVICE_TITLES:
            used = service_seconds(samples, name, start, end)
            if used is not None:
                result.service_cpu_s[name] = used
        note = host_share(result.host_cores, os.cpu_count() or 1, result.service_cpu_s, result.records, end - start)
        if note:
            result.notes.append(note)


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        memory = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    except OSError:
        memory = 0.0
    load = os.getloadavg()
    return (
        f"{os.cpu_count()} vCPUs ({model}), {memory:.0f} GiB memory, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} at start"
    )


def update_benchmarks_md(block: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text()
    start, end = text.find(MARKERS[0]), text.find(MARKERS[1])
    if start < 0 or end < start:
        raise SystemExit(f"{path} has no {MARKERS[0]} ... {MARKERS[1]} block")
    path.write_text(text[: start + len(MARKERS[0])] + "\n" + block + text[end:])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="What runs and how each figure is measured: the docstring of benchmarks/compare.py and BENCHMARKS.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="%(default)s (a,b,c also accepted)")
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="%(default)s")
    parser.add_argument("--sizes", default="", help=f"records per workload (default {DEFAULT_SIZES})")
    parser.add_argument("--tutorial-sizes", default="", help=f"tutorial loop's records ({DEFAULT_TUTORIAL_SIZES})")
    parser.add_argument("--updates-per-id", type=int, default=9, help="updates per id in changes (%(default)s)")
    parser.add_argument("--fresh-seconds", type=float, default=20.0, help="freshness phase length (%(default)s)")
    parser.add_argument("--fresh-max", type=int, default=FRESH_MAX_RECORDS, help="records at most (%(default)s)")
    parser.add_argument("--phase-timeout", type=float, default=PHASE_TIMEOUT_S, help="seconds per contender")
    parser.add_argument(
        "--vector-rounds",
        type=int,
        default=DEFAULT_VECTOR_ROUNDS,
        help="rounds of (a): the hand-made consumer and each job again, in turn, without the freshness phase; (a)'s "
        "records/s and CPU targets take the median of the rounds' ratios (%(default)s; --quick: 1)",
    )
    parser.add_argument("--out", type=Path, default=RUN_DIR / "bench-compare", help="results directory")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes (vectors 1,000, text 600, changes 600; 4 s freshness): a smoke run of everything, ~10-15 min",
    )
    parser.add_argument("--update-benchmarks", action="store_true", help="write the results into BENCHMARKS.md")
    parser.add_argument(
        "--server-latency-ms",
        type=float,
        default=0.0,
        help="latency the local Pinecone server adds to every request (default none: it answers in about a "
        "millisecond, where Pinecone's upserts take tens of milliseconds)",
    )
    parser.add_argument(
        "--job-option",
        action="append",
        default=[],
        metavar="OPTION",
        help="an option for both job contenders, e.g. --job-option=--batch.max-records=200 (repeatable)",
    )
    args = parser.parse_args(argv)
    try:
        args.workloads = parse_choice(args.workloads, WORKLOADS, WORKLOAD_ALIASES)
        args.contenders = parse_choice(args.contenders, CONTENDERS)
        args.sizes = parse_sizes(args.sizes, QUICK_SIZES if args.quick else DEFAULT_SIZES)
        tutorial_defaults = QUICK_TUTORIAL_SIZES if args.quick else DEFAULT_TUTORIAL_SIZES
        args.tutorial_sizes = parse_sizes(args.tutorial_sizes, tutorial_defaults)
    except ValueError as exc:
        parser.error(str(exc))
    if args.update_benchmarks and args.server_latency_ms:
        parser.error("--server-latency-ms changes what the Results block measures: run it without --update-benchmarks")
    if args.vector_rounds < 1:
        parser.error("--vector-rounds: at least 1")
    if args.quick:
        args.vector_rounds = 1
        args.fresh_seconds = min(args.fresh_seconds, 4.0)
        args.fresh_max = min(args.fresh_max, 2_000)
        args.updates_per_id = min(args.updates_per_id, 4)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from pinecone import Pinecone

    from kafka_pinecone_flink.pinecone_local.launcher import start_pinecone_local
    from kafka_pinecone_flink.stack.kafka import KafkaBroker

    began = time.time()
    description = machine()
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="compare-", dir=args.out))
    ack_log = workdir / "acks.tsv"
    broker = KafkaBroker(workdir / "kafka", port=free_port(), controller_port=free_port())
    broker.start()
    extra = ("--ack-log", str(ack_log))
    if args.server_latency_ms:
        extra += ("--latency-ms", str(args.server_latency_ms))
    server = start_pinecone_local(extra_args=extra, log_path=workdir / "pinecone.log")
    bench = Bench(args, workdir, broker, server, AckLog(ack_log))
    bench.pinecone = Pinecone(api_key="bench", host=server.url)
    results: list[Result] = []
    rounds: list[dict[str, Result]] = []
    cluster_startup = None
    try:
        bench.log(f"machine: {description}")
        bench.log(f"work directory {workdir}; preparing {', '.join(args.workloads)}")
        prepared = [bench.prepare(w) for w in args.workloads]
        if "job-cluster" in args.contenders:
            from kafka_pinecone_flink.stack.cluster import FlinkCluster

            bench.cluster = FlinkCluster(workdir / "cluster", rest_port=free_port(), slots=2, rpc_port=free_port())
            cluster_startup = bench.cluster.start()
            bench.log(f"standalone cluster up in {cluster_startup:.1f}s ({bench.cluster.rest_url})")
        order = ("raw", "handmade", "tutorial", "job-mini", "job-cluster")
        for data in prepared:
            measured = {
                contender: bench.measure(contender, data) for contender in order if contender in args.contenders
            }
            if data.workload == "vectors" and "handmade" in measured and set(ROUND_CONTENDERS[1:]) & set(measured):
                rounds = [measured]
                for number in range(2, args.vector_rounds + 1):
                    again = {
                        contender: bench.measure(contender, data, again=f"-round{number}", fresh=False)
                        for contender in ROUND_CONTENDERS
                        if contender in measured
                    }
                    rounds.append(again)
            if "raw" in measured and len(measured) > 1:
                # The raw limit again after the others: the host's speed drifts by several percent over a workload's
                # minutes, and the job contenders run last (see bracketed).
                measured["raw"] = bracketed(measured["raw"], bench.measure("raw", data, again="-again"))
            results.extend(measured.values())
    finally:
        if bench.cluster is not None:
            bench.cluster.stop()
        server.stop()
        broker.stop()
        shutil.rmtree(workdir / "kafka", ignore_errors=True)  # the topics' data; logs and the ack log stay
    results.sort(key=lambda r: (WORKLOADS.index(r.workload), CONTENDERS.index(r.contender)))
    fill_ratios(results)
    targets = evaluate_targets(results, rounds)
    command = "python benchmarks/compare.py " + " ".join(argv if argv is not None else sys.argv[1:])
    header = [
        f"Command: `{command.strip()}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(began))}, "
        f"{(time.time() - began) / 60:.1f} min)",
        f"Machine: {description}.",
        "Sizes: "
        + ", ".join(f"{w} {args.sizes[w]:,} (tutorial {args.tutorial_sizes[w]:,})" for w in args.workloads)
        + f"; changes: {args.updates_per_id} updates per id; freshness phase {args.fresh_seconds:g} s at 50% load.",
    ]
    if cluster_startup is not None:
        header.append(f"Standalone cluster start-up (once, not in the table): {cluster_startup:.1f} s.")
    markdown = "\n\n".join(header) + "\n\n" + render_markdown(results, targets, rounds)
    (args.out / "results.md").write_text(markdown)
    document = {"command": command, "machine": description, "results": [r.to_json() for r in results]}
    document["targets"] = [{"target": t.text, "met": t.met} for t in targets]
    document["vector_rounds"] = [{c: r.to_json() for c, r in m.items() if c in ROUND_CONTENDERS} for m in rounds]
    (args.out / "results.json").write_text(json.dumps(document, indent=2))
    save_chart(results, args.out / "results.png")
    if args.update_benchmarks:
        update_benchmarks_md(markdown)
    print("\n" + render_text(results) + "\n")
    if rounds:
        print(render_rounds(rounds))
    print(render_targets(targets))
    print(f"\nresults: {args.out}/results.md, results.json, results.png")
    measured_again = [r for m in rounds[1:] for r in m.values()]
    return 1 if any(n.startswith("failed") for r in [*results, *measured_again] for n in r.notes) else 0


if __name__ == "__main__":
    sys.exit(main())
