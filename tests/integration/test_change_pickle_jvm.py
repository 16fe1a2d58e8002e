"""The pickled ``Change`` the JVM decode path writes (``io.github.kpf.decode.ChangePickle``, build/kpf-flink.jar),
loaded by Python's ``pickle.loads`` as the stages after dedup load it (``udfs.dedup.applied_change``).

``ChangePickle.upsert`` is called through PyFlink's Java gateway (one JVM for the module, the jar that set-up
compiles) over strings of every UTF-8 width and length class, keys, values, headers, timestamps, versions and
coordinates at the edges of each integer opcode. What it writes must load as the ``Change`` built in Python, with
the same types (bytes, not bytearray; int; tuples), pickle again through ``Change.__reduce__`` to an equal change,
and be, opcode for opcode, what Python's own pickler writes for that change without its memo (``fast`` mode) and
framing.
"""

from __future__ import annotations

import io
import pickle
import pickletools
from collections.abc import Iterator
from dataclasses import fields
from typing import Any

import pytest

from kafka_pinecone_flink.udfs.records import DELETE, UPSERT, Change, SourceRecord
from tests.integration.jvm_gateway import applied_group, java_source_record, kpf_gateway

pytestmark = pytest.mark.integration  # a JVM (PyFlink's Java gateway) for the module

HASH = bytes(range(16))
JSON_4K = b'{"id":"x","values":[' + b",".join(b"0.%05d" % i for i in range(500))[: 4 * 1024 - 30] + b"]}"
VALUE_6K = bytes((i * 37 + 11) % 256 for i in range(6 * 1024))
LONG_300 = "".join(chr(ord("a") + i % 26) for i in range(300))
LONG_70K = "".join("xé日😀"[i % 4] for i in range(70_000))
TWO_HEADERS = (("trace-id", b"abc\x00\xff"), ("é-empty", None))

BASE: dict[str, Any] = {
    "namespace": "ns",
    "id": "doc-1",
    "topic": "vectors",
    "partition": 0,
    "offset": 0,
    "timestamp_ms": None,
    "key": None,
    "value": b"",
    "headers": (),
    "version": None,
    "content_hash": HASH,
    "json": b'{"id":"doc-1","values":[0.5]}',
}

VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},
    "non-ascii-namespace": {"namespace": "é-ns"},
    "cjk-id": {"id": "日本"},
    "emoji-topic": {"topic": "topic-😀"},
    "all-non-ascii": {"namespace": "😀日本é", "id": "é😀", "topic": "日本-topic"},
    "300-char-id": {"id": LONG_300},
    "300-char-namespace": {"namespace": LONG_300},
    "70k-char-id": {"id": LONG_70K},
    "70k-char-topic": {"topic": LONG_70K},
    "key-bytes": {"key": b"doc-1"},
    "key-empty": {"key": b"", "value": b"{}"},
    "value-6k": {"value": VALUE_6K},
    "two-headers": {"headers": TWO_HEADERS},
    "four-headers": {"headers": (*TWO_HEADERS, ("h3", b"3"), ("h4", b"x" * 300))},
    "timestamp": {"timestamp_ms": 1_700_000_000_123},
    "offset-2**40": {"offset": 2**40},
    "partition-7": {"partition": 7},
    "everything": {
        "namespace": "é",
        "id": LONG_300 + "😀",
        "topic": "日本",
        "partition": 7,
        "offset": 2**40,
        "timestamp_ms": 1_700_000_000_123,
        "key": b"k\xff",
        "value": VALUE_6K,
        "headers": TWO_HEADERS,
        "version": -(2**100),
        "json": JSON_4K,
    },
}
VERSIONS = [None, 0, -1, 255, 256, 65535, 65536, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63, -(2**100), 2**2100]
for _version in VERSIONS:
    VARIANTS[f"version={_version if _version is None or abs(_version) < 2**64 else 'huge'}"] = {"version": _version}


@pytest.fixture(scope="module")
def decode() -> Iterator[Any]:
    """The Java package ``io.github.kpf.decode`` (one gateway JVM for the module, the jar set-up compiled)."""
    yield kpf_gateway().jvm.io.github.kpf.decode


def java_pickle(decode: Any, case: dict[str, Any]) -> bytes:
    gateway = kpf_gateway()
    version = None if case["version"] is None else gateway.jvm.java.math.BigInteger(str(case["version"]))
    record = java_source_record(gateway, source_record(case))
    got = decode.ChangePickle.upsert(case["namespace"], case["id"], record, version, case["content_hash"], case["json"])
    assert isinstance(got, bytes)
    return got


def source_record(case: dict[str, Any]) -> SourceRecord:
    return SourceRecord(
        case["topic"],
        case["partition"],
        case["offset"],
        case["timestamp_ms"],
        case["key"],
        case["value"],
        case["headers"],
    )


def python_change(case: dict[str, Any]) -> Change:
    return Change(
        op=UPSERT,
        namespace=case["namespace"],
        id=case["id"],
        source=source_record(case),
        values=None,
        sparse=None,
        metadata={},
        text=None,
        version=case["version"],
        content_hash=case["content_hash"],
        text_hash=None,
        replaces=False,
        json=case["json"],
        chunk_spans=None,
        previous_chunks=0,
        follows=False,
    )


def type_tree(value: Any) -> Any:
    """The types of a change's fields, recursively (``==`` alone takes a bytearray or a list for bytes or a tuple)."""
    if isinstance(value, (Change, SourceRecord)):
        return (type(value), tuple(type_tree(getattr(value, f.name)) for f in fields(value)))
    if isinstance(value, (tuple, list)):
        return (type(value), tuple(type_tree(item) for item in value))
    if isinstance(value, dict):
        return (dict, tuple((type_tree(k), type_tree(v)) for k, v in value.items()))
    return type(value)


def opcodes(data: bytes) -> list[tuple[str, Any]]:
    """The pickle's opcodes and their arguments, framing left out."""
    return [(op.name, arg) for op, arg, _ in pickletools.genops(data) if op.name != "FRAME"]


def python_pickle_without_memo(change: Change) -> bytes:
    out = io.BytesIO()
    pickler = pickle.Pickler(out, protocol=4)
    pickler.fast = True  # no memo: no MEMOIZE/PUT and no GET, an object referred to twice is written twice
    pickler.dump(change)
    return out.getvalue()


@pytest.mark.parametrize("name", list(VARIANTS))
def test_the_java_pickle_loads_as_the_python_change(decode: Any, name: str) -> None:
    case = {**BASE, **VARIANTS[name]}
    data = java_pickle(decode, case)
    expected = python_change(case)

    loaded = pickle.loads(data)

    assert loaded == expected
    assert type_tree(loaded) == type_tree(expected)
    again = pickle.loads(pickle.dumps(loaded))
    assert again == loaded
    assert type_tree(again) == type_tree(loaded)
    assert opcodes(data) == opcodes(python_pickle_without_memo(expected))
    assert data[:2] == b"\x80\x04" and data[-1:] == b"."


def test_string_length_opcodes(decode: Any) -> None:
    """SHORT_BINUNICODE under 256 UTF-8 bytes, BINUNICODE from 256 (counted in bytes, not characters)."""
    for text, opcode in [
        ("x" * 255, "SHORT_BINUNICODE"),
        ("x" * 256, "BINUNICODE"),
        ("é" * 127, "SHORT_BINUNICODE"),
        ("é" * 128, "BINUNICODE"),
        ("😀" * 63, "SHORT_BINUNICODE"),
        ("😀" * 64, "BINUNICODE"),
        (LONG_70K, "BINUNICODE"),
    ]:
        data = java_pickle(decode, {**BASE, "id": text})
        assert [name for name, arg in opcodes(data) if arg == text] == [opcode]
        assert pickle.loads(data).id == text


def test_python_reads_a_lone_surrogate_as_ChangePickle_writes_it() -> None:
    """Not a case of the decode path (its strings are valid UTF-16, and py4j cannot pass a lone surrogate to Java):
    ``ChangePickle`` writes one as its 3-byte form (ChangePickleTest), which Python's unpickler decodes with
    ``surrogatepass`` back to that surrogate."""
    assert pickle.loads(b"\x80\x04\x8c\x05a\xed\xa0\x80b.") == "a\ud800b"


def test_a_group_of_applied_changes_loads_in_one_piece_whoever_pickled_each(decode: Any) -> None:
    """The JVM's pickles are spliced into the group, Python's (protocol 5, memo and frames) go in as bytes; either
    way the group loads as the list of the changes, in order, with what dedup found (replaces, previous chunks) set,
    and the group's memo entry (``_applied_change``) is not confused by the changes' own memo."""
    cases = [{**BASE, **VARIANTS[name], "offset": i} for i, name in enumerate(VARIANTS)]
    rows: list[tuple[bytes, bool, int]] = []
    expected: list[Change] = []
    for i, case in enumerate(cases):
        change = python_change(case)
        # Every third change pickled by Python, a delete among them; the rest by the JVM decode path.
        if i % 3 == 2:
            change.op = DELETE if i % 2 else UPSERT
            payload = pickle.dumps(change, protocol=pickle.HIGHEST_PROTOCOL)
            assert payload[:2] == b"\x80\x05"
        else:
            payload = java_pickle(decode, case)
        replaced, chunks = i % 2 == 1, [0, 3, 255, 256, 70_000, 2**31 - 1][i % 6]
        rows.append((payload, replaced, chunks))
        change.replaces, change.previous_chunks = replaced, chunks
        expected.append(change)

    data = applied_group(kpf_gateway(), rows)
    loaded = pickle.loads(data)

    assert loaded == expected
    assert [type_tree(c) for c in loaded] == [type_tree(c) for c in expected]
    names = [name for name, _ in opcodes(data)]
    assert names.count("MEMOIZE") == 1 and names.count("BINGET") == len(rows)
    # Spliced: the JVM's changes are not bytes inside the group (their JSON is, once, as in their own pickle).
    assert sum(arg == payload for _, arg in opcodes(data) for payload, _, _ in rows) == sum(
        1 for i in range(len(rows)) if i % 3 == 2
    )


def test_an_empty_group_is_an_empty_list() -> None:
    """A batcher's marker stays a marker."""
    assert pickle.loads(applied_group(kpf_gateway(), [])) == []
