"""What PyFlink itself costs on this machine: the same Kafka records through bare pipelines of growing shape.

    make bench-pyflink
    .venv/bin/python benchmarks/pyflink_ceiling.py [--records 20000] [--variants source,decode,keyed,jvm-state]

Each variant runs as its own bounded Flink job (mini-cluster, parallelism 1, process mode, the project's
flink-conf) on one topic of 384-d vector records with ~1 KB of metadata (the benchmark's workload (a)), and
prints steady-state records/s (between the 10% and the 90% record, from timestamps a counting map writes every
1,000 records) next to the first variant's:

* ``source``: the Kafka table source and one Python map (the floor: one JVM-to-Python hop, nothing decoded);
* ``source-batched``: the same, with the JVM ``Batcher`` (``udfs.stage_batch``) before the map: Python sees lists;
* ``decode``: + ``json.loads`` of the value into a pickled object handed to a second (chained) Python map;
* ``keyed``: + ``key_by`` (a Python key selector) and a Python ``KeyedProcessFunction`` that uses no state;
* ``python-state``: the same function reading and writing a ``ValueState`` per record (what dedup did in Python);
* ``jvm-state``: decode hands rows to the project's JVM dedup operator (``udfs.dedup.keyed_dedup``), then Python.
* ``batched``: the job's shape since the batching redesign: the JVM ``Batcher`` hands lists of records to the Python
  decode, whose result rows the JVM ``BatchResults`` unpacks for the JVM dedup operator, and a second ``Batcher``
  hands lists of applied changes to the last Python stage (``udfs.stage_batch``): Python sees groups, never records.
* ``job-decode``: ``batched`` with the job's own decode stage (``jobs.pipeline.decode_stage``: ``udfs.decode`` with
  routing, ids, validation, metadata and the request JSON) in place of the toy decode;
* ``job-decode-jvm``: the same with the JVM decode path (``decode.jvm``): ``io.github.kpf.decode.FastDecoder`` takes
  every record of this workload, the Python decode stage none, and Python sees only the groups of applied changes;
* ``job-decode-jvm-in-place``: the same with the dedup keyed in place, in the source's task (``dedup.in-source-task``,
  the job's shape at parallelism 1 since 2026-12-07): no keyed exchange, one task.

No Pinecone writes: this is the ceiling the job's own work (decode, routing, hashing, the sink) runs under.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyflink.common import Types
from pyflink.datastream.functions import KeyedProcessFunction, MapFunction
from pyflink.datastream.state import ValueStateDescriptor

from benchmarks.compare_lib import encode_record, vector_records
from kafka_pinecone_flink.stack.kafka import KafkaBroker
from kafka_pinecone_flink.stack.kafka_client import produce
from kafka_pinecone_flink.stack.paths import free_port

VARIANTS = (
    "source",
    "source-batched",
    "decode",
    "keyed",
    "python-state",
    "jvm-state",
    "batched",
    "job-decode",
    "job-decode-jvm",
    "job-decode-jvm-in-place",
)
GROUPED_VARIANTS = frozenset({"source-batched", "batched", "job-decode", "job-decode-jvm", "job-decode-jvm-in-place"})
"""The variants in which Python receives lists of records (Flink's elements are groups)."""
PER_RECORD_BUNDLE = 1000
TICK = 1_000


class Count(MapFunction):
    """Counts records; every ``TICK`` records writes the count and the time to ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def open(self, runtime_context: Any) -> None:
        self.seen = 0
        self.out = open(self.path, "w")  # noqa: SIM115 - closed with the function

    def map(self, value: Any) -> int:
        before = self.seen
        self.seen += len(value) if isinstance(value, list) else 1
        if self.seen // TICK != before // TICK:
            self.out.write(f"{self.seen} {time.time()}\n")
            self.out.flush()
        return 1

    def close(self) -> None:
        self.out.close()


class Stateless(KeyedProcessFunction):
    def process_element(self, value: Any, ctx: Any) -> Any:
        yield value


class WithState(KeyedProcessFunction):
    """One keyed ValueState read and, for a new key, one write per record: what dedup did in Python."""

    def open(self, runtime_context: Any) -> None:
        self.state = runtime_context.get_state(ValueStateDescriptor("seen", Types.PICKLED_BYTE_ARRAY()))

    def process_element(self, value: Any, ctx: Any) -> Any:
        if self.state.value() is None:
            self.state.update((1, b"0123456789abcdef"))
        yield value


def run_variant(variant: str, bootstrap: str, topic: str, records: int, workdir: Path) -> float:
    """Run one variant to the end of the topic; its steady-state records/s."""
    from pyflink.common import Row, Types

    from kafka_pinecone_flink.jobs.flink_env import create_session
    from kafka_pinecone_flink.jobs.kafka_io import KafkaSourceOptions, source_table_ddl
    from kafka_pinecone_flink.udfs.dedup import INPUT_FIELDS, input_type, keyed_dedup
    from kafka_pinecone_flink.udfs.stage_batch import batch_result, batch_results, batched, result_type

    ticks = workdir / f"ticks-{variant}"
    settings = {"rest.port": "0"}
    if variant not in GROUPED_VARIANTS:
        # A bundle counts elements: flink-conf's 16 is sized for groups of records (1,000 here); a shape that hands
        # Python records one by one runs with the 1,000 it was built for.
        settings["python.fn-execution.bundle.size"] = str(PER_RECORD_BUNDLE)
    session = create_session(settings, run_dir=workdir / f"run-{variant}-{uuid.uuid4().hex[:6]}", parallelism=1)
    options = KafkaSourceOptions(
        bootstrap_servers=bootstrap,
        topics=(topic,),
        group_id=f"ceiling-{uuid.uuid4().hex[:8]}",
        starting_position="earliest",
        bounded=True,
    )
    table = f"source_{variant.replace('-', '_')}"
    session.t_env.execute_sql(source_table_ddl(table, options))
    rows = session.t_env.to_data_stream(session.t_env.from_path(table))
    pickled = Types.PICKLED_BYTE_ARRAY()

    def decode(row: Any) -> tuple[str, Any]:
        return bytes(row[0]).decode(), json.loads(row[1])

    def to_dedup_row(row: Any) -> Row:
        key, doc = decode(row)
        digest = hashlib.blake2b(row[1], digest_size=16).digest()
        dedup_row = Row(key, False, None, digest, None, pickle.dumps(doc), 0, None)
        dedup_row.set_field_names(list(INPUT_FIELDS))  # the dedup.input contract (jvm/contract/rows.txt)
        return dedup_row

    if variant == "source":
        stream = rows
    elif variant == "decode":
        stream = rows.map(decode, output_type=pickled)
    elif variant in ("keyed", "python-state"):
        function: KeyedProcessFunction = Stateless() if variant == "keyed" else WithState()
        keyed = rows.map(decode, output_type=pickled).key_by(lambda v: v[0], key_type=Types.STRING())
        stream = keyed.process(function, output_type=pickled)
    elif variant == "jvm-state":
        stream = keyed_dedup(rows.map(to_dedup_row, output_type=input_type())).map(
            lambda r: pickle.loads(r[0]), output_type=pickled
        )
    elif variant == "source-batched":
        stream = batched(rows, 1000, 16 << 20, 50)
    elif variant == "batched":

        def decode_batch(batch: list[Any]) -> Row:
            return batch_result([to_dedup_row(row) for row in batch], [], {"records_in": len(batch)})

        decoded = batched(rows, 1000, 16 << 20, 50).map(decode_batch, output_type=result_type(input_type()))
        changes, _ = batch_results(decoded, "decode", input_type())
        applied = batched(keyed_dedup(changes), 1000, 16 << 20, 50)
        stream = applied.map(lambda batch: [pickle.loads(r[0]) for r in batch], output_type=pickled)
    elif variant in ("job-decode", "job-decode-jvm", "job-decode-jvm-in-place"):
        stream = job_decode(rows, topic, variant != "job-decode", in_place=variant == "job-decode-jvm-in-place")
    else:
        raise ValueError(variant)
    stream.map(Count(str(ticks)), output_type=Types.INT()).filter(lambda _: False)
    session.env.execute(f"pyflink-ceiling-{variant}")
    marks = [tuple(map(float, line.split())) for line in ticks.read_text().splitlines()]
    low = next(m for m in marks if m[0] >= records * 0.1)
    high = [m for m in marks if m[0] <= records * 0.9][-1]
    return (high[0] - low[0]) / (high[1] - low[1])


def job_decode(rows: Any, topic: str, jvm: bool, in_place: bool = False) -> Any:
    """The job's decode stage and JVM dedup on ``rows`` (the benchmark's routing: raw Kafka-key ids, 384-d cosine),
    then groups of applied changes to a Python map that unpickles them, as the sink would; ``in_place``: the dedup
    keyed in the source's task rather than behind the keyed exchange."""
    from kafka_pinecone_flink.jobs.pipeline import decode_stage
    from kafka_pinecone_flink.udfs.decode_function import DecodeFunction
    from kafka_pinecone_flink.udfs.dedup import keyed_dedup
    from kafka_pinecone_flink.udfs.route_config import RouteConfig
    from kafka_pinecone_flink.udfs.stage_batch import batched

    route = RouteConfig(dimension=384, metric="cosine", id_format="raw")
    jvm_topics = (topic,) if jvm else ()
    decode = DecodeFunction(route, "all", topics=(topic,), sequenced=jvm)
    changes, _ = decode_stage(rows, route, decode, jvm_topics, 1000, 16 << 20, 50)
    applied = batched(keyed_dedup(changes, in_source_task=in_place), 1000, 16 << 20, 50)
    return applied.map(lambda batch: [pickle.loads(r[0]) for r in batch], output_type=Types.PICKLED_BYTE_ARRAY())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one variant in this process
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        rate = run_variant(args.one, args.bootstrap, args.topic, args.records, Path(args.workdir))
        print(f"RATE {rate:.1f}")
        return 0
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown or not variants:
        parser.error(f"variants are {', '.join(VARIANTS)}")
    import subprocess

    with tempfile.TemporaryDirectory(prefix="pyflink-ceiling-") as tmp:
        workdir = Path(tmp)
        broker = KafkaBroker(workdir / "kafka", port=free_port(), controller_port=free_port())
        broker.start()
        try:
            topic = "ceiling"
            broker.create_topics([topic])
            produce(broker.bootstrap_servers, topic, (encode_record(r) for r in vector_records(args.records)))
            rates: dict[str, float] = {}
            for variant in variants:
                # One process per variant: a PyFlink client process runs one mini-cluster gateway.
                command = [sys.executable, __file__, "--one", variant, "--records", str(args.records)]
                command += ["--bootstrap", broker.bootstrap_servers, "--topic", topic, "--workdir", str(workdir)]
                done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy(), check=False)
                lines = [line for line in done.stdout.splitlines() if line.startswith("RATE ")]
                if done.returncode != 0 or not lines:
                    print(done.stdout[-2000:], done.stderr[-4000:], file=sys.stderr)
                    raise SystemExit(f"variant {variant} failed")
                rates[variant] = float(lines[-1].split()[1])
                print(f"{variant:>13}: {rates[variant]:8,.0f} records/s", flush=True)
        finally:
            broker.stop()
    base = rates[variants[0]]
    print(f"\n{args.records:,} records of 384-d vectors + ~1 KB metadata, parallelism 1, process mode:")
    print(f"{'variant':>13}  {'records/s':>10}  {'vs ' + variants[0]:>12}")
    for variant, rate in rates.items():
        print(f"{variant:>13}  {rate:10,.0f}  {rate / base:11.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
