"""The decode stage as a Flink function: a group of Kafka source rows in, one result row out.

The JVM ``Batcher`` before it hands over the rows of its subtask as a list (``udfs.stage_batch``); this function
turns each into a ``SourceRecord``, decodes it and returns one ``batch_result`` row: the dedup rows of the decoded
changes (``udfs.dedup.dedup_row``), the dead letters as raw Kafka rows, and the counts. The JVM ``BatchResults``
operator after it hands the dedup rows on one by one to the keyed JVM dedup operator and the dead letters to the
dead-letter topic.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from pyflink.datastream import MapFunction, RuntimeContext

from kafka_pinecone_flink.udfs.decode import Skip, decode
from kafka_pinecone_flink.udfs.dedup import dedup_row, order_marker
from kafka_pinecone_flink.udfs.errors import RecordError, RecordRejectedError
from kafka_pinecone_flink.udfs.python_worker import settle_collector
from kafka_pinecone_flink.udfs.records import DeadLetter, row_to_source_record
from kafka_pinecone_flink.udfs.route_config import RouteConfig
from kafka_pinecone_flink.udfs.stage_batch import DEAD_LETTERED, batch_result, dead_letter_row

ERRORS_NONE = "none"
ERRORS_ALL = "all"
RECORDS_IN = "records_in"
DECODED = "decoded"
SKIPPED_PREFIX = "skipped_"
VECTOR_REJECTIONS = {"ZeroVectorError": "vectors_rejected_zero", "NonFiniteVectorError": "vectors_rejected_non_finite"}
"""Dead letters also counted apart, by error class, for the embedding-health metrics (README: Monitoring)."""
COUNTS = (RECORDS_IN, DECODED, DEAD_LETTERED, *VECTOR_REJECTIONS.values())
"""The decode counts that exist from the start, at zero (``skipped_<reason>`` appear when first counted)."""
VECTORS_ACCEPTED = "vectors_accepted"
PER_NAMESPACE = (VECTORS_ACCEPTED, *VECTOR_REJECTIONS.values())
"""Counts kept per namespace too (``<name>@<namespace>``): dense vectors decoded into it, and those rejected for it;
the JVM ``RunTotals`` makes them metrics in a ``namespace`` key group (README: Monitoring)."""
NAMESPACE_SEPARATOR = "@"
MAX_NAMESPACES = 100
"""Namespaces counted apart per subtask (those of the configured topics first, then the first seen); the vectors of
any other namespace are counted under ``OTHER_NAMESPACES``, so a stream cannot grow the metrics without bound."""
OTHER_NAMESPACES = "__other__"
UNROUTED = "__unrouted__"
"""The label of a rejected vector whose topic renders no valid namespace (not reached today: routing runs before a
vector is read, so such a record is an ``InvalidNamespaceError`` first)."""


def namespace_count(name: str, namespace: str) -> str:
    """The name of count ``name`` of one namespace, as the JVM ``RunTotals`` reads it."""
    return f"{name}{NAMESPACE_SEPARATOR}{namespace}"


class DecodeFunction(MapFunction):
    """Decodes, validates and routes each record of a group (``udfs.decode.decode``).

    A record that cannot be decoded becomes a dead letter (error tolerance ``all``) or stops the job with a
    ``RecordRejectedError`` naming its Kafka coordinates (``none``). A counted skip (a tombstone while deletes are
    disabled) emits nothing. Counts (run totals ``decode.<name>``, and metrics of the "Decode results" operator):
    ``records_in``, ``decoded``, ``dead_lettered``, ``skipped_<reason>``, ``vectors_rejected_zero`` and
    ``vectors_rejected_non_finite``; per namespace (``PER_NAMESPACE``) the dense vectors accepted and rejected, the
    namespace being the one routing gives the record's topic (``namespace_label``).

    ``sequenced``: the rows come from the JVM decode stage (``io.github.kpf.decode.FastDecodeFunction``), the
    records it left to Python, each with its sequence number (``seq``); each change carries its record's, and the
    group's changes end with an ``order_marker`` of the group's last, for the JVM ``SequencedMerge``.
    """

    def __init__(
        self,
        route: RouteConfig,
        error_tolerance: str,
        secrets: tuple[str, ...] = (),
        dead_letter_max_bytes: int | None = None,
        topics: Sequence[str] = (),
        sequenced: bool = False,
    ) -> None:
        if error_tolerance not in (ERRORS_NONE, ERRORS_ALL):
            raise ValueError(f"error tolerance must be 'none' or 'all', got {error_tolerance!r}")
        self._route = route
        self._fail_fast = error_tolerance == ERRORS_NONE
        self._secrets = secrets
        self._max_bytes = dead_letter_max_bytes
        self._tracked: dict[str, None] = {}  # the namespaces counted apart, in the order first seen
        self._labels: dict[str, str] = {}  # topic -> label of its vector counts
        self._accepted_keys: dict[str, str] = {}  # topic -> name of its vectors_accepted count
        for topic in topics:
            self.namespace_label(topic)
        self._declared = tuple(self._tracked)
        self._sequenced = sequenced

    def declared_counts(self) -> tuple[str, ...]:
        """``COUNTS`` and the per-namespace counts of the configured topics' namespaces: the counts that exist, at
        zero, from the start (a counter that first appears at 1 loses that increment in Prometheus's ``rate()``)."""
        return (*COUNTS, *(namespace_count(name, ns) for ns in self._declared for name in PER_NAMESPACE))

    def namespace_label(self, topic: str) -> str:
        """The namespace label of ``topic``'s vector counts: its namespace (as routing gives it), ``OTHER_NAMESPACES``
        once ``MAX_NAMESPACES`` others are tracked, or ``UNROUTED`` if routing fails for the topic."""
        label = self._labels.get(topic)
        if label is None:
            try:
                label = self._route.namespace_for(topic)
            except RecordError:
                label = UNROUTED
            else:
                if label not in self._tracked:
                    if len(self._tracked) < MAX_NAMESPACES:
                        self._tracked[label] = None
                    else:
                        label = OTHER_NAMESPACES
            self._labels[topic] = label
        return label

    def open(self, runtime_context: RuntimeContext) -> None:
        settle_collector()

    def map(self, value: Sequence[Any]) -> Any:
        changes = []
        dead_letters = []
        counts: Counter[str] = Counter()
        route = self._route
        accepted_keys = self._accepted_keys
        sequenced = self._sequenced
        seq = None
        for row in value:
            if sequenced:
                seq = row["seq"]
            record = row_to_source_record(row)
            try:
                result = decode(record, route)
            except RecordError as exc:
                if self._fail_fast:
                    raise RecordRejectedError(record.coordinates, exc.error_class, exc.message, "decode") from None
                counts[DEAD_LETTERED] += 1
                rejected_vector = VECTOR_REJECTIONS.get(exc.error_class)
                if rejected_vector is not None:
                    counts[rejected_vector] += 1
                    counts[namespace_count(rejected_vector, self.namespace_label(record.topic))] += 1
                letter = DeadLetter(record, exc.error_class, exc.message, "decode")
                dead_letters.append(dead_letter_row(letter, self._secrets, self._max_bytes))
                continue
            if isinstance(result, Skip):
                counts[f"{SKIPPED_PREFIX}{result.reason}"] += 1
                continue
            if result.values is not None:
                key = accepted_keys.get(record.topic)
                if key is None:
                    key = accepted_keys[record.topic] = namespace_count(
                        VECTORS_ACCEPTED, self.namespace_label(record.topic)
                    )
                counts[key] += 1
            changes.append(dedup_row(result, seq))
        counts[RECORDS_IN] = len(value)
        counts[DECODED] = len(changes)
        if sequenced and value:
            changes.append(order_marker(value[-1]["seq"]))
        return batch_result(changes, dead_letters, counts)
