"""The JVM decode path (``io.github.kpf.decode.FastDecoder``, build/kpf-flink.jar) held to the Python decoder
(``udfs.decode.decode``), its test oracle, through PyFlink's Java gateway.

For every record the JVM decoder takes, it must make what Python makes, byte for byte: the dedup key, the version
text, the content hash and the pickled ``Change`` (with the upsert's JSON). Every record it leaves to Python (it
answers null) Python decodes; a record Python rejects, skips or deletes, the JVM decoder must leave. Records are drawn
at random around the edges of the shape the JVM path takes (numbers of every form, strings with escapes and non-ASCII,
every JSON type in metadata, ids, versions, broken JSON), under several route configurations; and the JVM decoder
must take the plain records, or it would not be worth its place.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import random
from typing import Any

import pytest

from kafka_pinecone_flink.jobs.pipeline import fast_decoder
from kafka_pinecone_flink.sinks.dead_letter import H_REFETCH_VALUE
from kafka_pinecone_flink.udfs.decode import decode
from kafka_pinecone_flink.udfs.dedup import version_text
from kafka_pinecone_flink.udfs.errors import RecordError
from kafka_pinecone_flink.udfs.records import Change, SourceRecord
from kafka_pinecone_flink.udfs.route_config import RouteConfig
from tests.integration.jvm_gateway import java_source_record, kpf_gateway

pytestmark = pytest.mark.integration

DIMENSION = 8
TOPICS = ("orders", "café")
CONFIGS = {
    "kafka-uuid": RouteConfig(dimension=DIMENSION, metric="cosine"),
    "kafka-raw": RouteConfig(dimension=DIMENSION, metric="euclidean", id_format="raw"),
    "field-uuid": RouteConfig(dimension=DIMENSION, metric="cosine", id_strategy="field", id_field="pk"),
    "field-raw-versioned": RouteConfig(
        dimension=DIMENSION,
        metric="dotproduct",
        id_strategy="field",
        id_field="pk",
        id_format="raw",
        version_field="ver",
        namespace_map={"orders": "ns-orders"},
    ),
    "sparse-small-metadata": RouteConfig(
        dimension=DIMENSION, metric="cosine", sparse_field="sparse", max_metadata_bytes=300, vector_field="embedding"
    ),
}


@pytest.fixture(scope="module")
def jvm() -> Any:
    return kpf_gateway()


def java_decoder(gateway: Any, config: RouteConfig) -> Any:
    return fast_decoder(gateway, config, TOPICS, [f"label-{topic}" for topic in TOPICS])


def jvm_decode(gateway: Any, decoder: Any, record: SourceRecord) -> Any:
    return decoder.decode(java_source_record(gateway, record))


def field(obj: Any, name: str) -> Any:
    from py4j.java_gateway import get_field

    return get_field(obj, name)


# -- random records -----------------------------------------------------------------------------------------------


def number_text(rng: random.Random) -> str:
    """A JSON number token of any form the JVM path must read as Python does."""
    kind = rng.randrange(12)
    if kind == 0:
        return str(rng.randint(-5, 5))
    if kind == 1:
        return str(rng.choice([2**53, 2**53 + 1, -(2**53) - 1, 2**63, 2**64 + 7, 10**30, -(10**25)]))
    if kind == 2:
        return repr(rng.gauss(0, 1))  # shortest repr: often 16-17 digits
    if kind == 3:
        return f"{rng.gauss(0, 0.05):.6f}"
    if kind == 4:
        return f"{rng.uniform(-1, 1):.{rng.randint(1, 15)}e}"
    if kind == 5:
        return rng.choice(["0", "-0", "0.0", "-0.0", "0e5", "1E2", "1e-5", "1.0e-6", "9.99e15", "1e16", "1.5E+16"])
    if kind == 6:
        return f"{rng.uniform(-1e6, 1e6):.{rng.randint(0, 9)}f}"
    if kind == 7:
        return rng.choice(["1e-320", "1e308", "1e309", "3.5e38", "1e37", "123456789012345", "1234567890123456"])
    if kind == 8:
        return f"{rng.uniform(0, 1) * 10 ** rng.randint(-12, 20):.{rng.randint(0, 14)}e}"
    if kind == 9:
        return f"{rng.randint(1, 999)}.{'0' * rng.randint(0, 5)}{rng.randint(0, 99)}"
    if kind == 10:
        return f"0.{'0' * rng.randint(0, 8)}{rng.randint(1, 999)}"
    return f"{rng.gauss(0, 1):.{rng.randint(1, 12)}f}"


def string_value(rng: random.Random) -> str:
    pieces = ["plain", "é", "日本", "😀", '"', "\\", "\n", "\t", "\x01", "\x1f", "\x7f", "\u2028", "/", " ", "$x"]
    return "".join(rng.choice(pieces) for _ in range(rng.randint(0, 5)))


def json_string(rng: random.Random, text: str) -> str:
    """``text`` as a JSON string, escaped in one of several legal ways."""
    style = rng.randrange(3)
    if style == 0:
        return json.dumps(text)
    if style == 1:
        return json.dumps(text, ensure_ascii=False)
    return '"' + "".join(f"\\u{ord(c):04x}" if c.isascii() and c.isalpha() else json.dumps(c)[1:-1] for c in text) + '"'


def metadata_value(rng: random.Random) -> str:
    kind = rng.randrange(12)
    if kind <= 2:
        return json_string(rng, string_value(rng))
    if kind == 3:
        return rng.choice(["true", "false", "null"])
    if kind <= 5:
        return number_text(rng)
    if kind == 6:
        return "[" + ",".join(json_string(rng, string_value(rng)) for _ in range(rng.randint(0, 3))) + "]"
    if kind == 7:
        return "[" + ",".join(rng.choice(["1", "true", "null", '"x"', "2.5"]) for _ in range(rng.randint(1, 3))) + "]"
    if kind == 8:
        return '{"inner": ' + number_text(rng) + "}"
    if kind == 9:
        return "[[1], 2]"
    if kind == 10:
        return "{}"
    return json_string(rng, "x" * rng.choice([10, 200]))


def vector_text(rng: random.Random, dimension: int) -> str:
    kind = rng.randrange(10)
    size = dimension if kind < 8 else rng.choice([dimension - 1, dimension + 1, 0])
    if kind == 0:
        items = [number_text(rng) for _ in range(size)]
    elif kind == 1:
        items = ["0"] * size if rng.random() < 0.5 else ["0.0"] * (size - 1) + ["-0.0"]
    elif kind == 2:
        text = "[" + ",".join(f"{rng.gauss(0, 1):.5f}" for _ in range(size)) + "]"
        return json.dumps(text)  # a vector string (pgvector through Debezium): Python's
    elif kind == 3:
        items = [f"{rng.gauss(0, 1):.4f}" for _ in range(size - 1)] + [rng.choice(['"1"', "true", "null", "[1]"])]
    else:
        items = [f"{rng.gauss(0, 0.05):.6f}" for _ in range(size)]
    spaces = rng.choice(["", " ", "\n  "])
    return "[" + f",{spaces}".join(items) + "]"


def record_value(rng: random.Random, config: RouteConfig) -> bytes | None:
    roll = rng.random()
    if roll < 0.03:
        return None
    if roll < 0.06:
        return rng.choice([b"", b"not json", b"[1,2]", b'"text"', b"{", b'{"a":1} x', b"\xef\xbb\xbf{}", b"{\xff}"])
    fields: list[tuple[str, str]] = []
    if rng.random() < 0.95:
        fields.append((config.vector_field, vector_text(rng, config.dimension)))
    if rng.random() < 0.9:
        pk = rng.choice(
            [json.dumps(f"id-{rng.randint(0, 99)}"), str(rng.randint(-3, 10**20)), "true", '""', "1.5", "null", "[1]"]
        )
        fields.append(("pk", pk))
    if rng.random() < 0.9:
        ver = rng.choice([str(rng.randint(-5, 2**70)), "1.5", '"12"', '"2024-01-01T00:00:00Z"', "null", "-0"])
        fields.append(("ver", ver))
    for i in range(rng.randint(0, 6)):
        name = rng.choice([f"m{i}", f"é{i}", f"日{i}", f"😀{i}", f"Z{i}", f"a.b{i}", f"k {i}"])
        fields.append((name, metadata_value(rng)))
    rare = rng.random()
    if rare < 0.03:
        fields.append(("__deleted", rng.choice(['"true"', '"false"', "true"])))
    elif rare < 0.05:
        fields.append(("__op", rng.choice(['"d"', '"u"'])))
    elif rare < 0.07:
        fields.append(("__table", '"t"'))
    elif rare < 0.09:
        fields.append((rng.choice(["", "$bad"]), rng.choice(["1", "null"])))
    elif rare < 0.11 and fields:
        fields.append(fields[0])  # a duplicate key
    elif rare < 0.13:
        fields.append(("sparse", rng.choice(["null", '{"indices": [1], "values": [0.5]}'])))
    elif rare < 0.15:
        fields = [("op", '"c"'), ("before", "null"), ("after", "{" + ",".join(f'"{k}": {v}' for k, v in fields) + "}")]
    elif rare < 0.17:
        fields = [("schema", "{}"), ("payload", "{" + ",".join(f'"{k}": {v}' for k, v in fields) + "}")]
    rng.shuffle(fields)
    space = rng.choice(["", " "])
    text = "{" + f",{space}".join(f"{json.dumps(k, ensure_ascii=rng.random() < 0.5)}:{space}{v}" for k, v in fields)
    text = rng.choice(["", " ", "\n"]) + text + "}" + rng.choice(["", " ", "\r\n"])
    return text.encode()


def record_key(rng: random.Random) -> bytes | None:
    return rng.choice([None, b"", b"k1", "é-key".encode(), b"\xff\xfe", b"x" * 600, "😀".encode() * 200, b"7"])


def random_record(rng: random.Random, config: RouteConfig, offset: int) -> SourceRecord:
    headers = rng.choice([(), (("h", b"v"),), (("trace", None), ("é", b"\x00\xff"))])
    return SourceRecord(
        topic=rng.choice([*TOPICS, "other"]),
        partition=rng.randrange(4),
        offset=offset,
        timestamp_ms=rng.choice([None, 1_700_000_000_123]),
        key=record_key(rng) if rng.random() < 0.5 else f"key-{rng.randint(0, 50)}".encode(),
        value=record_value(rng, config),
        headers=headers,
    )


def python_verdict(record: SourceRecord, config: RouteConfig) -> Any:
    try:
        return decode(record, config)
    except RecordError as exc:
        return exc


def assert_same_change(jvm_result: Any, change: Change) -> None:
    assert field(jvm_result, "key") == change.key
    assert field(jvm_result, "version") == version_text(change.version)
    assert bytes(field(jvm_result, "contentHash")) == change.content_hash
    from_jvm = pickle.loads(bytes(field(jvm_result, "payload")))
    assert from_jvm.json == change.json  # the upsert's JSON, byte for byte
    assert from_jvm == pickle.loads(pickle.dumps(change))
    assert pickle.loads(pickle.dumps(from_jvm)) == from_jvm


# -- tests --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_jvm_decoder_makes_what_python_makes_or_leaves_the_record_to_python(jvm: Any, name: str) -> None:
    config = CONFIGS[name]
    decoder = java_decoder(jvm, config)
    rng = random.Random(f"jvm-decode-{name}")
    taken = 0
    for offset in range(3000):
        record = random_record(rng, config, offset)
        verdict = python_verdict(record, config)
        got = jvm_decode(jvm, decoder, record)
        if got is None:
            continue
        taken += 1
        assert isinstance(verdict, Change) and verdict.json is not None, (record, verdict)
        assert_same_change(got, verdict)
        assert field(got, "label") == f"label-{record.topic}"
    # Most random records are built to be refused; the ones taken must be enough to mean something.
    assert taken >= 30, f"the JVM decoder took only {taken} of 3,000 records"


def plain_record(rng: random.Random, offset: int, dimension: int = DIMENSION) -> SourceRecord:
    """The shape of the benchmark's (a): a vector of 6-decimal values and flat metadata."""
    row = {
        "pk": f"sku-{offset}",
        "ver": offset,
        "category": rng.choice(["books", "garden", "café"]),
        "price": round(rng.uniform(5, 500), 2),
        "in_stock": rng.random() < 0.8,
        "tags": [rng.choice(["a", "b", "ü"]) for _ in range(3)],
        "notes": " ".join(rng.choice(["lorem", "ipsum", "dolor"]) for _ in range(20)),
        "values": [round(rng.gauss(0, 0.05), 6) for _ in range(dimension)],
    }
    return SourceRecord("orders", 0, offset, 1_700_000_000_123, f"k{offset}".encode(), json.dumps(row).encode())


@pytest.mark.parametrize("name", ["kafka-uuid", "field-raw-versioned"])
def test_the_jvm_decoder_takes_every_plain_record_with_a_vector(jvm: Any, name: str) -> None:
    config = CONFIGS[name]
    decoder = java_decoder(jvm, config)
    rng = random.Random(7)
    for offset in range(300):
        record = plain_record(rng, offset)
        got = jvm_decode(jvm, decoder, record)
        assert got is not None, record.value
        verdict = decode(record, config)
        assert isinstance(verdict, Change), (record, verdict)
        assert_same_change(got, verdict)


def test_with_value_refetch_a_change_carries_its_record_without_the_value_where_its_dead_letter_fits(
    jvm: Any,
) -> None:
    """The value is most of a record of pre-computed vectors; the change leaves it out and marks its record, so the
    dead letters after decode (``ValueRefetch``) can read it back. Above the dead-letter size limit it stays."""
    config = CONFIGS["kafka-uuid"]
    record = plain_record(random.Random(3), 1)
    record = dataclasses.replace(record, headers=(("trace", b"t-1"),))
    size = len(record.key or b"") + len(record.value or b"") + len("trace") + len(b"t-1") + 8  # 8: per header
    context = jvm.jvm.io.github.kpf.decode.FastDecoder.DEAD_LETTER_CONTEXT_BYTES

    def source_of(decoder: Any) -> SourceRecord:
        change = pickle.loads(bytes(field(jvm_decode(jvm, decoder, record), "payload")))
        assert change.json == decode(record, config).json
        return change.source

    assert source_of(java_decoder(jvm, config)) == record  # without withValueRefetch: the record as it is
    for limit in (0, size + context):
        elided = source_of(java_decoder(jvm, config).withValueRefetch(limit))
        assert elided.value == b""
        assert elided.headers == (("trace", b"t-1"), (H_REFETCH_VALUE, b""))
        assert dataclasses.replace(elided, value=record.value, headers=record.headers) == record
    assert source_of(java_decoder(jvm, config).withValueRefetch(size + context - 1)) == record


def test_full_precision_floats_are_left_to_python(jvm: Any) -> None:
    """A value written with 16-17 significant digits (Python's repr of most doubles) would need a shortest-digits
    algorithm to be written as orjson writes it; the JVM path leaves such a record to Python."""
    config = CONFIGS["kafka-uuid"]
    decoder = java_decoder(jvm, config)
    values = [0.1] * (DIMENSION - 1) + [0.30000000000000004]
    record = SourceRecord("orders", 0, 1, None, b"k", json.dumps({"values": values}).encode())
    assert jvm_decode(jvm, decoder, record) is None
    assert isinstance(decode(record, config), Change)


@pytest.mark.parametrize(
    "value",
    [
        b'{"values": [1,2,3,4,5,6,7,8], "values": [1,2,3,4,5,6,7,9]}',
        b'{"values": [1,2,3,4,5,6,7,8], "s": "\\ud800"}',
        b'{"values": [1,2,3,4,5,6,7,8], "__deleted": "true"}',
        b'{"values": [0,0,0,0,0,0,0,0]}',
        b'{"values": [1,2,3,4,5,6,7,8], "meta": {"a": 1}}',
        b'{"values": [1,2,3,4,5,6,7,8], "$bad": 1}',
        b'{"values": "[1,2,3,4,5,6,7,8]"}',
        b'{"values": [1,2,3,4,5,6,7,8e38]}',
        b'{"values": [1,2,3,4,5,6,7,8]} trailing',
    ],
    ids=[
        "duplicate-key",
        "lone-surrogate",
        "delete-flag",
        "zero-vector",
        "nested",
        "dollar-key",
        "vector-string",
        "float32-overflow",
        "trailing-bytes",
    ],
)
def test_records_python_must_judge_are_left_to_python(jvm: Any, value: bytes) -> None:
    decoder = java_decoder(jvm, CONFIGS["kafka-uuid"])
    assert jvm_decode(jvm, decoder, SourceRecord("orders", 0, 1, None, b"k", value)) is None
