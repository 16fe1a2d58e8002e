"""Benchmark of pinecone_local: upsert throughput and query latency.

Usage: ``python benchmarks/pinecone_local_bench.py [--upsert-vectors 60000] [--threads 4] [--query-vectors 100000]``

Starts an in-memory server subprocess, then measures:

1. upsert throughput with the real ``pinecone`` SDK (384-d vectors, batches of 100, several threads);
2. the same with raw httpx clients sending pre-encoded orjson bodies (separates client cost from server cost);
3. query latency (p50/p99, top_k=10) on an index of ``--query-vectors`` vectors, via the SDK and raw httpx, alone
   and while another thread upserts;
4. filtered query latency for the common filter shapes.

Client and server share the machine's cores, so wall-clock figures are a lower bound for the server alone. Every
line therefore also reports the server's CPU time per request (from ``/proc``), which depends far less on what else
the machine runs, and the 1-minute load average when the line was measured.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kafka_pinecone_flink.pinecone_local.launcher import LocalServer, start_pinecone_local, unique_index_name

DIM = 384
BATCH = 100
GENRES = ("drama", "comedy", "horror", "news", "sport", "music", "travel", "food", "tech", "art")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def load() -> str:
    """The 1-minute load average, for the report line."""
    return f"load {os.getloadavg()[0]:.2f}"


class CpuMeter:
    """CPU seconds (user + system) a process has used, read from ``/proc/<pid>/stat``."""

    def __init__(self, pid: int) -> None:
        self.path = Path(f"/proc/{pid}/stat")

    def seconds(self) -> float:
        fields = self.path.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def batches(total: int, rng: np.random.Generator, prefix: str, genres: bool = False) -> list[list[dict[str, Any]]]:
    out = []
    for start in range(0, total, BATCH):
        values = rng.random((BATCH, DIM), dtype=np.float32).tolist()
        chunk: list[dict[str, Any]] = []
        for i in range(BATCH):
            metadata: dict[str, Any] = {"n": start + i}
            if genres:
                metadata["genre"] = GENRES[(start + i) % len(GENRES)]
            chunk.append({"id": f"{prefix}-{start + i}", "values": values[i], "metadata": metadata})
        out.append(chunk)
    return out


def run_threads(work: list[Any], threads: int, worker: Callable[[list[Any]], None]) -> float:
    shards = [work[i::threads] for i in range(threads)]
    pool = [threading.Thread(target=worker, args=(shard,)) for shard in shards]
    started = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - started


def sdk_upsert(server: LocalServer, host: str, work: list[list[dict[str, Any]]], threads: int) -> float:
    pc = server.client()

    def worker(shard: list[Any]) -> None:
        idx = pc.index(host=host)
        for chunk in shard:
            idx.upsert(vectors=chunk)

    return len(work) * BATCH / run_threads(list(work), threads, worker)


def raw_upsert(host: str, work: list[list[dict[str, Any]]], threads: int) -> float:
    bodies = [orjson.dumps({"vectors": chunk}) for chunk in work]

    def worker(shard: list[Any]) -> None:
        with httpx.Client(timeout=60) as client:
            for body in shard:
                client.post(
                    f"{host}/vectors/upsert", content=body, headers={"content-type": "application/json"}
                ).raise_for_status()

    return len(work) * BATCH / run_threads(list(bodies), threads, worker)


def measured(meter: CpuMeter, requests: int, run: Callable[[], Any]) -> tuple[Any, float, float]:
    """``run()``'s result, the server's CPU ms per request and the client's (this process's) CPU ms per request."""
    server_before, client_before = meter.seconds(), time.process_time()
    result = run()
    server_ms = (meter.seconds() - server_before) * 1000 / requests
    client_ms = (time.process_time() - client_before) * 1000 / requests
    return result, server_ms, client_ms


def latencies(call: Callable[[], object], count: int) -> tuple[float, float]:
    for _ in range(5):
        call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(samples, 50)), float(np.percentile(samples, 99))


def report_upsert(label: str, rate: float, server_ms: float, client_ms: float) -> None:
    print(
        f"{label:<38}: {rate:>8,.0f} vectors/s   server {server_ms:5.2f} ms CPU/request, "
        f"client {client_ms:5.2f}   ({load()})",
        flush=True,
    )


def report_latency(label: str, p50: float, p99: float, server_ms: float) -> None:
    print(
        f"{label:<38}: p50 {p50:6.1f} ms  p99 {p99:6.1f} ms   server {server_ms:6.2f} ms CPU/query   ({load()})",
        flush=True,
    )


def query_benchmarks(server: LocalServer, meter: CpuMeter, args: argparse.Namespace, rng: np.random.Generator) -> None:
    pc = server.client()
    query_host = pc.indexes.create(name=unique_index_name("q"), dimension=DIM, metric="cosine").host
    for start in range(0, args.query_vectors, 20_000):
        count = min(20_000, args.query_vectors - start)
        raw_upsert(query_host, batches(count, rng, f"q{start}", genres=True), args.threads)
    idx = pc.index(host=query_host)
    total = idx.describe_index_stats().total_vector_count
    queries = rng.random((args.queries, DIM), dtype=np.float32).tolist()
    position = iter(range(10**9))

    def sdk_query(**kwargs: Any) -> Callable[[], object]:
        return lambda: idx.query(vector=queries[next(position) % len(queries)], top_k=10, **kwargs)

    (p50, p99), server_ms, _ = measured(meter, args.queries + 5, lambda: latencies(sdk_query(), args.queries))
    report_latency(f"query via SDK ({total:,}, top_k=10)", p50, p99, server_ms)
    bodies = [orjson.dumps({"vector": q, "topK": 10}) for q in queries]
    with httpx.Client() as client:

        def raw_query() -> object:
            body = bodies[next(position) % len(bodies)]
            return client.post(f"{query_host}/query", content=body).raise_for_status()

        (p50, p99), server_ms, _ = measured(meter, args.queries + 5, lambda: latencies(raw_query, args.queries))
        report_latency(f"query via httpx ({total:,}, top_k=10)", p50, p99, server_ms)

        # The same queries while one thread upserts into another index as fast as it can.
        writer_host = pc.indexes.create(name=unique_index_name("w"), dimension=DIM, metric="cosine").host
        writes = [orjson.dumps({"vectors": chunk}) for chunk in batches(20_000, rng, "w")]
        stop = threading.Event()

        def writer() -> None:
            with httpx.Client(timeout=60) as wclient:
                for i in range(10**9):
                    if stop.is_set():
                        return
                    wclient.post(f"{writer_host}/vectors/upsert", content=writes[i % len(writes)]).raise_for_status()

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            p50, p99 = latencies(raw_query, args.queries)
        finally:
            stop.set()
            thread.join()
        print(f"{'query via httpx during upserts':<38}: p50 {p50:6.1f} ms  p99 {p99:6.1f} ms   ({load()})", flush=True)

    shapes: list[tuple[str, dict[str, Any]]] = [
        ("n < 50000 (half)", {"n": {"$lt": 50_000}}),
        ("genre == drama (10%)", {"genre": "drama"}),
        ("genre $in 3 values (30%)", {"genre": {"$in": ["drama", "news", "art"]}}),
        ("genre $ne drama (90%)", {"genre": {"$ne": "drama"}}),
        ("$and genre + range (5%)", {"$and": [{"genre": "drama"}, {"n": {"$gte": 50_000}}]}),
    ]
    for label, spec in shapes:
        (p50, p99), server_ms, _ = measured(meter, 35, lambda s=spec: latencies(sdk_query(filter=s), 30))  # type: ignore[misc]
        report_latency(f"filtered query: {label}", p50, p99, server_ms)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--upsert-vectors", type=int, default=60_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--query-vectors", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--skip-upsert", action="store_true", help="only run the query benchmarks")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(
        f"machine: {os.cpu_count()} CPUs shared by client and server; dim={DIM}, batch={BATCH}, threads={args.threads}"
    )
    server = start_pinecone_local()
    meter = CpuMeter(server.process.pid)
    try:
        pc = server.client()
        if not args.skip_upsert:
            sdk_host = pc.indexes.create(name=unique_index_name("sdk"), dimension=DIM, metric="cosine").host
            raw_host = pc.indexes.create(name=unique_index_name("raw"), dimension=DIM, metric="cosine").host
            work = batches(args.upsert_vectors, rng, "u")
            requests = len(work)
            sdk_run = lambda: sdk_upsert(server, sdk_host, work, args.threads)  # noqa: E731
            rate, server_ms, client_ms = measured(meter, requests, sdk_run)
            report_upsert("upsert via pinecone SDK", rate, server_ms, client_ms)
            rate, server_ms, client_ms = measured(meter, requests, lambda: raw_upsert(raw_host, work, args.threads))
            report_upsert("upsert via raw httpx (pre-encoded)", rate, server_ms, client_ms)
        query_benchmarks(server, meter, args, rng)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
