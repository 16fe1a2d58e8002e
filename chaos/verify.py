"""The verdict of a chaos run: what the index and the dead-letter topic hold, compared with ``chaos.workload``'s
expected state.

``read_index`` reads every record back through the real SDK (list + fetch per namespace: the workload's
namespaces and any other the index reports); ``read_dead_letters`` reads the whole dead-letter topic and decodes it
with ``sinks.dead_letter.from_kafka``; ``compare`` is pure (it takes a snapshot, so tests feed it fakes) and returns a
``Report``:

* missing: an id alive at the end that is not in its namespace;
* stale: an id in its namespace whose vector (float32 tolerance ``VECTOR_TOLERANCE``) or metadata (exact) is not the
  expected one: an older version, or a lost metadata update;
* resurrected: an id deleted at the end that is in its namespace;
* unexpected: an id the workload never produced (valid) in any namespace;
* duplicates: an id present in a namespace that is not its own (ids are unique across the workload's namespaces,
  so this is a record written twice or routed wrong);
* dead letters: the multiset of (key, error class, SHA-256 of the value) found vs expected; exact means the same
  multiset, so a lost dead letter and a dead letter written twice (e.g. re-sent after a replay) both fail.
  ``dead_letter_redeliveries`` counts found dead letters whose source coordinates (topic, partition, offset) repeat
  an earlier one, to tell a re-sent dead letter from a wrong one.

``Report.ok`` is true only when missing, stale, resurrected, unexpected and duplicates are all zero and the
dead-letter match is exact. The harness fills in faults, restarts, recovery times and wall time.
"""

from __future__ import annotations

import statistics
import struct
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from chaos.workload import Expectation, ExpectedDeadLetter, ExpectedVector, value_digest
from kafka_pinecone_flink.sinks.dead_letter import from_kafka
from kafka_pinecone_flink.stack.kafka_client import Message, consume

VECTOR_TOLERANCE = 1e-6
"""Largest difference allowed between a stored value and the expected value rounded to float32 (Pinecone stores
float32; the local server answers with its shortest decimal form), relative to max(1, |value|)."""
FETCH_BATCH = 200
DEAD_LETTER_IDLE_TIMEOUT_S = 30.0
"""How long the dead-letter topic is read when it stays empty (a non-empty topic is read until 2 s idle)."""
NOT_A_DEAD_LETTER = "<not a dead letter>"
MAX_LISTED = 10
"""Ids shown per kind of discrepancy in ``Report.render``."""

_FLOAT32 = struct.Struct("<f")


@dataclass(frozen=True, slots=True)
class FoundVector:
    """What the index holds for one id."""

    values: tuple[float, ...]
    metadata: Mapping[str, Any]


Snapshot = Mapping[str, Mapping[str, FoundVector]]
"""namespace -> id -> what the index holds."""


@dataclass(frozen=True, slots=True)
class FoundDeadLetter:
    """A dead-letter topic record: the original key and value, the error class and the source coordinates."""

    key: bytes | None
    value: bytes | None
    error_class: str
    topic: str
    partition: int
    offset: int

    def as_expected(self) -> ExpectedDeadLetter:
        return ExpectedDeadLetter(self.key, self.error_class, value_digest(self.value))


@dataclass
class Report:
    """A chaos run's verdict (see the module docstring); ``ok`` only when nothing is wrong."""

    events: int
    expected_alive: int
    expected_deleted: int
    found_vectors: int
    missing: list[str]
    stale: list[str]
    resurrected: list[str]
    unexpected: list[str]
    duplicates: list[str]
    dead_letters_expected: int
    dead_letters_found: int
    dead_letters_missing: list[str]
    """Expected dead letters not found, one entry per missing copy (``key:ErrorClass``)."""
    dead_letters_extra: list[str]
    """Found dead letters not expected (or found more often than expected), one entry per extra copy."""
    dead_letter_redeliveries: int
    faults_injected: list[str] = field(default_factory=list)
    restarts: int = 0
    recovery_times_s: list[float] = field(default_factory=list)
    wall_time_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def dead_letters_exact(self) -> bool:
        return not self.dead_letters_missing and not self.dead_letters_extra

    @property
    def ok(self) -> bool:
        wrong = (self.missing, self.stale, self.resurrected, self.unexpected, self.duplicates)
        return not any(wrong) and self.dead_letters_exact

    @property
    def recovery_median_s(self) -> float | None:
        return statistics.median(self.recovery_times_s) if self.recovery_times_s else None

    @property
    def recovery_worst_s(self) -> float | None:
        return max(self.recovery_times_s) if self.recovery_times_s else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            ok=self.ok,
            dead_letters_exact=self.dead_letters_exact,
            recovery_median_s=self.recovery_median_s,
            recovery_worst_s=self.recovery_worst_s,
        )
        return data

    def rows(self) -> list[tuple[str, str]]:
        """Every figure as (name, value), in the order the reports show them."""
        return [
            ("events produced", str(self.events)),
            ("expected live ids / deleted ids", f"{self.expected_alive} / {self.expected_deleted}"),
            ("vectors found", str(self.found_vectors)),
            ("missing ids", str(len(self.missing))),
            ("stale ids", str(len(self.stale))),
            ("resurrected deletes", str(len(self.resurrected))),
            ("unexpected ids", str(len(self.unexpected))),
            ("duplicate vectors", str(len(self.duplicates))),
            ("dead letters expected / found", f"{self.dead_letters_expected} / {self.dead_letters_found}"),
            ("dead letters missing / extra", f"{len(self.dead_letters_missing)} / {len(self.dead_letters_extra)}"),
            ("dead letters re-sent (same source offset)", str(self.dead_letter_redeliveries)),
            ("dead-letter match", "exact" if self.dead_letters_exact else "NOT exact"),
            ("faults injected", f"{len(self.faults_injected)}: {', '.join(self.faults_injected) or '-'}"),
            ("restarts", str(self.restarts)),
            ("recovery median / worst", f"{_seconds(self.recovery_median_s)} / {_seconds(self.recovery_worst_s)}"),
            ("wall time", _seconds(self.wall_time_s)),
            ("verdict", "OK" if self.ok else "FAILED"),
        ]

    def discrepancies(self) -> list[tuple[str, str]]:
        """(kind, up to ``MAX_LISTED`` examples) for each kind of discrepancy found."""
        found = []
        for title, items in (
            ("missing", self.missing),
            ("stale", self.stale),
            ("resurrected", self.resurrected),
            ("unexpected", self.unexpected),
            ("duplicates", self.duplicates),
            ("dead letters missing", self.dead_letters_missing),
            ("dead letters extra", self.dead_letters_extra),
        ):
            if items:
                shown = ", ".join(items[:MAX_LISTED]) + (
                    f", ... ({len(items)} in all)" if len(items) > MAX_LISTED else ""
                )
                found.append((title, shown))
        return found

    def render(self) -> str:
        """A plain-text table of every figure, then up to ``MAX_LISTED`` examples of each discrepancy."""
        rows = self.rows()
        width = max(len(name) for name, _ in rows)
        lines = [f"{name.ljust(width)}  {value}" for name, value in rows]
        lines += [f"{title}: {shown}" for title, shown in self.discrepancies()]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


def as_float32(value: float) -> float:
    """``value`` rounded to the nearest float32 (what Pinecone stores)."""
    result: float = _FLOAT32.unpack(_FLOAT32.pack(value))[0]
    return result


def vectors_match(found: Sequence[float], expected: Sequence[float]) -> bool:
    """Same length, and every value within ``VECTOR_TOLERANCE`` of the expected value rounded to float32."""
    if len(found) != len(expected):
        return False
    return all(
        abs(got - as_float32(want)) <= VECTOR_TOLERANCE * max(1.0, abs(want))
        for got, want in zip(found, expected, strict=True)
    )


def _staleness(found: FoundVector, expected: ExpectedVector) -> str | None:
    """Why ``found`` is not ``expected`` (None when it is)."""
    reasons = []
    found_version = found.metadata.get("version")
    if found_version != float(expected.version):
        reasons.append(f"version {found_version} instead of {expected.version}")
    if expected.values is not None and not vectors_match(found.values, expected.values):
        reasons.append("vector differs")
    if dict(found.metadata) != dict(expected.metadata):
        reasons.append("metadata differs")
    return "; ".join(reasons) if reasons else None


def compare(expected: Expectation, snapshot: Snapshot, dead_letters: Sequence[FoundDeadLetter], events: int) -> Report:
    """The verdict for an index ``snapshot`` and the dead-letter topic's records (see the module docstring)."""
    owner = expected.namespace_of()
    missing: list[str] = []
    stale: list[str] = []
    resurrected: list[str] = []
    unexpected: list[str] = []
    duplicates: list[str] = []
    for namespace in expected.namespaces:
        held = snapshot.get(namespace, {})
        for record_id, want in expected.alive.get(namespace, {}).items():
            got = held.get(record_id)
            if got is None:
                missing.append(f"{namespace}/{record_id}")
                continue
            reason = _staleness(got, want)
            if reason is not None:
                stale.append(f"{namespace}/{record_id} ({reason})")
        resurrected += [f"{namespace}/{i}" for i in sorted(expected.deleted.get(namespace, ())) if i in held]
    for namespace, held in snapshot.items():
        for record_id in held:
            home = owner.get(record_id)
            if home is None:
                unexpected.append(f"{namespace}/{record_id}")
            elif home != namespace:
                duplicates.append(f"{namespace}/{record_id} (belongs to {home!r})")

    want_letters = expected.dead_letters
    got_letters = Counter(letter.as_expected() for letter in dead_letters)
    seen: set[tuple[str, int, int]] = set()
    redeliveries = 0
    for letter in dead_letters:
        coordinates = (letter.topic, letter.partition, letter.offset)
        redeliveries += coordinates in seen
        seen.add(coordinates)
    return Report(
        events=events,
        expected_alive=sum(len(ids) for ids in expected.alive.values()),
        expected_deleted=sum(len(ids) for ids in expected.deleted.values()),
        found_vectors=sum(len(held) for held in snapshot.values()),
        missing=missing,
        stale=stale,
        resurrected=resurrected,
        unexpected=sorted(unexpected),
        duplicates=sorted(duplicates),
        dead_letters_expected=sum(want_letters.values()),
        dead_letters_found=len(dead_letters),
        dead_letters_missing=_listed(want_letters - got_letters),
        dead_letters_extra=_listed(got_letters - want_letters),
        dead_letter_redeliveries=redeliveries,
    )


def _listed(letters: Counter[ExpectedDeadLetter]) -> list[str]:
    return sorted(letter.describe() for letter in letters.elements())


# -- reading what a run left --------------------------------------------------------------------------------------


def read_index(index: Any, namespaces: Iterable[str]) -> dict[str, dict[str, FoundVector]]:
    """Every record of ``namespaces`` and of any other namespace the index reports, through the SDK's ``list`` and
    ``fetch`` (``FETCH_BATCH`` ids per fetch)."""
    wanted = set(namespaces)
    stats = index.describe_index_stats()
    wanted |= {"" if name == "__default__" else name for name in (stats.namespaces or {})}
    snapshot: dict[str, dict[str, FoundVector]] = {}
    for namespace in sorted(wanted):
        ids = [record_id for page in index.list(namespace=namespace) for record_id in _page_ids(page)]
        held: dict[str, FoundVector] = {}
        for start in range(0, len(ids), FETCH_BATCH):
            fetched = index.fetch(ids=ids[start : start + FETCH_BATCH], namespace=namespace)
            for record_id, vector in fetched.vectors.items():
                held[record_id] = FoundVector(tuple(float(v) for v in vector.values), dict(vector.metadata or {}))
        if held:
            snapshot[namespace] = held
    return snapshot


def _page_ids(page: Any) -> list[str]:
    """The ids of one page of ``Index.list`` (a list of ids in SDK 10; objects with ``.vectors`` in others)."""
    if isinstance(page, list):
        return [str(item) for item in page]
    return [str(item.id) for item in getattr(page, "vectors", page)]


def read_dead_letters(
    bootstrap_servers: str, topic: str, timeout_s: float = DEAD_LETTER_IDLE_TIMEOUT_S
) -> list[FoundDeadLetter]:
    """Every record of the dead-letter topic, from the beginning until it has been idle for two seconds (or
    ``timeout_s`` if it is empty). A record that is not a dead letter is kept with class ``NOT_A_DEAD_LETTER``."""
    return [
        decode_dead_letter(message) for message in consume(bootstrap_servers, topic, expected=None, timeout_s=timeout_s)
    ]


def decode_dead_letter(message: Message) -> FoundDeadLetter:
    """A dead-letter topic message as a ``FoundDeadLetter`` (via ``sinks.dead_letter.from_kafka``)."""
    try:
        letter = from_kafka(message.key, message.value, message.headers)
    except ValueError:
        return FoundDeadLetter(message.key, message.value, NOT_A_DEAD_LETTER, message.topic, -1, message.offset)
    source = letter.source
    return FoundDeadLetter(
        message.key, message.value, letter.error_class, source.topic, source.partition, source.offset
    )
