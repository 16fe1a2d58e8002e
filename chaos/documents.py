"""The chaos harness's document workload: long texts that grow, shrink, get one paragraph edited and are deleted, for
the ingest job with chunking on (``udfs.chunking``), with the exact set of chunks the index must hold at the end.

``generate(events, seed, topics, partitions)`` plays a table of documents (``id``, ``version``, ``title``, ``body``
of 1 to 40 paragraphs) as a change stream for the job configured with ``JOB_ARGS`` (raw ids from the ``id`` field,
versions from ``version``, the body embedded in chunks of ``CHUNK_TOKENS`` word pieces, each chunk's text kept in the
``text`` metadata field, only ``id``, ``version`` and ``title`` as the record's metadata). Kinds of record:

* inserts; edits of one paragraph (a sentence appended); growth (paragraphs appended); shrinking (most paragraphs
  dropped); title-only updates (same text: every chunk's vector reused, every chunk's metadata rewritten);
* deletes: versioned ``__deleted: "true"`` rows and lone tombstones, and re-inserts after a delete;
* exact duplicates of a document's last record, and late records of an older version (fenced per document).

The expected state: for every document alive at the end, each chunk id ``<id>#<n>`` with the metadata the job must
write (the chunk's number, the document's chunk count, the chunk's text, the version and the title), cut by the
job's own splitter; every chunk id any version ever had and the latest does not is *deleted* (an orphan found there
is reported as resurrected). Vectors are not predicted (``ExpectedVector.values`` is None): the chunk texts are. So
``chaos.verify.compare`` checks the chunk sets exactly, and each chunk's text and count.

Deterministic: the same arguments give the same records, byte for byte.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from chaos.workload import (
    DEFAULT_PARTITIONS,
    FIRST_VERSION,
    Expectation,
    ExpectedVector,
    ProducedRecord,
    Workload,
    generated,
    partition_for,
)

DIMENSION = 384
METRIC = "cosine"
CHUNK_TOKENS = 64
TEXT_FIELD = "text"
JOB_ARGS: tuple[str, ...] = (
    "--id.strategy=field",
    "--id.field=id",
    "--id.format=raw",
    "--dedup.version-field=version",
    "--embedding.text-fields=body",
    "--metadata.fields=id,version,title",
    f"--chunking.tokens={CHUNK_TOKENS}",
    f"--chunking.text-field={TEXT_FIELD}",
)
"""The ingest job options the document workload is written for."""

INSERT = "insert"
EDIT = "edit_paragraph"
GROW = "grow"
SHRINK = "shrink"
RETITLE = "retitle"
DELETE_ROW = "delete_row"
TOMBSTONE = "tombstone"
REINSERT = "reinsert"
DUPLICATE = "duplicate"
LATE_OLDER = "late_older"

_WEIGHTS: tuple[tuple[str, float], ...] = (
    (INSERT, 0.22),
    (EDIT, 0.20),
    (GROW, 0.10),
    (SHRINK, 0.10),
    (RETITLE, 0.08),
    (DELETE_ROW, 0.06),
    (TOMBSTONE, 0.05),
    (REINSERT, 0.06),
    (DUPLICATE, 0.06),
    (LATE_OLDER, 0.07),
)
_WORDS = (
    "river mountain ledger harbor violin candle engine orchard lantern basalt comet meadow falcon glacier prism "
    "saddle tundra walnut anchor beacon cobalt dune ember fjord granite hollow jasper council budget archive"
).split()
MAX_PARAGRAPHS = 40


@dataclass
class _Document:
    record_id: str
    topic: str
    partition: int
    version: int = 0
    title: str = ""
    paragraphs: list[str] | None = None
    """None: deleted (or never written)."""
    last: ProducedRecord | None = None
    older: ProducedRecord | None = None
    """A record of an older version, kept to be produced late."""
    chunk_ids: set[str] = field(default_factory=set)
    """Every chunk id any version of this document had."""


class _Generator:
    def __init__(self, seed: int, topics: Sequence[str], partitions: int) -> None:
        from kafka_pinecone_flink.udfs.chunking import chunker

        if not topics or partitions < 1:
            raise ValueError("the workload needs at least one topic and one partition")
        self.rng = random.Random(seed)
        self.topics = tuple(topics)
        self.partitions = partitions
        self.clock = FIRST_VERSION
        self.documents: dict[str, _Document] = {}
        self.records: list[ProducedRecord] = []
        self.split = chunker("default", CHUNK_TOKENS, 0)

    def run(self, events: int) -> None:
        kinds, weights = zip(*_WEIGHTS, strict=True)
        while len(self.records) < events:
            self._change(self.rng.choices(kinds, weights)[0])

    def _sentence(self) -> str:
        return " ".join(self.rng.choice(_WORDS) for _ in range(self.rng.randint(4, 18))).capitalize() + "."

    def _paragraph(self) -> str:
        return " ".join(self._sentence() for _ in range(self.rng.randint(1, 5)))

    def _pick(self, alive: bool) -> _Document | None:
        pool = [d for d in self.documents.values() if (d.paragraphs is not None) == alive and d.last is not None]
        return self.rng.choice(pool) if pool else None

    def _change(self, kind: str) -> None:
        document: _Document | None
        if kind == INSERT or (kind == REINSERT and self._pick(alive=False) is None):
            record_id = f"doc-{len(self.documents):05d}"
            topic = self.rng.choice(self.topics)
            created = _Document(record_id, topic, partition_for(record_id, self.partitions))
            self.documents[record_id] = created
            paragraphs = [self._paragraph() for _ in range(self.rng.randint(1, 12))]
            self._upsert(created, paragraphs, f"Document {record_id}", INSERT)
            return
        if kind == REINSERT:
            document = self._pick(alive=False)
            assert document is not None
            self._upsert(document, [self._paragraph() for _ in range(self.rng.randint(1, 8))], "Back", REINSERT)
            return
        if kind == DUPLICATE:
            document = self._pick(alive=True) or self._pick(alive=False)
            if document is not None and document.last is not None:
                self.records.append(_copy(document.last, DUPLICATE))
            return
        if kind == LATE_OLDER:
            candidates = [d for d in self.documents.values() if d.older is not None]
            if candidates:
                late = self.rng.choice(candidates)
                assert late.older is not None
                self.records.append(_copy(late.older, LATE_OLDER))
                late.older = None
            return
        document = self._pick(alive=True)
        if document is None or document.paragraphs is None:
            return
        paragraphs = list(document.paragraphs)
        if kind == EDIT:
            at = self.rng.randrange(len(paragraphs))
            paragraphs[at] += " " + self._sentence()
            self._upsert(document, paragraphs, document.title, EDIT)
        elif kind == GROW:
            paragraphs += [self._paragraph() for _ in range(self.rng.randint(2, 10))]
            self._upsert(document, paragraphs[:MAX_PARAGRAPHS], document.title, GROW)
        elif kind == SHRINK:
            self._upsert(
                document, paragraphs[: self.rng.randint(1, max(1, len(paragraphs) // 3))], document.title, SHRINK
            )
        elif kind == RETITLE:
            self._upsert(document, paragraphs, f"{document.title} (rev {self.clock})", RETITLE)
        elif kind == DELETE_ROW:
            version = self._next_version()
            row = {"id": document.record_id, "version": version, "__deleted": "true"}
            self._emit(document, _json(row), DELETE_ROW, version)
            document.paragraphs = None
        elif kind == TOMBSTONE:
            self._emit(document, None, TOMBSTONE, document.version)
            document.paragraphs = None

    def _next_version(self) -> int:
        self.clock += self.rng.randint(1, 3)
        return self.clock

    def _upsert(self, document: _Document, paragraphs: list[str], title: str, kind: str) -> None:
        version = self._next_version()
        body = "\n\n".join(paragraphs)
        row = {"id": document.record_id, "version": version, "title": title, "body": body}
        self._emit(document, _json(row), kind, version)
        document.paragraphs, document.title = paragraphs, title
        document.chunk_ids |= {f"{document.record_id}#{n}" for n in range(len(self.split.spans(body)))}

    def _emit(self, document: _Document, value: bytes | None, kind: str, version: int) -> None:
        record = ProducedRecord(document.topic, document.partition, document.record_id.encode(), value, kind)
        # Produced later, after this newer record: fenced only if this record raised the version. A tombstone carries
        # none (the dedup state keeps the highest version applied), so a record of that same version produced after it
        # is a re-insert by the dedup rules (equal versions are not stale), not a late older record.
        if (
            document.last is not None
            and document.last.value is not None
            and version > document.version
            and self.rng.random() < 0.3
        ):
            document.older = document.last
        self.records.append(record)
        document.last, document.version = record, version

    def expectation(self) -> Expectation:
        alive: dict[str, dict[str, ExpectedVector]] = {}
        deleted: dict[str, set[str]] = {}
        for document in self.documents.values():
            live: set[str] = set()
            if document.paragraphs is not None:
                body = "\n\n".join(document.paragraphs)
                found = self.split.spans(body)
                for n, (start, end) in enumerate(found):
                    chunk_id = f"{document.record_id}#{n}"
                    metadata: dict[str, Any] = {
                        "id": document.record_id,
                        "version": float(document.version),
                        "title": document.title,
                        "chunk_index": float(n),
                        "chunk_count": float(len(found)),
                        TEXT_FIELD: body[start:end],
                    }
                    alive.setdefault(document.topic, {})[chunk_id] = ExpectedVector(None, metadata, document.version)
                    live.add(chunk_id)
            gone = document.chunk_ids - live
            if gone:
                deleted.setdefault(document.topic, set()).update(gone)
        return Expectation(
            alive=alive,
            deleted={namespace: frozenset(ids) for namespace, ids in deleted.items()},
            dead_letters=Counter(),
        )


def _json(row: dict[str, Any]) -> bytes:
    return json.dumps(row, separators=(",", ":")).encode()


def _copy(record: ProducedRecord, kind: str) -> ProducedRecord:
    return ProducedRecord(record.topic, record.partition, record.key, record.value, kind)


def generate(events: int, seed: int, topics: Sequence[str], partitions: int = DEFAULT_PARTITIONS) -> Workload:
    """Exactly ``events`` records of documents over ``topics`` and ``partitions``, and the chunks they must leave
    (see the module docstring). Deterministic for the same arguments."""
    return generated(events, seed, topics, partitions, lambda: _Generator(seed, topics, partitions))
