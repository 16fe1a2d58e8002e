"""Ingest job throughput on this machine, next to the raw limits measured in the same run.

    .venv/bin/python benchmarks/ingest_bench.py [--vectors 20000] [--texts 1000]

Starts its own Kafka broker and local Pinecone server, produces two topics (records with pre-computed
384-dimensional vectors and ~1 KB of metadata; records with product text to embed), runs the ingest job (bounded, a
Flink mini-cluster, its own process) on each, and prints:

- job wall time (process start to exit: JVM, Flink and model start-up included) and steady-state records/s
  (from the first to the last vector seen in the index, polled every 100 ms);
- the raw batched model throughput (``encode`` in batches of 64 on the same texts, in this process) and the raw
  upsert throughput of the local server (SDK, batches of 100, one thread), as the ceilings the job runs under.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kafka_pinecone_flink.pinecone_local.launcher import start_pinecone_local
from kafka_pinecone_flink.stack.flink import job_process_environment
from kafka_pinecone_flink.stack.kafka import KafkaBroker
from kafka_pinecone_flink.stack.kafka_client import produce
from kafka_pinecone_flink.stack.paths import ROOT, free_port

WORDS = (
    "waterproof lightweight durable ergonomic compact insulated adjustable recycled rugged portable wireless "
    "rechargeable organic handcrafted jacket boots tent lamp chair desk blender grinder knife kettle speaker "
    "headphones backpack bottle mat trail kitchen office travel everyday running hiking"
).split()


def product_text(rng: random.Random) -> tuple[str, str]:
    title = " ".join(rng.choice(WORDS) for _ in range(4)).capitalize()
    description = " ".join(rng.choice(WORDS) for _ in range(rng.randint(30, 50))).capitalize() + "."
    return title, description


def metadata(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "sku": f"sku-{i}",
        "category": rng.choice(["outdoor", "kitchen", "office", "audio"]),
        "price": round(rng.uniform(5, 500), 2),
        "tags": [rng.choice(WORDS) for _ in range(5)],
        "description": " ".join(rng.choice(WORDS) for _ in range(120)),
    }


def run_job(
    broker: KafkaBroker, server_url: str, index: Any, topic: str, expected: int, *extra: str
) -> dict[str, float]:
    seen: list[tuple[float, int]] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                count = index.describe_index_stats().total_vector_count
                seen.append((time.monotonic(), count))
            except Exception:  # noqa: BLE001 - the server is local; a failed poll just misses a sample
                pass
            time.sleep(0.1)

    command = [
        sys.executable,
        "-m",
        "kafka_pinecone_flink.jobs.ingest_job",
        f"--kafka.bootstrap-servers={broker.bootstrap_servers}",
        f"--kafka.topics={topic}",
        "--kafka.starting-position=earliest",
        "--kafka.bounded=true",
        f"--pinecone.controller-host={server_url}",
        "--errors.tolerance=all",
        f"--errors.dead-letter-topic={topic}-dlq",
        "--flink.rest-port=0",
        f"--flink.run-dir={tempfile.mkdtemp(prefix='bench-run-')}",
        *extra,
    ]
    poller = threading.Thread(target=poll, daemon=True)
    began = time.monotonic()
    poller.start()
    result = subprocess.run(command, cwd=ROOT, env=job_process_environment(), capture_output=True, text=True)
    wall = time.monotonic() - began
    stop.set()
    poller.join()
    if result.returncode != 0:
        raise SystemExit(f"job failed:\n{result.stderr[-3000:]}")
    counts = [(t, c) for t, c in seen if c > 0]
    final = index.describe_index_stats().total_vector_count
    if final != expected:
        raise SystemExit(f"expected {expected} vectors, found {final}")
    first = counts[0][0] if counts else began
    last = next((t for t, c in counts if c >= expected), time.monotonic())
    steady = expected / max(last - first, 1e-3)
    return {"wall_s": wall, "steady_rps": steady, "first_write_s": first - began}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vectors", type=int, default=20_000)
    parser.add_argument("--texts", type=int, default=1_000)
    args = parser.parse_args()
    rng = random.Random(7)
    load = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    broker = KafkaBroker(workdir / "kafka", port=free_port(), controller_port=free_port())
    broker.start()
    server = start_pinecone_local()
    try:
        from pinecone import Pinecone

        pc = Pinecone(api_key="bench", host=server.url)
        spec = {"serverless": {"cloud": "aws", "region": "local"}}
        for name in ("vectors", "texts", "raw"):
            pc.create_index(name=f"bench-{name}", dimension=384, metric="cosine", spec=spec)
        broker.create_topics(["bench-vectors", "bench-texts", "bench-vectors-dlq", "bench-texts-dlq"])

        vector_records = []
        for i in range(args.vectors):
            row = {**metadata(rng, i), "values": [rng.uniform(-1, 1) for _ in range(384)]}
            vector_records.append((f"v{i}".encode(), json.dumps(row).encode()))
        produce(broker.bootstrap_servers, "bench-vectors", vector_records)
        texts = [product_text(rng) for _ in range(args.texts)]
        text_records = [
            (f"t{i}".encode(), json.dumps({"title": t, "description": d, "price": i}).encode())
            for i, (t, d) in enumerate(texts)
        ]
        produce(broker.bootstrap_servers, "bench-texts", text_records)

        # Raw ceilings, measured now, in this process.
        raw_index = pc.index(name="bench-raw")
        batch = [(f"r{i}", [rng.uniform(-1, 1) for _ in range(384)]) for i in range(100)]
        began = time.monotonic()
        for round_ in range(50):
            raw_index.upsert(vectors=[(f"{round_}-{i}", v) for i, v in batch])
        raw_upsert = 5000 / (time.monotonic() - began)

        from kafka_pinecone_flink.udfs.embed_model import load_encoder

        encoder = load_encoder("default", device="cpu", batch_size=64)
        joined = [f"{t}\n{d}" for t, d in texts]
        encoder.encode(joined[:64])  # warm-up
        began = time.monotonic()
        encoder.encode(joined)
        raw_model = len(joined) / (time.monotonic() - began)
        del encoder

        vectors = run_job(
            broker,
            server.url,
            pc.index(name="bench-vectors"),
            "bench-vectors",
            args.vectors,
            "--pinecone.index=bench-vectors",
        )
        text = run_job(
            broker,
            server.url,
            pc.index(name="bench-texts"),
            "bench-texts",
            args.texts,
            "--pinecone.index=bench-texts",
            "--embedding.text-fields=title,description",
        )
    finally:
        server.stop()
        broker.stop()

    print(f"\nmachine: {os.cpu_count()} cores, load average at start {load:.2f}; python {sys.version.split()[0]}")
    print(f"{'':44} {'records':>8} {'job wall s':>11} {'steady rec/s':>13}")
    print(
        f"{'ingest job, 384-d vectors + ~1 KB metadata':44} {args.vectors:>8} {vectors['wall_s']:>11.1f} "
        f"{vectors['steady_rps']:>13.0f}"
    )
    print(f"{'ingest job, text to embed':44} {args.texts:>8} {text['wall_s']:>11.1f} {text['steady_rps']:>13.1f}")
    print(f"{'raw: local server upserts (SDK, 100/batch)':44} {5000:>8} {'':>11} {raw_upsert:>13.0f}")
    print(f"{'raw: model.encode, batches of 64':44} {args.texts:>8} {'':>11} {raw_model:>13.1f}")
    print(f"\nembedding: job steady rate / raw batched model = {text['steady_rps'] / raw_model:.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
