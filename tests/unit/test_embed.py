from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Sequence
from hashlib import blake2b
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pytest

from kafka_pinecone_flink.udfs.embed import (
    EmbedConfig,
    Embedder,
    EmbedFunction,
    TextVectorCache,
    lane_plan,
    text_key,
)
from kafka_pinecone_flink.udfs.embed_model import (
    ModelNotFoundError,
    Vectors,
    resolve_device,
    resolve_model_path,
    window_prefix,
)
from kafka_pinecone_flink.udfs.records import DELETE, UPSERT, Change, DeadLetter, SourceRecord, _applied_change

pytestmark = pytest.mark.unit

DIM = 8
REPO = Path(__file__).resolve().parents[2]


def source(offset: int = 0) -> SourceRecord:
    return SourceRecord(topic="t", partition=0, offset=offset, timestamp_ms=None, key=None, value=b"{}")


def upsert(text: str, offset: int = 0, *, values: list[float] | None = None, with_hash: bool = True) -> Change:
    return Change(
        op=UPSERT,
        namespace="ns",
        id=f"id{offset}",
        source=source(offset),
        text=text,
        values=values,
        text_hash=blake2b(text.encode(), digest_size=16).digest() if with_hash else None,
    )


def vector_of(text: str) -> Vectors:
    seed = int.from_bytes(blake2b(text.encode(), digest_size=4).digest(), "little")
    return np.random.default_rng(seed).random(DIM, dtype=np.float32)


class FakeEncoder:
    """Deterministic per-text vectors; records every call. Raises on texts in ``bad``; NaN for texts in ``nan``."""

    def __init__(self, bad: Sequence[str] = (), nan: Sequence[str] = (), broken: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.bad = set(bad)
        self.nan = set(nan)
        self.broken = broken

    @property
    def dimension(self) -> int:
        return DIM

    def encode(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(list(texts))
        if self.broken:
            raise RuntimeError("CUDA error: device lost")
        for text in texts:
            if text in self.bad:
                raise TypeError(f"cannot tokenize {text!r}")
        rows = [np.full(DIM, np.nan, dtype=np.float32) if t in self.nan else vector_of(t) for t in texts]
        return np.stack(rows)


def dedup_output(change: Change, replaces: bool = False) -> Change:
    """``change`` as the embed stage gets it after dedup (``udfs.dedup.applied_groups``): the pickle that crossed
    dedup, loaded, with ``replaces`` set."""
    from kafka_pinecone_flink.udfs.dedup import dedup_row

    return _applied_change(dedup_row(change)[5], replaces, 0)


def run_stage(encoder: FakeEncoder, changes: list[Change], **config: Any) -> tuple[list[Change | DeadLetter], Embedder]:
    embedder = Embedder(encoder, EmbedConfig(**config))

    async def main() -> list[Change | DeadLetter]:
        return list(await asyncio.gather(*(embedder.embed(c) for c in changes)))

    try:
        return asyncio.run(main()), embedder
    finally:
        embedder.close()


def test_an_upsert_with_text_gets_the_models_vector_as_python_floats() -> None:
    (out,), embedder = run_stage(FakeEncoder(), [upsert("red shoe")])
    assert isinstance(out, Change)
    assert out.values == vector_of("red shoe").tolist()
    assert out.values is not None and all(type(x) is float for x in out.values)
    assert embedder.stats.embedded == 1


def test_a_change_with_values_passes_through_untouched_without_calling_the_model() -> None:
    encoder = FakeEncoder()
    given = upsert("red shoe", values=[0.5] * DIM)
    (out,), _ = run_stage(encoder, [given])
    assert out is given
    assert given.values == [0.5] * DIM
    assert encoder.calls == []


def test_a_delete_and_an_upsert_without_text_pass_through_without_calling_the_model() -> None:
    encoder = FakeEncoder()
    delete = Change(op=DELETE, namespace="ns", id="a", source=source())
    no_text = Change(op=UPSERT, namespace="ns", id="b", source=source(), text=None)
    out, _ = run_stage(encoder, [delete, no_text])
    assert out[0] is delete and out[1] is no_text
    assert delete.values is None and no_text.values is None
    assert encoder.calls == []


def test_a_cache_hit_returns_the_identical_vector_without_calling_the_model() -> None:
    encoder = FakeEncoder()
    embedder = Embedder(encoder, EmbedConfig())

    async def main() -> tuple[Change | DeadLetter, Change | DeadLetter]:
        first = await embedder.embed(upsert("red shoe", 1))
        second = await embedder.embed(upsert("red shoe", 2))
        return first, second

    first, second = asyncio.run(main())
    embedder.close()
    assert isinstance(first, Change) and isinstance(second, Change)
    assert second.values == first.values
    assert encoder.calls == [["red shoe"]]
    assert (embedder.stats.embedded, embedder.stats.cache_hits) == (1, 1)


def test_identical_texts_in_one_batch_are_encoded_once() -> None:
    encoder = FakeEncoder()
    changes = [upsert("same", i) for i in range(5)] + [upsert("other", 5)]
    out, embedder = run_stage(encoder, changes)
    assert encoder.calls == [["same", "other"]]
    assert [c.values for c in out if isinstance(c, Change)] == [vector_of("same").tolist()] * 5 + [
        vector_of("other").tolist()
    ]
    assert (embedder.stats.embedded, embedder.stats.cache_hits) == (2, 4)


@pytest.mark.parametrize(
    ("count", "batch_size", "pool_batches", "calls"),
    [
        (10, 4, 1, [4, 4, 2]),  # one batch per model call
        (20, 3, 3, [9, 9, 2]),  # pools of several batches, which the model sorts by length before batching
    ],
)
def test_the_model_gets_pools_of_batch_size_x_pool_batches_and_results_keep_submission_order(
    count: int, batch_size: int, pool_batches: int, calls: list[int]
) -> None:
    encoder = FakeEncoder()
    texts = [f"text {'x' * (i % 7)} {i}" for i in range(count)]
    out, _ = run_stage(
        encoder, [upsert(t, i) for i, t in enumerate(texts)], batch_size=batch_size, pool_batches=pool_batches
    )
    assert [len(call) for call in encoder.calls] == calls
    assert [t for call in encoder.calls for t in call] == texts
    assert [c.values for c in out if isinstance(c, Change)] == [vector_of(t).tolist() for t in texts]
    assert [c.source.offset for c in out] == list(range(count))


def test_a_text_the_model_cannot_embed_becomes_a_dead_letter_and_the_batch_goes_on() -> None:
    encoder = FakeEncoder(bad=["\x00bad"])
    out, embedder = run_stage(encoder, [upsert("good 1", 1), upsert("\x00bad", 2), upsert("good 2", 3)])
    assert isinstance(out[0], Change) and out[0].values == vector_of("good 1").tolist()
    assert isinstance(out[2], Change) and out[2].values == vector_of("good 2").tolist()
    dead = out[1]
    assert isinstance(dead, DeadLetter)
    assert (dead.stage, dead.error_class, dead.source.offset) == ("embed", "EmbeddingError", 2)
    assert "the model could not embed the text: TypeError: cannot tokenize" in dead.message
    assert embedder.stats.failed == 1 and embedder.stats.embedded == 2
    assert len(embedder.cache) == 2


def test_a_vector_with_nan_becomes_a_dead_letter() -> None:
    (out,), _ = run_stage(FakeEncoder(nan=["weird"]), [upsert("weird")])
    assert isinstance(out, DeadLetter)
    assert out.message == "the model returned a vector with NaN or infinity"


def test_a_model_that_fails_on_a_probe_text_too_fails_the_batch_instead_of_dead_lettering_it() -> None:
    with pytest.raises(RuntimeError, match="embedding model fails on a probe text too: RuntimeError: CUDA error"):
        run_stage(FakeEncoder(broken=True), [upsert("a", 1), upsert("b", 2)])


# --- groups: embed_group, and EmbedFunction on a group of dedup rows -----------------------------------------------


def run_group(
    encoder: FakeEncoder, groups: list[list[Change]], **config: Any
) -> tuple[list[list[Change | DeadLetter]], Embedder]:
    """``embed_group`` of each group in turn; the longest linger, so a group that waited for it would time out."""
    embedder = Embedder(encoder, EmbedConfig(**{"linger_ms": 1000, **config}))

    async def main() -> list[list[Change | DeadLetter]]:
        return [await asyncio.wait_for(embedder.embed_group(group), timeout=10) for group in groups]

    try:
        return asyncio.run(main()), embedder
    finally:
        embedder.close()


def test_a_group_is_embedded_in_order_each_distinct_text_once() -> None:
    encoder = FakeEncoder()
    group = [upsert("a", 0), upsert("b", 1), upsert("a", 2), upsert("c", 3, with_hash=False), upsert("b", 4)]
    (out,), embedder = run_group(encoder, [group])
    assert encoder.calls == [["a", "b", "c"]]
    assert [c.source.offset for c in out] == [0, 1, 2, 3, 4]
    assert [c.values for c in out if isinstance(c, Change)] == [vector_of(t).tolist() for t in "abacb"]
    assert (embedder.stats.embedded, embedder.stats.cache_hits) == (3, 2)


def test_a_group_takes_cached_vectors_without_the_model() -> None:
    encoder = FakeEncoder()
    (first, second), embedder = run_group(encoder, [[upsert("red", 0)], [upsert("red", 1), upsert("blue", 2)]])
    assert encoder.calls == [["red"], ["blue"]]  # "red" came from the cache the second time
    assert isinstance(first[0], Change) and isinstance(second[0], Change)
    assert second[0].values == first[0].values == vector_of("red").tolist()
    assert (embedder.stats.embedded, embedder.stats.cache_hits) == (2, 1)


def test_a_group_of_cache_hits_and_pass_throughs_never_calls_the_model() -> None:
    encoder = FakeEncoder()
    delete = Change(op=DELETE, namespace="ns", id="gone", source=source(7))
    ready = upsert("x", 8, values=[1.0] * DIM)
    (_, out), _ = run_group(encoder, [[upsert("red", 0)], [upsert("red", 1), delete, ready]])
    assert encoder.calls == [["red"]]
    assert out[1] is delete and out[2] is ready and ready.values == [1.0] * DIM


def test_a_group_larger_than_a_pool_goes_to_the_model_in_pools() -> None:
    encoder = FakeEncoder()
    texts = [f"t{i}" for i in range(10)]
    (out,), _ = run_group(encoder, [[upsert(t, i) for i, t in enumerate(texts)]], batch_size=2, pool_batches=2)
    assert [len(call) for call in encoder.calls] == [4, 4, 2]
    assert [c.values for c in out if isinstance(c, Change)] == [vector_of(t).tolist() for t in texts]


def test_a_text_of_a_group_that_fails_is_a_dead_letter_in_its_place() -> None:
    encoder = FakeEncoder(bad=["\x00bad"])
    (out,), embedder = run_group(encoder, [[upsert("good 1", 1), upsert("\x00bad", 2), upsert("good 2", 3)]])
    assert isinstance(out[0], Change) and out[0].values == vector_of("good 1").tolist()
    assert isinstance(out[2], Change) and out[2].values == vector_of("good 2").tolist()
    dead = out[1]
    assert isinstance(dead, DeadLetter)
    assert (dead.stage, dead.error_class, dead.source.offset) == ("embed", "EmbeddingError", 2)
    assert "cannot tokenize" in dead.message
    assert embedder.stats.failed == 1


def test_the_embed_function_takes_a_group_of_changes_after_dedup_and_hands_on_its_list_on_a_marker() -> None:
    from kafka_pinecone_flink.udfs.batching import GroupsAhead

    encoder = FakeEncoder(bad=["bad"])
    function = EmbedFunction(EmbedConfig(linger_ms=1000))
    function._embedder = Embedder(encoder, EmbedConfig(linger_ms=1000))
    function._ahead = GroupsAhead(256)
    changes = [upsert("one", 0), upsert("bad", 1), upsert("two", 2)]
    rows = [dedup_output(c, replaces=i == 2) for i, c in enumerate(changes)]

    async def main() -> tuple[list[list[Change | DeadLetter]], list[list[Change | DeadLetter]]]:
        first = await asyncio.wait_for(function.async_invoke(rows), timeout=10)
        return first, await asyncio.wait_for(function.async_invoke([]), timeout=10)

    try:
        first, (out,) = asyncio.run(main())
    finally:
        function.close()
    assert first == []  # the call returned before the model ran; the marker waited for it
    assert [o.source.offset for o in out] == [0, 1, 2]
    assert isinstance(out[0], Change) and out[0].values == vector_of("one").tolist() and not out[0].replaces
    assert isinstance(out[1], DeadLetter) and out[1].stage == "embed"
    assert isinstance(out[2], Change) and out[2].values == vector_of("two").tolist() and out[2].replaces


def test_the_embed_function_embeds_a_group_smaller_than_ahead_from_before_its_call_returns() -> None:
    from kafka_pinecone_flink.udfs.batching import GroupsAhead

    function = EmbedFunction(EmbedConfig(linger_ms=1000), ahead_from=3)
    function._embedder = Embedder(FakeEncoder(), EmbedConfig(linger_ms=1000))
    function._ahead = GroupsAhead(256)
    full = [dedup_output(upsert(f"full {i}", i)) for i in range(3)]
    partial = [dedup_output(upsert("partial", 3))]

    async def main() -> list[list[list[Change | DeadLetter]]]:
        return [await asyncio.wait_for(function.async_invoke(group), timeout=10) for group in (full, partial, [])]

    try:
        after_full, after_partial, after_marker = asyncio.run(main())
    finally:
        function.close()
    assert after_full == []  # a full group: the call returned before the model ran
    assert [[o.source.offset for o in group] for group in after_partial] == [[0, 1, 2], [3]]  # both, in order
    assert after_marker == []


def test_a_group_weighs_the_texts_it_sends_to_the_model() -> None:
    import dataclasses

    embedder = Embedder(FakeEncoder(), EmbedConfig())
    try:
        embedder.cache.put(text_key(upsert("seen")), vector_of("seen"))
        changes = [
            upsert("new", 0),
            upsert("seen", 1),  # in the cache
            upsert("given", 2, values=[0.5] * DIM),  # brings its vector
            dataclasses.replace(upsert("gone", 3), op=DELETE),
            dataclasses.replace(upsert("a long document", 4), chunk_spans=((0, 6), (7, 15))),  # two chunks...
        ]
        embedder.cache.put(blake2b(b"document", digest_size=16).digest(), vector_of("document"))  # ...one cached
        work = embedder.start_group(changes)
        assert work.model_texts == 1 + 1
        out = asyncio.run(work.result)
    finally:
        embedder.close()
    assert [c.values for c in out[:3] if isinstance(c, Change)] == [vector_of(t).tolist() for t in ("new", "seen")] + [
        [0.5] * DIM
    ]


def test_a_change_without_text_hash_is_cached_by_a_digest_of_its_text() -> None:
    change = upsert("red shoe", with_hash=False)
    assert text_key(change) == blake2b(b"red shoe", digest_size=16).digest()
    encoder = FakeEncoder()
    out, _ = run_stage(encoder, [change, upsert("red shoe", 1, with_hash=False)])
    assert encoder.calls == [["red shoe"]]
    assert isinstance(out[1], Change) and out[1].values == vector_of("red shoe").tolist()


def test_the_cache_evicts_the_least_recently_used_entry() -> None:
    cache = TextVectorCache(2)
    a, b, c = (np.zeros(DIM, dtype=np.float32) + i for i in range(3))
    cache.put(b"a", a)
    cache.put(b"b", b)
    assert cache.get(b"a") is a  # refreshes a
    cache.put(b"c", c)
    assert cache.get(b"b") is None
    assert cache.get(b"a") is a and cache.get(b"c") is c
    assert len(cache) == 2


def test_a_zero_sized_cache_stores_nothing_and_every_text_is_embedded() -> None:
    encoder = FakeEncoder()
    embedder = Embedder(encoder, EmbedConfig(cache_entries=0))

    async def main() -> None:
        await embedder.embed(upsert("x", 1))
        await embedder.embed(upsert("x", 2))

    asyncio.run(main())
    embedder.close()
    assert encoder.calls == [["x"], ["x"]]
    assert len(embedder.cache) == 0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("batch_size", 0, "embed batch_size must be an integer between 1 and 1024, got 0"),
        ("pool_batches", 0, "embed pool_batches must be an integer between 1 and 64, got 0"),
        ("linger_ms", 5000, "embed linger_ms must be an integer between 0 and 1000, got 5000"),
        ("cache_entries", -1, "embed cache_entries must be an integer between 0 and 10000000, got -1"),
        ("torch_threads", 1.5, "embed torch_threads must be an integer between 0 and 256, got 1.5"),
        ("device", "tpu", "embed device must be one of cpu, cuda, auto, got 'tpu'"),
        ("model", "", "embed model must not be empty"),
    ],
)
def test_an_invalid_embed_config_is_rejected_naming_the_option(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        EmbedConfig(**{field: value})  # type: ignore[arg-type]


def test_a_model_name_that_is_not_a_local_directory_is_rejected_without_downloading() -> None:
    with pytest.raises(ModelNotFoundError, match="'sentence-transformers/all-MiniLM-L6-v2' is not a directory"):
        resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")


def test_a_directory_without_model_files_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"holds neither modules\.json nor config\.json"):
        resolve_model_path(str(tmp_path))


def test_the_default_model_resolves_to_the_bundled_weights() -> None:
    path = resolve_model_path("default")
    assert (path / "model.safetensors").is_file()
    assert (path / "modules.json").is_file()


def test_an_unknown_device_is_rejected() -> None:
    with pytest.raises(ValueError, match="embedding device must be one of cpu, cuda, auto, got 'gpu'"):
        resolve_device("gpu")


def test_the_embed_function_pickles_small_without_a_model() -> None:
    function = EmbedFunction(EmbedConfig())
    assert len(cloudpickle.dumps(function)) < 2000


def test_importing_the_stage_does_not_import_torch() -> None:
    # The driver imports the job's modules to build the graph; torch there would cost ~10 s and ~0.5 GB.
    code = (
        "import sys, kafka_pinecone_flink.udfs.embed, kafka_pinecone_flink.udfs.dedup; "
        "print('torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False False"


# --- long texts are cut before the model's tokenizer ---------------------------------------------------------------


class CappingEncoder(FakeEncoder):
    """Offers ``cap_text`` like the sentence-transformers encoder: keeps the first 3 words of a text."""

    def cap_text(self, text: str) -> str:
        if text == "untokenizable":
            raise TypeError("the tokenizer refuses it")
        return " ".join(text.split(" ")[:3])


def test_the_model_gets_capped_texts_and_the_cap_is_counted_but_the_cache_key_is_the_whole_text() -> None:
    encoder = CappingEncoder()
    long_text = "one two three four five"
    outs, embedder = run_stage(encoder, [upsert(long_text, 1), upsert("short", 2), upsert("untokenizable", 3)])
    assert encoder.calls == [["one two three", "short", "untokenizable"]]
    assert [o.values for o in outs] == [vector_of(t).tolist() for t in ("one two three", "short", "untokenizable")]
    assert embedder.stats.truncated == 1
    key = text_key(upsert(long_text))
    assert embedder.cache.get(key) is not None  # the whole text's hash: an update with the same text hits


def test_texts_are_capped_once_when_a_failing_batch_is_encoded_one_by_one() -> None:
    encoder = CappingEncoder(bad=["bad text here"])
    outs, embedder = run_stage(encoder, [upsert("bad text here and more", 1), upsert("a b c d", 2)])
    assert isinstance(outs[0], DeadLetter) and isinstance(outs[1], Change)
    assert encoder.calls[1:] == [["bad text here"], ["a b c"], ["probe"]]
    assert embedder.stats.truncated == 2


def pieces_of_words(text: str, most: int) -> int:
    """A fake tokenizer: one piece per word."""
    return min(len(text.split()), most)


def test_window_prefix_keeps_short_texts_whole() -> None:
    text = "word " * 10
    assert window_prefix(text, len(text), 3, pieces_of_words) is text


def test_window_prefix_cuts_at_the_last_whitespace_before_the_limit_when_enough_pieces_remain() -> None:
    text = "aaaa bbbb cccc dddd eeee ffff"
    assert window_prefix(text, 17, 2, pieces_of_words) == "aaaa bbbb cccc"  # 3 pieces > window of 2
    assert window_prefix(text, 17, 3, pieces_of_words) == text  # 3 pieces are not more than 3: 8x longer: whole


def test_window_prefix_grows_the_cut_past_long_runs_without_whitespace_or_pieces() -> None:
    text = "x" * 50 + " " + "\n" * 40 + " a b c d e f g h i j" + " tail" * 100
    cut = window_prefix(text, 16, 5, pieces_of_words)
    assert text.startswith(cut) and len(cut) < len(text)
    assert pieces_of_words(cut, 100) > 5 and text[len(cut)] in " \n"


def test_window_prefix_keeps_a_text_without_whitespace_whole() -> None:
    text = "y" * 10_000
    assert window_prefix(text, 16, 5, pieces_of_words) is text


def test_each_model_call_is_timed_in_the_batch_latency_window() -> None:
    _, embedder = run_stage(FakeEncoder(), [upsert("red shoe"), upsert("blue hat")])
    latencies = embedder.batch_latency_ms.values()
    assert len(latencies) >= 1 and all(latency >= 0 for latency in latencies)


class GatedEncoder(FakeEncoder):
    """A lane that blocks each call until the test releases it, and records the threads and overlap of its calls."""

    def __init__(self, entered: Any, release: Any, active: list[int]) -> None:
        super().__init__()
        self.entered = entered
        self.release = release
        self.active = active

    def encode(self, texts: Sequence[str]) -> Vectors:
        self.active[0] += 1
        self.active[1] = max(self.active[1], self.active[0])
        self.entered.release()
        try:
            assert self.release.wait(10), "the test never released the lane"
            return super().encode(texts)
        finally:
            self.active[0] -= 1


def test_lanes_encode_at_once_each_on_its_own_copy_of_the_model() -> None:
    import threading

    entered = threading.Semaphore(0)
    release = threading.Event()
    active = [0, 0]  # now, most at once
    lanes = [GatedEncoder(entered, release, active) for _ in range(2)]
    embedder = Embedder(lanes, EmbedConfig(linger_ms=1000))  # a group's texts are sealed together, not lingered on
    texts = [f"text {n}" for n in range(6)]

    async def main() -> list[Change | DeadLetter]:
        pending = asyncio.ensure_future(embedder.embed_group([upsert(t, n) for n, t in enumerate(texts)]))
        for _ in range(2):  # both lanes are inside the model at the same moment
            while not entered.acquire(blocking=False):
                await asyncio.sleep(0.001)
        release.set()
        return await pending

    try:
        out = asyncio.run(main())
    finally:
        embedder.close()
    assert [c.values for c in out if isinstance(c, Change)] == [vector_of(t).tolist() for t in texts]
    assert active[1] == 2
    assert [lane.calls for lane in lanes] == [[texts[:3]], [texts[3:]]]  # the idle lanes share the group's texts


def second_group_while_a_lane_is_busy(
    embedder: Embedder, entered: Any, release: Any, first: list[Change], second: list[Change]
) -> tuple[list[Change | DeadLetter], list[Change | DeadLetter]]:
    """Hands ``embedder`` (on ``GatedEncoder`` lanes) the ``first`` group, and the ``second`` once a lane is inside
    the model with the first; releases the lanes once a second call has entered the model, and returns both results."""

    async def main() -> tuple[list[Change | DeadLetter], list[Change | DeadLetter]]:
        pending = asyncio.ensure_future(embedder.embed_group(first))
        while not entered.acquire(blocking=False):
            await asyncio.sleep(0.001)
        behind = asyncio.ensure_future(embedder.embed_group(second))
        while not entered.acquire(blocking=False):
            await asyncio.sleep(0.001)
        release.set()
        return await pending, await behind

    try:
        return asyncio.run(main())
    finally:
        embedder.close()


@pytest.mark.parametrize("batch_size", [2, 64])
def test_with_several_lanes_a_pool_is_cut_into_batches_by_length_that_whichever_lane_is_free_takes(
    batch_size: int,
) -> None:
    import threading

    entered = threading.Semaphore(0)
    release = threading.Event()
    lanes = [GatedEncoder(entered, release, [0, 0]) for _ in range(2)]
    # A pool of 4 texts: two batches of 2 whether batch_size caps them (2) or the lanes' count cuts them (64).
    embedder = Embedder(lanes, EmbedConfig(batch_size=batch_size, pool_batches=4, linger_ms=1000))
    texts = ["ccc", "a", "dddd", "bb"]
    # One lane is busy with the first group, so the second group's pool is not split between idle lanes.
    second_group = [upsert(t, n) for n, t in enumerate(texts, 1)]
    first, second = second_group_while_a_lane_is_busy(embedder, entered, release, [upsert("busy", 0)], second_group)
    calls = sorted(tuple(call) for lane in lanes for call in lane.calls)
    assert calls == [("bb", "a"), ("busy",), ("dddd", "ccc")]  # longest first, in batches of 2, on both lanes
    assert [c.values for c in first if isinstance(c, Change)] == [vector_of("busy").tolist()]
    assert [c.values for c in second if isinstance(c, Change)] == [vector_of(t).tolist() for t in texts]


def test_texts_that_wait_while_every_lane_is_busy_go_to_the_first_lane_that_comes_free_not_after_the_linger() -> None:
    import threading

    entered = threading.Semaphore(0)
    release = threading.Event()
    lanes = [GatedEncoder(entered, release, [0, 0]) for _ in range(2)]
    embedder = Embedder(lanes, EmbedConfig(linger_ms=1000))  # longer than the test waits below

    async def main() -> tuple[list[Change | DeadLetter], list[Change | DeadLetter]]:
        first = asyncio.ensure_future(embedder.embed_group([upsert("a1", 0), upsert("a2", 1)]))
        for _ in range(2):  # one batch on each lane
            while not entered.acquire(blocking=False):
                await asyncio.sleep(0.001)
        second = asyncio.ensure_future(embedder.embed_group([upsert("b1", 2), upsert("b2", 3)]))
        await asyncio.sleep(0.05)
        assert not second.done()
        release.set()
        return await asyncio.wait_for(first, 0.5), await asyncio.wait_for(second, 0.5)

    try:
        first, second = asyncio.run(main())
    finally:
        embedder.close()
    assert [c.values for c in first + second if isinstance(c, Change)] == [
        vector_of(t).tolist() for t in ("a1", "a2", "b1", "b2")
    ]


def test_when_a_batch_of_a_pool_fails_the_pools_batches_still_waiting_are_not_encoded() -> None:
    lanes = [FakeEncoder(broken=True), FakeEncoder(broken=True)]
    embedder = Embedder(lanes, EmbedConfig(batch_size=1, pool_batches=8, linger_ms=1000))
    texts = [f"t{n}" for n in range(6)]  # one pool, cut into six batches of one text: t0 and t1 start at once

    async def main() -> list[Any]:
        group = embedder.embed_group([upsert(t, n) for n, t in enumerate(texts)])
        return await asyncio.gather(group, return_exceptions=True)

    try:
        (outcome,) = asyncio.run(main())
    finally:
        embedder.close()
    assert isinstance(outcome, RuntimeError) and "probe text" in str(outcome)
    encoded = {text for lane in lanes for call in lane.calls for text in call}
    assert encoded & {"t0", "t1"}  # the batches the lanes took failed (the second may be cancelled before it ran)
    assert not {"t2", "t3", "t4", "t5"} & encoded  # the batches still waiting never reached a lane


def test_texts_truncated_are_counted_across_lanes() -> None:
    lanes = [CappingEncoder(), CappingEncoder()]
    embedder = Embedder(lanes, EmbedConfig(linger_ms=1000))
    long_texts = [f"{n} " + "word " * 50 for n in range(4)]

    async def main() -> list[Change | DeadLetter]:
        return await embedder.embed_group([upsert(t, n) for n, t in enumerate(long_texts)])

    try:
        asyncio.run(main())
    finally:
        embedder.close()
    assert embedder.stats.truncated == 4
    assert all(lane.calls for lane in lanes)


@pytest.mark.parametrize(
    ("lanes", "threads", "device", "cores", "plan"),
    [
        (0, 0, "cpu", 2, (2, 1)),  # the development machine: two lanes of one thread
        (0, 0, "cpu", 16, (2, 8)),
        (0, 0, "cpu", 1, (1, 0)),  # one core: one lane with torch's default
        (0, 1, "cpu", 16, (1, 1)),  # torch-threads 1 (a slot of a shared machine): one lane of one thread
        (0, 4, "cpu", 16, (2, 2)),  # the threads asked for are shared by the lanes
        (3, 0, "cpu", 2, (3, 1)),  # lanes asked for: at least one thread each
        (1, 0, "cpu", 8, (1, 0)),
        (0, 0, "cuda", 16, (1, 0)),  # a GPU: one lane
        (2, 4, "cuda", 16, (2, 4)),
    ],
)
def test_lane_plan(lanes: int, threads: int, device: str, cores: int, plan: tuple[int, int]) -> None:
    assert lane_plan(lanes, threads, device, cores) == plan


def test_an_embedder_needs_an_encoder() -> None:
    with pytest.raises(ValueError, match="at least one encoder"):
        Embedder([], EmbedConfig())


def test_a_text_another_lane_is_encoding_is_not_encoded_twice() -> None:
    import threading

    entered = threading.Semaphore(0)
    release = threading.Event()
    lanes = [GatedEncoder(entered, release, [0, 0]) for _ in range(2)]
    embedder = Embedder(lanes, EmbedConfig(linger_ms=1000))

    first, second = second_group_while_a_lane_is_busy(
        embedder, entered, release, [upsert("same text", 0)], [upsert("same text", 1), upsert("other text", 2)]
    )
    assert [lane.calls for lane in lanes] == [[["same text"]], [["other text"]]]
    assert [c.values for c in (*first, *second) if isinstance(c, Change)] == [
        vector_of("same text").tolist(),
        vector_of("same text").tolist(),
        vector_of("other text").tolist(),
    ]
    assert (embedder.stats.embedded, embedder.stats.cache_hits) == (2, 1)


def test_when_a_lane_fails_the_pool_that_waited_for_its_text_fails_too() -> None:
    import threading

    entered = threading.Semaphore(0)
    release = threading.Event()
    broken = GatedEncoder(entered, release, [0, 0])
    broken.broken = True
    lanes = [broken, GatedEncoder(entered, release, [0, 0])]
    embedder = Embedder(lanes, EmbedConfig(linger_ms=1000))

    async def main() -> list[Any]:
        first = asyncio.ensure_future(embedder.embed_group([upsert("same text", 0)]))
        while not entered.acquire(blocking=False):
            await asyncio.sleep(0.001)
        second = asyncio.ensure_future(embedder.embed_group([upsert("same text", 1), upsert("other text", 2)]))
        while not entered.acquire(blocking=False):
            await asyncio.sleep(0.001)
        release.set()
        return list(await asyncio.gather(first, second, return_exceptions=True))

    try:
        outcomes = asyncio.run(main())
    finally:
        embedder.close()
    assert all(isinstance(o, RuntimeError) and "probe text" in str(o) for o in outcomes)
