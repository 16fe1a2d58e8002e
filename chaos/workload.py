"""A seeded change stream of a source table, as Kafka records, with the exact end state the index must reach.

``generate(events, seed, topics, partitions)`` plays a table of rows (``id``, ``version``, an 8-dimensional vector
in ``values`` and simple metadata) as a change stream for the ingest job configured with ``JOB_ARGS``
(``--id.strategy=field --id.field=id --id.format=raw --dedup.version-field=version``, the default namespace template
``${topic}``: one namespace per topic). It produces exactly ``events`` records:

* inserts, updates of the vector, metadata-only updates (some rows carry Debezium's flattened control fields
  ``__op``/``__deleted: "false"``, which are never metadata; some give the vector as a JSON string);
* deletes: versioned ``__deleted: "true"`` rows (sometimes followed by a tombstone, as Debezium writes them) and
  lone tombstones (null value, keyed by the id: the key is the id's text or ``{"id": ...}``), and re-inserts after a
  delete;
* exact duplicates (the id's last record again, byte for byte);
* versions out of order: an update (or a delete) is produced first and a record with an *older* version of the same
  id later; the older one must be skipped, and an older update after a delete must not resurrect the id;
* poison records (a share ``poison_share``): invalid JSON, a wrong dimension, NaN inside a vector string, a missing
  id, metadata over 40 KB. Each has a unique key ``poison-NNNNNN`` and must end in the dead-letter topic with its
  error class, its key and value byte for byte.

Every record of an id goes to one partition, ``partition_for(id, partitions)`` (a stable CRC-32, as Kafka's default
partitioner keeps one key in one partition), so the per-id order the expected state depends on is the order the job
reads. Records of different ids interleave freely.

The expected state is the source table's final state, which the workload knows by construction: for each id alive
at the end its vector and metadata (the job's policy: every field but ``values`` and ``__``-prefixed ones; integers
and floats as float64, strings and lists of strings as they are), the ids deleted at the end, and the multiset of
dead letters. The out-of-order cases are unambiguous under the job's dedup rules (``udfs/dedup.py``): a late record's
version is always strictly lower than a version already applied to its id, so fencing skips it whatever came between
(an unversioned tombstone keeps the highest applied version); a duplicate is always of the id's last record. The
unit tests check that decoding and deduplicating the stream with the job's own stages gives this same state.

Deterministic: the same arguments give the same records, byte for byte (``random.Random(seed)``, no ``hash()``).
"""

from __future__ import annotations

import hashlib
import json
import random
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

DIMENSION = 8
METRIC = "cosine"
ID_FIELD = "id"
VERSION_FIELD = "version"
VECTOR_FIELD = "values"
JOB_ARGS: tuple[str, ...] = (
    "--id.strategy=field",
    f"--id.field={ID_FIELD}",
    "--id.format=raw",
    f"--dedup.version-field={VERSION_FIELD}",
)
"""The ingest job options the workload is written for (with the default namespace template ``${topic}``)."""

DEFAULT_PARTITIONS = 4
DEFAULT_POISON_SHARE = 0.03
FIRST_VERSION = 1_000
MAX_VERSION_STEP = 3
"""Versions grow by 1 to 3 per change, so they are not dense (a gap is not a missing record)."""
OVERSIZED_METADATA_CHARS = 41_000
"""Just above Pinecone's (and the job's default) 40,960-byte metadata limit."""
JSON_KEY_SHARE = 0.3
"""Share of ids whose Kafka key is the JSON object ``{"id": ...}`` (Debezium's key) instead of the id's text."""
CONTROL_FIELDS_SHARE = 0.3
VECTOR_STRING_SHARE = 0.2
TOMBSTONE_AFTER_DELETE_SHARE = 0.5

# Record kinds (``Workload.kinds`` counts records by these).
INSERT = "insert"
UPDATE_VECTOR = "update_vector"
UPDATE_METADATA = "update_metadata"
DELETE_ROW = "delete_row"
TOMBSTONE = "tombstone"
REINSERT = "reinsert"
DUPLICATE = "duplicate"
NEWER_UPDATE_FIRST = "newer_update_first"
NEWER_DELETE_FIRST = "newer_delete_first"
LATE_OLDER = "late_older"
POISON = "poison"

POISON_ERRORS: Mapping[str, str] = {
    "invalid_json": "InvalidJsonError",
    "wrong_dimension": "DimensionMismatchError",
    "nan_vector": "NonFiniteVectorError",
    "missing_id": "MissingIdError",
    "metadata_too_large": "MetadataTooLargeError",
}
"""Poison kind -> the ``kpf.error.class`` its dead letter must carry (README: "What happens to each record")."""

_CHANGE_WEIGHTS: tuple[tuple[str, float], ...] = (
    (INSERT, 0.24),
    (UPDATE_VECTOR, 0.16),
    (UPDATE_METADATA, 0.14),
    (DELETE_ROW, 0.05),
    (TOMBSTONE, 0.04),
    (REINSERT, 0.06),
    (DUPLICATE, 0.08),
    (NEWER_UPDATE_FIRST, 0.07),
    (NEWER_DELETE_FIRST, 0.04),
    (LATE_OLDER, 0.12),
)
_TAGS = ("red", "green", "blue", "sale", "new", "eco", "bulk", "gift")
_WORDS = ("alpha", "bravo", "cedar", "delta", "ember", "fjord", "grove", "harbor", "iris", "juniper")

Key = bytes | None
Value = bytes | None


@dataclass(frozen=True, slots=True)
class ProducedRecord:
    """One Kafka record of the workload, with the partition it must be produced to."""

    topic: str
    partition: int
    key: Key
    value: Value
    kind: str


@dataclass(frozen=True, slots=True)
class ExpectedVector:
    """What the index must hold for one live id (``values`` None: any vector; the document workload's chunks)."""

    values: tuple[float, ...] | None
    metadata: Mapping[str, Any]
    version: int


@dataclass(frozen=True, slots=True)
class ExpectedDeadLetter:
    """A dead letter as it must appear: its key, its error class and the SHA-256 of its value (original bytes)."""

    key: Key
    error_class: str
    value_sha256: str

    def describe(self) -> str:
        key = "<null>" if self.key is None else self.key.decode("utf-8", errors="replace")
        return f"{key}:{self.error_class}"


def value_digest(value: Value) -> str:
    """The SHA-256 hex digest of a record value (``"-"`` for a null value)."""
    return "-" if value is None else hashlib.sha256(value).hexdigest()


@dataclass(frozen=True)
class Expectation:
    """The exact end state: live vectors and deleted ids per namespace, and the multiset of dead letters."""

    alive: Mapping[str, Mapping[str, ExpectedVector]]
    deleted: Mapping[str, frozenset[str]]
    dead_letters: Counter[ExpectedDeadLetter]

    @property
    def namespaces(self) -> list[str]:
        return sorted(set(self.alive) | set(self.deleted))

    def namespace_of(self) -> dict[str, str]:
        """id -> the namespace it belongs to (ids are unique across namespaces in this workload)."""
        owner: dict[str, str] = {}
        for namespace in self.namespaces:
            for record_id in (*self.alive.get(namespace, {}), *self.deleted.get(namespace, ())):
                owner[record_id] = namespace
        return owner


@dataclass(frozen=True)
class Workload:
    """The records to produce, in order, and the state the index and the dead-letter topic must end in."""

    seed: int
    topics: tuple[str, ...]
    partitions: int
    records: tuple[ProducedRecord, ...]
    expected: Expectation
    kinds: Counter[str] = field(default_factory=Counter)

    def by_partition(self) -> dict[tuple[str, int], list[tuple[Key, Value]]]:
        """The records grouped by (topic, partition), each group in production order."""
        groups: dict[tuple[str, int], list[tuple[Key, Value]]] = {}
        for record in self.records:
            groups.setdefault((record.topic, record.partition), []).append((record.key, record.value))
        return groups


class Generator(Protocol):
    """What ``generated`` runs: a workload's generator (this module's, or ``chaos.documents``'s)."""

    records: list[ProducedRecord]

    def run(self, events: int) -> None: ...

    def expectation(self) -> Expectation: ...


def generated(
    events: int, seed: int, topics: Sequence[str], partitions: int, generator: Callable[[], Generator]
) -> Workload:
    """The ``Workload`` of exactly ``events`` records made by a new ``generator()`` (for ``seed``, ``topics`` and
    ``partitions``)."""
    if events < 1:
        raise ValueError(f"events must be at least 1, got {events}")
    made = generator()
    made.run(events)
    return Workload(
        seed=seed,
        topics=tuple(topics),
        partitions=partitions,
        records=tuple(made.records),
        expected=made.expectation(),
        kinds=Counter(record.kind for record in made.records),
    )


def partition_for(record_id: str, partitions: int) -> int:
    """The partition of every record of ``record_id``: stable across processes and runs."""
    return zlib.crc32(record_id.encode("utf-8")) % partitions


def expected_metadata(row: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata the job stores for ``row`` (only the simple types this workload generates): every field but the
    vector and ``__`` control fields; numbers as float64; strings and lists of strings unchanged."""
    metadata: dict[str, Any] = {}
    for name, value in row.items():
        if name == VECTOR_FIELD or name.startswith("__"):
            continue
        if isinstance(value, bool) or not isinstance(value, int | float | str | list):
            raise TypeError(f"the workload generates no metadata of type {type(value).__name__} ({name})")
        metadata[name] = float(value) if isinstance(value, int | float) else value
    return metadata


T = TypeVar("T")


class _Pool(Generic[T]):
    """A set with O(1) add, remove and seeded random choice, iterated in a deterministic order."""

    def __init__(self) -> None:
        self._items: list[T] = []
        self._where: dict[T, int] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item: T) -> bool:
        return item in self._where

    def add(self, item: T) -> None:
        if item not in self._where:
            self._where[item] = len(self._items)
            self._items.append(item)

    def remove(self, item: T) -> None:
        position = self._where.pop(item, None)
        if position is None:
            return
        last = self._items.pop()
        if position < len(self._items):
            self._items[position] = last
            self._where[last] = position

    def choice(self, rng: random.Random) -> T:
        return self._items[rng.randrange(len(self._items))]


@dataclass
class _Row:
    """The source table's knowledge of one id."""

    record_id: str
    topic: str
    partition: int
    json_key: bool
    version: int = 0
    fields: dict[str, Any] | None = None
    """The current row (without control fields); None while deleted."""
    last: ProducedRecord | None = None
    """The id's last record produced in order (what an exact duplicate repeats)."""
    late: list[ProducedRecord] = field(default_factory=list)
    """Records of older versions, to be produced later than a newer one."""

    @property
    def key(self) -> bytes:
        if self.json_key:
            return json.dumps({ID_FIELD: self.record_id}, separators=(",", ":")).encode()
        return self.record_id.encode()


class _Generator:
    def __init__(self, seed: int, topics: Sequence[str], partitions: int, poison_share: float) -> None:
        if not topics:
            raise ValueError("the workload needs at least one topic")
        if partitions < 1:
            raise ValueError(f"partitions must be at least 1, got {partitions}")
        if not 0 <= poison_share < 1:
            raise ValueError(f"poison_share must be in [0, 1), got {poison_share}")
        self.rng = random.Random(seed)
        self.topics = tuple(topics)
        self.partitions = partitions
        self.poison_share = poison_share
        self.clock = FIRST_VERSION
        self.rows: dict[str, _Row] = {}
        self.alive: _Pool[str] = _Pool()
        self.deleted: _Pool[str] = _Pool()
        self.with_last: _Pool[str] = _Pool()
        self.with_late: _Pool[str] = _Pool()
        self.records: list[ProducedRecord] = []
        self.dead_letters: Counter[ExpectedDeadLetter] = Counter()
        self.poison_count = 0

    # -- the stream ----------------------------------------------------------------------------------------------

    def run(self, events: int) -> None:
        kinds, weights = zip(*_CHANGE_WEIGHTS, strict=True)
        while len(self.records) < events:
            if self.rng.random() < self.poison_share:
                self._poison()
                continue
            kind = self.rng.choices(kinds, weights)[0]
            self._change(kind, room=events - len(self.records))

    def _change(self, kind: str, room: int) -> None:
        if kind in (UPDATE_VECTOR, UPDATE_METADATA, DELETE_ROW, TOMBSTONE, NEWER_UPDATE_FIRST, NEWER_DELETE_FIRST):
            if not self.alive:
                kind = INSERT
        elif (
            (kind == REINSERT and not self.deleted)
            or (kind == DUPLICATE and not self.with_last)
            or (kind == LATE_OLDER and not self.with_late)
        ):
            kind = INSERT

        if kind == INSERT:
            self._upsert(self._new_row(), self._fresh_fields(), INSERT)
        elif kind == REINSERT:
            self._upsert(self.rows[self.deleted.choice(self.rng)], self._fresh_fields(), REINSERT)
        elif kind == UPDATE_VECTOR:
            row = self.rows[self.alive.choice(self.rng)]
            self._upsert(row, self._changed_vector(row), UPDATE_VECTOR)
        elif kind == UPDATE_METADATA:
            row = self.rows[self.alive.choice(self.rng)]
            self._upsert(row, self._changed_metadata(row), UPDATE_METADATA)
        elif kind == DELETE_ROW:
            row = self.rows[self.alive.choice(self.rng)]
            self._delete_row(row, self._next_version())
            if room >= 2 and self.rng.random() < TOMBSTONE_AFTER_DELETE_SHARE:
                self._tombstone(row)  # Debezium writes a tombstone after the delete row
        elif kind == TOMBSTONE:
            self._tombstone(self.rows[self.alive.choice(self.rng)])
        elif kind == DUPLICATE:
            row = self.rows[self.with_last.choice(self.rng)]
            assert row.last is not None
            self._emit(row.last.key, row.last.value, row, DUPLICATE)
        elif kind == NEWER_UPDATE_FIRST:
            row = self.rows[self.alive.choice(self.rng)]
            older_version = self._next_version()
            older = self._record(row, self._changed_vector(row) | {VERSION_FIELD: older_version}, LATE_OLDER)
            self._upsert(row, self._changed_vector(row), NEWER_UPDATE_FIRST)
            self._stash_late(row, older)
        elif kind == NEWER_DELETE_FIRST:
            row = self.rows[self.alive.choice(self.rng)]
            older_version = self._next_version()
            older = self._record(row, self._changed_metadata(row) | {VERSION_FIELD: older_version}, LATE_OLDER)
            self._delete_row(row, self._next_version(), kind=NEWER_DELETE_FIRST)
            self._stash_late(row, older)
        else:  # LATE_OLDER
            row = self.rows[self.with_late.choice(self.rng)]
            record = row.late.pop(0)
            if not row.late:
                self.with_late.remove(row.record_id)
            self._emit(record.key, record.value, row, LATE_OLDER)

    # -- rows ----------------------------------------------------------------------------------------------------

    def _next_version(self) -> int:
        self.clock += self.rng.randint(1, MAX_VERSION_STEP)
        return self.clock

    def _new_row(self) -> _Row:
        topic_index = self.rng.randrange(len(self.topics))
        record_id = f"t{topic_index}-{len(self.rows):07d}"
        row = _Row(
            record_id,
            self.topics[topic_index],
            partition_for(record_id, self.partitions),
            json_key=self.rng.random() < JSON_KEY_SHARE,
        )
        self.rows[record_id] = row
        return row

    def _vector(self) -> list[float]:
        values = [round(self.rng.uniform(-1.0, 1.0), 6) for _ in range(DIMENSION)]
        if not any(values):  # a cosine index rejects the zero vector; this workload's valid rows never hold one
            values[0] = 0.5
        return values

    def _fresh_fields(self) -> dict[str, Any]:
        return {
            VECTOR_FIELD: self._vector(),
            "title": f"{self.rng.choice(_WORDS)} {self.rng.choice(_WORDS)} {self.rng.randrange(1000)}",
            "count": self.rng.randrange(1_000_000),
            "price": round(self.rng.uniform(0.0, 1000.0), 2),
            "tags": self.rng.sample(_TAGS, self.rng.randint(1, 3)),
        }

    def _changed_vector(self, row: _Row) -> dict[str, Any]:
        assert row.fields is not None
        return {**row.fields, VECTOR_FIELD: self._vector()}

    def _changed_metadata(self, row: _Row) -> dict[str, Any]:
        assert row.fields is not None
        fresh = self._fresh_fields()
        changed = dict(row.fields)
        for name in self.rng.sample(("title", "count", "price", "tags"), self.rng.randint(1, 3)):
            changed[name] = fresh[name]
        return changed

    def _value(self, row: _Row, fields: Mapping[str, Any], *, deleted: bool = False) -> bytes:
        body: dict[str, Any] = {ID_FIELD: row.record_id, VERSION_FIELD: fields[VERSION_FIELD]}
        for name, content in fields.items():
            if name == VERSION_FIELD:
                continue
            if name == VECTOR_FIELD and self.rng.random() < VECTOR_STRING_SHARE:
                content = json.dumps(content)  # the form pgvector columns take through Debezium
            body[name] = content
        if deleted:
            body["__deleted"] = "true"
            body["__op"] = "d"
        elif self.rng.random() < CONTROL_FIELDS_SHARE:
            body["__deleted"] = "false"
            body["__op"] = "u" if row.last is not None else "c"
        return json.dumps(body, separators=(",", ":")).encode()

    def _record(self, row: _Row, fields: Mapping[str, Any], kind: str, *, deleted: bool = False) -> ProducedRecord:
        return ProducedRecord(row.topic, row.partition, row.key, self._value(row, fields, deleted=deleted), kind)

    def _emit(self, key: Key, value: Value, row: _Row, kind: str) -> ProducedRecord:
        record = ProducedRecord(row.topic, row.partition, key, value, kind)
        self.records.append(record)
        row.last = record
        self.with_last.add(row.record_id)
        return record

    def _upsert(self, row: _Row, fields: dict[str, Any], kind: str) -> None:
        version = self._next_version()
        fields = {VERSION_FIELD: version, **{k: v for k, v in fields.items() if k != VERSION_FIELD}}
        record = self._record(row, fields, kind)
        self._emit(record.key, record.value, row, kind)
        row.version = version
        row.fields = fields
        self.alive.add(row.record_id)
        self.deleted.remove(row.record_id)

    def _delete_row(self, row: _Row, version: int, kind: str = DELETE_ROW) -> None:
        assert row.fields is not None
        record = self._record(row, {**row.fields, VERSION_FIELD: version}, kind, deleted=True)
        self._emit(record.key, record.value, row, kind)
        row.version = version
        self._mark_deleted(row)

    def _tombstone(self, row: _Row) -> None:
        self._emit(row.key, None, row, TOMBSTONE)
        self._mark_deleted(row)  # unversioned: the dedup state keeps the highest version applied so far

    def _mark_deleted(self, row: _Row) -> None:
        row.fields = None
        self.alive.remove(row.record_id)
        self.deleted.add(row.record_id)

    def _stash_late(self, row: _Row, older: ProducedRecord) -> None:
        row.late.append(older)
        self.with_late.add(row.record_id)

    # -- poison ----------------------------------------------------------------------------------------------

    def _poison(self) -> None:
        kind = self.rng.choice(tuple(POISON_ERRORS))
        # A poison record rides in the partition of a real id (when there is one), next to its valid records.
        target = self.rows[self.alive.choice(self.rng)] if self.alive else self._new_row()
        version = self.clock  # never applied: decode rejects it before dedup
        key = f"poison-{self.poison_count:06d}".encode()
        self.poison_count += 1
        vector: Any = self._vector()
        body: dict[str, Any] = {ID_FIELD: target.record_id, VERSION_FIELD: version, VECTOR_FIELD: vector}
        if kind == "wrong_dimension":
            body[VECTOR_FIELD] = vector[: DIMENSION - 1]
        elif kind == "nan_vector":
            body[VECTOR_FIELD] = "[NaN, " + ", ".join(str(v) for v in vector[1:]) + "]"
        elif kind == "missing_id":
            del body[ID_FIELD]
        elif kind == "metadata_too_large":
            body["notes"] = "x" * OVERSIZED_METADATA_CHARS
        value = json.dumps(body, separators=(",", ":")).encode()
        if kind == "invalid_json":
            value = value[: len(value) // 2]  # cut in the middle: never valid JSON
        self.records.append(ProducedRecord(target.topic, target.partition, key, value, POISON))
        self.dead_letters[ExpectedDeadLetter(key, POISON_ERRORS[kind], value_digest(value))] += 1

    # -- the end state -----------------------------------------------------------------------------------------

    def expectation(self) -> Expectation:
        alive: dict[str, dict[str, ExpectedVector]] = {}
        deleted: dict[str, set[str]] = {}
        for row in self.rows.values():
            if row.fields is not None:
                values = tuple(float(v) for v in row.fields[VECTOR_FIELD])
                metadata = expected_metadata({ID_FIELD: row.record_id, **row.fields})
                alive.setdefault(row.topic, {})[row.record_id] = ExpectedVector(values, metadata, row.version)
            elif row.last is not None:
                deleted.setdefault(row.topic, set()).add(row.record_id)
        return Expectation(
            alive=alive,
            deleted={namespace: frozenset(ids) for namespace, ids in deleted.items()},
            dead_letters=Counter(self.dead_letters),
        )


def generate(
    events: int,
    seed: int,
    topics: Sequence[str],
    partitions: int = DEFAULT_PARTITIONS,
    poison_share: float = DEFAULT_POISON_SHARE,
) -> Workload:
    """Exactly ``events`` records over ``topics`` (one namespace each) and ``partitions`` partitions per topic, and
    the state they must leave (see the module docstring). Deterministic for the same arguments."""
    return generated(events, seed, topics, partitions, lambda: _Generator(seed, topics, partitions, poison_share))
