"""The end of a bounded run (``--kafka.bounded=true``), also when it was resumed from a checkpoint (issue 15).

**The problem.** The Kafka connector (5.0.0-2.2) gives every partition a split whose stopping offset is the partition's
latest offset when the job starts; the splits, stopping offsets included, are checkpointed in the readers' state, and
the enumerator checkpoints which partitions it has assigned. A reader ends when it has finished its splits *and* the
enumerator has told it that no more splits come. The enumerator tells that only after a partition discovery that found
new partitions (``KafkaSourceEnumerator.handlePartitionSplitChanges`` sets ``noMoreNewPartitionSplits``); restored
from a checkpoint, every partition is already assigned, the discovery finds no change and returns early
(``checkPartitionChanges``), so the flag is never set and ``addReader`` never signals the end (FLINK-33466 /
FLINK-31006; the upstream fix is not released). The resumed job reads up to the original stopping offsets, applies
everything, and then idles for ever: the readers' fetchers are started and closed every couple of seconds.

**The choice: the driver ends the job.** A fixed connector cannot be shipped here, and a JVM-side fix would mean our
own source (or a table factory wrapping the connector's source and enumerator) instead of the Flink SQL ``kafka``
connector the job is built on, and savepoint compatibility of the source operator to keep: far more surface than the
rule needs. The driver already knows everything the rule needs:

1. At a fresh bounded start it reads the latest offset of every partition of the source topics (the *stopping
   offsets*) before it submits the job. With one source topic they are handed to the connector as its stopping
   offsets (``scan.bounded.mode=specific-offsets``), so the connector and the driver agree exactly; with several
   topics or a pattern the connector takes its own latest offsets a moment later (the SQL connector takes specific
   offsets for a single topic only), which are the same unless records arrive in between. The driver writes the
   offsets next to the job's checkpoints (``<checkpoint dir>/<job id>/kpf-bounded-end.json``).
2. Resumed (``execution.state-recovery.path`` pointing at ``…/<job id>/chk-N``), it reads that file, so the resumed
   run has the *original* stopping offsets: records produced after the original start are not read, as in an
   undisturbed run (the restored splits carry the same offsets, and stop there). It writes the file again for the new
   job id, so a second crash resumes the same way.
3. It submits the job (``execute_async``) and watches it. A partition whose split a reader of this run holds (it
   has the connector's per-partition metrics, read through the job's REST API) is done once the consumer group's
   committed offset, which the reader commits when a checkpoint completes, reached its stopping offset (or only
   transaction markers are left before it); a partition no reader holds, once the metrics have settled after the
   run's first completed checkpoint, had finished before the restored checkpoint (its last commit may have been
   lost in the crash: measured, so the committed offset alone would never get there). When every partition is done,
   a completed checkpoint covers every record: the sink flushed every batch before it, and dead letters are in its
   Kafka transactions. The driver then stops the job with a savepoint and a drain (stop-with-savepoint, advancing
   to the end of time): the sources end, every operator's ``finish()`` runs and the savepoint commits the pending
   dead-letter transactions, as at the natural end of an undisturbed run; then it exits 0. A job that ends by itself
   (the connector signalled the end after all) or fails is reported as before.

Why not a metric of the reader's progress: the connector's ``committedOffset`` gauge stayed at -1 after the split had
finished though the commit succeeded (measured with the integration test), so only the gauges' presence is used.
Committed offsets are a sound signal only for the run that wrote them last: resume from the *latest* completed
checkpoint (what the README prescribes); with an older one they can be ahead of the restored position already.
Under ``flink run`` (a cluster) the driver is detached and none of this applies: stop a resumed bounded job there
with ``flink stop --drain`` once its committed offsets reached the end.
"""

from __future__ import annotations

import json
import re
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode, urlparse
from urllib.request import urlopen

from kafka_pinecone_flink.jobs.job_run import bound_rest_address
from kafka_pinecone_flink.jobs.kafka_io import KafkaSourceOptions, librdkafka_config

END_FILE = "kpf-bounded-end.json"
RESTORE_KEYS = ("execution.state-recovery.path", "execution.savepoint.path")
POLL_S = 1.0
KAFKA_TIMEOUT_S = 15.0

Partition = tuple[str, int]


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class BoundedEndError(RuntimeError):
    """The stopping offsets could not be read or recorded; the message says why."""


def _local_path(location: str) -> Path | None:
    """A ``file://`` URI or plain path as a local path; ``None`` for other file systems (s3://, hdfs://)."""
    parsed = urlparse(location)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path) if parsed.scheme else location)
    return None


def consumer_config(
    bootstrap_servers: str, properties: Mapping[str, str], group_id: str | None = None
) -> dict[str, Any]:
    """A librdkafka consumer configuration from the job's Java client properties (``librdkafka_config``) that never
    commits: it only reads offsets."""
    config: dict[str, Any] = {
        **librdkafka_config(bootstrap_servers, properties),
        "group.id": group_id or f"kpf-bounded-end-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "log_level": 3,
    }
    return config


def end_offsets(options: KafkaSourceOptions) -> dict[Partition, int]:
    """The latest offset of every partition of the source topics (the topics matching the pattern, without Kafka's
    internal ``__`` topics), read now."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(consumer_config(options.bootstrap_servers, options.properties))
    try:
        metadata = consumer.list_topics(timeout=KAFKA_TIMEOUT_S)
        if options.topics:
            names = list(options.topics)
        else:
            pattern = re.compile(str(options.topic_pattern))
            names = sorted(t for t in metadata.topics if not t.startswith("__") and pattern.fullmatch(t))
        offsets: dict[Partition, int] = {}
        for name in names:
            topic = metadata.topics.get(name)
            if topic is None or topic.error is not None:
                raise BoundedEndError(f"source topic {name!r} is not readable: {getattr(topic, 'error', 'missing')}")
            for partition in sorted(topic.partitions):
                _, high = consumer.get_watermark_offsets(TopicPartition(name, partition), timeout=KAFKA_TIMEOUT_S)
                offsets[(name, partition)] = int(high)
        return offsets
    finally:
        consumer.close()


def committed_offsets(options: KafkaSourceOptions, partitions: list[Partition]) -> dict[Partition, int]:
    """The consumer group's committed offsets (-1 where none), read without joining the group."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(consumer_config(options.bootstrap_servers, options.properties, options.group_id))
    try:
        answer = consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=KAFKA_TIMEOUT_S)
        return {(tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else -1) for tp in answer}
    finally:
        consumer.close()


def only_markers_between(options: KafkaSourceOptions, partition: Partition, start: int, stop: int) -> bool:
    """Whether ``[start, stop)`` of ``partition`` holds no record a reader would get (only transaction markers, which
    take offsets: the source's committed offset after its last record can then stay below the stopping offset)."""
    from confluent_kafka import Consumer, TopicPartition

    config = consumer_config(options.bootstrap_servers, options.properties)
    consumer = Consumer({**config, "isolation.level": "read_uncommitted"})
    try:
        consumer.assign([TopicPartition(partition[0], partition[1], start)])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                offset = message.offset()
                return offset is not None and offset >= stop
            position = consumer.position([TopicPartition(partition[0], partition[1])])[0].offset
            if position is not None and position >= stop:
                return True
        return False
    finally:
        consumer.close()


def metric_name(name: str) -> str:
    """A name as the REST API's metric ids spell it (Flink's metric query service replaces these characters)."""
    return re.sub(r"[ .:,]", "_", name)


def _rest_get(url: str, path: str, params: Mapping[str, str] | None = None) -> Any:
    query = f"?{urlencode(params)}" if params else ""
    with urlopen(f"{url}{path}{query}", timeout=10) as answer:
        return json.loads(answer.read())


def rest_url(client: Any, settings: Mapping[str, str]) -> str | None:
    """The REST address of the mini-cluster running the job: asked of the mini-cluster itself (exact also with
    ``rest.port`` 0), else the configured port on loopback."""
    address = bound_rest_address(client)
    if address is not None:
        return address
    # Not a mini-cluster client, or another PyFlink: use the setting.
    port = settings.get("rest.port", "")
    return f"http://127.0.0.1:{port}" if port.isdigit() and port != "0" else None


def completed_checkpoints(url: str, job_id: str) -> int:
    """How many checkpoints the job itself has completed (the one it was restored from not counted)."""
    return int(_rest_get(url, f"/jobs/{job_id}/checkpoints")["counts"]["completed"])


_PARTITION_GAUGE = re.compile(r"\.KafkaSourceReader\.topic\.(.+)\.partition\.(\d+)\.(?:currentOffset|committedOffset)$")


def source_partitions(url: str, job_id: str) -> set[Partition]:
    """The (topic, partition) pairs that the source readers of this run hold or held: those with the connector's
    per-partition ``currentOffset`` / ``committedOffset`` gauges (registered when a reader takes a split), read
    through the REST API. Topics are named as Flink's metric ids spell them (``metric_name``). (The gauges' values
    are no progress signal: ``committedOffset`` stayed at -1 after a split had finished, though the commit
    succeeded.)"""
    found: set[Partition] = set()
    for vertex in _rest_get(url, f"/jobs/{job_id}")["vertices"]:
        for metric in _rest_get(url, f"/jobs/{job_id}/vertices/{vertex['id']}/metrics"):
            match = _PARTITION_GAUGE.search(metric["id"])
            if match is not None:
                found.add((match.group(1), int(match.group(2))))
    return found


@dataclass(frozen=True)
class StoppingOffsets:
    """Where a bounded run ends: per (topic, partition), the offset after its last record."""

    offsets: dict[Partition, int]

    def to_json(self) -> str:
        return json.dumps(
            {"offsets": [{"topic": t, "partition": p, "offset": o} for (t, p), o in sorted(self.offsets.items())]}
        )

    @classmethod
    def from_json(cls, text: str) -> StoppingOffsets:
        entries = json.loads(text)["offsets"]
        return cls({(str(e["topic"]), int(e["partition"])): int(e["offset"]) for e in entries})

    def single_topic(self) -> dict[int, int] | None:
        """``{partition: offset}`` when every partition is of one topic (what the connector can take)."""
        topics = {t for t, _ in self.offsets}
        return {p: o for (_, p), o in self.offsets.items()} if len(topics) == 1 else None


def restore_path(flink_settings: Mapping[str, str]) -> str | None:
    return next((flink_settings[k] for k in RESTORE_KEYS if flink_settings.get(k)), None)


def recorded_offsets(restore: str) -> StoppingOffsets | None:
    """The stopping offsets recorded for the job whose checkpoint ``restore`` (``…/<job id>/chk-N``) is."""
    path = _local_path(restore)
    if path is None:
        return None
    candidate = path.parent / END_FILE
    try:
        return StoppingOffsets.from_json(candidate.read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass
class BoundedRun:
    """A bounded run's end, decided by the driver (see the module's docstring)."""

    source: KafkaSourceOptions
    stopping: StoppingOffsets | None
    checkpoint_dir: str
    resumed: bool
    settings: Mapping[str, str] = field(default_factory=dict)
    """The job's Flink settings (the REST port, the metrics fetcher's interval)."""

    @classmethod
    def prepare(cls, source: KafkaSourceOptions, overrides: Mapping[str, str], run_dir: Path) -> BoundedRun:
        """Find the stopping offsets: recorded ones when resuming, the latest ones otherwise. ``overrides`` are the
        job's Flink settings (``JobConfig.flink_overrides``), on top of this machine's (``stack.flink``)."""
        from kafka_pinecone_flink.stack.flink import machine_settings

        flink_settings = {**machine_settings(run_dir), **overrides}
        restore = restore_path(flink_settings)
        checkpoint_dir = flink_settings.get("execution.checkpointing.dir", "")
        if restore is not None:
            stopping = recorded_offsets(restore)
            if stopping is None:
                _log(
                    f"warning: no {END_FILE} next to {restore}: this bounded run cannot tell where its input ends; "
                    "if it does not end by itself, stop it with a drain once its committed offsets stop advancing"
                )
            return cls(source, stopping, checkpoint_dir, resumed=True, settings=flink_settings)
        try:
            stopping = StoppingOffsets(end_offsets(source))
        except Exception as exc:  # noqa: BLE001 - the run still works; only its resume would not end by itself
            _log(f"warning: the stopping offsets could not be read ({exc}); a resumed run would not end by itself")
            stopping = None
        return cls(source, stopping, checkpoint_dir, resumed=False, settings=flink_settings)

    def source_options(self) -> KafkaSourceOptions:
        """The source, with the stopping offsets pinned where the connector can take them (one topic)."""
        if self.stopping is None or self.resumed:
            return self.source
        single = self.stopping.single_topic()
        if single is None or not self.source.topics:
            return self.source
        from dataclasses import replace

        return replace(self.source, stopping_offsets=single)

    def _record(self, job_id: str) -> None:
        if self.stopping is None:
            return
        base = _local_path(self.checkpoint_dir)
        if base is None:
            _log(f"warning: checkpoints are not on a local file system; {END_FILE} not written")
            return
        job_dir = base / job_id
        try:
            job_dir.mkdir(parents=True, exist_ok=True)
            (job_dir / END_FILE).write_text(self.stopping.to_json())
        except OSError as exc:  # the run goes on; only a resume of it would not end by itself
            _log(f"warning: {END_FILE} could not be written ({exc}); a resumed run would not end by itself")

    def execute(self, env: Any, job_name: str) -> None:
        """Run the job to its end; raises what ``env.execute`` raises when the job fails."""
        self.wait(env.execute_async(job_name))

    def wait(self, client: Any) -> Any:
        """Wait for the end of the job ``client`` submitted (ending it when resumed); its ``JobExecutionResult``.
        Raises its failure."""
        self._record(str(client.get_job_id()))
        if not self.resumed or self.stopping is None:
            return client.get_job_execution_result().result()
        return self._watch(client)

    def _watch(self, client: Any) -> Any:
        assert self.stopping is not None
        job_id = str(client.get_job_id())
        url = rest_url(client, self.settings)
        if url is None:
            _log("warning: the job's REST API is not reachable: this resumed bounded run cannot tell where it ends")
            return client.get_job_execution_result().result()
        settle_s = int(self.settings.get("metrics.fetcher.update-interval", "10000").rstrip("ms") or 0) / 1000 + 2
        first_checkpoint_at: float | None = None
        partitions = sorted(self.stopping.offsets)
        last: dict[Partition, int] = {}
        while True:
            status = str(client.get_job_status().result())
            if status.endswith(("FINISHED", "FAILED", "CANCELED")):
                return client.get_job_execution_result().result()  # raises the failure, if any
            time.sleep(POLL_S)
            try:
                if first_checkpoint_at is None:
                    if completed_checkpoints(url, job_id) > 0:
                        first_checkpoint_at = time.monotonic()
                    continue
                held = {(t, p) for t, p in source_partitions(url, job_id)}
                committed = committed_offsets(self.source, partitions)
            except Exception as exc:  # noqa: BLE001 - the broker or the REST API may be briefly away: try again
                _log(f"warning: the job's progress could not be read ({exc}); retrying")
                continue
            settled = time.monotonic() - first_checkpoint_at >= settle_s
            if all(self._reached(p, held, committed, last, settled) for p in partitions):
                break
            last = committed
        _log("bounded run resumed from a checkpoint: every partition reached its stopping offset; draining")
        return self._stop_with_drain(client)

    def _reached(
        self,
        partition: Partition,
        held: set[Partition],
        committed: Mapping[Partition, int],
        last: Mapping[Partition, int],
        settled: bool,
    ) -> bool:
        """Whether ``partition`` is done. Held by a reader of this run (it has the connector's per-partition
        metrics): once the group's committed offset, which the reader commits when a checkpoint completes, reached
        the stopping offset, or only transaction markers are left before it. Held by none once the metrics have
        settled after the run's first checkpoint: its split had finished before the checkpoint restored (its
        last commit may have been lost with the crash, so the committed offset does not tell)."""
        assert self.stopping is not None
        if (metric_name(partition[0]), partition[1]) not in held:
            return settled
        stop = self.stopping.offsets[partition]
        offset = committed.get(partition, -1)
        if offset >= stop:
            return True
        # Below the stopping offset but unchanged since the last look: only transaction markers may be left.
        return 0 <= offset == last.get(partition) and only_markers_between(self.source, partition, offset, stop)

    def _stop_with_drain(self, client: Any) -> Any:
        from pyflink.java_gateway import get_gateway

        j_client = client._j_job_client
        canonical = get_gateway().jvm.org.apache.flink.core.execution.SavepointFormatType.CANONICAL
        try:
            location = j_client.stopWithSavepoint(True, None, canonical).get()
            _log(f"stopped with a savepoint at {location}")
        except Exception:
            status = str(client.get_job_status().result())
            if not status.endswith("FINISHED"):
                raise
        return client.get_job_execution_result().result()
