"""The project's JVM classes (build/kpf-flink.jar) from Python, through PyFlink's Java gateway: for the tests that
hold a JVM piece to its Python twin record by record."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kafka_pinecone_flink.stack.paths import kpf_jar
from kafka_pinecone_flink.udfs.records import SourceRecord


def kpf_gateway() -> Any:
    """PyFlink's Java gateway, with the project's jar on its JVM's class path."""
    from pyflink.java_gateway import get_gateway
    from pyflink.util.java_utils import add_jars_to_context_class_loader

    add_jars_to_context_class_loader([kpf_jar().resolve().as_uri()])
    return get_gateway()


def java_source_record(gateway: Any, record: SourceRecord) -> Any:
    """``record`` as the JVM decode path's ``io.github.kpf.decode.SourceRecord`` (headers in order, as entries)."""
    jvm = gateway.jvm
    headers = jvm.java.util.ArrayList()
    for name, value in record.headers:
        headers.add(jvm.java.util.AbstractMap.SimpleEntry(name, value))
    timestamp = None if record.timestamp_ms is None else jvm.java.lang.Long(record.timestamp_ms)
    return jvm.io.github.kpf.decode.SourceRecord(
        record.topic, record.partition, record.offset, timestamp, record.key, record.value, headers
    )


def applied_group(gateway: Any, rows: Sequence[tuple[bytes, bool, int]]) -> bytes:
    """``ChangePickle.appliedGroup`` of (payload, replaces, previous_chunks) rows: a group after dedup as the JVM
    hands it to Python."""
    payloads = gateway.jvm.java.util.ArrayList()
    replaces = gateway.new_array(gateway.jvm.boolean, len(rows))
    previous = gateway.new_array(gateway.jvm.long, len(rows))
    for i, (payload, replaced, chunks) in enumerate(rows):
        payloads.add(payload)
        replaces[i] = replaced
        previous[i] = chunks
    got = gateway.jvm.io.github.kpf.decode.ChangePickle.appliedGroup(payloads, replaces, previous)
    assert isinstance(got, bytes)
    return got
