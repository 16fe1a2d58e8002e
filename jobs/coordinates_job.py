"""The connector/Flink compatibility job: reads Kafka the way the ingest job does, writes each record's coordinates.

Every record read (tombstones included) becomes one JSON document on the output topic::

    {"topic": ..., "partition": ..., "offset": ..., "timestamp": ..., "key": <base64 or null>,
     "value": <base64 or null>, "tombstone": true|false, "headers": {name: <base64 or null>}}

keyed by the original key and carrying the original headers. Delivery is at-least-once: after a failure the job
resumes from its last checkpoint, so records after it may appear twice, and none is skipped.

    python -m jobs.coordinates_job --bootstrap-servers 127.0.0.1:9092 --topics in --output-topic out --bounded
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

from kafka_pinecone_flink.jobs.flink_env import create_session
from kafka_pinecone_flink.jobs.kafka_io import (
    STARTING_POSITIONS,
    KafkaSourceOptions,
    raw_row,
    raw_row_type,
    read_source,
    set_sink_uid,
    write_raw,
)
from kafka_pinecone_flink.stack.paths import RUN_DIR
from kafka_pinecone_flink.udfs.records import SourceRecord


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def coordinates_row(record: SourceRecord) -> Any:
    document = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp_ms,
        "key": _b64(record.key),
        "value": _b64(record.value),
        "tombstone": record.value is None,
        "headers": {name: _b64(value) for name, value in record.headers},
    }
    return raw_row(record.key, json.dumps(document).encode(), list(record.headers))


class FailOnce:
    """Test hook: raise once at a given offset, after a checkpoint has completed (a marker file remembers).

    Each record is held for a millisecond so that checkpoints complete while the stream flows: a checkpoint barrier
    cannot pass this function while it waits, so the wait below only guards against a very slow start.
    """

    def __init__(self, offset: int, marker: str, checkpoint_dir: str) -> None:
        self.offset, self.marker, self.checkpoint_dir = offset, marker, checkpoint_dir

    def __call__(self, record: SourceRecord) -> SourceRecord:
        time.sleep(0.001)
        if record.offset == self.offset and not Path(self.marker).exists():
            deadline = time.monotonic() + 60
            while not any(Path(self.checkpoint_dir).glob("*/chk-*/_metadata")) and time.monotonic() < deadline:
                time.sleep(0.05)
            Path(self.marker).write_text(str(record.offset))
            raise RuntimeError(f"injected failure at {record.coordinates}")
        return record


def build(args: argparse.Namespace) -> Any:
    overrides = {
        "rest.port": str(args.rest_port),
        "execution.checkpointing.interval": f"{args.checkpoint_interval_ms}ms",
    }
    if args.fail_at_offset is not None:
        overrides.update({"restart-strategy.type": "fixed-delay", "restart-strategy.fixed-delay.delay": "200ms"})
    session = create_session(overrides, run_dir=Path(args.run_dir), parallelism=args.parallelism)
    source = KafkaSourceOptions(
        bootstrap_servers=args.bootstrap_servers,
        topics=tuple(t for t in args.topics.split(",") if t),
        group_id=args.group_id,
        starting_position=args.starting_position,
        bounded=args.bounded,
    )
    records = read_source(session.t_env, source)
    if args.fail_at_offset is not None:
        from pyflink.common import Types

        checkpoints = str(Path(args.run_dir, "checkpoints"))
        hook = FailOnce(args.fail_at_offset, args.fail_marker, checkpoints)
        records = records.map(hook, output_type=Types.PICKLED_BYTE_ARRAY()).name("Failure injection")
    rows = records.map(coordinates_row, output_type=raw_row_type()).name("Coordinates")
    table, name = write_raw(session.t_env, rows, args.bootstrap_servers, args.output_topic, {}, "coordinates_out")
    statements = session.t_env.create_statement_set()
    statements.add_insert(name, table)
    statements.attach_as_datastream()
    set_sink_uid(session.env, "coordinates_out", "coordinates-sink")
    return session


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kafka_pinecone_flink.jobs.coordinates_job", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument("--topics", required=True, help="comma-separated source topics")
    parser.add_argument("--output-topic", required=True)
    parser.add_argument("--group-id", default="coordinates-job")
    parser.add_argument("--starting-position", choices=STARTING_POSITIONS, default="committed")
    parser.add_argument("--bounded", action="store_true", help="stop at the offsets that are latest at start")
    parser.add_argument("--parallelism", type=int, default=1)
    parser.add_argument("--checkpoint-interval-ms", type=int, default=10_000)
    parser.add_argument("--rest-port", type=int, default=8081, help="Web UI port; 0 picks a free one")
    parser.add_argument("--run-dir", default=str(RUN_DIR), help="checkpoints, logs and rendered config")
    parser.add_argument("--fail-at-offset", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--fail-marker", default=str(RUN_DIR / "fail-once.marker"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    session = build(args)
    if session.web_ui:
        print(f"Flink Web UI: {session.web_ui}", flush=True)
    session.env.execute("kafka-coordinates")
    return 0


if __name__ == "__main__":
    sys.exit(main())
