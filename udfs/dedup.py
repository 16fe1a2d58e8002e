"""Keyed dedup: drops unchanged and stale changes, keeps tombstones, fences versions.

The stage runs in the JVM (``jvm/src/main/java/io/github/kpf/dedup``): ``keyed_dedup`` keys the decoded stream by
``Change.key`` (namespace and id) and applies ``DedupFunction.java`` to it, on Flink keyed state. So the state of one
Pinecone record lives in exactly one subtask and is checkpointed together with the Kafka offsets: after a restore,
dedup and the sink never disagree.

Why the JVM: keyed state used from a Python function costs a request from the Python worker to the JVM for every
key its cache has not seen, and a stream of new ids is nothing but such keys. On this project's 2-core machine, a
Python keyed stage with one state read and write per record ran at ~700 records/s and the same stage without state
at ~3,400 (BENCHMARKS.md, "Where the time goes"); on JVM state it runs at the second speed.

The boundary: the decode stage hands each change over as a ``dedup.input`` row (``dedup_row``: key, delete flag,
version as exact decimal text, the hashes and the pickled change), the operator hands on the pickled change with
``replaces`` as a ``dedup.output`` row (``applied_change``). Both rows are declared once, in jvm/contract/rows.txt;
``INPUT_FIELDS``/``input_type`` and ``OUTPUT_FIELDS``/``output_type`` here and the constants and types of
``DedupFunction.java`` are each checked against it (tests/unit/test_jvm_contract.py, ``RowContractTest.java``), and
``DedupFunction.apply`` refuses an input stream of any other row type when the job is built.

The rules below are implemented by ``Dedup.java``, and only there for the job. ``decide`` (with ``DedupState``,
``Decision`` and ``Action``) is their Python *test oracle*: the job never calls it. The JUnit tests
(jvm/src/test/java/io/github/kpf/dedup, ``mvn test``) pin the rules and the operator on Flink's operator test
harness; tests/unit/test_dedup.py runs each rule against the JVM rules and the oracle, and
tests/unit/test_dedup_jvm.py requires both to decide alike on thousands of random change sequences.

Rules of ``decide`` (``state`` is what this id's last applied change left; ``None`` when the id has never been seen):

1. Version fencing. When both the change and the state carry a version and ``change.version < state.version``, the
   change is ``SKIP_STALE``: a newer version is never overwritten by an older one. Equal versions are not stale (the
   content then decides, rules 2-5). A change without a version is ordered by arrival: it is always the newest.
   The state's version is the highest version applied so far: an unversioned change keeps the previous one, so a
   late older versioned change stays fenced.
2. An upsert whose ``content_hash`` equals the state's (and the state is not a tombstone) is ``SKIP_UNCHANGED``; if
   it carries a larger version, the state's version is raised to it. An empty ``content_hash`` (not computed) never
   matches, so a missing hash can cost a redundant write but never drop a change.
3. A delete leaves a tombstone (``deleted=True`` plus its version) instead of forgetting the id, so that an older
   update arriving late cannot resurrect a deleted record. A delete of an already deleted id is ``SKIP_UNCHANGED``
   (the tombstone's version is raised if the delete's is larger). A delete of an id with no state is emitted: the
   record may exist in Pinecone from before this job's state.
4. An upsert after a delete is emitted (a re-insert) with ``replaces=False``.
5. Any other upsert or delete is emitted; ``change.replaces`` is set to True when the id held a live (not deleted)
   applied version, i.e. the change is an update rather than an insert.

Chunks (``udfs.chunking``): the state also keeps how many chunks the last applied upsert wrote (``chunks``; 0 for a
tombstone or an unchunked record), and an emitted change carries the count of the live version it replaces
(``change.previous_chunks``, 0 after a tombstone or for a new id), so that the embed stage can delete the chunks the
new version no longer has. Dedup stays per document: fencing, unchanged and stale apply to the whole document.

The state keeps the text hash of the last applied upsert, so ``Decision.text_unchanged`` tells an update whose
embedded text did not change (metadata only, say). The embed stage reuses vectors by text hash from its own cache, so
dedup does not carry vectors.

State expiry: with a TTL (counted from the last write, expired state never returned), an id unseen for longer
than the TTL is forgotten, tombstones included: an older update of that id replayed after the TTL would be applied.
Choose a TTL well above the longest replay or lateness horizon of the source topics, or 0 for no expiry.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any

from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import DataStream

from kafka_pinecone_flink.udfs.records import DELETE, Change

MAX_STATE_TTL_MS = 36_500 * 86_400_000
"""100 years; 0 keeps dedup state (and tombstones) forever."""

Version = int | float | None


class Action(Enum):
    EMIT = "emit"
    SKIP_UNCHANGED = "skip_unchanged"
    SKIP_STALE = "skip_stale"


@dataclass(frozen=True, slots=True)
class DedupState:
    """What dedup remembers about one id: the last applied change's content and text hashes and the highest applied
    version. ``deleted`` marks a tombstone."""

    version: Version
    content_hash: bytes
    text_hash: bytes | None
    deleted: bool
    chunks: int = 0
    """Chunks the last applied upsert wrote (``Change.chunk_count``); 0 for a tombstone or an unchunked record."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a change. ``state`` is the new state to store, or None to leave the stored state as is."""

    action: Action
    state: DedupState | None
    text_unchanged: bool = False
    """True for an emitted upsert that updates a live record whose text hash is the same as before."""


def _max_version(stored: Version, incoming: Version) -> Version:
    if incoming is None:
        return stored
    if stored is None:
        return incoming
    return incoming if incoming > stored else stored


def decide(state: DedupState | None, change: Change) -> Decision:
    """Decide what to do with ``change`` given the id's ``state`` (see the module docstring for the rules).

    Sets ``change.replaces`` (True only for an emitted change of an id with a live applied version) and
    ``change.previous_chunks`` (the chunks of that live version) of an emitted change; does not touch any other field
    of ``change``.
    """
    chunks = change.chunk_count
    if state is None:
        change.replaces = False
        change.previous_chunks = 0
        if change.op == DELETE:
            return Decision(Action.EMIT, DedupState(change.version, change.content_hash, None, True))
        return Decision(Action.EMIT, DedupState(change.version, change.content_hash, change.text_hash, False, chunks))

    if change.version is not None and state.version is not None and change.version < state.version:
        return Decision(Action.SKIP_STALE, None)

    version = _max_version(state.version, change.version)
    if change.op == DELETE:
        if state.deleted:
            raised = None if version == state.version else DedupState(version, state.content_hash, None, True)
            return Decision(Action.SKIP_UNCHANGED, raised)
        change.replaces = True
        change.previous_chunks = state.chunks
        return Decision(Action.EMIT, DedupState(version, change.content_hash, None, True))

    if not state.deleted and change.content_hash and change.content_hash == state.content_hash:
        raised = (
            None
            if version == state.version
            else DedupState(version, state.content_hash, state.text_hash, False, state.chunks)
        )
        return Decision(Action.SKIP_UNCHANGED, raised)

    change.replaces = not state.deleted
    change.previous_chunks = 0 if state.deleted else state.chunks
    text_unchanged = change.replaces and change.text_hash is not None and change.text_hash == state.text_hash
    return Decision(
        Action.EMIT,
        DedupState(version, change.content_hash, change.text_hash, False, chunks),
        text_unchanged=text_unchanged,
    )


JVM_PACKAGE = "io.github.kpf.dedup"
"""Java package of the dedup operator (``jvm/src/main/java/io/github/kpf/dedup``, compiled into build/kpf-flink.jar)."""

INPUT_FIELDS = ("key", "delete", "version", "content_hash", "text_hash", "payload", "chunks", "seq")
"""The fields of a dedup input row (``dedup.input`` in jvm/contract/rows.txt), in the order ``DedupFunction.java``
reads them."""

OUTPUT_FIELDS = ("payload", "replaces", "previous_chunks")
"""The fields of a dedup output row (``dedup.output`` in jvm/contract/rows.txt), as ``DedupFunction.java`` writes
them."""

_INPUT_NAMES = list(INPUT_FIELDS)
"""A list, as PyFlink's row coder holds the type's names: equal lists let it take a row's values as they are."""
_PAYLOAD = OUTPUT_FIELDS.index("payload")
_REPLACES = OUTPUT_FIELDS.index("replaces")
_PREVIOUS_CHUNKS = OUTPUT_FIELDS.index("previous_chunks")


def input_type() -> Any:
    """The Flink type of the rows the decode stage hands to the JVM dedup operator (``dedup_row``)."""
    raw = Types.PRIMITIVE_ARRAY(Types.BYTE())
    return Types.ROW_NAMED(
        list(INPUT_FIELDS),
        [Types.STRING(), Types.BOOLEAN(), Types.STRING(), raw, raw, raw, Types.LONG(), Types.LONG()],
    )


def output_type() -> Any:
    """The Flink type of the rows the JVM dedup operator emits (read by ``applied_change``)."""
    return Types.ROW_NAMED(list(OUTPUT_FIELDS), [Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.BOOLEAN(), Types.LONG()])


def version_text(version: Version) -> str | None:
    """A version as the exact decimal text the JVM operator compares (``java.math.BigDecimal``).

    Integers of any size keep every digit; a float is written as its exact binary value (``Decimal(float)``), not its
    shortest repr, so that an integer and a float compare there exactly as they do in Python.
    """
    if version is None:
        return None
    if isinstance(version, int):
        return str(int(version))
    if isinstance(version, float):
        if not math.isfinite(version):
            raise ValueError(f"a version must be a finite number, got {version!r}")
        return str(Decimal(version))
    raise TypeError(f"a version must be an int or a float, got {type(version).__name__}")


def dedup_row(change: Change, seq: int | None = None) -> Row:
    """The row the JVM dedup operator reads for ``change``: the key and what ``decide`` needs, plus the pickled
    change itself (the payload, handed on untouched), and ``seq``, the sequence number the JVM decode stage gave the
    change's record (``io.github.kpf.decode.SequencedMerge`` orders by it; None without that stage). The row's fields
    are named (``INPUT_FIELDS``): PyFlink then writes them by name into the columns of ``input_type`` and refuses a
    row whose names it lacks. Built by position and then named (a third of the cost of ``Row(key=...)``, which is
    paid per record)."""
    row = Row(
        change.key,
        change.op == DELETE,
        version_text(change.version),
        change.content_hash,
        change.text_hash,
        pickle.dumps(change, protocol=pickle.HIGHEST_PROTOCOL),
        change.chunk_count,
        seq,
    )
    row.set_field_names(_INPUT_NAMES)
    return row


def order_marker(seq: int) -> Row:
    """The row that tells ``SequencedMerge`` that every record up to ``seq`` has its verdict (a change handed on, a
    dead letter or a skip): the decode stage ends each group's changes with it. Its key is null: the merge keeps it."""
    row = Row(None, False, None, None, None, None, 0, seq)
    row.set_field_names(_INPUT_NAMES)
    return row


def applied_change(row: Any) -> Change:
    """The change a row of the JVM dedup operator carries (payload, replaces, previous chunks), with ``replaces`` and
    ``previous_chunks`` set: how to read that operator's rows one by one. The job's stages after dedup read whole
    groups instead (``applied_groups``)."""
    change: Change = pickle.loads(row[_PAYLOAD])
    change.replaces = bool(row[_REPLACES])
    change.previous_chunks = int(row[_PREVIOUS_CHUNKS] or 0)
    return change


def applied_groups(groups: DataStream) -> DataStream:
    """``groups`` (lists of the JVM dedup operator's rows, from ``udfs.stage_batch.batched``) as the Python stage
    after them reads them: each list becomes one pickle, written in the JVM (``io.github.kpf.dedup.AppliedGroups``),
    of type ``Types.PICKLED_BYTE_ARRAY()``, which PyFlink loads with one ``pickle.loads`` into the list of the group's
    ``Change``s, ``replaces`` and ``previous_chunks`` set. An empty list (a marker) stays empty. Loading a group so
    costs Python one call instead of a row and a pickle per change (BENCHMARKS.md, "Groups after dedup as one
    pickle"). Refuses a stream of any other type when the job is built."""
    from pyflink.java_gateway import get_gateway

    dedup = get_gateway().jvm.io.github.kpf.dedup
    j_type = Types.PICKLED_BYTE_ARRAY().get_java_type_info()
    return DataStream(dedup.AppliedGroups.apply(groups._j_data_stream, j_type))


def check_ttl_ms(ttl_ms: int) -> int:
    """Validates the dedup state TTL in milliseconds (0 = no expiry) and returns it."""
    if not 0 <= ttl_ms <= MAX_STATE_TTL_MS:
        raise ValueError(f"the dedup state TTL must be between 0 and {MAX_STATE_TTL_MS} ms, got {ttl_ms}")
    return ttl_ms


def keyed_dedup(decoded: DataStream, state_ttl_ms: int = 0, in_source_task: bool = False) -> DataStream:
    """Keys ``decoded`` (rows of ``input_type``) by namespace and id and runs the JVM dedup operator on it.

    ``in_source_task``: keyed in place, without the keyed exchange, so that the operator runs in ``decoded``'s task;
    only for a ``decoded`` of parallelism 1 in a job that is never rescaled while it runs
    (``jobs.pipeline.dedup_in_source_task`` decides; ``DedupFunction.apply`` refuses another parallelism).

    Returns the stream of changes to apply: rows of ``output_type`` (payload, replaces), read with
    ``applied_change``. The operator and its key selector are Java classes (``io.github.kpf.dedup``,
    ``DedupFunction.apply``, which refuses a ``decoded`` stream whose row type is not its input type); the job must
    have build/kpf-flink.jar (set-up builds it; ``jobs.flink_env`` adds it to every job).
    """
    from pyflink.java_gateway import get_gateway

    dedup = get_gateway().jvm.io.github.kpf.dedup
    return DataStream(dedup.DedupFunction.apply(decoded._j_data_stream, check_ttl_ms(state_ttl_ms), in_source_task))
