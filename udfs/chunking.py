"""Token-aware chunking of long texts: one document, several vectors ``<id>#0``, ``<id>#1``, ...

The embedding model reads only the first ``max_seq_length`` word pieces of a text (256 for all-MiniLM-L6-v2, two of
them [CLS] and [SEP]); everything after is lost. With chunking on (``chunking.tokens`` > 0) the decode stage splits
the text of each record it is to embed into chunks of at most ``tokens`` word pieces, counted by the model's own
tokenizer, and the embed stage embeds each chunk and writes it as its own vector.

The splitter: the model's fast tokenizer (the ``tokenizers`` library that transformers itself uses, loaded from the
model's ``tokenizer.json``, no torch, ~0.3 s) gives every word piece with its character offsets; the splitter cuts
only between pieces, so a chunk's text is a slice of the document that gives the model exactly the pieces counted.
No new dependency: ``semantic-text-splitter`` or ``semchunk`` would do the packing but not the property we need most
(below), and either would have changed the locked environment.

How chunks are cut (``spans``):

1. The text is split into paragraphs at blank lines. A paragraph of at most ``tokens - overlap`` pieces is one unit;
   a longer one is split into sentences (after ``.``, ``!`` or ``?`` and whitespace), and a sentence that is still
   too long into runs of pieces that start at word starts.
2. Units are packed in order into chunks of at most ``tokens - overlap`` pieces. A chunk also ends after a paragraph
   whose text hashes to a *boundary mark* (about one paragraph in ``ANCHOR_EVERY``), whatever room is left.
3. With ``overlap`` > 0, every chunk but the first starts up to ``overlap`` pieces earlier (at a word start), so the
   text around a cut is seen by both chunks.

Rule 2 is what makes an edit cheap. Packing alone is a chain: a paragraph that grows by a few words can push every
later cut one paragraph on, and every later chunk then has a new text to embed. Marked paragraphs are cuts that
depend on nothing but the paragraph's own text (content-defined chunking, as in rsync), so after an edit the cuts
fall back in step at the next mark, usually at once: an edit inside one paragraph changes the text of one chunk,
sometimes two, and the embed stage's text-hash cache reuses the vectors of all the others.
"""

from __future__ import annotations

import json
import re
import threading
from bisect import bisect_left
from collections.abc import Sequence
from hashlib import blake2b
from pathlib import Path
from typing import Any

SPECIAL_PIECES = 2
"""[CLS] and [SEP]: the model's window holds them too."""
ANCHOR_EVERY = 3
"""About one paragraph in this many ends a chunk whatever room is left (rule 2 of the module docstring)."""
CHUNK_SEPARATOR = "#"
"""Chunk ids are ``<record id>#<n>`` (Pinecone's convention: a document's chunks share the prefix ``<record id>#``)."""
CHUNK_INDEX_FIELD = "chunk_index"
"""Metadata field of a chunk's number (0-based)."""
CHUNK_COUNT_FIELD = "chunk_count"
"""Metadata field of the document's chunk count."""

Span = tuple[int, int]
"""A chunk as character offsets ``[start, end)`` into the document's text."""

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n\s*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_lock = threading.Lock()
_tokenizers: dict[str, Any] = {}


def chunk_id(record_id: str, n: int) -> str:
    """The id of chunk ``n`` of the record ``record_id``."""
    return f"{record_id}{CHUNK_SEPARATOR}{n}"


def model_window(model_path: Path) -> int | None:
    """The model's ``max_seq_length`` (sentence_bert_config.json), or None if it declares none."""
    config = model_path / "sentence_bert_config.json"
    if not config.is_file():
        return None
    value = json.loads(config.read_text()).get("max_seq_length")
    return int(value) if isinstance(value, int) else None


def max_chunk_tokens(model_path: Path) -> int | None:
    """The most word pieces a chunk may have for the model at ``model_path``: its window less [CLS] and [SEP]."""
    window = model_window(model_path)
    return None if window is None else window - SPECIAL_PIECES


def load_tokenizer(model_path: Path) -> Any:
    """The model's fast tokenizer (``tokenizer.json``), without truncation or padding. Cached per path."""
    key = str(model_path)
    with _lock:
        tokenizer = _tokenizers.get(key)
        if tokenizer is None:
            from tokenizers import Tokenizer

            file = model_path / "tokenizer.json"
            if not file.is_file():
                raise ValueError(f"chunking needs the model's fast tokenizer, and {model_path} has no tokenizer.json")
            tokenizer = Tokenizer.from_file(str(file))
            tokenizer.no_truncation()
            tokenizer.no_padding()
            _tokenizers[key] = tokenizer
        return tokenizer


def token_offsets(tokenizer: Any, text: str) -> list[Span]:
    """The character offsets of ``text``'s word pieces (no special pieces)."""
    return [span for span in tokenizer.encode(text, add_special_tokens=False).offsets if span[1] > span[0]]


def spans(text: str, offsets: Sequence[Span], tokens: int, overlap: int = 0) -> list[Span]:
    """The chunks of ``text`` whose word pieces are at ``offsets`` (see the module docstring): at most ``tokens``
    pieces each, the first ``overlap`` of them repeated from the chunk before. A text without pieces is one chunk."""
    if not 0 <= overlap < tokens:
        raise ValueError(f"overlap must be at least 0 and less than tokens ({tokens}), got {overlap}")
    if not offsets:
        return [(0, len(text))]
    budget = tokens - overlap
    starts = [start for start, _ in offsets]
    word_start = [i == 0 or offsets[i][0] > offsets[i - 1][1] for i in range(len(offsets))]
    units: list[tuple[int, int, bool]] = []  # piece range [first, last) and whether a chunk must end after it
    for begin, end in _paragraphs(text):
        first, last = bisect_left(starts, begin), bisect_left(starts, end)
        if first == last:
            continue
        anchor = blake2b(text[begin:end].encode("utf-8", "surrogatepass"), digest_size=2).digest()[0] % ANCHOR_EVERY
        pieces = _units_of(text, begin, end, first, last, starts, word_start, budget)
        for at, (a, b) in enumerate(pieces):
            units.append((a, b, anchor == 0 and at == len(pieces) - 1))
    chunks: list[tuple[int, int]] = []
    current: list[int] | None = None
    for a, b, ends in units:
        if current is not None and b - current[0] <= budget:
            current[1] = b
        else:
            if current is not None:
                chunks.append((current[0], current[1]))
            current = [a, b]
        if ends:
            chunks.append((current[0], current[1]))
            current = None
    if current is not None:
        chunks.append((current[0], current[1]))
    out: list[Span] = []
    for n, (a, b) in enumerate(chunks):
        if n > 0 and overlap > 0:
            back = max(a - overlap, 0)
            while back < a and not word_start[back]:
                back += 1
            a = back
        out.append((offsets[a][0], offsets[b - 1][1]))
    return out


def _paragraphs(text: str) -> list[Span]:
    found = []
    position = 0
    for match in _PARAGRAPH_BREAK.finditer(text):
        found.append((position, match.start()))
        position = match.end()
    found.append((position, len(text)))
    return found


def _units_of(
    text: str,
    begin: int,
    end: int,
    first: int,
    last: int,
    starts: list[int],
    word_start: list[bool],
    budget: int,
) -> list[tuple[int, int]]:
    """The paragraph ``text[begin:end]`` (pieces ``[first, last)``) as piece ranges of at most ``budget`` pieces."""
    if last - first <= budget:
        return [(first, last)]
    units: list[tuple[int, int]] = []
    cuts = [match.end() for match in _SENTENCE_END.finditer(text, begin, end)]
    position = first
    for boundary in [*cuts, end]:
        stop = max(bisect_left(starts, boundary, first, last), position)
        while stop - position > budget:
            cut = position + budget
            while cut > position + 1 and not word_start[cut]:
                cut -= 1
            if cut == position + 1 and not word_start[cut]:
                cut = position + budget  # one word longer than the budget: cut inside it
            units.append((position, cut))
            position = cut
        if stop > position:
            units.append((position, stop))
            position = stop
    return units


class Chunker:
    """Splits texts for one model: ``spans(text)`` with the model's tokenizer and the configured sizes."""

    def __init__(self, model_path: Path, tokens: int, overlap: int) -> None:
        self._tokenizer = load_tokenizer(model_path)
        self._tokens = tokens
        self._overlap = overlap

    def spans(self, text: str) -> list[Span]:
        return spans(text, token_offsets(self._tokenizer, text), self._tokens, self._overlap)

    def count(self, text: str) -> int:
        """The number of word pieces of ``text`` (no special pieces)."""
        return len(token_offsets(self._tokenizer, text))


_chunkers: dict[tuple[str, int, int], Chunker] = {}


def chunker(model: str, tokens: int, overlap: int) -> Chunker:
    """The ``Chunker`` of ``model`` (``"default"`` or a model directory) for these sizes, made once per process."""
    key = (model, tokens, overlap)
    found = _chunkers.get(key)
    if found is None:
        from kafka_pinecone_flink.udfs.embed_model import resolve_model_path

        found = _chunkers[key] = Chunker(resolve_model_path(model), tokens, overlap)
    return found


def chunk_metadata(
    metadata: dict[str, Any], n: int, count: int, text_field: str | None, chunk_text: str
) -> dict[str, Any]:
    """The metadata of chunk ``n`` of ``count``: the record's, its number and count, and its text if asked."""
    out = dict(metadata)
    out[CHUNK_INDEX_FIELD] = n
    out[CHUNK_COUNT_FIELD] = count
    if text_field is not None:
        out[text_field] = chunk_text
    return out


def plan(record_id: str, text: str, metadata: dict[str, Any], config: Any) -> tuple[Span, ...]:
    """The chunks of a record to embed under ``config`` (a ``RouteConfig`` with ``chunk_tokens`` > 0), checked:
    every chunk id is a valid Pinecone id (``IdTooLongError``), the chunk fields are not among the record's metadata
    fields (``MetadataKeyCollisionError``) and every chunk's metadata fits ``max_metadata_bytes``
    (``MetadataTooLargeError``)."""
    from kafka_pinecone_flink.udfs.decode_errors import IdTooLongError, MetadataKeyCollisionError
    from kafka_pinecone_flink.udfs.ids import MAX_ID_CHARS
    from kafka_pinecone_flink.udfs.metadata import encode_metadata

    found = tuple(chunker(config.chunk_model, config.chunk_tokens, config.chunk_overlap).spans(text))
    longest = chunk_id(record_id, len(found) - 1)
    if len(longest) > MAX_ID_CHARS:
        raise IdTooLongError(
            f"chunk id {longest[:40]!r}... is {len(longest)} characters long, more than Pinecone's {MAX_ID_CHARS} "
            f"(the record id plus '{CHUNK_SEPARATOR}<chunk number>')"
        )
    for name in (CHUNK_INDEX_FIELD, CHUNK_COUNT_FIELD, config.chunk_text_field):
        if name is not None and name in metadata:
            raise MetadataKeyCollisionError(
                f"the record has a metadata field {name!r}, which chunking writes (chunk number, count or text)"
            )
    for n, (start, end) in enumerate(found):
        encode_metadata(
            chunk_metadata(metadata, n, len(found), config.chunk_text_field, text[start:end]),
            config.max_metadata_bytes,
        )
    return found


def chunked_hash(content_hash: bytes, config: Any) -> bytes:
    """``content_hash`` bound to the chunking settings, so that changing them rewrites every document."""
    settings = f"{config.chunk_tokens}/{config.chunk_overlap}/{config.chunk_text_field}/{config.chunk_model}"
    return blake2b(content_hash + settings.encode(), digest_size=len(content_hash)).digest()


def needs_expansion(change: Any) -> bool:
    """Whether ``change`` (a ``udfs.records.Change`` after dedup) writes or deletes chunk ids."""
    return change.chunk_spans is not None or change.previous_chunks > 0


def expand(change: Any, vectors: Sequence[Sequence[float]] | None, text_field: str | None) -> list[Any]:
    """The Pinecone operations of a document ``change`` (after dedup, with ``vectors``, one per chunk, for a chunked
    upsert): its chunk upserts ``<id>#0 .. <id>#N-1`` and the deletes of the ids its live version wrote and this one
    does not (``<id>#N .. <id>#P-1``, where P is ``change.previous_chunks``; every ``<id>#n`` for a delete; ``<id>``
    itself when a chunked version replaces an unchunked one). An unchunked upsert is kept as it is.

    Each chunk is a change of its own with the document's source record, version and metadata plus the chunk's
    number and count (and text, with ``text_field``). A replay after a crash gets the same ``previous_chunks`` from
    the restored dedup state, so it issues the same operations: the index ends with exactly the latest version's
    chunks. Every operation but the first is marked ``follows`` (the sink counts the record once)."""
    out = _operations(change, vectors, text_field)
    for operation in out[1:]:
        operation.follows = True
    return out


def _operations(change: Any, vectors: Sequence[Sequence[float]] | None, text_field: str | None) -> list[Any]:
    from kafka_pinecone_flink.udfs.records import DELETE, UPSERT, Change

    out: list[Any] = []
    previous = change.previous_chunks
    if change.op == DELETE:
        if previous == 0:
            return [change]
        return [_delete(change, chunk_id(change.id, n)) for n in range(previous)]
    spans = change.chunk_spans
    if spans is None:
        out.append(change)
        out.extend(_delete(change, chunk_id(change.id, n)) for n in range(previous))
        return out
    if vectors is None or len(vectors) != len(spans):
        raise ValueError(f"a chunked change needs one vector per chunk ({len(spans)}), got {vectors!r:.60}")
    text = change.text or ""
    count = len(spans)
    for n, ((start, end), values) in enumerate(zip(spans, vectors, strict=True)):
        piece = text[start:end]
        out.append(
            Change(
                op=UPSERT,
                namespace=change.namespace,
                id=chunk_id(change.id, n),
                source=change.source,
                values=list(values),
                sparse=change.sparse,
                metadata=chunk_metadata(change.metadata, n, count, text_field, piece),
                text=piece,
                version=change.version,
                content_hash=change.content_hash,
                replaces=change.replaces and n < previous,
            )
        )
    out.extend(stale_ids_deleted(change))
    return out


def stale_ids_deleted(change: Any) -> list[Any]:
    """The deletes a chunked upsert ``change`` issues besides its chunk upserts: the chunks of the live version past
    its own count, or the live version's plain vector. Also issued when the document cannot be embedded (a dead
    letter): dedup's state then already counts this version's chunks, and a later version deletes only past that
    count, so every id beyond it must be gone now, or it would never be."""
    count, previous = change.chunk_count, change.previous_chunks
    out = [_delete(change, chunk_id(change.id, n)) for n in range(count, previous)]
    if change.replaces and previous == 0:
        out.append(_delete(change, change.id))  # the live version was one plain vector
    for operation in out:
        operation.follows = True
    return out


def _delete(change: Any, record_id: str) -> Any:
    from kafka_pinecone_flink.udfs.records import DELETE, Change

    return Change(
        op=DELETE,
        namespace=change.namespace,
        id=record_id,
        source=change.source,
        version=change.version,
        replaces=True,
    )
