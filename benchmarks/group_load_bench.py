"""What Python pays to load one sink group of workload (a), by the two ways a group has crossed to it.

    .venv/bin/python benchmarks/group_load_bench.py [--records 250] [--repeat 200]

The group: ``--records`` changes that the JVM decode path wrote (``ChangePickle.upsert``, through PyFlink's Java
gateway: 384 random doubles and ~1 KB of metadata each, as in (a)). Side by side, per change, best and median of 5:

* rows: the group as PyFlink's fast coder decodes a ``List<Row>`` of the dedup operator's rows, then
  ``udfs.dedup.applied_change`` on each row (how the sink and the embed stage read a group up to ebb6c29);
* one pickle: ``pickle.loads`` of the group as ``ChangePickle.appliedGroup`` writes it (``udfs.dedup.applied_groups``).

Both must give the same changes; the script checks that before it times them.
"""

from __future__ import annotations

import argparse
import pickle
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kafka_pinecone_flink.udfs.dedup import applied_change, output_type
from kafka_pinecone_flink.udfs.records import SourceRecord
from tests.integration.jvm_gateway import applied_group, java_source_record, kpf_gateway


def payloads(gateway: Any, records: int) -> list[bytes]:
    rng = random.Random(1)
    out = []
    for i in range(records):
        values = ",".join(f"{rng.uniform(-1, 1):.8f}" for _ in range(384))
        metadata = '{"title":"' + "x" * 900 + f'","n":{i}}}'
        json = f'{{"id":"id-{i}","values":[{values}],"metadata":{metadata}}}'.encode()
        source = SourceRecord("vectors", i % 2, i, 1_700_000_000_000 + i, f"id-{i}".encode(), None, ())
        record = java_source_record(gateway, source)
        pickled = gateway.jvm.io.github.kpf.decode.ChangePickle.upsert("ns", f"id-{i}", record, None, bytes(32), json)
        out.append(bytes(pickled))
    return out


def timed(work: Callable[[], Any], repeat: int, records: int) -> tuple[float, float]:
    work()
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(repeat):
            work()
        rounds.append((time.perf_counter() - start) / repeat / records * 1e6)
    return min(rounds), statistics.median(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=250, help="changes per group (batch.max-records: 250)")
    parser.add_argument("--repeat", type=int, default=200, help="loads per round")
    args = parser.parse_args()

    from pyflink.common import Row
    from pyflink.common.typeinfo import Types
    from pyflink.fn_execution import coders

    gateway = kpf_gateway()
    items = payloads(gateway, args.records)
    replaces = [i % 3 == 0 for i in range(args.records)]
    row_coder = coders.from_type_info(Types.LIST(output_type())).get_impl()
    rows_bytes = row_coder.encode([Row(item, flag, 0) for item, flag in zip(items, replaces, strict=True)])
    group = applied_group(gateway, [(item, flag, 0) for item, flag in zip(items, replaces, strict=True)])

    def by_rows() -> list[Any]:
        return [applied_change(row) for row in row_coder.decode(rows_bytes)]

    def by_group() -> list[Any]:
        loaded: list[Any] = pickle.loads(group)
        return loaded

    if by_rows() != by_group():
        raise SystemExit("the two ways gave different changes")
    print(f"a group of {args.records} changes of (a): {len(rows_bytes):,} bytes as rows, {len(group):,} as one pickle")
    for name, work in (("rows, then applied_change", by_rows), ("one pickle", by_group)):
        best, median = timed(work, args.repeat, args.records)
        print(f"  {name:28s} {best:6.2f} µs per change (best of 5), {median:6.2f} (median)")


if __name__ == "__main__":
    main()
