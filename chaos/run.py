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

The parts, by job: ``chaos.runners`` (the job in a mini-cluster or on a standalone cluster), ``chaos.producer``
(producing the workload, reading the committed offsets), ``chaos.faults`` (the faults: parsing, placing, applying);
this module runs them together and is the command line.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shlex
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chaos import documents, faults
from chaos import workload as rows
from chaos.errors import ChaosError
from chaos.faults import FAULTS, RECOVERY_MODES, fault_positions, parse_faults
from chaos.producer import PRODUCE_TICK_S, Offsets, Producer
from chaos.report import FaultRecord, machine, write_markdown
from chaos.runners import API_KEY, POLL_S, RECOVERY_TIMEOUT_S, ClusterJob, MiniClusterJob, tail
from chaos.verify import Report, compare, read_dead_letters, read_index
from chaos.workload import DEFAULT_PARTITIONS
from kafka_pinecone_flink.stack.cluster import ClusterError
from kafka_pinecone_flink.stack.kafka import KafkaBroker
from kafka_pinecone_flink.stack.paths import RUN_DIR, free_port

__all__ = ["ChaosError", "ChaosRun", "Options", "main"]

DEFAULT_EVENTS = 5_000
DEFAULT_SEED = 42
DEFAULT_RATE = 250
"""Records produced per second: slow enough that the faults land while the job has work in flight."""
DEFAULT_TOPICS = 2
DEFAULT_CHECKPOINT_INTERVAL_MS = 2_000
WORKLOADS: dict[str, Any] = {"rows": rows, "documents": documents}
"""The workloads ``--workload`` names: each module has ``generate``, ``DIMENSION``, ``METRIC`` and ``JOB_ARGS``."""
INDEX_NAME = "chaos"
DEAD_LETTER_TOPIC = "chaos-dead-letter"
IN_FLIGHT_WAIT_S = 10.0
DRAIN_TIMEOUT_S = 300.0


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
    workload: str = "rows"
    """``rows`` (``chaos.workload``: 8-d vectors, every kind of bad input) or ``documents`` (``chaos.documents``:
    texts embedded in chunks; the verdict checks every document's chunk set exactly)."""
    log: Callable[[str], None] = field(default=lambda line: print(line, flush=True))


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
        kind = WORKLOADS[options.workload]
        workload = kind.generate(options.events, options.seed, topics, options.partitions)
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
                dimension=kind.DIMENSION,
                metric=kind.METRIC,
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
                *kind.JOB_ARGS,
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
            detail = faults.apply(
                fault,
                broker,
                server,
                job,
                recovery=self.options.recovery,
                rng=self.rng,
                log=self.log,
                notes=self.notes,
                occurrence=self.faults_done.count(fault) + 1,
            )
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
                raise ChaosError(f"the job exited while draining:\n{tail(job.run_dir / f'job-{job.starts}.log')}")
            time.sleep(POLL_S)
        raise ChaosError(f"not drained after {DRAIN_TIMEOUT_S:.0f}s: {committed} of {total} committed")


def _ensure(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


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
    parser.add_argument(
        "--workload",
        choices=sorted(WORKLOADS),
        default="rows",
        help="rows (vectors, bad input) or documents (texts in chunks, chunk sets verified) (%(default)s)",
    )
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
        workload=args.workload,
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
