"""Documents end to end (udfs.chunking): the ingest job as its own process on the Flink mini-cluster, the session's
real Kafka broker, the packaged model and the local Pinecone server read back through the real SDK.

One bounded run carries the whole life of five documents: one long document, one that shrinks, and three removed by
a tombstone, a flattened Debezium delete (``__deleted``) and a Debezium envelope delete (``op: d``). The index must
then hold exactly the chunks of the latest versions, and a semantic query about the long document's last paragraph
must find a chunk near its end. Another run crashes mid-stream (Pinecone fails, the job restarts from its last
checkpoint) on documents that grow, shrink, are edited and deleted: it must end with exactly the latest chunks.
"""

from __future__ import annotations

import json
import random
import re
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
        record("gone-dbz", {"op": "c", "before": None, "after": {"body": gone_body}}),
        record("shrink", {"body": shrink_v2, "title": "v2"}),
        record("gone", None),
        record("gone-cdc", {"body": gone_body, "__deleted": "true"}),
        record("gone-dbz", {"op": "d", "before": {"body": gone_body}, "after": None}),
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
    # Each record is counted once in the closing summary, however many chunk operations it became.
    assert "not accounted for" not in run.output
    summary = run.output[run.output.rindex("Run summary (") :]
    assert re.search(r"records in +9\b", summary) and re.search(r"dead-lettered +0\b", summary), summary


def _document_stream(rng: random.Random, documents: int) -> tuple[list[tuple[bytes, bytes | None]], dict[str, str]]:
    """Documents that grow, shrink, get one paragraph edited and are deleted (tombstones), interleaved in one
    partition: the records, and the final body of every document alive at the end."""
    lives: list[list[tuple[str, str | None]]] = []
    final: dict[str, str] = {}
    for n in range(documents):
        key = f"doc-{n:03d}"
        paragraphs = filler_paragraphs(rng, rng.randint(2, 12))
        versions: list[str | None] = ["\n\n".join(paragraphs)]
        for _ in range(rng.randint(1, 3)):
            kind = rng.choice(("grow", "shrink", "edit", "delete"))
            if kind == "grow":
                paragraphs = paragraphs + filler_paragraphs(rng, rng.randint(2, 8))
            elif kind == "shrink":
                paragraphs = paragraphs[: rng.randint(1, max(1, len(paragraphs) // 3))]
            elif kind == "edit":
                at = rng.randrange(len(paragraphs))
                paragraphs = [*paragraphs[:at], paragraphs[at] + " Amended on review.", *paragraphs[at + 1 :]]
            if kind == "delete":
                versions.append(None)
                paragraphs = filler_paragraphs(rng, rng.randint(2, 6))  # a later version re-inserts it
            else:
                versions.append("\n\n".join(paragraphs))
        lives.append([(key, body) for body in versions])
        if versions[-1] is not None:
            final[key] = versions[-1]
    records: list[tuple[bytes, bytes | None]] = []
    while any(lives):
        life = rng.choice([life for life in lives if life])
        key, body = life.pop(0)
        records.append(record(key, None if body is None else {"body": body}))
    return records, final


def test_after_a_crash_mid_stream_the_index_holds_exactly_the_chunks_of_each_documents_latest_version(
    ingest: IngestHarness,
) -> None:
    records, final = _document_stream(random.Random(2026), 40)
    tokens = 48
    admin = ingest.pinecone_admin
    # The 7th upsert and the five after it fail: mid-stream whatever the host's speed (the stream makes more than
    # 100 chunks, written 10 at a time). Waiting for a vector count first raced a fast job to its end.
    admin("PUT", "/admin/faults", {"fail_next": [{"kind": "upsert", "count": 6, "status": 503, "after": 6}]})
    try:
        run = ingest.run(
            records,
            "--id.format=raw",
            "--embedding.text-fields=body",
            f"--chunking.tokens={tokens}",
            "--chunking.text-field=text",
            "--sink.batch-size=10",
            "--sink.max-retries=1",
            "--sink.retry-interval-ms=10",
            dimension=384,
        )
        failed = admin("GET", "/admin/faults")["counters"]["failed_next"]
    finally:
        admin("POST", "/admin/faults/reset")
    assert failed == 6, failed
    assert "SinkUnavailableError" in run.output, "the injected failure did not fail the job"
    split = chunker("default", tokens, 0)
    expected: dict[str, tuple[int, str]] = {}
    for key, body in final.items():
        found = split.spans(body)
        for n, (start, end) in enumerate(found):
            expected[f"{key}#{n}"] = (len(found), body[start:end])
    index = run.snapshot(run.topics[0])
    assert set(index) == set(expected), (sorted(set(index) - set(expected))[:5], sorted(set(expected) - set(index))[:5])
    for record_id, (_, metadata) in index.items():
        assert (metadata[CHUNK_COUNT_FIELD], metadata["text"]) == expected[record_id], record_id
    assert len(final) < 40 and len(expected) > 100  # some documents end deleted; many chunks
