"""The embed stage without Flink against the raw model, when the stage drains as it does before every checkpoint.

Run: ``python benchmarks/drain_bench.py [--texts 3000] [--group 250] [--drain-every 1000]``

The job hands the embed stage groups of ``--group`` texts and, before every checkpoint barrier, waits until every
text it has is embedded: the stage drains, and the model lanes end their work together or one of them idles. This
runs ``Embedder`` (``udfs.embed``) with the lanes the job would plan on this machine (``lane_plan``) on the same
product texts (``embed_bench.product_texts``): the groups of each stretch of ``--drain-every`` texts at once, then
a wait until all are embedded, stretch after stretch. Next to it, in the same run, the raw limit: one
``model.encode`` of all the texts in batches of 64 on torch's default threads. Prints texts/s of both and their
ratio. Each runs in its own process (torch's thread count is per process).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BATCH_SIZE = 64


def measure_raw(count: int) -> float:
    from benchmarks.embed_bench import product_texts
    from kafka_pinecone_flink.udfs.embed_model import load_encoder

    encoder = load_encoder("default", device="cpu", batch_size=BATCH_SIZE)
    texts = product_texts(count + BATCH_SIZE)
    encoder.encode(texts[-BATCH_SIZE:])  # warm-up
    started = time.perf_counter()
    encoder.encode(texts[:count])
    return count / (time.perf_counter() - started)


def measure_stage(count: int, group: int, drain_every: int) -> tuple[float, int]:
    from benchmarks.embed_bench import product_texts
    from kafka_pinecone_flink.udfs.embed import EmbedConfig, Embedder, lane_plan
    from kafka_pinecone_flink.udfs.embed_model import available_cores, load_encoder
    from kafka_pinecone_flink.udfs.records import UPSERT, Change, SourceRecord

    lanes, threads = lane_plan(0, 0, "cpu", available_cores())
    encoders = [
        load_encoder("default", device="cpu", batch_size=BATCH_SIZE, torch_threads=threads) for _ in range(lanes)
    ]
    texts = product_texts(count + BATCH_SIZE)
    for encoder in encoders:
        encoder.encode(texts[-BATCH_SIZE:])  # warm-up
    embedder = Embedder(encoders, EmbedConfig(batch_size=BATCH_SIZE, cache_entries=0))
    source = SourceRecord(topic="t", partition=0, offset=0, timestamp_ms=None, key=None, value=b"")
    changes = [Change(op=UPSERT, namespace="n", id=str(n), source=source, text=t) for n, t in enumerate(texts[:count])]

    async def run() -> None:
        for start in range(0, count, drain_every):
            stretch = changes[start : start + drain_every]
            groups = [stretch[at : at + group] for at in range(0, len(stretch), group)]
            await asyncio.gather(*(embedder.embed_group(g) for g in groups))  # then drained, as before a barrier

    started = time.perf_counter()
    try:
        asyncio.run(run())
    finally:
        embedder.close()
    return count / (time.perf_counter() - started), lanes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=3000)
    parser.add_argument("--group", type=int, default=250)
    parser.add_argument("--drain-every", type=int, default=1000)
    parser.add_argument("--measure", choices=("raw", "stage"), help=argparse.SUPPRESS)  # internal: one, own process
    args = parser.parse_args()
    if args.measure == "raw":
        print(json.dumps([measure_raw(args.texts), 1]))
        return
    if args.measure == "stage":
        print(json.dumps(measure_stage(args.texts, args.group, args.drain_every)))
        return
    results = {}
    for mode in ("raw", "stage"):
        command = [sys.executable, __file__, "--measure", mode, "--texts", str(args.texts)]
        command += ["--group", str(args.group), "--drain-every", str(args.drain_every)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[mode] = json.loads(output.strip().splitlines()[-1])
    (raw, _), (stage, lanes) = results["raw"], results["stage"]
    print(f"{args.texts} texts in groups of {args.group}, drained every {args.drain_every}")
    print(f"raw model.encode, batches of {BATCH_SIZE}: {raw:8.1f} texts/s")
    print(f"embed stage, {lanes} lane(s):{'':14}{stage:8.1f} texts/s  ({stage / raw:.2f}x)")


if __name__ == "__main__":
    main()
