"""The embed stage: fills ``Change.values`` from ``Change.text`` with a sentence-transformers model, in batches.

``Embedder`` is the stage without Flink: ``await embed(change)`` returns the change with its vector, or a
``DeadLetter`` when the model cannot embed that record's text. Per change:

- a delete, a change whose ``values`` are already set, or an upsert without ``text`` passes through untouched;
- otherwise the vector comes from ``TextVectorCache`` (LRU by text hash) when the text was embedded before, and
  from the model otherwise. The model is deterministic, so a cache hit gives the vector the model would give
  (equal up to float rounding differences between batch compositions, < 1e-6): the cache is an optimisation only
  and the stage is correct after a restart, when it is empty. This is how an update that leaves the embedded text
  unchanged (metadata only, say) is written without computing the embedding again.

Texts missing the cache go through one ``MicroBatcher`` key: a pool is sealed when a lane is free and no batch waits
for one (so the model never idles while texts wait), at ``batch_size x pool_batches`` texts, or after ``linger_ms``,
and each pool is encoded in worker threads, so the asyncio loop stays responsive. The model runs in ``lanes``: each
lane is its own copy of the model in its own thread. With one lane a pool is one model call; with several, a pool is
sorted by length and cut into as many batches as lanes (or a multiple) of nearly equal counts and at most
``batch_size`` texts, and each lane takes the next batch as soon as it is free, so the lanes finish a pool together
(the stage drains before every checkpoint, and a whole pool on one lane left the other idle for up to a pool's time
then: ``python benchmarks/drain_bench.py`` measured the stage at 0.78-0.80x of the raw model that way, 0.96-1.02x
with batches of ``batch_size``). A text one lane is encoding is not encoded again by another. On CPU, two lanes of
one torch thread each encoded 2-18% more texts/s than one call on two threads on the 2-core development machine, and
7-26% more beside a process that takes a tenth of a core (as the job's own JVM and decode do), most in small pools
(``python benchmarks/lanes_bench.py``): a call on several threads waits at every parallel step for its slowest
thread, so a core taken by anything else stalls the whole call.

The model encodes a pool in batches of ``batch_size`` after sorting its texts by length (sentence-transformers'
``encode`` does), so each batch pads its texts to a length close to their own: with 30-50-word texts, batches of 64 in
arrival order ran ~16% slower than the same texts sorted in pools of 256 (``python benchmarks/embed_bench.py`` prints
both). Identical texts inside a pool are encoded once, and the cache is consulted again when a pool is processed (an
earlier pool may have embedded the same text).

Long texts: before a text goes to the model, an encoder that offers ``cap_text`` (the sentence-transformers one does)
cuts it to a prefix that gives the same vector, so that a megabytes-long text costs no more than its first few
thousand characters (see ``udfs.embed_model``). ``texts_truncated`` counts every text longer than the model's window
(``over_window``: the model reads only its first word pieces), cut or not: nothing is lost silently. With chunking
(``udfs.chunking``) a long text is embedded whole, as chunks that each fit the window. The cache key stays the hash of
the whole text.

Failure policy: when a batch fails, its texts are encoded one by one; a text that fails alone becomes a
``DeadLetter(stage="embed", error_class="EmbeddingError")`` and the others get their vectors. A vector with NaN or
infinity is a dead letter too (Pinecone rejects it). If the model then also fails on a fixed probe text, the fault
is the model's, not the record's: the error propagates and fails the job (Flink restarts from the last checkpoint)
rather than dead-lettering every record.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from pyflink.datastream.functions import AsyncFunction, RuntimeContext

from kafka_pinecone_flink.udfs.batching import GroupsAhead, MicroBatcher
from kafka_pinecone_flink.udfs.chunking import expand, needs_expansion, stale_ids_deleted
from kafka_pinecone_flink.udfs.embed_model import (
    DEFAULT_MODEL,
    DEVICES,
    TextEncoder,
    Vectors,
    available_cores,
    load_encoder,
    resolve_device,
)
from kafka_pinecone_flink.udfs.errors import RecordError
from kafka_pinecone_flink.udfs.python_worker import prepare_stage_worker, settle_collector
from kafka_pinecone_flink.udfs.records import DELETE, Change, DeadLetter
from kafka_pinecone_flink.udfs.window import SlidingWindow, register_percentiles

# This stage's module does not import udfs.stage_batch, which prepares the worker for the other stages
# (udfs.python_worker).
prepare_stage_worker()

DEFAULT_BATCH_SIZE = 64
"""Batches of 32-64 gave the best CPU throughput on 2 cores with 30-60-word texts (benchmarks/embed_bench.py)."""
MAX_BATCH_SIZE = 1024
DEFAULT_POOL_BATCHES = 4
"""Batches per model call: the texts of up to 4 batches are sorted by length before they are cut into batches."""
MAX_POOL_BATCHES = 64
DEFAULT_LINGER_MS = 20
MAX_LINGER_MS = 1000
"""The linger bounds how long a partial batch waits, and so how long every bundle end and checkpoint can wait."""
DEFAULT_CACHE_ENTRIES = 100_000
"""~1.8 KB per entry at 384 dimensions (float32 row + key + LRU links): ~180 MB when full."""
MAX_CACHE_ENTRIES = 10_000_000
MAX_TORCH_THREADS = 256
MAX_LANES = 16
AUTO_LANES = 2
"""Lanes on CPU when ``lanes`` is 0 (fewer with fewer cores); each holds a copy of the model (~90 MB by default)."""
PROBE_TEXT = "probe"
"""Encoded after a text failed alone: if this fails too, the model is broken, not the record."""
_TEXT_HASH_BYTES = 16
_BATCH_KEY = "model"

Vector = npt.NDArray[np.float32]  # one row


class EmbeddingError(RecordError):
    """The model could not embed this record's text."""


@dataclass(frozen=True)
class EmbedConfig:
    """Configuration of the embed stage, validated at construction (before the job graph is built).

    ``model``: ``"default"`` (all-MiniLM-L6-v2, bundled) or a local model directory. ``device``: ``cpu``, ``cuda`` or
    ``auto`` (cuda when available). ``normalize``: False returns the model pipeline's own output (the default model
    normalises to unit length itself); True forces unit length. ``torch_threads``: the CPU threads the model may use
    in the worker, shared by its lanes; 0 = one per core. ``cache_entries``: 0 disables the cache.
    ``pool_batches``: up to this many batches of texts go to the model in one call, sorted by length; 1 = one batch
    at a time, in arrival order. ``lanes``: model calls at once, each on its own copy of the model (``lane_plan``);
    0 = automatic.
    """

    model: str = DEFAULT_MODEL
    batch_size: int = DEFAULT_BATCH_SIZE
    pool_batches: int = DEFAULT_POOL_BATCHES
    linger_ms: int = DEFAULT_LINGER_MS
    cache_entries: int = DEFAULT_CACHE_ENTRIES
    device: str = "cpu"
    normalize: bool = False
    torch_threads: int = 0
    lanes: int = 0
    chunk_text_field: str | None = None
    """With chunking: the metadata field that holds each chunk's text (``udfs.chunking``); None: not stored."""

    def __post_init__(self) -> None:
        _check_range("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        _check_range("pool_batches", self.pool_batches, 1, MAX_POOL_BATCHES)
        _check_range("linger_ms", self.linger_ms, 0, MAX_LINGER_MS)
        _check_range("cache_entries", self.cache_entries, 0, MAX_CACHE_ENTRIES)
        _check_range("torch_threads", self.torch_threads, 0, MAX_TORCH_THREADS)
        _check_range("lanes", self.lanes, 0, MAX_LANES)
        if self.device not in DEVICES:
            raise ValueError(f"embed device must be one of {', '.join(DEVICES)}, got {self.device!r}")
        if not self.model:
            raise ValueError("embed model must not be empty")


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"embed {name} must be an integer between {low} and {high}, got {value!r}")


class TextVectorCache:
    """A bounded LRU map text hash → float32 vector. ``max_entries == 0`` stores nothing. Not thread-safe."""

    def __init__(self, max_entries: int) -> None:
        self._max_entries = max_entries
        self._entries: OrderedDict[bytes, Vector] = OrderedDict()

    def get(self, key: bytes) -> Vector | None:
        vector = self._entries.get(key)
        if vector is not None:
            self._entries.move_to_end(key)
        return vector

    def put(self, key: bytes, vector: Vector) -> None:
        if self._max_entries == 0:
            return
        self._entries[key] = vector
        self._entries.move_to_end(key)
        if len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(slots=True)
class EmbedStats:
    """Running totals since the stage was created. ``embedded``: texts the model computed; ``cache_hits``: changes
    whose vector was reused (from the cache or from an identical text in the same batch); ``failed``: dead letters;
    ``truncated``: texts longer than the model's window (it reads only their first word pieces; see
    ``over_window``); ``chunks_embedded`` / ``chunks_reused``: chunks of documents (``udfs.chunking``) sent to the
    model / whose vector came from the cache (an edit of one paragraph sends about one chunk)."""

    embedded: int = 0
    cache_hits: int = 0
    failed: int = 0
    truncated: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0


def text_key(change: Change) -> bytes:
    """The cache key: the decoder's ``text_hash``, or a digest of the text when the decoder did not set one."""
    if change.text_hash is not None:
        return change.text_hash
    assert change.text is not None
    return hashlib.blake2b(change.text.encode("utf-8", "surrogatepass"), digest_size=_TEXT_HASH_BYTES).digest()


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=_TEXT_HASH_BYTES).digest()


@dataclass(eq=False)
class _Piece:
    """A batch of one pool's texts, waiting for a lane or being encoded by one; ``done`` gets its outcomes and how
    many of its texts were longer than the model's window. ``pool``: every batch of its pool, itself included."""

    texts: list[str]
    done: asyncio.Future[tuple[list[Vector | EmbeddingError], int]]
    pool: list[_Piece] = field(default_factory=list)


@dataclass
class GroupWork:
    """A group's embedding, started: ``model_texts`` is how many of its texts missed the cache and go to the model
    (what ``GroupsAhead`` weighs the group by), ``result`` the coroutine that embeds them and returns the group."""

    model_texts: int
    result: Coroutine[Any, Any, list[Change | DeadLetter]]


def needs_embedding(change: Change) -> bool:
    return change.op != DELETE and change.values is None and change.text is not None


class Embedder:
    """The async embed stage (see the module docstring). Use from one asyncio event loop; ``close()`` when done."""

    def __init__(self, encoder: TextEncoder | Sequence[TextEncoder], config: EmbedConfig) -> None:
        """``encoder``: the model, or one copy of it per lane (each used by one thread at a time)."""
        lanes: list[TextEncoder] = list(encoder) if isinstance(encoder, (list, tuple)) else [encoder]  # type: ignore[list-item]
        if not lanes:
            raise ValueError("the embed stage needs at least one encoder")
        self._lanes = lanes
        self._free_lanes: deque[TextEncoder] = deque(lanes)
        self._pieces: deque[_Piece] = deque()
        """Batches of texts waiting for a free lane, in the order their pools were sealed."""
        self._closed = False
        self._in_flight: dict[bytes, asyncio.Future[Vector | EmbeddingError]] = {}
        """Texts the model is encoding now: another pool that holds one waits for it instead of encoding it again (an
        update that keeps an id's text often follows the one before within a pool's time)."""
        self._config = config
        self.cache = TextVectorCache(config.cache_entries)
        self.stats = EmbedStats()
        self.batch_latency_ms = SlidingWindow()
        """Wall time of each model call (a batch of texts with several lanes, else a pool), for the
        ``embed_batch_latency_ms_p*`` gauges."""
        # One thread per lane: encodes run off the event loop (torch releases the GIL), at most one per lane.
        self._executor = ThreadPoolExecutor(max_workers=len(lanes), thread_name_prefix="embed-encode")
        # Work-conserving: the model never idles while texts wait for a pool to fill (see MicroBatcher). Flink ends
        # a bundle every python.fn-execution.bundle.time and waits for every in-flight text then; lingering for more
        # texts would idle the model once per bundle. Under load, pools fill while the model encodes the previous one.
        self._batcher: MicroBatcher[str, tuple[bytes, str], Vector | EmbeddingError] = MicroBatcher(
            self._process,
            key=lambda _: _BATCH_KEY,
            max_items=config.batch_size * config.pool_batches,
            linger_s=config.linger_ms / 1000,
            work_conserving=True,
            room=self._has_room,
        )

    async def embed(self, change: Change) -> Change | DeadLetter:
        """``change`` with ``values`` set, the same ``change`` untouched if it needs no embedding, or a dead letter."""
        if needs_expansion(change):
            raise ValueError("a chunked change becomes several changes: use embed_group")
        if not needs_embedding(change):
            return change
        assert change.text is not None
        key = text_key(change)
        vector = self.cache.get(key)
        if vector is None:
            result = await self._batcher.submit((key, change.text))
            if isinstance(result, EmbeddingError):
                return DeadLetter(change.source, result.error_class, result.message, "embed")
            vector = result
        else:
            self.stats.cache_hits += 1
        change.values = vector.tolist()
        return change

    async def embed_group(self, changes: Sequence[Change]) -> list[Change | DeadLetter]:
        """``embed`` for a group of changes (a batch handed over by Flink): every text of the group the cache does
        not hold goes to the model in pools of at most ``batch_size * pool_batches`` (shared with the groups in flight
        behind it), and the group returns when all are embedded. Results are in order.

        A document change (``udfs.chunking``) is replaced by its operations in place: the upserts of its chunks, each
        embedded (and cached) on its own, and the deletes of the chunks its previous version had and it has not. If
        a chunk cannot be embedded, the document is one dead letter and none of its upserts is written; the deletes
        of ids past its chunk count are (``udfs.chunking.stale_ids_deleted``)."""
        return await self.start_group(changes).result

    def start_group(self, changes: Sequence[Change]) -> GroupWork:
        """``embed_group`` in two steps: the cache is read now, once per text, and the ``GroupWork`` returned says
        how many texts go to the model and holds the coroutine that embeds them (await it, or hand it to a task)."""
        if any(map(needs_expansion, changes)):
            return self._start_documents(changes)
        waiting: list[tuple[int, bytes, str]] = []
        out: list[Change | DeadLetter] = list(changes)
        for position, change in enumerate(changes):
            if not needs_embedding(change):
                continue
            assert change.text is not None
            key = text_key(change)
            vector = self.cache.get(key)
            if vector is None:
                waiting.append((position, key, change.text))
            else:
                self.stats.cache_hits += 1
                change.values = vector.tolist()
        return GroupWork(len(waiting), self._finish_group(out, waiting))

    async def _finish_group(
        self, out: list[Change | DeadLetter], waiting: list[tuple[int, bytes, str]]
    ) -> list[Change | DeadLetter]:
        if waiting:
            # One submit per text, not the whole group sealed at once: the pool batcher is work-conserving, so while
            # the model encodes, the texts of the groups behind this one join the next pool instead of each small
            # group (at low load, a few records) becoming a model call of its own.
            results = await asyncio.gather(*(self._batcher.submit((key, text)) for _, key, text in waiting))
            for (position, _, _), result in zip(waiting, results, strict=True):
                change = out[position]
                assert isinstance(change, Change)
                if isinstance(result, EmbeddingError):
                    out[position] = DeadLetter(change.source, result.error_class, result.message, "embed")
                else:
                    change.values = result.tolist()
        return out

    def _start_documents(self, changes: Sequence[Change]) -> GroupWork:
        """``start_group`` for a group that holds document changes: every text to embed (a record's, or a chunk's)
        goes through the cache and the model as in ``start_group``, then each document becomes its operations."""
        texts: list[tuple[int, bytes, str]] = []  # (position, cache key, text) of every text still to embed
        vectors: dict[tuple[int, int], Vector] = {}  # (position, chunk) -> vector
        wanted: dict[int, list[tuple[int, bytes, str]]] = {}
        for position, change in enumerate(changes):
            if not needs_embedding(change):
                continue
            assert change.text is not None
            if change.chunk_spans is None:
                wanted[position] = [(-1, text_key(change), change.text)]
                continue
            pieces = [change.text[start:end] for start, end in change.chunk_spans]
            wanted[position] = [(n, _digest(piece), piece) for n, piece in enumerate(pieces)]
        for position, items in wanted.items():
            chunked = changes[position].chunk_spans is not None
            for n, key, text in items:
                cached = self.cache.get(key)
                if cached is None:
                    texts.append((position, key, text))
                    if chunked:
                        self.stats.chunks_embedded += 1
                else:
                    self.stats.cache_hits += 1
                    self.stats.chunks_reused += chunked
                    vectors[(position, n)] = cached
        return GroupWork(len(texts), self._finish_documents(changes, texts, vectors, wanted))

    async def _finish_documents(
        self,
        changes: Sequence[Change],
        texts: list[tuple[int, bytes, str]],
        vectors: dict[tuple[int, int], Vector],
        wanted: dict[int, list[tuple[int, bytes, str]]],
    ) -> list[Change | DeadLetter]:
        failures: dict[int, EmbeddingError] = {}
        if texts:
            results = await asyncio.gather(*(self._batcher.submit((key, text)) for _, key, text in texts))
            done: dict[tuple[int, bytes], Vector | EmbeddingError] = {
                (position, key): result for (position, key, _), result in zip(texts, results, strict=True)
            }
            for position, items in wanted.items():
                for n, key, _ in items:
                    if (position, n) in vectors:
                        continue
                    result = done[(position, key)]
                    if isinstance(result, EmbeddingError):
                        failures.setdefault(position, result)
                    else:
                        vectors[(position, n)] = result
        out: list[Change | DeadLetter] = []
        text_field = self._config.chunk_text_field
        for position, change in enumerate(changes):
            failure = failures.get(position)
            if failure is not None:
                out.append(DeadLetter(change.source, failure.error_class, failure.message, "embed"))
                if change.chunk_spans is not None:
                    out.extend(stale_ids_deleted(change))
                continue
            if position in wanted and change.chunk_spans is None:
                change.values = vectors[(position, -1)].tolist()
            if not needs_expansion(change):
                out.append(change)
                continue
            rows = None
            if change.chunk_spans is not None and change.op != DELETE:
                rows = [vectors[(position, n)].tolist() for n in range(len(change.chunk_spans))]
            out.extend(expand(change, rows, text_field))
        return out

    def _has_room(self) -> bool:
        """A lane is free and no batch waits for one: a pool sealed now would start at once (``MicroBatcher``'s
        ``room``; ``_piece_ended`` offers it the room a lane leaves)."""
        return not self._closed and bool(self._free_lanes) and not self._pieces

    async def flush(self) -> None:
        """Wait until every submitted text has been embedded."""
        await self._batcher.flush()

    def close(self) -> None:
        self._closed = True
        while self._pieces:
            self._pieces.popleft().done.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _process(self, _: str, items: list[tuple[bytes, str]]) -> list[Vector | EmbeddingError]:
        results: dict[bytes, Vector | EmbeddingError] = {}
        to_encode: dict[bytes, str] = {}
        elsewhere: dict[bytes, asyncio.Future[Vector | EmbeddingError]] = {}
        embedded = 0
        for key, text in items:
            if key in results or key in to_encode or key in elsewhere:
                continue
            cached = self.cache.get(key)
            if cached is not None:
                results[key] = cached
            elif key in self._in_flight:  # another pool's batch holds this text right now: take its vector
                elsewhere[key] = self._in_flight[key]
            else:
                to_encode[key] = text
        if to_encode:
            loop = asyncio.get_running_loop()
            futures = {key: loop.create_future() for key in to_encode}
            self._in_flight.update(futures)
            try:
                encoded, truncated = await self._encode_on_lanes(list(to_encode.values()))
            except BaseException as exc:
                for key, future in futures.items():
                    del self._in_flight[key]
                    if isinstance(exc, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(exc)
                        future.exception()  # retrieved: a pool that waits on it re-raises it, else none needs it
                raise
            self.stats.truncated += truncated
            for (key, future), outcome in zip(futures.items(), encoded, strict=True):
                del self._in_flight[key]
                future.set_result(outcome)
                results[key] = outcome
                if not isinstance(outcome, EmbeddingError):
                    self.cache.put(key, outcome)
                    embedded += 1
        for key, future in elsewhere.items():
            results[key] = await future
        out = [results[key] for key, _ in items]
        failed = sum(isinstance(outcome, EmbeddingError) for outcome in out)
        self.stats.embedded += embedded
        self.stats.failed += failed
        self.stats.cache_hits += len(out) - failed - embedded
        return out

    async def _encode_on_lanes(self, texts: list[str]) -> tuple[list[Vector | EmbeddingError], int]:
        """A pool's texts through the model, and how many were longer than its window. With one lane the pool is one
        model call. With several, the pool is sorted by length and cut into batches that the lanes take in turn as
        they come free (``_start_pieces``): as many as lanes, or a multiple, of nearly equal counts and at most
        ``batch_size`` texts each, so that a pool ends on every lane at about the same time. A whole pool on one lane
        left the other idle for up to a pool's time before every checkpoint, when the stage drains, and batches of
        ``batch_size`` still split a pool of 70 texts into 64 and 6. Sorting before the cut keeps the padding of one
        call on the whole pool."""
        lanes = len(self._lanes)
        if lanes > 1:
            order = sorted(range(len(texts)), key=lambda index: len(texts[index]), reverse=True)
            # As many batches as lanes, or a multiple, of nearly equal counts and at most batch_size texts each.
            count = len(order)
            cuts = min(count, lanes * -(-count // (lanes * self._config.batch_size)))
            parts = [order[count * n // cuts : count * (n + 1) // cuts] for n in range(cuts)]
        else:
            parts = [list(range(len(texts)))]
        loop = asyncio.get_running_loop()
        pieces = [_Piece([texts[index] for index in part], loop.create_future()) for part in parts]
        for piece in pieces:
            piece.pool = pieces
        self._pieces.extend(pieces)
        self._start_pieces()
        # A failed batch cancels its pool's other batches (_piece_ended); cancelling this call cancels them too.
        results = await asyncio.gather(*(piece.done for piece in pieces))
        placed: dict[int, Vector | EmbeddingError] = {}
        truncated = 0
        for part, (outcomes, cut) in zip(parts, results, strict=True):
            placed.update(zip(part, outcomes, strict=True))
            truncated += cut
        return [placed[index] for index in range(len(texts))], truncated

    def _start_pieces(self) -> None:
        """Start waiting batches on free lanes, one batch per lane, each in the lane's own thread."""
        loop = asyncio.get_running_loop()
        while self._free_lanes and self._pieces and not self._closed:
            piece = self._pieces.popleft()
            if piece.done.done():  # its pool failed or was cancelled
                continue
            lane = self._free_lanes.popleft()
            ended = functools.partial(self._piece_ended, lane, piece, time.monotonic())
            work = self._executor.submit(self._encode_isolating, lane, piece.texts)
            work.add_done_callback(functools.partial(_call_on_loop, loop, ended))

    def _piece_ended(
        self,
        lane: TextEncoder,
        piece: _Piece,
        started: float,
        work: Future[tuple[list[Vector | EmbeddingError], int]],
    ) -> None:
        self._free_lanes.append(lane)
        if work.cancelled():
            piece.done.cancel()
        elif (error := work.exception()) is not None:
            if not piece.done.done():
                piece.done.set_exception(error)
                for other in piece.pool:  # the pool has failed: its batches still waiting are not encoded
                    other.done.cancel()
        else:
            self.batch_latency_ms.add((time.monotonic() - started) * 1000)
            if not piece.done.done():  # else its pool has failed
                piece.done.set_result(work.result())
        self._start_pieces()
        if self._has_room():
            self._batcher.offer()  # the texts waiting for a pool go to this free lane now

    def _encode_isolating(self, lane: TextEncoder, texts: list[str]) -> tuple[list[Vector | EmbeddingError], int]:
        """Runs in a lane's thread: the texts at once, one by one only if that call fails. Returns the outcomes
        and how many texts were longer than the model's window (counted on the event loop, not here)."""
        cap_text: Callable[[str], str] | None = getattr(lane, "cap_text", None)
        over_window: Callable[[str], bool] | None = getattr(lane, "over_window", None)
        if cap_text is not None:
            texts, truncated = _capped(texts, cap_text, over_window)
        else:
            truncated = sum(map(over_window, texts)) if over_window is not None else 0
        try:
            return self._checked(_encode(lane, texts)), truncated
        except Exception:  # noqa: BLE001 - isolate the failing texts below; a broken model re-raises there
            pass
        outcomes: list[Vector | EmbeddingError] = []
        first_failure: Exception | None = None
        for text in texts:
            try:
                outcomes.extend(self._checked(_encode(lane, [text])))
            except Exception as exc:  # noqa: BLE001 - one record's failure becomes its dead letter
                first_failure = first_failure or exc
                outcomes.append(EmbeddingError(f"the model could not embed the text: {type(exc).__name__}: {exc}"))
        if first_failure is not None:
            try:
                _encode(lane, [PROBE_TEXT])
            except Exception as exc:
                raise RuntimeError(f"embedding model fails on a probe text too: {type(exc).__name__}: {exc}") from exc
        return outcomes, truncated

    @staticmethod
    def _checked(vectors: Vectors) -> list[Vector | EmbeddingError]:
        finite = np.isfinite(vectors).all(axis=1)
        # Copies: a row view would keep the whole batch matrix alive in the cache.
        return [
            row.copy() if ok else EmbeddingError("the model returned a vector with NaN or infinity")
            for row, ok in zip(vectors, finite, strict=True)
        ]


def _call_on_loop(
    loop: asyncio.AbstractEventLoop, callback: Callable[[Future[Any]], object], work: Future[Any]
) -> None:
    """``callback(work)`` on ``loop``, from the thread that finished ``work``; nothing if the loop has closed (the
    stage is shut down, and a lane's outcome has no one left to take it)."""
    with contextlib.suppress(RuntimeError):  # the loop is closed
        loop.call_soon_threadsafe(callback, work)


def _capped(
    texts: list[str], cap_text: Callable[[str], str], over_window: Callable[[str], bool] | None
) -> tuple[list[str], int]:
    """``texts`` cut by ``cap_text``, and how many of them were longer than the model's window."""
    capped = []
    truncated = 0
    for text in texts:
        try:
            short = cap_text(text)
        except Exception:  # noqa: BLE001 - the tokenizer refuses the text: the model call reports it, per text
            short = text
        if len(short) < len(text) or (over_window is not None and over_window(text)):
            truncated += 1
        capped.append(short)
    return capped, truncated


def _encode(encoder: TextEncoder, texts: Sequence[str]) -> Vectors:
    vectors = encoder.encode(texts)
    if vectors.ndim != 2 or vectors.shape[0] != len(texts):
        raise RuntimeError(f"embedding model returned shape {vectors.shape} for {len(texts)} texts")
    return vectors


def lane_plan(lanes: int, torch_threads: int, device: str, cores: int) -> tuple[int, int]:
    """How many lanes (model copies encoding at once) and how many torch threads each, for ``EmbedConfig.lanes`` and
    ``torch_threads`` on ``device`` (``cpu`` or ``cuda``, resolved) with ``cores`` cores available to the worker.
    Torch threads 0 = torch's default.

    On a GPU: ``lanes`` or 1, with the threads asked for. On CPU the worker's cores are ``torch_threads`` when set,
    else ``cores``; ``lanes`` 0 takes ``AUTO_LANES`` of them (fewer with fewer cores), and each lane gets an equal
    share of the cores, at least one thread. One lane with ``torch_threads`` 0 keeps torch's default."""
    if device != "cpu":
        return max(lanes, 1), torch_threads
    budget = torch_threads if torch_threads > 0 else max(cores, 1)
    count = lanes if lanes > 0 else min(AUTO_LANES, budget)
    if count == 1 and torch_threads == 0:
        return 1, 0
    return count, max(1, budget // count)


class EmbedFunction(AsyncFunction):
    """Flink async function around ``Embedder``, on groups: ``async_invoke(group)`` takes a list of applied changes
    (the JVM ``Batcher``'s group of the dedup operator's changes, ``udfs.stage_batch``, loaded in one piece:
    ``udfs.dedup.applied_groups``) and returns one element: the list of the group's changes with their vectors set,
    or a ``DeadLetter`` in place of a change whose text could not be embedded. The model is loaded in ``open()`` on
    the worker.

    The call on a full group (``ahead_from`` records: a backlog) returns at once, and the group is embedded after it
    (``udfs.batching.GroupsAhead``, while the groups at work besides the first hold at most one pool of texts for the
    model): with bundles of one group (``jobs.config.settings.EMBED_BUNDLE_SIZE``) the next group reaches Python only
    when this call returns, and waiting for the model here left it idle between groups. A call returns the results of
    the groups done by then, in order (often none). The call on a smaller group returns once it is embedded, with every
    result before it: with no backlog, working ahead only made texts wait (freshness p99 at half load 1.1-2.2 s instead
    of 0.7-1.0 s on the standalone cluster). The call on a marker (an empty list, which the ``Batcher`` hands on before
    every barrier, at the end of input and after a quiet time) returns when every group is done, with all their results.
    So the input must come from a ``Batcher`` with markers (``stage_batch.batched(..., marker_idle_ms=...)``): without
    them the last groups' results would wait for the next group.

    Must be applied with ``AsyncDataStream.ordered_wait`` (timeout 0): a call's results must not overtake an earlier
    call's, which may hold an earlier version of the same id. Checkpoint safety: the batcher hands its group and a
    marker on before the barrier, and Flink waits for every in-flight ``async_invoke``, the marker's too, before it
    forwards the barrier.

    Metrics are gauges of running totals per subtask since ``open()``: ``embedded``, ``embedding_cache_hits``,
    ``embedding_failed``, ``texts_truncated``, ``chunks_embedded``, ``chunks_reused``; and
    ``embed_batch_latency_ms_p50/_p95/_p99/_max``, the wall time of the model calls of the last minute
    (``udfs.window``). Gauges, not counters, because Beam counters only count in the thread that runs the bundle, and
    ``async_invoke`` runs on the operator's asyncio thread.
    """

    def __init__(self, config: EmbedConfig, ahead_from: int = 1) -> None:
        """``ahead_from``: the group size (records) from which the stage works ahead (the ``Batcher``'s full group,
        which means a backlog); a smaller group, handed on by the linger or before a barrier, is embedded before its
        call returns, so that at low load a text does not wait for the next group to be handed on."""
        self._config = config
        self._ahead_from = ahead_from
        self._embedder: Embedder | None = None
        self._ahead: GroupsAhead[list[Change | DeadLetter]] | None = None

    def open(self, runtime_context: RuntimeContext) -> None:
        config = self._config
        lanes, threads = lane_plan(config.lanes, config.torch_threads, resolve_device(config.device), available_cores())
        encoders = [
            load_encoder(
                config.model,
                device=config.device,
                batch_size=config.batch_size,
                normalize=config.normalize,
                torch_threads=threads,
            )
            for _ in range(lanes)
        ]
        embedder = Embedder(encoders, config)
        self._embedder = embedder
        # Texts for the model, at most, in the groups still at work besides the first: one pool.
        self._ahead = GroupsAhead(config.batch_size * config.pool_batches)
        metrics: Any = runtime_context.get_metrics_group()
        metrics.gauge("embedded", lambda: embedder.stats.embedded)
        metrics.gauge("embedding_cache_hits", lambda: embedder.stats.cache_hits)
        metrics.gauge("embedding_failed", lambda: embedder.stats.failed)
        metrics.gauge("texts_truncated", lambda: embedder.stats.truncated)
        metrics.gauge("chunks_embedded", lambda: embedder.stats.chunks_embedded)
        metrics.gauge("chunks_reused", lambda: embedder.stats.chunks_reused)
        register_percentiles(metrics, "embed_batch_latency_ms", embedder.batch_latency_ms)
        settle_collector()

    async def async_invoke(self, value: Any) -> list[list[Change | DeadLetter]]:
        if self._embedder is None or self._ahead is None:
            raise RuntimeError("EmbedFunction.async_invoke called before open()")
        if not value:  # a marker: every group's results, now
            return await self._ahead.take(None)
        changes: list[Change] = value
        work = self._embedder.start_group(changes)
        return await self._ahead.take(work.result, work.model_texts, wait=len(changes) < self._ahead_from)

    def close(self) -> None:
        if self._ahead is not None:
            self._ahead.cancel()
            self._ahead = None
        if self._embedder is not None:
            self._embedder.close()
            self._embedder = None
