"""Documents end to end (udfs.chunking): the ingest job as its own process on the Flink mini-cluster, the session's
real Kafka broker, the packaged model and the local Pinecone server read back through the real SDK.

One bounded run carries the whole life of four documents: one long document, one that shrinks, one removed by a
tombstone and one removed by a flattened Debezium delete. The index must then hold exactly the chunks of the latest
versions, and a semantic query about the long document's last paragraph must find a chunk near its end.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from kafka_pinecone_flink.udfs.chunking import CHUNK_COUNT_FIELD, CHUNK_INDEX_FIELD, chunker
from tests.integration.ingest_harness import IngestHarness

pytestmark = pytest.mark.integration

TOKENS, OVERLAP = 200, 20
FILLER = (
    "The committee reviewed the quarterly budget and the maintenance schedule of the municipal buildings. Several "
    "members asked for more detail on heating costs, staffing levels and the timetable of the road repairs. The "
    "minutes record a long discussion of procurement rules, invoices and the archive of old planning documents."
).split(". ")
LAST_PARAGRAPH = (
    "At the very end of the season, the old lighthouse keeper on the northern island fed sardines to a colony of "
    "penguins every morning, and the birds followed him along the rocky shore like a small army."
)


def filler_paragraphs(rng: random.Random, count: int) -> list[str]:
    return [". ".join(rng.choice(FILLER) for _ in range(rng.randint(3, 6))) + "." for _ in range(count)]


def record(key: str, row: dict[str, Any] | None) -> tuple[bytes, bytes | None]:
    return key.encode(), None if row is None else json.dumps(row).encode()


def test_a_long_document_is_found_by_its_last_paragraph_and_edits_and_deletes_leave_exactly_the_latest_chunks(
    ingest: IngestHarness,
) -> None:
    from kafka_pinecone_flink.udfs.embed_model import load_encoder

    rng = random.Random(19)
    long_body = "\n\n".join([*filler_paragraphs(rng, 70), LAST_PARAGRAPH])
    assert len(long_body.split()) > 3000
    shrink_v1 = "\n\n".join(filler_paragraphs(rng, 40))
    shrink_v2 = "\n\n".join(filler_paragraphs(rng, 3))
    gone_body = "\n\n".join(filler_paragraphs(rng, 20))
    records = [
        record("long", {"body": long_body, "title": "Minutes"}),
        record("shrink", {"body": shrink_v1, "title": "v1"}),
        record("gone", {"body": gone_body}),
        record("gone-cdc", {"body": gone_body, "__deleted": "false"}),
        record("shrink", {"body": shrink_v2, "title": "v2"}),
        record("gone", None),
        record("gone-cdc", {"body": gone_body, "__deleted": "true"}),
    ]
    run = ingest.run(
        records,
        "--id.format=raw",
        "--embedding.text-fields=body",
        f"--chunking.tokens={TOKENS}",
        f"--chunking.overlap={OVERLAP}",
        "--chunking.text-field=text",
        dimension=384,
    )
    split = chunker("default", TOKENS, OVERLAP)
    long_count, shrink_v1_count, shrink_count = (len(split.spans(body)) for body in (long_body, shrink_v1, shrink_v2))
    assert long_count > 10 and shrink_v1_count > shrink_count >= 1 and len(split.spans(gone_body)) > 3
    namespace = run.topics[0]
    index = run.snapshot(namespace)
    # Exactly the chunks of the latest versions: no orphan of the longer version, nothing of a deleted document.
    expected = {f"long#{n}" for n in range(long_count)} | {f"shrink#{n}" for n in range(shrink_count)}
    assert set(index) == expected
    for record_id, (_, metadata) in index.items():
        document, n = record_id.rsplit("#", 1)
        assert metadata[CHUNK_INDEX_FIELD] == int(n)
        assert metadata[CHUNK_COUNT_FIELD] == (long_count if document == "long" else shrink_count)
        assert metadata["title"] == ("Minutes" if document == "long" else "v2")
    assert index[f"long#{long_count - 1}"][1]["text"].endswith(LAST_PARAGRAPH)

    encoder = load_encoder("default", device="cpu", batch_size=8)
    (question,) = encoder.encode(["Who feeds the penguins near the lighthouse?"])
    found = run.index.query(
        vector=[float(x) for x in question], top_k=3, namespace=namespace, include_metadata=True
    ).matches
    assert found[0].id == f"long#{long_count - 1}", [match.id for match in found]
    assert "penguins" in found[0].metadata["text"]
