"""Benchmark of pinecone_local: upsert throughput and query latency.

Usage: ``python benchmarks/pinecone_local_bench.py [--upsert-vectors 60000] [--threads 4] [--query-vectors 100000]``

Starts an in-memory server subprocess, then measures:

1. upsert throughput with the real ``pinecone`` SDK (384-d vectors, batches of 100, several threads);
2. the same with raw httpx clients sending pre-encoded orjson bodies (separates client cost from server cost);
3. query latency (p50/p99, top_k=10) on an index of ``--query-vectors`` vectors, via the SDK and raw httpx.

Client and server share the machine's cores, so the figures are a lower bound for the server alone.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pinecone_local.pytest_plugin import LocalServer, start_pinecone_local, unique_index_name

DIM = 384
BATCH = 100


def batches(total: int, rng: np.random.Generator, prefix: str) -> list[list[dict[str, object]]]:
    out = []
    for start in range(0, total, BATCH):
        values = rng.random((BATCH, DIM), dtype=np.float32).tolist()
        out.append(
            [{"id": f"{prefix}-{start + i}", "values": values[i], "metadata": {"n": start + i}} for i in range(BATCH)]
        )
    return out


def run_threads(work: list[object], threads: int, worker: Callable[[list[object]], None]) -> float:
    shards = [work[i::threads] for i in range(threads)]
    pool = [threading.Thread(target=worker, args=(shard,)) for shard in shards]
    started = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - started


def sdk_upsert(server: LocalServer, host: str, work: list[list[dict[str, object]]], threads: int) -> float:
    pc = server.client()

    def worker(shard: list[object]) -> None:
        idx = pc.index(host=host)
        for chunk in shard:
            idx.upsert(vectors=chunk)

    return len(work) * BATCH / run_threads(list(work), threads, worker)


def raw_upsert(host: str, work: list[list[dict[str, object]]], threads: int) -> float:
    bodies = [orjson.dumps({"vectors": chunk}) for chunk in work]

    def worker(shard: list[object]) -> None:
        with httpx.Client(timeout=60) as client:
            for body in shard:
                assert isinstance(body, bytes)
                client.post(
                    f"{host}/vectors/upsert", content=body, headers={"content-type": "application/json"}
                ).raise_for_status()

    return len(work) * BATCH / run_threads(list(bodies), threads, worker)


def latencies(call: Callable[[], object], count: int) -> tuple[float, float]:
    for _ in range(5):
        call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(samples, 50)), float(np.percentile(samples, 99))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upsert-vectors", type=int, default=60_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--query-vectors", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(
        f"machine: {os.cpu_count()} CPUs shared by client and server; dim={DIM}, batch={BATCH}, threads={args.threads}"
    )
    server = start_pinecone_local()
    try:
        pc = server.client()
        sdk_host = pc.indexes.create(name=unique_index_name("sdk"), dimension=DIM, metric="cosine").host
        raw_host = pc.indexes.create(name=unique_index_name("raw"), dimension=DIM, metric="cosine").host
        work = batches(args.upsert_vectors, rng, "u")
        print(f"upsert via pinecone SDK : {sdk_upsert(server, sdk_host, work, args.threads):>10,.0f} vectors/s")
        print(f"upsert via raw httpx    : {raw_upsert(raw_host, work, args.threads):>10,.0f} vectors/s")

        query_host = pc.indexes.create(name=unique_index_name("q"), dimension=DIM, metric="cosine").host
        for start in range(0, args.query_vectors, 20_000):
            raw_upsert(query_host, batches(min(20_000, args.query_vectors - start), rng, f"q{start}"), args.threads)
        idx = pc.index(host=query_host)
        total = idx.describe_index_stats().total_vector_count
        queries = rng.random((args.queries, DIM), dtype=np.float32).tolist()
        position = iter(range(10**9))
        p50, p99 = latencies(lambda: idx.query(vector=queries[next(position) % len(queries)], top_k=10), args.queries)
        print(f"query via SDK   ({total:,} vectors, top_k=10): p50 {p50:6.1f} ms   p99 {p99:6.1f} ms")
        bodies = [orjson.dumps({"vector": q, "topK": 10}) for q in queries]
        with httpx.Client() as client:
            p50, p99 = latencies(
                lambda: client.post(
                    f"{query_host}/query", content=bodies[next(position) % len(bodies)]
                ).raise_for_status(),
                args.queries,
            )
        print(f"query via httpx ({total:,} vectors, top_k=10): p50 {p50:6.1f} ms   p99 {p99:6.1f} ms")
        filtered = lambda: idx.query(vector=queries[0], top_k=10, filter={"n": {"$lt": 50_000}})  # noqa: E731
        p50, p99 = latencies(filtered, 30)
        print(f"filtered query via SDK (n < 50000)       : p50 {p50:6.1f} ms   p99 {p99:6.1f} ms")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
