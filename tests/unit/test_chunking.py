"""Chunking (udfs.chunking): the splitter on the default model's own tokenizer, the chunk operations of a document
change, and chunking through decode, the dedup oracle and the embed stage."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from hashlib import blake2b
from itertools import pairwise
from typing import Any

import numpy as np
import orjson
import pytest

from kafka_pinecone_flink.udfs import chunking
from kafka_pinecone_flink.udfs.chunking import CHUNK_COUNT_FIELD, CHUNK_INDEX_FIELD, chunker, expand, spans
from kafka_pinecone_flink.udfs.decode import decode
from kafka_pinecone_flink.udfs.decode_errors import IdTooLongError, MetadataKeyCollisionError, MetadataTooLargeError
from kafka_pinecone_flink.udfs.dedup import DedupState, decide
from kafka_pinecone_flink.udfs.embed import EmbedConfig, Embedder
from kafka_pinecone_flink.udfs.ids import uuid_for
from kafka_pinecone_flink.udfs.records import DELETE, UPSERT, Change, DeadLetter, SourceRecord
from kafka_pinecone_flink.udfs.route_config import RouteConfig

pytestmark = pytest.mark.unit

WORDS = (
    "river mountain quantum ledger harbor violin candle engine orchard lantern basalt comet meadow falcon glacier "
    "prism saddle tundra walnut zephyr anchor beacon cobalt dune ember fjord granite hollow iris jasper"
).split()
SOURCE = SourceRecord("docs", 0, 0, None, b"k", b"{}")


def paragraph(rng: random.Random) -> str:
    sentences = []
    for _ in range(rng.randint(1, 7)):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 22))]
        sentences.append(" ".join(words).capitalize() + rng.choice(".!?"))
    return " ".join(sentences)


def document(rng: random.Random, paragraphs: int) -> list[str]:
    return [paragraph(rng) for _ in range(paragraphs)]


def texts(text: str, found: Sequence[tuple[int, int]]) -> list[str]:
    return [text[a:b] for a, b in found]


@pytest.fixture(scope="module")
def split() -> chunking.Chunker:
    return chunker("default", 128, 0)


def test_every_chunk_fits_and_the_chunks_cover_the_whole_text_in_order(split: chunking.Chunker) -> None:
    rng = random.Random(7)
    text = "\n\n".join(document(rng, 120))  # several thousand words
    assert len(text.split()) > 3000
    found = split.spans(text)
    assert len(found) > 20
    for piece in texts(text, found):
        assert split.count(piece) <= 128  # counted again on the chunk alone: the same word pieces
    # Without overlap the chunks follow one another; only whitespace lies between them.
    assert found[0][0] == 0 and found[-1][1] == len(text)
    for (_, end), (start, _) in pairwise(found):
        assert end <= start and text[end:start].strip() == ""
    # Cuts fall at paragraph or sentence ends (this text has no sentence longer than a chunk).
    assert all(text[b - 1] in ".!?" for _, b in found)


def test_an_edit_inside_one_paragraph_changes_about_one_chunk(split: chunking.Chunker) -> None:
    rng = random.Random(11)
    changed = []
    for _ in range(40):
        paragraphs = document(rng, 60)
        before = set(texts(text := "\n\n".join(paragraphs), split.spans(text)))
        at = rng.randrange(len(paragraphs))
        paragraphs[at] += " " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 30))) + "."
        text = "\n\n".join(paragraphs)
        changed.append(sum(piece not in before for piece in texts(text, split.spans(text))))
    assert max(changed) <= 4
    assert sum(changed) / len(changed) <= 1.6, changed


def test_overlap_repeats_at_most_that_many_word_pieces_from_the_chunk_before() -> None:
    split = chunker("default", 96, 16)
    text = "\n\n".join(document(random.Random(3), 40))
    found = split.spans(text)
    for (a0, b0), (a1, b1) in pairwise(found):
        assert a0 < a1 < b0 <= b1  # starts inside the chunk before
        assert 0 < split.count(text[a1:b0]) <= 16
        assert split.count(text[a1:b1]) <= 96


def test_a_long_sentence_and_a_long_word_are_cut_at_word_pieces() -> None:
    split = chunker("default", 32, 0)
    text = " ".join(["verylongword"] * 100) + " " + "x" * 600
    found = split.spans(text)
    assert all(split.count(piece) <= 32 for piece in texts(text, found))
    assert "".join(texts(text, found)).replace(" ", "") == text.replace(" ", "")


def test_a_short_text_is_one_chunk_and_a_text_without_word_pieces_is_kept_whole() -> None:
    assert spans("hello world", [(0, 5), (6, 11)], 10) == [(0, 11)]
    assert spans("\u200b", [], 10) == [(0, 1)]
    with pytest.raises(ValueError, match="overlap"):
        spans("a", [(0, 1)], 4, 4)


# --- the operations of a document change ---------------------------------------------------------------------------


def doc(op: str = UPSERT, chunks: int = 0, previous: int = 0, replaces: bool = False) -> Change:
    text = " ".join(f"w{n}" for n in range(chunks))
    change = Change(op=op, namespace="ns", id="d", source=SOURCE, metadata={"title": "T"}, version=7)
    if op == UPSERT:
        change.text = text
        change.chunk_spans = tuple((3 * n, 3 * n + 2) for n in range(chunks)) if chunks else None
    change.previous_chunks = previous
    change.replaces = replaces
    return change


def operations(changes: list[Change]) -> list[tuple[str, str]]:
    return [(c.op, c.id) for c in changes]


def test_a_shrinking_edit_writes_its_chunks_and_deletes_the_surplus_ones() -> None:
    out = expand(doc(chunks=3, previous=5, replaces=True), [[float(n)] for n in range(3)], "text")
    assert operations(out) == [
        (UPSERT, "d#0"),
        (UPSERT, "d#1"),
        (UPSERT, "d#2"),
        (DELETE, "d#3"),
        (DELETE, "d#4"),
    ]
    assert out[1].metadata == {"title": "T", CHUNK_INDEX_FIELD: 1, CHUNK_COUNT_FIELD: 3, "text": "w1"}
    assert out[1].values == [1.0] and out[1].version == 7 and out[1].source is SOURCE
    assert [c.replaces for c in out[:3]] == [True, True, True]


def test_a_growing_edit_writes_new_chunks_as_inserts() -> None:
    out = expand(doc(chunks=3, previous=1, replaces=True), [[0.0]] * 3, None)
    assert operations(out) == [(UPSERT, "d#0"), (UPSERT, "d#1"), (UPSERT, "d#2")]
    assert [c.replaces for c in out] == [True, False, False]
    assert "text" not in out[0].metadata


def test_a_delete_deletes_every_chunk_and_an_unchunked_delete_stays_one() -> None:
    assert operations(expand(doc(DELETE, previous=3, replaces=True), None, None)) == [
        (DELETE, "d#0"),
        (DELETE, "d#1"),
        (DELETE, "d#2"),
    ]
    plain = doc(DELETE)
    assert expand(plain, None, None) == [plain]


def test_switching_between_one_vector_and_chunks_removes_the_other_form() -> None:
    # A chunked version replacing a plain vector deletes the plain id; the reverse deletes the chunks.
    assert operations(expand(doc(chunks=2, previous=0, replaces=True), [[0.0]] * 2, None))[-1] == (DELETE, "d")
    assert operations(expand(doc(chunks=2, previous=0, replaces=False), [[0.0]] * 2, None)) == [
        (UPSERT, "d#0"),
        (UPSERT, "d#1"),
    ]
    plain = doc(previous=2, replaces=True)
    assert operations(expand(plain, None, None)) == [(UPSERT, "d"), (DELETE, "d#0"), (DELETE, "d#1")]


# --- decode --------------------------------------------------------------------------------------------------------


def route(**options: Any) -> RouteConfig:
    return RouteConfig(dimension=3, metric="cosine", text_fields=("body",), id_format="raw", **options)


def record(value: dict[str, Any], key: bytes = b"doc-1") -> SourceRecord:
    return SourceRecord("docs", 0, 0, None, key, orjson.dumps(value))


def test_decode_splits_a_long_text_and_binds_the_content_hash_to_the_chunking_settings() -> None:
    body = "\n\n".join(document(random.Random(5), 30))
    plain = decode(record({"body": body}), route())
    chunked = decode(record({"body": body}), route(chunk_tokens=100))
    other = decode(record({"body": body}), route(chunk_tokens=100, chunk_overlap=10))
    assert isinstance(plain, Change) and isinstance(chunked, Change) and isinstance(other, Change)
    assert plain.chunk_spans is None and plain.chunk_count == 0
    assert chunked.chunk_spans is not None and chunked.chunk_count > 5
    assert chunked.chunk_spans == tuple(chunker("default", 100, 0).spans(body))
    assert len({plain.content_hash, chunked.content_hash, other.content_hash}) == 3
    assert chunked.text_hash == plain.text_hash and chunked.id == "doc-1"


def test_decode_refuses_a_chunk_id_too_long_a_reserved_field_and_chunk_metadata_too_large() -> None:
    body = "\n\n".join(document(random.Random(5), 30))
    with pytest.raises(IdTooLongError, match="chunk id"):
        decode(record({"body": body}, key=b"x" * 511), route(chunk_tokens=100))
    with pytest.raises(MetadataKeyCollisionError, match=CHUNK_INDEX_FIELD):
        decode(record({"body": body, CHUNK_INDEX_FIELD: 1}), route(chunk_tokens=100))
    with pytest.raises(MetadataTooLargeError):
        decode(record({"body": body}), route(chunk_tokens=100, chunk_text_field="text", max_metadata_bytes=2000))
    fits = decode(record({"body": body}), route(chunk_tokens=100, chunk_text_field="text"))
    assert isinstance(fits, Change) and fits.chunk_count > 0


# --- the dedup oracle ----------------------------------------------------------------------------------------------


def test_the_dedup_oracle_keeps_the_chunk_count_of_the_applied_version() -> None:
    first = doc(chunks=5)
    first.content_hash = b"1"
    d1 = decide(None, first)
    assert d1.state == DedupState(7, b"1", None, False, 5) and first.previous_chunks == 0
    second = doc(chunks=2)
    second.content_hash = b"2"
    d2 = decide(d1.state, second)
    assert second.previous_chunks == 5 and second.replaces and d2.state is not None and d2.state.chunks == 2
    gone = doc(DELETE)
    gone.content_hash = b"d"
    d3 = decide(d2.state, gone)
    assert gone.previous_chunks == 2 and d3.state is not None and d3.state.chunks == 0
    again = doc(chunks=1)
    again.content_hash = b"3"
    decide(d3.state, again)
    assert again.previous_chunks == 0 and not again.replaces


# --- the embed stage -----------------------------------------------------------------------------------------------


class Encoder:
    def __init__(self, window: int | None = None) -> None:
        self.calls: list[list[str]] = []
        self.window = window

    @property
    def dimension(self) -> int:
        return 4

    def encode(self, texts: Sequence[str]) -> Any:
        self.calls.append(list(texts))
        if any(text.startswith("bad") for text in texts):
            raise ValueError("bad text")
        return np.array(
            [np.frombuffer(blake2b(t.encode(), digest_size=16).digest(), dtype=np.uint32) / 2**32 for t in texts],
            dtype=np.float32,
        )

    def over_window(self, text: str) -> bool:
        return self.window is not None and len(text.split()) > self.window


def embed(embedder: Embedder, changes: list[Change]) -> list[Change | DeadLetter]:
    return asyncio.run(asyncio.wait_for(embedder.embed_group(changes), timeout=10))


def chunked(paragraphs: list[str], previous: int = 0) -> Change:
    body = "\n\n".join(paragraphs)
    change = decode(record({"body": body, "title": "T"}), route(chunk_tokens=64))
    assert isinstance(change, Change)
    change.previous_chunks = previous
    change.replaces = previous > 0
    return change


def test_the_embed_stage_writes_each_chunk_and_an_edit_re_embeds_only_the_changed_chunks() -> None:
    encoder = Encoder()
    embedder = Embedder(encoder, EmbedConfig(linger_ms=0, chunk_text_field="text"))
    try:
        paragraphs = document(random.Random(9), 40)
        first = chunked(paragraphs)
        out = embed(embedder, [first])
        count = first.chunk_count
        assert operations([o for o in out if isinstance(o, Change)]) == [(UPSERT, f"doc-1#{n}") for n in range(count)]
        assert all(isinstance(o, Change) and o.values is not None and len(o.values) == 4 for o in out)
        assert embedder.stats.chunks_embedded == count and embedder.stats.chunks_reused == 0
        last = out[-1]
        assert isinstance(last, Change) and last.metadata["text"] in paragraphs[-1] + "\n\n".join(paragraphs[-3:])
        paragraphs[20] += " A few words more."
        edited = chunked(paragraphs, previous=count)
        embed(embedder, [edited])
        assert 1 <= embedder.stats.chunks_embedded - count <= 2
        assert embedder.stats.chunks_reused >= edited.chunk_count - 2
        # A shrinking edit deletes the surplus chunks, in the same group as the new chunks.
        short = chunked(paragraphs[:5], previous=edited.chunk_count)
        out = embed(embedder, [short])
        deletes = [o.id for o in out if isinstance(o, Change) and o.op == DELETE]
        assert deletes == [f"doc-1#{n}" for n in range(short.chunk_count, edited.chunk_count)]
    finally:
        embedder.close()


def test_a_document_whose_chunk_cannot_be_embedded_is_one_dead_letter_and_deletes_only_past_its_count() -> None:
    embedder = Embedder(Encoder(), EmbedConfig(linger_ms=0))
    try:
        good = chunked(document(random.Random(1), 10))
        bad = chunked(["bad " + paragraph(random.Random(2)), *document(random.Random(3), 10)], previous=40)
        out = embed(embedder, [bad, good])
        assert isinstance(out[0], DeadLetter) and out[0].stage == "embed"
        # Dedup's state now counts the failed version's chunks: every id past that count must go now.
        deletes = out[1 : 1 + 40 - bad.chunk_count]
        assert [(c.op, c.id, c.follows) for c in deletes if isinstance(c, Change)] == [
            (DELETE, f"doc-1#{n}", True) for n in range(bad.chunk_count, 40)
        ]
        rest = out[1 + len(deletes) :]
        assert all(isinstance(o, Change) and o.op == UPSERT and o.id.startswith("doc-1#") for o in rest)
        assert len(rest) == good.chunk_count
    finally:
        embedder.close()


def test_a_text_longer_than_the_window_is_counted_as_truncated() -> None:
    embedder = Embedder(Encoder(window=5), EmbedConfig(linger_ms=0))
    try:
        change = Change(op=UPSERT, namespace="ns", id="a", source=SOURCE, text="one two three four five six")
        short = Change(op=UPSERT, namespace="ns", id="b", source=SOURCE, text="one two")
        embed(embedder, [change, short])
        assert embedder.stats.truncated == 1
    finally:
        embedder.close()


# --- options -------------------------------------------------------------------------------------------------------


def test_the_chunking_options_reach_decode_and_the_embed_stage_and_are_checked() -> None:
    from kafka_pinecone_flink.jobs.options import JobConfigError
    from tests.unit.test_job_config import load

    embedding = ("--embedding.text-fields", "body")
    config = load(*embedding, "--chunking.tokens", "254", "--chunking.overlap", "20", "--chunking.text-field", "t")
    assert (config.route.chunk_tokens, config.route.chunk_overlap, config.route.chunk_text_field) == (254, 20, "t")
    assert config.route.chunk_model == "default" and config.embed is not None
    assert config.embed.chunk_text_field == "t"
    assert load(*embedding).route.chunk_tokens == 0  # off by default
    with pytest.raises(JobConfigError, match=r"chunking.tokens.*at most 254"):
        load(*embedding, "--chunking.tokens", "255")
    with pytest.raises(JobConfigError, match=r"chunking.overlap.*fewer word pieces than --chunking.tokens \(64\)"):
        load(*embedding, "--chunking.tokens", "64", "--chunking.overlap", "64")
    with pytest.raises(JobConfigError, match=r"chunking.overlap.*while chunking is off"):
        load(*embedding, "--chunking.overlap", "8")
    with pytest.raises(JobConfigError, match=r"chunking.tokens.*while embedding is off"):
        load("--chunking.tokens", "64")


def test_chunking_refuses_a_model_without_a_fast_tokenizer(tmp_path: Any) -> None:
    from kafka_pinecone_flink.jobs.options import JobConfigError
    from tests.unit.test_job_config import load

    (tmp_path / "modules.json").write_text("[]")
    model = ("--embedding.text-fields", "body", "--embedding.model", str(tmp_path))
    assert load(*model).route.chunk_tokens == 0  # without chunking the tokenizer is the model's business
    with pytest.raises(JobConfigError, match=r"embedding.model.*tokenizer.json"):
        load(*model, "--chunking.tokens", "64")


def test_chunk_ids_follow_the_record_id_under_either_id_format() -> None:
    body = "\n\n".join(document(random.Random(4), 20))
    for id_format in ("uuid", "raw"):
        config = RouteConfig(dimension=3, metric="cosine", text_fields=("body",), id_format=id_format, chunk_tokens=64)
        change = decode(record({"body": body}, key=b"doc-1"), config)
        assert isinstance(change, Change) and change.chunk_count > 1
        ids = [c.id for c in expand(change, [[0.0]] * change.chunk_count, None)]
        assert ids == [f"{change.id}#{n}" for n in range(change.chunk_count)]
        assert change.id == ("doc-1" if id_format == "raw" else uuid_for(b"doc-1"))
