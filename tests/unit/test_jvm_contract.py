"""The Python side of the rows that cross to the JVM operators, checked against jvm/contract/rows.txt.

The Java side is checked against the same file by ``RowContractTest.java`` (``make test-jvm``), so a row changed on
one side only fails one of the two. Also here: the Flink release that jvm/pom.xml builds and tests against is the one
the job runs on, and the Python names the Java sources point to exist.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
from pyflink.common import Row, Types
from pyflink.common.typeinfo import (
    BasicTypeInfo,
    ListTypeInfo,
    MapTypeInfo,
    PrimitiveArrayTypeInfo,
    RowTypeInfo,
)

from kafka_pinecone_flink.jobs.kafka_io import raw_row_type
from kafka_pinecone_flink.udfs import dedup, stage_batch
from kafka_pinecone_flink.udfs.records import DELETE, UPSERT, Change, SourceRecord

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "jvm" / "contract" / "rows.txt"
RECORD = Types.ROW_NAMED(["a_record"], [Types.STRING()])
"""Stands for a stage's record type (``RECORD`` in the contract)."""


def contract_rows(text: str) -> dict[str, list[tuple[str, str]]]:
    """The contract's rows: row name -> [(field, type text)], in field order."""
    rows: dict[str, list[tuple[str, str]]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        row, field, type_text = line.split()
        rows.setdefault(row, []).append((field, type_text))
    return rows


def expand(type_text: str, rows: dict[str, list[tuple[str, str]]]) -> str:
    """A contract type with the rows it names written out as ``ROW<field type,...>``."""

    def row(match: re.Match[str]) -> str:
        fields = rows[match.group(0)]
        return "ROW<" + ",".join(f"{name} {expand(t, rows)}" for name, t in fields) + ">"

    return re.sub(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+", row, type_text)


def render(type_info: Any) -> str:
    """A PyFlink type in the contract's notation (rows written out)."""
    if type_info is RECORD:
        return "RECORD"
    if isinstance(type_info, RowTypeInfo):
        fields = zip(type_info.get_field_names(), type_info.get_field_types(), strict=True)
        return "ROW<" + ",".join(f"{name} {render(t)}" for name, t in fields) + ">"
    if isinstance(type_info, ListTypeInfo):
        return f"LIST<{render(type_info.elem_type)}>"
    if isinstance(type_info, MapTypeInfo):
        return f"MAP<{render(type_info._key_type_info)},{render(type_info._value_type_info)}>"
    if isinstance(type_info, PrimitiveArrayTypeInfo) and type_info == Types.PRIMITIVE_ARRAY(Types.BYTE()):
        return "BYTES"
    for name, basic in (("STRING", Types.STRING()), ("BOOLEAN", Types.BOOLEAN()), ("LONG", Types.LONG())):
        if isinstance(type_info, BasicTypeInfo) and type_info == basic:
            return name
    raise AssertionError(f"no contract notation for {type_info!r}")


@pytest.fixture(scope="module")
def rows() -> dict[str, list[tuple[str, str]]]:
    return contract_rows(CONTRACT.read_text(encoding="utf-8"))


def expected(rows: dict[str, list[tuple[str, str]]], name: str) -> str:
    return expand(name, rows)


def test_the_contract_parses_and_renders_types_as_written() -> None:
    rows = contract_rows("a.b  x  BYTES\na.b  y  MAP<STRING,LONG>  # comment\nc.d  z  LIST<a.b>\n")
    assert rows == {"a.b": [("x", "BYTES"), ("y", "MAP<STRING,LONG>")], "c.d": [("z", "LIST<a.b>")]}
    assert expand("c.d", rows) == "ROW<z LIST<ROW<x BYTES,y MAP<STRING,LONG>>>>"
    assert render(Types.ROW_NAMED(["x", "y"], [Types.LONG(), Types.LIST(RECORD)])) == "ROW<x LONG,y LIST<RECORD>>"
    with pytest.raises(AssertionError, match="no contract notation"):
        render(Types.INT())


def test_the_dedup_input_row_is_the_contracts(rows: dict[str, list[tuple[str, str]]]) -> None:
    assert tuple(name for name, _ in rows["dedup.input"]) == dedup.INPUT_FIELDS
    assert render(dedup.input_type()) == expected(rows, "dedup.input")


def test_the_dedup_output_row_is_the_contracts(rows: dict[str, list[tuple[str, str]]]) -> None:
    assert tuple(name for name, _ in rows["dedup.output"]) == dedup.OUTPUT_FIELDS
    assert render(dedup.output_type()) == expected(rows, "dedup.output")


def test_the_batch_result_row_is_the_contracts(rows: dict[str, list[tuple[str, str]]]) -> None:
    assert tuple(name for name, _ in rows["batch.result"]) == stage_batch.RESULT_FIELDS
    assert render(stage_batch.result_type(RECORD)) == expected(rows, "batch.result")


def test_the_raw_kafka_row_is_the_contracts(rows: dict[str, list[tuple[str, str]]]) -> None:
    assert render(raw_row_type()) == expected(rows, "kafka.raw")


def _change(op: str) -> Change:
    source = SourceRecord(topic="t", partition=0, offset=0, timestamp_ms=None, key=b"k", value=b"{}")
    text_hash = None if op == DELETE else b"t" * 16
    return Change(op=op, namespace="ns", id="a", source=source, version=3, content_hash=b"c" * 16, text_hash=text_hash)


@pytest.mark.parametrize("op", [UPSERT, DELETE])
def test_a_dedup_row_is_named_by_the_contract_and_each_name_holds_its_value(op: str) -> None:
    c = _change(op)
    row = dedup.dedup_row(c)
    values = row.as_dict()
    assert tuple(values) == dedup.INPUT_FIELDS
    assert values["key"] == c.key
    assert values["delete"] is (op == DELETE)
    assert values["version"] == "3"
    assert values["content_hash"] == c.content_hash
    assert values["text_hash"] == c.text_hash
    assert dedup.applied_change(Row(values["payload"], True, 0)).key == c.key
    # PyFlink writes a named row by name: the row in the order of the contract's columns.
    assert row.get_fields_by_names(list(dedup.INPUT_FIELDS)) == list(values.values())


def test_a_dedup_output_row_is_read_by_the_contracts_names() -> None:
    c = _change(UPSERT)
    payload = dedup.dedup_row(c).as_dict()["payload"]
    out = Row(**{"payload": payload, "replaces": True, "previous_chunks": 4})
    assert list(out.as_dict()) == list(dedup.OUTPUT_FIELDS)
    back = dedup.applied_change(out)
    assert (back.key, back.replaces, back.previous_chunks) == (c.key, True, 4)


def test_a_batch_result_row_is_named_by_the_contract() -> None:
    row = stage_batch.batch_result(["r"], [], {"decoded": 1, "zero": 0})
    assert row.as_dict() == {"records": ["r"], "dead_letters": [], "counts": {"decoded": 1}}
    assert tuple(row.as_dict()) == stage_batch.RESULT_FIELDS


def test_the_pom_builds_against_the_flink_release_the_job_runs_on() -> None:
    import pyflink

    lib = Path(pyflink.__file__).parent / "lib"
    (dist,) = lib.glob("flink-dist-*.jar")
    installed = dist.name.removeprefix("flink-dist-").removesuffix(".jar")
    pom = (ROOT / "jvm" / "pom.xml").read_text(encoding="utf-8")
    declared = re.search(r"<flink\.version>([^<]+)</flink\.version>", pom)
    assert declared is not None
    assert declared.group(1) == installed, "jvm/pom.xml's flink.version must be the apache-flink package's release"


def test_the_python_names_the_java_sources_point_to_exist() -> None:
    sources = sorted((ROOT / "jvm" / "src").rglob("*.java"))
    assert sources
    checked = 0
    for source in sources:
        for name in re.findall(r"\b((?:udfs|jobs|sinks|stack)(?:\.[A-Za-z_][A-Za-z0-9_]*)+)", source.read_text()):
            module, attribute = name, None
            while True:
                try:
                    target: Any = importlib.import_module(module)
                    break
                except ModuleNotFoundError:
                    module, _, tail = module.rpartition(".")
                    attribute = tail if attribute is None else f"{tail}.{attribute}"
                    assert module, f"{source.name}: {name} names no module"
            for part in (attribute or "").split(".") if attribute else []:
                assert hasattr(target, part), f"{source.relative_to(ROOT)}: {name} does not exist"
                target = getattr(target, part)
            checked += 1
    assert checked >= 8
