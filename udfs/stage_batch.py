"""Batches across the JVM/Python boundary: the contract between the JVM operators and the Python stages.

Every Python stage of the job works on groups of records, not on records one by one (issue: the per-record cost of
PyFlink). Before a Python stage, ``batched`` puts the JVM operator ``io.github.kpf.batch.Batcher``: it gathers the
records of its subtask into a list (by count, by estimated bytes, by a short linger) and hands the list on before
every checkpoint barrier and at the end of input, so the list is one element for Flink and for Beam's coders. After
a Python stage, ``batch_results`` puts ``io.github.kpf.batch.BatchResults``: the stage returns one ``batch_result``
row per group (its output records, its dead letters as raw Kafka rows, and named counts), and the JVM operator
hands the records on one by one (to ``key_by`` and the JVM dedup operator), the dead letters to a side output (the
dead-letter topic) and adds the counts to run totals kept in operator state (metric counters, and accumulators that
the driver reads for the closing summary of a bounded run).

Why the checkpoint stays aligned: the batcher's buffer is empty when its barrier passes (it flushes in
``prepareSnapshotPreBarrier``); the Python operator after it finishes its bundle, and an async Python stage every
in-flight call, before it forwards the barrier. So a completed checkpoint covers exactly the groups handed on before
its barrier, all of them written to Pinecone or to the dead-letter output.

A stage that works on a group after its call has returned (the embed stage, ``udfs.batching.GroupsAhead``) gets its
groups from a batcher with markers (``batched(..., marker_idle_ms=...)``): an empty list after the groups, before
every barrier, at the end of input and after a quiet time. Its call on the marker returns only when every earlier
group is done, so the same holds for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kafka_pinecone_flink.udfs.python_worker import prepare_stage_worker

# Every Python stage's module but udfs.embed (which calls it itself) imports this one, so the worker that runs a stage
# ends its bundles without waiting for Beam's sampling thread from its first bundle on, and a failed group's error
# gives its size, not its content (udfs.python_worker).
prepare_stage_worker()

RESULT_FIELDS = ("records", "dead_letters", "counts")
"""The fields of a stage's result row (``batch.result`` in jvm/contract/rows.txt, checked against it by
tests/unit/test_jvm_contract.py), in the order ``BatchResults.java`` reads them."""

DEAD_LETTERED = "dead_lettered"
"""The count every stage keeps of the records it dead-lettered itself."""

DEFAULT_MAX_RECORDS = 250
"""Each group crosses to Python, and its result back, as one buffer; a freed buffer of several MB raises glibc's
mmap threshold, and the buffers after it stay resident in the heap. Groups of 250 records of (a) (1.5 MB) instead of
1,000 took the mini-cluster's peak from 1,606-1,679 to 1,369-1,393 MiB at the same records/s (BENCHMARKS.md,
"Memory: groups of 250 records, the serial collector"); at full speed a Python stage gets 16 groups a bundle."""
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_LINGER_MS = 50


def result_type(record_type: Any) -> Any:
    """The Flink type of a stage's result row for output records of ``record_type``."""
    from pyflink.common import Types

    from kafka_pinecone_flink.jobs.kafka_io import raw_row_type

    return Types.ROW_NAMED(
        list(RESULT_FIELDS),
        [Types.LIST(record_type), Types.LIST(raw_row_type()), Types.MAP(Types.STRING(), Types.LONG())],
    )


def batch_result(records: Sequence[Any], dead_letters: Sequence[Any], counts: Mapping[str, int]) -> Any:
    """One result row: ``records`` (of the stage's record type), ``dead_letters`` (raw Kafka rows,
    ``jobs.kafka_io.raw_row``) and ``counts`` (count name → count; zero counts are left out). The row's fields are
    named (``RESULT_FIELDS``), so PyFlink writes them by name into the columns of ``result_type``."""
    from pyflink.common import Row

    return Row(
        records=list(records),
        dead_letters=list(dead_letters),
        counts={name: int(n) for name, n in counts.items() if n},
    )


def dead_letter_row(dead_letter: Any, secrets: tuple[str, ...], max_bytes: int | None) -> Any:
    """A ``DeadLetter`` as the raw Kafka row of the dead-letter topic (``sinks.dead_letter.to_kafka``: secrets
    scrubbed, truncated above ``max_bytes``)."""
    from kafka_pinecone_flink.jobs.kafka_io import raw_row
    from kafka_pinecone_flink.sinks.dead_letter import to_kafka

    key, value, headers = to_kafka(dead_letter, secrets=secrets, max_bytes=max_bytes)
    return raw_row(key, value, list(headers))


def batched(
    stream: Any,
    max_records: int,
    max_bytes: int,
    linger_ms: int,
    name: str = "Batch",
    marker_idle_ms: int | None = None,
) -> Any:
    """``stream`` gathered into lists by the JVM ``Batcher`` (see the module docstring); its type is a list of the
    stream's type. ``marker_idle_ms``: also hand on an empty list (a marker: finish every group and hand on its
    results, ``udfs.batching.GroupsAhead``) before every barrier, at the end of input, and after a group when no record
    has come for that long; None: no markers."""
    from pyflink.datastream import DataStream
    from pyflink.java_gateway import get_gateway

    batch = get_gateway().jvm.io.github.kpf.batch
    j_stream = stream._j_data_stream
    operator = batch.Batcher(int(max_records), int(max_bytes), int(linger_ms))
    if marker_idle_ms is not None:
        operator = operator.withMarkers(int(marker_idle_ms))
    return DataStream(j_stream.transform(name, batch.Batcher.outputType(j_stream.getType()), operator))


def batch_results(
    results: Any, prefix: str, record_type: Any, declared: Sequence[str] = (), per_namespace: Sequence[str] = ()
) -> tuple[Any, Any]:
    """The records (of ``record_type``) and the dead-letter rows of a stage's ``result_type`` stream, read by the JVM
    ``BatchResults`` operator; its counts go to the run totals named ``<prefix>.<count>`` (those ``declared`` exist
    as metrics from the start). A count ``<name>@<namespace>`` is a count of one namespace (metric ``<name>`` in the
    key group ``namespace``); the names ``per_namespace`` exist, at zero, for every namespace counted
    (``RunTotals``). Refuses a ``results`` stream whose row type is not ``BatchResults.inputType`` (names, order and
    types) for ``record_type``."""
    from pyflink.datastream import DataStream
    from pyflink.java_gateway import get_gateway

    from kafka_pinecone_flink.jobs.kafka_io import raw_row_type

    batch = get_gateway().jvm.io.github.kpf.batch
    gateway = get_gateway()
    j_dead_letter_type = raw_row_type().get_java_type_info()
    batch.BatchResults.requireInputType(
        results._j_data_stream.getType(), record_type.get_java_type_info(), j_dead_letter_type
    )
    function = batch.BatchResults(prefix, j_dead_letter_type, java_strings(gateway, declared))
    if per_namespace:
        function.withPerNamespaceCounts(java_strings(gateway, per_namespace))
    j_records = results._j_data_stream.process(function, record_type.get_java_type_info())
    return DataStream(j_records), DataStream(j_records.getSideOutput(function.deadLetters()))


def java_strings(gateway: Any, values: Sequence[Any]) -> Any:
    """``values`` as a Java ``String[]``."""
    array = gateway.new_array(gateway.jvm.java.lang.String, len(values))
    for i, value in enumerate(values):
        array[i] = value
    return array
