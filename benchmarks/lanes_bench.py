"""Model lanes: one model call at a time on all of torch's threads against several calls at once, one thread each.

Run: ``python benchmarks/lanes_bench.py [--lanes 2] [--texts 768] [--competitor]``

Encodes the same product texts (``embed_bench.product_texts``) in pools of 8, 16, 32 and 64 texts, first with one
copy of the model and torch's default threads (one call at a time, as the embed stage ran before lanes), then with
``--lanes`` copies, one torch thread each, encoding pools at once (what ``embedding.lanes`` does). ``--competitor``
runs, in another process, a light loop that takes about a tenth of a core (JSON parsing, 2 ms sleeps), as the job's
JVM and decode do beside the model. Prints texts/s for each mode side by side. Each mode runs in its own process
(torch's thread count is per process).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

POOLS = (8, 16, 32, 64)


def competitor(stop_at: float) -> None:
    document = json.dumps({"values": list(range(200))})
    while time.time() < stop_at:
        for _ in range(20):
            json.loads(document)
        time.sleep(0.002)


def measure(lanes: int, count: int, with_competitor: bool) -> dict[int, float]:
    from benchmarks.embed_bench import product_texts
    from kafka_pinecone_flink.udfs.embed_model import load_encoder

    threads = 1 if lanes > 1 else 0
    encoders = [load_encoder("default", device="cpu", batch_size=64, torch_threads=threads) for _ in range(lanes)]
    texts = product_texts(count + 64)
    for encoder in encoders:
        encoder.encode(texts[-64:])  # warm-up
    if with_competitor:
        multiprocessing.Process(target=competitor, args=(time.time() + 600,), daemon=True).start()
    rates = {}
    with ThreadPoolExecutor(lanes) as pool:
        for size in POOLS:
            pools = [texts[i : i + size] for i in range(0, count, size)]
            started = time.perf_counter()
            list(pool.map(lambda job: encoders[job[0] % lanes].encode(job[1]), enumerate(pools)))
            rates[size] = count / (time.perf_counter() - started)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lanes", type=int, default=2)
    parser.add_argument("--texts", type=int, default=768)
    parser.add_argument("--competitor", action="store_true")
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)  # internal: one mode, in its own process
    args = parser.parse_args()
    if args.measure is not None:
        print(json.dumps(measure(args.measure, args.texts, args.competitor)))
        return
    results = {}
    for lanes in (1, args.lanes):
        command = [sys.executable, __file__, "--measure", str(lanes), "--texts", str(args.texts)]
        command += ["--competitor"] if args.competitor else []
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[lanes] = {int(size): rate for size, rate in json.loads(output.strip().splitlines()[-1]).items()}
    pools = ", ".join(map(str, POOLS))
    print(f"{args.texts} texts, pools of {pools}; competitor: {'yes' if args.competitor else 'no'}")
    print(f"{'pool':>6} {'1 lane, default threads':>24} {f'{args.lanes} lanes, 1 thread':>20} {'ratio':>7}")
    for size in POOLS:
        one, many = results[1][size], results[args.lanes][size]
        print(f"{size:>6} {one:>19.1f} t/s {many:>15.1f} t/s {many / one:>6.2f}x")


if __name__ == "__main__":
    main()
