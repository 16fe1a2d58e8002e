"""Documents through the embed stage with chunking (udfs.chunking): long documents, then edits touching one paragraph.

Run: ``python benchmarks/chunk_bench.py [--documents 40] [--paragraphs 60] [--edits 2] [--tokens 254] [--overlap 0]
[--device cpu] [--torch-threads 0] [--split-only]``

Documents are generated deterministically (fixed seed): paragraphs of 1-7 sentences of 4-22 words. Each document is
decoded (the splitter runs there) and embedded by the embed stage as the job does it (``Embedder.embed_group``: chunk
upserts, cache per chunk text); then every document gets ``--edits`` edits, each appending a sentence to one random
paragraph, and goes through the stage again with the chunk count of its previous version. Prints:

- the splitter alone: documents/s and chunks/s (tokenizer + cuts, what decode adds per document);
- the first pass: documents/s and chunks/s through the stage, next to raw batched ``encode`` of the same chunk texts
  (sorted in pools, as the stage does);
- the edit passes: documents/s, and the share of chunks re-embedded per edit (``chunks_embedded`` over the chunks of
  the edited versions), which the splitter alone also gives without the model (``--split-only``).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from itertools import pairwise
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson

from kafka_pinecone_flink.udfs.chunking import chunker
from kafka_pinecone_flink.udfs.decode import decode
from kafka_pinecone_flink.udfs.records import Change, SourceRecord
from kafka_pinecone_flink.udfs.route_config import RouteConfig

SEED = 20_261_203
WORDS = (
    "river mountain quantum ledger harbor violin candle engine orchard lantern basalt comet meadow falcon glacier "
    "prism saddle tundra walnut zephyr anchor beacon cobalt dune ember fjord granite hollow iris jasper council "
    "budget archive station railway ferry market village library bridge tower garden museum theatre"
).split()


def paragraph(rng: random.Random) -> str:
    sentences = []
    for _ in range(rng.randint(1, 7)):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 22))]
        sentences.append(" ".join(words).capitalize() + ".")
    return " ".join(sentences)


def documents(count: int, paragraphs: int, rng: random.Random) -> list[list[str]]:
    return [[paragraph(rng) for _ in range(paragraphs)] for _ in range(count)]


def edit(doc: list[str], rng: random.Random) -> list[str]:
    edited = list(doc)
    at = rng.randrange(len(edited))
    edited[at] += " " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 20))).capitalize() + "."
    return edited


def decoded(key: int, doc: list[str], config: RouteConfig) -> Change:
    source = SourceRecord("docs", 0, key, None, str(key).encode(), orjson.dumps({"body": "\n\n".join(doc)}))
    change = decode(source, config)
    assert isinstance(change, Change)
    return change


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=40)
    parser.add_argument("--paragraphs", type=int, default=60)
    parser.add_argument("--edits", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=254)
    parser.add_argument("--overlap", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--torch-threads", type=int, default=0)
    parser.add_argument("--split-only", action="store_true", help="only the splitter and the re-embedded share")
    args = parser.parse_args()

    rng = random.Random(SEED)
    docs = documents(args.documents, args.paragraphs, rng)
    config = RouteConfig(
        dimension=384,
        metric="cosine",
        text_fields=("body",),
        id_format="raw",
        chunk_tokens=args.tokens,
        chunk_overlap=args.overlap,
    )
    split = chunker("default", args.tokens, args.overlap)
    texts = ["\n\n".join(doc) for doc in docs]
    started = time.perf_counter()
    chunk_counts = [len(split.spans(text)) for text in texts]
    elapsed = time.perf_counter() - started
    words = sum(len(text.split()) for text in texts) / len(texts)
    print(f"{len(docs)} documents of ~{words:,.0f} words, {sum(chunk_counts):,} chunks of <= {args.tokens} pieces")
    print(f"splitter alone: {len(docs) / elapsed:,.1f} documents/s, {sum(chunk_counts) / elapsed:,.0f} chunks/s")

    edited_docs: list[list[list[str]]] = []
    changed, total = 0, 0
    for doc in docs:
        versions = [doc]
        for _ in range(args.edits):
            versions.append(edit(versions[-1], rng))
        edited_docs.append(versions)
        for before, after in pairwise(versions):
            old = {text[a:b] for text in ["\n\n".join(before)] for a, b in split.spans(text)}
            new_text = "\n\n".join(after)
            pieces = [new_text[a:b] for a, b in split.spans(new_text)]
            changed += sum(piece not in old for piece in pieces)
            total += len(pieces)
    edits = len(docs) * args.edits
    print(
        f"edits touching one paragraph: {changed / edits:.2f} chunks of {total / edits:.1f} re-embedded per edit "
        f"({100 * changed / total:.1f}% of the chunks; splitter alone)"
    )
    if args.split_only:
        return

    from kafka_pinecone_flink.udfs.embed import EmbedConfig, Embedder
    from kafka_pinecone_flink.udfs.embed_model import load_encoder

    encoder = load_encoder("default", device=args.device, batch_size=64, torch_threads=args.torch_threads)
    first = [decoded(n, doc, config) for n, doc in enumerate(docs)]
    chunk_texts = [c.text[a:b] for c in first if c.text and c.chunk_spans for a, b in c.chunk_spans]
    encoder.encode(chunk_texts[:64])  # warm up
    started = time.perf_counter()
    for start in range(0, len(chunk_texts), 256):
        encoder.encode(chunk_texts[start : start + 256])
    raw = time.perf_counter() - started
    print(f"raw batched encode of the same chunks: {len(chunk_texts) / raw:,.1f} chunks/s")

    embedder = Embedder(encoder, EmbedConfig(device=args.device, linger_ms=5))

    async def stage(changes: list[Change]) -> None:
        await asyncio.gather(*(embedder.embed_group([c]) for c in changes))

    try:
        started = time.perf_counter()
        asyncio.run(stage(first))
        elapsed = time.perf_counter() - started
        print(
            f"embed stage, first versions: {len(first) / elapsed:,.1f} documents/s, "
            f"{embedder.stats.chunks_embedded / elapsed:,.1f} chunks/s (decode's splitter not included)"
        )
        embedded_before = embedder.stats.chunks_embedded
        counts = {n: c.chunk_count for n, c in enumerate(first)}
        later: list[Change] = []
        for step in range(1, args.edits + 1):
            for n, versions in enumerate(edited_docs):
                change = decoded(n, versions[step], config)
                change.previous_chunks, change.replaces = counts[n], True
                counts[n] = change.chunk_count
                later.append(change)
        started = time.perf_counter()
        asyncio.run(stage(later))
        elapsed = time.perf_counter() - started
        re_embedded = embedder.stats.chunks_embedded - embedded_before
        chunks = sum(c.chunk_count for c in later)
        print(
            f"embed stage, edits: {len(later) / elapsed:,.1f} documents/s; {re_embedded:,} of {chunks:,} chunks "
            f"re-embedded ({100 * re_embedded / chunks:.1f}%), {re_embedded / len(later):.2f} per edit"
        )
    finally:
        embedder.close()


if __name__ == "__main__":
    main()
