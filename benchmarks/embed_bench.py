"""Embedding throughput: the raw model one text at a time vs batched, and the async embed stage end to end.

Run: ``python benchmarks/embed_bench.py [--texts 1024] [--single 200] [--device cpu] [--torch-threads 0]``

Texts are realistic product descriptions of 30-60 words, generated deterministically (fixed seed) and all
distinct, so the stage's first pass measures model work and its second pass measures cache hits. Batched modes run
the texts in arrival order, batch by batch, and in pools of several batches that the model sorts by length first
(what the embed stage does). Prints model import and load times, peak RSS, and texts/s for each mode side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kafka_pinecone_flink.udfs.embed import DEFAULT_POOL_BATCHES, EmbedConfig, Embedder, TextVectorCache
from kafka_pinecone_flink.udfs.records import UPSERT, Change, SourceRecord

SEED = 20_240_611
BATCH_SIZES = (32, 64, 128)
CACHE_PROBE_ENTRIES = 10_000

_ADJECTIVES = (
    *("lightweight", "durable", "breathable", "waterproof", "ergonomic", "compact", "premium", "insulated"),
    *("adjustable", "recycled", "soft", "rugged", "sleek", "portable", "stainless", "wireless", "rechargeable"),
    *("non-slip", "quick-dry", "organic", "handcrafted"),
)
_MATERIALS = ("cotton", "leather", "aluminium", "bamboo", "merino wool", "nylon", "ceramic", "walnut", "canvas")
_PRODUCTS = (
    *("running shoe", "backpack", "water bottle", "desk lamp", "rain jacket", "chef knife", "yoga mat"),
    *("headphones", "coffee grinder", "office chair", "tent", "sleeping bag", "phone case", "wristwatch"),
)
_FEATURES = (
    *("keeps drinks cold for 24 hours", "fits a 15-inch laptop", "folds flat for travel", "is machine washable"),
    *("charges fully in two hours", "comes with a lifetime warranty", "reduces strain on the wrists"),
    *("blocks wind and light rain", "has a grippy rubber outsole", "stays comfortable all day"),
    *("is dishwasher safe", "includes a magnetic closure", "weighs less than 300 grams"),
    *("is made from 80 percent recycled material", "ships in plastic-free packaging"),
)
_USES = ("hiking", "commuting", "the gym", "the office", "camping", "travel", "everyday use", "the kitchen", "school")


def product_texts(count: int, seed: int = SEED) -> list[str]:
    """``count`` distinct product descriptions of 30-60 words."""
    rng = random.Random(seed)
    texts: list[str] = []
    for number in range(count):
        words: list[str] = [f"Model {number}:"]
        target = rng.randint(30, 60)
        while len(words) < target:
            adjectives = " ".join(rng.sample(_ADJECTIVES, 2))
            sentence = (
                f"This {adjectives} {rng.choice(_MATERIALS)} {rng.choice(_PRODUCTS)} {rng.choice(_FEATURES)} "
                f"and is ideal for {rng.choice(_USES)}."
            )
            words.extend(sentence.split())
        texts.append(" ".join(words[:target]))
    return texts


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:8.1f} texts/s  ({count} texts in {seconds:6.2f} s)"


def stage_changes(texts: list[str]) -> list[Change]:
    return [
        Change(op=UPSERT, namespace="bench", id=str(i), source=SourceRecord("bench", 0, i, None, None, b""), text=t)
        for i, t in enumerate(texts)
    ]


async def run_stage(embedder: Embedder, changes: list[Change]) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(embedder.embed(c) for c in changes))
    return time.perf_counter() - start


def cache_bytes_per_entry(dimension: int) -> float:
    rng = np.random.default_rng(SEED)
    vectors = rng.random((CACHE_PROBE_ENTRIES, dimension), dtype=np.float32)
    tracemalloc.start()
    cache = TextVectorCache(CACHE_PROBE_ENTRIES)
    for i in range(CACHE_PROBE_ENTRIES):
        cache.put(i.to_bytes(16, "little"), vectors[i].copy())
    used, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return used / CACHE_PROBE_ENTRIES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1024, help="texts for the batched and stage runs")
    parser.add_argument("--single", type=int, default=200, help="texts for the one-at-a-time run")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--torch-threads", type=int, default=0, help="0 = torch's default")
    args = parser.parse_args()

    texts = product_texts(args.texts)
    words = [len(t.split()) for t in texts]
    rss_before = peak_rss_mb()
    start = time.perf_counter()
    import sentence_transformers  # noqa: F401 - timed separately from the model load
    import torch

    imported = time.perf_counter()
    from kafka_pinecone_flink.udfs.embed_model import load_encoder

    encoder = load_encoder("default", device=args.device, batch_size=max(BATCH_SIZES), torch_threads=args.torch_threads)
    loaded = time.perf_counter()
    rss_loaded = peak_rss_mb()

    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, {torch.get_num_threads()} torch threads")
    print(f"texts: {len(texts)} distinct, {min(words)}-{max(words)} words (mean {sum(words) / len(words):.0f})")
    print(f"import torch + sentence-transformers: {imported - start:6.2f} s")
    print(f"model load:                           {loaded - imported:6.2f} s")
    print(f"peak RSS: {rss_before:.0f} MB before, {rss_loaded:.0f} MB after load")

    encoder.encode(texts[:8])  # warm-up: first call allocates
    single = texts[: args.single]
    start = time.perf_counter()
    for text in single:
        encoder.encode([text])
    print(f"raw model, one at a time:   {rate(len(single), time.perf_counter() - start)}")
    pool = DEFAULT_POOL_BATCHES
    for size in BATCH_SIZES:
        sized = dataclasses.replace(encoder, batch_size=size)
        start = time.perf_counter()
        for first in range(0, len(texts), size):
            sized.encode(texts[first : first + size])
        print(f"raw model, batch {size:4d}:     {rate(len(texts), time.perf_counter() - start)}  (arrival order)")
        start = time.perf_counter()
        for first in range(0, len(texts), size * pool):
            sized.encode(texts[first : first + size * pool])
        pooled = rate(len(texts), time.perf_counter() - start)
        print(f"raw model, batch {size:4d}:     {pooled}  (pools of {pool} batches, sorted by length)")

    for size in BATCH_SIZES[:2]:
        config = EmbedConfig(batch_size=size, device=args.device)
        embedder = Embedder(dataclasses.replace(encoder, batch_size=size), config)
        seconds = asyncio.run(run_stage(embedder, stage_changes(texts)))
        print(f"async stage, batch {size:4d}:   {rate(len(texts), seconds)}  (all {len(texts)} submitted at once)")
        hits = asyncio.run(run_stage(embedder, stage_changes(texts)))
        print(f"async stage, cache hits:    {rate(len(texts), hits)}")
        embedder.close()
    print(f"cache memory: {cache_bytes_per_entry(encoder.dimension):.0f} bytes per entry at {encoder.dimension} dims")
    print(f"peak RSS at the end: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
