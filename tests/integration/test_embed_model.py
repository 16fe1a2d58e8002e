"""The embed stage with the real bundled all-MiniLM-L6-v2 model (importing torch and sentence-transformers takes
~10 s, hence integration)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from kafka_pinecone_flink.udfs.embed import EmbedConfig, Embedder, EmbedFunction
from kafka_pinecone_flink.udfs.embed_model import CHARS_PER_PIECE, SentenceTransformerEncoder, Vectors, load_encoder
from kafka_pinecone_flink.udfs.records import UPSERT, Change, DeadLetter, SourceRecord

pytestmark = pytest.mark.integration

TEXTS = [
    "Lightweight trail running shoe with a breathable mesh upper and a grippy rubber outsole.",
    "Stainless steel insulated water bottle that keeps drinks cold for 24 hours.",
    "Wireless noise-cancelling headphones with 30 hours of battery life.",
    "Cotton crew-neck t-shirt, pre-shrunk, available in twelve colours.",
    "short",
]


@pytest.fixture(scope="module")
def encoder() -> SentenceTransformerEncoder:
    return load_encoder("default", device="cpu", batch_size=64)


class CountingEncoder:
    def __init__(self, inner: SentenceTransformerEncoder) -> None:
        self.inner = inner
        self.calls: list[list[str]] = []

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def encode(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(list(texts))
        return self.inner.encode(texts)


def change(text: str, offset: int) -> Change:
    return Change(
        op=UPSERT,
        namespace="ns",
        id=f"id{offset}",
        source=SourceRecord("t", 0, offset, None, None, b"{}"),
        text=text,
    )


def run(embedder: Embedder, changes: list[Change]) -> list[Change | DeadLetter]:
    async def main() -> list[Change | DeadLetter]:
        return list(await asyncio.gather(*(embedder.embed(c) for c in changes)))

    return asyncio.run(main())


def test_the_default_model_gives_384_dimensional_unit_vectors(encoder: SentenceTransformerEncoder) -> None:
    vectors = encoder.encode(TEXTS)
    assert encoder.dimension == 384
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("batch_size", [64, 2])
def test_batched_vectors_equal_one_by_one_vectors_in_input_order(
    encoder: SentenceTransformerEncoder, batch_size: int
) -> None:
    # batch_size 2: the model sorts the pool of mixed lengths before batching it; rows still come back in input order
    batched = dataclasses.replace(encoder, batch_size=batch_size).encode(TEXTS)
    single = np.stack([encoder.encode([text])[0] for text in TEXTS])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_the_stage_fills_model_vectors_and_serves_repeats_from_the_cache(encoder: SentenceTransformerEncoder) -> None:
    counting = CountingEncoder(encoder)
    embedder = Embedder(counting, EmbedConfig())
    first = run(embedder, [change(t, i) for i, t in enumerate(TEXTS)])
    again = run(embedder, [change(TEXTS[0], 10)])[0]
    embedder.close()
    expected = encoder.encode(TEXTS)
    for out, row in zip(first, expected, strict=True):
        assert isinstance(out, Change) and out.values is not None
        np.testing.assert_allclose(out.values, row, atol=1e-5)
    assert isinstance(again, Change) and isinstance(first[0], Change)
    assert again.values == first[0].values
    assert counting.calls == [TEXTS]
    assert (embedder.stats.embedded, embedder.stats.cache_hits) == (len(TEXTS), 1)


def test_a_text_the_tokenizer_rejects_becomes_a_dead_letter_with_the_real_model(
    encoder: SentenceTransformerEncoder,
) -> None:
    embedder = Embedder(encoder, EmbedConfig())
    out = run(embedder, [change(TEXTS[0], 1), change("lone surrogate \ud800", 2), change(TEXTS[1], 3)])
    embedder.close()
    assert isinstance(out[0], Change) and isinstance(out[2], Change)
    assert isinstance(out[1], DeadLetter)
    assert out[1].stage == "embed" and out[1].error_class == "EmbeddingError"
    assert "TypeError" in out[1].message


def test_a_capped_long_text_embeds_exactly_like_the_whole_text(encoder: SentenceTransformerEncoder) -> None:
    words = " ".join(TEXTS[:4]).split()
    long_text = " ".join(words[i % len(words)] for i in range(3000))  # ~20,000 characters, ~3,500 word pieces
    capped = encoder.cap_text(long_text)
    assert len(capped) < len(long_text) and long_text.startswith(capped)
    assert encoder.window == 256 and len(capped) <= encoder.window * CHARS_PER_PIECE
    full, short = encoder.encode([long_text, capped])
    np.testing.assert_array_equal(full, short)
    assert encoder.cap_text(TEXTS[0]) is TEXTS[0]


def test_a_megabytes_long_text_is_embedded_quickly_and_counted(encoder: SentenceTransformerEncoder) -> None:
    huge = TEXTS[0] + " " + "word " * 1_000_000  # 5 MB
    embedder = Embedder(encoder, EmbedConfig())
    started = time.perf_counter()
    (out,) = run(embedder, [change(huge, 1)])
    elapsed = time.perf_counter() - started
    embedder.close()
    assert isinstance(out, Change) and out.values is not None
    np.testing.assert_allclose(out.values, encoder.encode([encoder.cap_text(huge)])[0], atol=1e-6)
    assert embedder.stats.truncated == 1
    assert elapsed < 2, f"embedding a 5 MB text took {elapsed:.1f} s"  # uncapped: 5.6 s here


class _Metrics:
    def __init__(self) -> None:
        self.gauges: dict[str, Callable[[], int]] = {}

    def gauge(self, name: str, obj: Callable[[], int]) -> None:
        self.gauges[name] = obj


class _RuntimeContext:
    def __init__(self) -> None:
        self.metrics = _Metrics()

    def get_metrics_group(self) -> _Metrics:
        return self.metrics


def test_the_embed_function_loads_the_model_in_open_and_reports_gauges() -> None:
    # Groups smaller than ahead_from (no backlog): each is embedded before its call returns.
    function = EmbedFunction(EmbedConfig(linger_ms=1), ahead_from=len(TEXTS) + 1)
    context = _RuntimeContext()
    function.open(context)

    async def main() -> list[Any]:
        # Two groups, as the JVM Batcher hands them over: the second one's text is a cache hit.
        groups = [[change(t, i) for i, t in enumerate(TEXTS)], [change(TEXTS[0], len(TEXTS))]]
        outs = [await function.async_invoke(group) for group in groups]
        assert [len(out) for out in outs] == [1, 1]  # one element per group: the list of its changes
        assert await function.async_invoke([]) == []  # the marker after them finds nothing left
        return [o for out in outs for o in out[0]]

    try:
        out = asyncio.run(main())
    finally:
        function.close()
    assert [type(o) for o in out] == [Change] * 6
    assert all(o.values is not None and len(o.values) == 384 for o in out)
    gauges = {name: gauge() for name, gauge in context.metrics.gauges.items()}
    latency = {name: value for name, value in gauges.items() if name.startswith("embed_batch_latency_ms_")}
    assert {name: value for name, value in gauges.items() if name not in latency} == {
        "embedded": 5,
        "embedding_cache_hits": 1,
        "embedding_failed": 0,
        "texts_truncated": 0,
        "chunks_embedded": 0,
        "chunks_reused": 0,
    }
    assert set(latency) == {f"embed_batch_latency_ms_{q}" for q in ("p50", "p95", "p99", "max")}
    assert 0 < latency["embed_batch_latency_ms_p50"] <= latency["embed_batch_latency_ms_max"]
