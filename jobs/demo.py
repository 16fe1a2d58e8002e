"""The quick-start demo: the full pipeline on the embedded default, start to finish, in one command.

1. starts a local Kafka broker and the local Pinecone-compatible server (``.run/demo/``);
2. creates the ``products`` index (384 dimensions, cosine) and the topics;
3. produces a product-catalogue change stream to two topics: ``catalogue-vectors`` carries vectors computed
   upstream, ``catalogue-text`` carries only text, which the job embeds; the stream has inserts, price-only
   updates, description updates, duplicates, deletes (tombstones and Debezium-style flags) and two poison records;
4. runs the ingest job in a Flink mini-cluster (its Web UI address is printed) until the stream is drained;
5. answers a semantic query against both namespaces, shows the index and the dead-letter topic;
6. documents: a second run of the job, with chunking on, ingests one long staff handbook (several thousand words,
   topic ``handbook``) as chunks ``handbook-2026#0``, ``#1``, ... and answers a question about its last section;
7. and stops what it started.

    python -m jobs.demo [--query "waterproof jacket for hiking"] [--no-documents] [--keep-running]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from kafka_pinecone_flink.stack.flink import job_process_environment
from kafka_pinecone_flink.stack.kafka import KafkaBroker
from kafka_pinecone_flink.stack.kafka_client import consume, produce
from kafka_pinecone_flink.stack.paths import ROOT, RUN_DIR, free_port

INDEX = "products"
VECTOR_TOPIC = "catalogue-vectors"
TEXT_TOPIC = "catalogue-text"
DEAD_LETTER_TOPIC = "catalogue-dead-letter"
DEFAULT_QUERY = "waterproof jacket for hiking in the rain"
DOCUMENT_TOPIC = "handbook"
DOCUMENT_ID = "handbook-2026"
DOCUMENT_QUERY = "how do I fix a ripped tent for a customer?"
CHUNK_TOKENS = 254
HANDBOOK_SECTIONS = (
    "Opening the shop: switch off the alarm, turn on the lights of the sales floor and count the float in the till. "
    "Check the rota for who covers the fitting rooms and who takes the first delivery of the day.",
    "Deliveries arrive at the back door between eight and ten. Check every box against the delivery note, sign only "
    "for what arrived, and write any damaged or missing parcel on the note before the driver leaves.",
    "The till: every sale is scanned, never typed in by hand. Refunds need the receipt and a supervisor's code; "
    "exchanges for a different size do not. Card terminals restart by themselves at midnight.",
    "Stock rooms are kept in the order of the sales floor, so that a size can be found in under a minute. Heavy boxes "
    "go on the lowest shelves, and nothing is stored in front of the fire exits, ever.",
    "Customers asking for advice get a colleague's full attention. Ask where and when they will use the product, "
    "suggest at most three options, and never push the most expensive one for its own sake.",
    "Breaks are taken in the order of the rota and last thirty minutes. Tell the supervisor when you leave the floor "
    "and when you come back, so the fitting rooms and the till are never left alone.",
    "Closing the shop: count the till with a colleague, put the cash in the safe, switch off the card terminals and "
    "the lights, and set the alarm from the back door once everyone has left.",
)
REPAIR_SECTION = (
    "Appendix, repairs at the counter: when a customer brings a torn tent, clean and dry the fabric around the tear, "
    "cut a round patch of repair tape two centimetres larger than the rip on every side, press it on from the middle "
    "outwards on both sides of the fabric, and seal the seam with a thin line of silicone. Tell the customer to let "
    "it cure for a day before pitching the tent in rain."
)

PRODUCTS: list[tuple[str, str, str, str, float]] = [
    (
        "sku-100",
        "Trail rain jacket",
        "Lightweight waterproof shell with taped seams and a packable hood.",
        "outdoor",
        129.0,
    ),
    (
        "sku-101",
        "Insulated parka",
        "Warm down parka for winter city commutes, water-resistant finish.",
        "outdoor",
        249.0,
    ),
    (
        "sku-102",
        "Hiking boots",
        "Leather boots with a waterproof membrane and a grippy sole for rocky trails.",
        "outdoor",
        159.0,
    ),
    (
        "sku-103",
        "Trekking poles",
        "Collapsible aluminium poles that take the strain off your knees downhill.",
        "outdoor",
        69.0,
    ),
    (
        "sku-104",
        "Two-person tent",
        "Freestanding tent that pitches in five minutes and sheds heavy rain.",
        "outdoor",
        219.0,
    ),
    ("sku-105", "Sleeping bag", "Three-season sleeping bag rated to minus five degrees.", "outdoor", 139.0),
    ("sku-200", "Espresso machine", "Fifteen-bar pump espresso maker with a steam wand for milk.", "kitchen", 349.0),
    (
        "sku-201",
        "Burr coffee grinder",
        "Conical burr grinder with forty grind settings, from espresso to French press.",
        "kitchen",
        119.0,
    ),
    ("sku-202", "Chef's knife", "Eight-inch forged steel knife, balanced for everyday chopping.", "kitchen", 89.0),
    (
        "sku-203",
        "Cast iron skillet",
        "Pre-seasoned skillet that goes from the stove top into the oven.",
        "kitchen",
        45.0,
    ),
    ("sku-204", "Stand mixer", "Tilt-head mixer with a dough hook, whisk and flat beater.", "kitchen", 299.0),
    (
        "sku-300",
        "Noise-cancelling headphones",
        "Over-ear wireless headphones with thirty hours of battery.",
        "audio",
        279.0,
    ),
    ("sku-301", "Bluetooth speaker", "Rugged portable speaker, waterproof, floats in the pool.", "audio", 99.0),
    ("sku-302", "Turntable", "Belt-drive record player with a built-in phono preamp.", "audio", 199.0),
    ("sku-400", "Standing desk", "Electric height-adjustable desk with memory presets.", "office", 499.0),
    ("sku-401", "Ergonomic chair", "Mesh office chair with adjustable lumbar support.", "office", 379.0),
    ("sku-402", "Desk lamp", "LED lamp with warm-to-cool colour temperature and a USB charging port.", "office", 59.0),
    ("sku-403", "Mechanical keyboard", "Tenkeyless keyboard with hot-swappable switches.", "office", 129.0),
]


def _row(sku: str, title: str, description: str, category: str, price: float, version: int) -> dict[str, Any]:
    return {
        "sku": sku,
        "title": title,
        "description": description,
        "category": category,
        "price": price,
        "tags": [category, "demo"],
        "updated_at": version,
    }


Records = list[tuple[bytes | None, bytes | None]]


def catalogue_stream(model: Any) -> tuple[Records, Records]:
    """The two topics' records: (vectors topic, text topic)."""
    vector_products, text_products = PRODUCTS[::2], PRODUCTS[1::2]
    texts = [f"{p[1]}\n{p[2]}" for p in vector_products]
    vectors = model.encode(texts).tolist()
    with_vectors: Records = []
    for product, vector in zip(vector_products, vectors, strict=True):
        row = {**_row(*product, version=1), "embedding": vector}
        with_vectors.append((product[0].encode(), json.dumps(row).encode()))
    # A price change arrives twice (a duplicate, skipped as unchanged), then an older version late (skipped as stale).
    sku, title, description, category, price = vector_products[0]
    vector = vectors[0]
    newer = {**_row(sku, title, description, category, price - 20, version=3), "embedding": vector}
    older = {**_row(sku, title, description, category, price + 50, version=2), "embedding": vector}
    with_vectors += [(sku.encode(), json.dumps(newer).encode())] * 2 + [(sku.encode(), json.dumps(older).encode())]
    with_vectors.append((vector_products[-1][0].encode(), None))  # a tombstone deletes the last one
    with_vectors.append((b"sku-bad-1", b'{"sku": "sku-bad-1", "title": "truncated'))  # poison: invalid JSON

    text_only: Records = []
    for product in text_products:
        text_only.append((product[0].encode(), json.dumps(_row(*product, version=1)).encode()))
    # A metadata-only update (the text is unchanged: no new embedding), a description update (re-embedded),
    # a Debezium-style delete flag, and a record with neither vector nor text (poison).
    sku, title, description, category, price = text_products[0]
    text_only.append((sku.encode(), json.dumps(_row(sku, title, description, category, price - 30, 2)).encode()))
    sku, title, _, category, price = text_products[1]
    better = "Hard-wearing sole and a breathable waterproof lining for muddy trails and wet hikes."
    text_only.append((sku.encode(), json.dumps(_row(sku, title, better, category, price, 2)).encode()))
    gone = text_products[-1]
    text_only.append((gone[0].encode(), json.dumps({**_row(*gone, version=2), "__deleted": "true"}).encode()))
    text_only.append((b"sku-bad-2", json.dumps({"sku": "sku-bad-2", "category": "office", "updated_at": 1}).encode()))
    return with_vectors, text_only


def handbook() -> str:
    """A long staff handbook: its sections again and again, numbered, with the repair appendix last."""
    paragraphs = [f"Section {n + 1}. {HANDBOOK_SECTIONS[n % len(HANDBOOK_SECTIONS)]}" for n in range(70)]
    return "\n\n".join([*paragraphs, REPAIR_SECTION])


def document_job_arguments(broker: KafkaBroker, controller: str, rest_port: int, run_dir: Path) -> list[str]:
    """The second run: the handbook topic, chunked (ids ``<key>#<n>``, each chunk's text kept in metadata)."""
    return [
        f"--kafka.bootstrap-servers={broker.bootstrap_servers}",
        f"--kafka.topics={DOCUMENT_TOPIC}",
        "--kafka.starting-position=earliest",
        "--kafka.bounded=true",
        f"--pinecone.index={INDEX}",
        f"--pinecone.controller-host={controller}",
        "--id.format=raw",
        "--embedding.text-fields=body",
        f"--chunking.tokens={CHUNK_TOKENS}",
        "--chunking.overlap=24",
        "--chunking.text-field=text",
        "--errors.tolerance=all",
        f"--errors.dead-letter-topic={DEAD_LETTER_TOPIC}",
        "--flink.checkpoint-interval-ms=2000",
        f"--flink.rest-port={rest_port}",
        f"--flink.run-dir={run_dir}",
    ]


def run_job(arguments: list[str]) -> bool:
    """Runs the ingest job with ``arguments`` to its end; prints its output and returns False if it failed."""
    command = [sys.executable, "-m", "kafka_pinecone_flink.jobs.ingest_job", *arguments]
    job = subprocess.run(command, cwd=ROOT, env=job_process_environment(), capture_output=True, text=True, check=False)
    if job.returncode != 0:
        print(job.stdout[-2000:], job.stderr[-4000:], sep="\n", file=sys.stderr)
        print("the ingest job failed (output above)", file=sys.stderr)
    return job.returncode == 0


def show_documents(pc: Any, encoder: Any, broker: KafkaBroker, controller: str, run_dir: Path) -> bool:
    """Step 6: one long document, chunked, and a question about its last section."""
    text = handbook()
    produce(broker.bootstrap_servers, DOCUMENT_TOPIC, [(DOCUMENT_ID.encode(), json.dumps({"body": text}).encode())])
    rest_port = free_port()
    print(
        f"\n• documents: a {len(text.split()):,}-word handbook to {DOCUMENT_TOPIC!r}, ingested with "
        f"--chunking.tokens={CHUNK_TOKENS} (Flink Web UI while it runs: http://127.0.0.1:{rest_port})",
        flush=True,
    )
    if not run_job(document_job_arguments(broker, controller, rest_port, run_dir)):
        return False
    index = pc.index(name=INDEX)
    count = index.describe_index_stats().namespaces[DOCUMENT_TOPIC].vector_count
    print(f"    namespace {DOCUMENT_TOPIC!r}: {count} chunks, {DOCUMENT_ID}#0 .. {DOCUMENT_ID}#{count - 1}")
    print(f"\nTop matches for {DOCUMENT_QUERY!r}:")
    question = encoder.encode([DOCUMENT_QUERY])[0].tolist()
    result = index.query(vector=question, top_k=3, namespace=DOCUMENT_TOPIC, include_metadata=True)
    for match in result.matches:
        meta = match.metadata or {}
        excerpt = str(meta.get("text", "")).replace("\n", " ")[-90:]
        n, count = int(meta.get("chunk_index", 0)), int(meta.get("chunk_count", 0))  # metadata numbers are floats
        print(f"  {match.score:.3f}  {match.id:<18} chunk {n} of {count}")
        print(f"         ...{excerpt}")
    return True


def job_arguments(broker: KafkaBroker, controller: str, rest_port: int, run_dir: Path) -> list[str]:
    return [
        f"--kafka.bootstrap-servers={broker.bootstrap_servers}",
        f"--kafka.topics={VECTOR_TOPIC},{TEXT_TOPIC}",
        "--kafka.starting-position=earliest",
        "--kafka.bounded=true",
        f"--pinecone.index={INDEX}",
        f"--pinecone.controller-host={controller}",
        "--id.strategy=field",
        "--id.field=sku",
        "--id.format=raw",
        "--vector.field=embedding",
        "--embedding.text-fields=title,description",
        "--dedup.version-field=updated_at",
        "--errors.tolerance=all",
        f"--errors.dead-letter-topic={DEAD_LETTER_TOPIC}",
        "--flink.checkpoint-interval-ms=2000",
        f"--flink.rest-port={rest_port}",
        f"--flink.run-dir={run_dir}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kafka_pinecone_flink.jobs.demo", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--query", default=DEFAULT_QUERY)
    parser.add_argument("--keep-running", action="store_true", help="leave the broker and the server running")
    parser.add_argument("--no-documents", action="store_true", help="skip step 6 (one long document, chunked)")
    args = parser.parse_args(argv)

    from pinecone import Pinecone

    from kafka_pinecone_flink.pinecone_local.launcher import start_pinecone_local
    from kafka_pinecone_flink.udfs.embed_model import load_encoder

    run_dir = RUN_DIR / "demo"
    began = time.monotonic()
    broker = KafkaBroker(run_dir / "kafka", port=free_port(), controller_port=free_port())
    print(f"• starting a Kafka broker ({broker.bootstrap_servers}) and the local Pinecone server", flush=True)
    broker.start()
    server = start_pinecone_local(data_dir=run_dir / "pinecone")
    try:
        pc = Pinecone(api_key="local-demo", host=server.url)
        if INDEX in [i.name for i in pc.list_indexes()]:
            pc.delete_index(INDEX)
        pc.create_index(
            name=INDEX, dimension=384, metric="cosine", spec={"serverless": {"cloud": "aws", "region": "local"}}
        )
        broker.create_topics([VECTOR_TOPIC, TEXT_TOPIC, DEAD_LETTER_TOPIC, DOCUMENT_TOPIC])

        encoder = load_encoder("default", device="cpu", batch_size=32)
        with_vectors, text_only = catalogue_stream(encoder)
        produce(broker.bootstrap_servers, VECTOR_TOPIC, with_vectors)
        produce(broker.bootstrap_servers, TEXT_TOPIC, text_only)
        print(f"• produced {len(with_vectors)} records to {VECTOR_TOPIC} and {len(text_only)} to {TEXT_TOPIC}")

        rest_port = free_port()
        print(f"• running the ingest job (Flink Web UI while it runs: http://127.0.0.1:{rest_port})", flush=True)
        if not run_job(job_arguments(broker, server.url, rest_port, run_dir)):
            return 1

        index = pc.index(name=INDEX)
        stats = index.describe_index_stats()
        print(f"• index {INDEX!r}: {stats.total_vector_count} vectors")
        for namespace, summary in sorted(stats.namespaces.items()):
            print(f"    namespace {namespace!r}: {summary.vector_count} vectors")

        query_vector = encoder.encode([args.query])[0].tolist()
        print(f"\nTop matches for {args.query!r}:")
        matches = []
        for namespace in (VECTOR_TOPIC, TEXT_TOPIC):
            result = index.query(vector=query_vector, top_k=3, namespace=namespace, include_metadata=True)
            matches += [(m.score, namespace, m) for m in result.matches]
        for score, namespace, match in sorted(matches, key=lambda t: -t[0])[:5]:
            meta = match.metadata or {}
            print(
                f"  {score:.3f}  {match.id:<8} {meta.get('title', ''):<28} ${meta.get('price', 0):>7.2f}  ({namespace})"
            )

        dead = consume(broker.bootstrap_servers, DEAD_LETTER_TOPIC, expected=2, timeout_s=30)
        print(f"\nDead-letter topic {DEAD_LETTER_TOPIC!r}: {len(dead)} records")
        for message in dead:
            headers = {k: (v or b"").decode() for k, v in message.headers}
            print(
                f"  {headers.get('kpf.source.topic')}[{headers.get('kpf.source.partition')}]"
                f"@{headers.get('kpf.source.offset')}: {headers.get('kpf.error.class')}: "
                f"{headers.get('kpf.error.message', '')[:80]}"
            )
        if not args.no_documents and not show_documents(pc, encoder, broker, server.url, run_dir / "documents"):
            return 1
        print(f"\ndone in {time.monotonic() - began:.0f}s")
        return 0
    finally:
        if not args.keep_running:
            server.stop()
            broker.stop()
        else:
            print(f"left running: Kafka {broker.bootstrap_servers}, Pinecone {server.url}")


if __name__ == "__main__":
    sys.exit(main())
