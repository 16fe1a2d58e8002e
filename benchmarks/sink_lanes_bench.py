"""The Pinecone writer alone, against Pinecone's latency: how full its lanes' requests get, and what that buys.

Run: ``python benchmarks/sink_lanes_bench.py [--records 20000] [--latency-ms 0,30] [--batch-sizes 100,200]``

For each added server latency (the local server's ``--latency-ms``: real upserts take tens of milliseconds, the local
server about one), starts a local server and writes ``--records`` records of (a)'s shape (384-d vectors, about 1 KB of
metadata, their JSON made before, as decode makes it) through ``sinks.writer.PineconeWriter`` over the real SDK client,
in groups of ``--group`` records with ``--in-flight`` groups at once (what the sink's async operator keeps), once per
``--batch-sizes`` value. Beside it, in the same run and against the same server, the raw limit: the SDK client alone
sending pre-cut requests of the same batch size from ``sink.max-concurrency`` (4) tasks. Prints records/s, requests,
mean records per request and the writer's CPU per record.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

INDEX = "lanes"
NAMESPACE = "ns"


def make_changes(count: int) -> list[Any]:
    import orjson

    from kafka_pinecone_flink.udfs.records import UPSERT, Change, SourceRecord

    rng = random.Random(17)
    changes = []
    for i in range(count):
        record = {"id": f"id{i}", "values": [rng.uniform(-1, 1) for _ in range(384)], "metadata": {"t": "x" * 1000}}
        source = SourceRecord("bench", 0, i, 1_000, f"id{i}".encode(), b"{}")
        changes.append(Change(UPSERT, NAMESPACE, f"id{i}", source, json=orjson.dumps(record), content_hash=b"h"))
    return changes


class CountingClient:
    """The real client, counting upsert requests."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.requests = 0

    async def upsert(self, records: Any, namespace: str) -> None:
        self.requests += 1
        await self.client.upsert(records, namespace)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


async def run_writer(url: str, changes: list[Any], group: int, in_flight: int, batch_size: int) -> dict[str, float]:
    from kafka_pinecone_flink.sinks.client import open_index
    from kafka_pinecone_flink.sinks.config import PineconeSinkConfig
    from kafka_pinecone_flink.sinks.writer import PineconeWriter

    config = PineconeSinkConfig(index_name=INDEX, controller_host=url, batch_size=batch_size)
    client = CountingClient(await open_index(config))
    writer = PineconeWriter(client, config)  # type: ignore[arg-type]
    room = asyncio.Semaphore(in_flight)

    async def one(part: list[Any]) -> None:
        async with room:
            await writer.submit_group(part)

    began, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(changes[i : i + group]) for i in range(0, len(changes), group)))
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    await client.close()
    return {"rps": len(changes) / elapsed, "requests": client.requests, "cpu_us": cpu / len(changes) * 1e6}


async def run_raw(url: str, changes: list[Any], batch_size: int, tasks: int) -> dict[str, float]:
    from kafka_pinecone_flink.sinks.batch import UpsertRecord
    from kafka_pinecone_flink.sinks.client import open_index
    from kafka_pinecone_flink.sinks.config import PineconeSinkConfig

    client = await open_index(PineconeSinkConfig(index_name=INDEX, controller_host=url))
    records = [UpsertRecord(c.id, c.json) for c in changes]
    batches = [records[i : i + batch_size] for i in range(0, len(records), batch_size)]
    queue: asyncio.Queue[list[Any]] = asyncio.Queue()
    for batch in batches:
        queue.put_nowait(batch)

    async def sender() -> None:
        while not queue.empty():
            await client.upsert(queue.get_nowait(), NAMESPACE)

    began, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(sender() for _ in range(tasks)))
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
    await client.close()
    return {"rps": len(records) / elapsed, "requests": len(batches), "cpu_us": cpu / len(records) * 1e6}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--group", type=int, default=250, help="records per group (batch.max-records)")
    parser.add_argument("--in-flight", type=int, default=4, help="groups in flight (the sink operator's capacity)")
    parser.add_argument("--latency-ms", default="0,30", help="server latencies to run, comma-separated")
    parser.add_argument("--batch-sizes", default="100,200", help="sink.batch-size values, comma-separated")
    args = parser.parse_args(argv)

    from pinecone import Pinecone

    from kafka_pinecone_flink.pinecone_local.launcher import start_pinecone_local
    from kafka_pinecone_flink.sinks.config import DEFAULT_MAX_CONCURRENCY

    changes = make_changes(args.records)
    print(f"{args.records:,} records, groups of {args.group}, {args.in_flight} groups in flight")
    print("| latency ms | batch size | writer rec/s | requests | per request | CPU µs/rec | raw rec/s | vs raw |")
    print("|---|---|---|---|---|---|---|---|")
    for latency in (float(v) for v in args.latency_ms.split(",")):
        server = start_pinecone_local(extra_args=("--latency-ms", str(latency)) if latency else ())
        try:
            Pinecone(api_key="bench", host=server.url).create_index(
                name=INDEX, dimension=384, metric="cosine", spec={"serverless": {"cloud": "aws", "region": "local"}}
            )
            for batch_size in (int(v) for v in args.batch_sizes.split(",")):
                writer = asyncio.run(run_writer(server.url, changes, args.group, args.in_flight, batch_size))
                raw = asyncio.run(run_raw(server.url, changes, batch_size, DEFAULT_MAX_CONCURRENCY))
                print(
                    f"| {latency:g} | {batch_size} | {writer['rps']:,.0f} | {writer['requests']:,.0f} | "
                    f"{args.records / writer['requests']:.0f} | {writer['cpu_us']:.1f} | {raw['rps']:,.0f} | "
                    f"{writer['rps'] / raw['rps']:.2f}x |",
                    flush=True,
                )
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
