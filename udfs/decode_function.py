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

from pyflink.datastream import MapFunction

from kafka_pinecone_flink.udfs.decode import Skip, decode
from kafka_pinecone_flink.udfs.dedup import dedup_row
from kafka_pinecone_flink.udfs.errors import RecordError, RecordRejectedError
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


class DecodeFunction(MapFunction):
    """Decodes, validates and routes each record of a group (``udfs.decode.decode``).

    A record that cannot be decoded becomes a dead letter (error tolerance ``all``) or stops the job with a
    ``RecordRejectedError`` naming its Kafka coordinates (``none``). A counted skip (a tombstone while deletes are
    disabled) emits nothing. Counts (run totals ``decode.<name>``, and metrics of the "Decode results" operator):
    ``records_in``, ``decoded``, ``dead_lettered``, ``skipped_<reason>``.
    """

    def __init__(
        self,
        route: RouteConfig,
        error_tolerance: str,
        secrets: tuple[str, ...] = (),
        dead_letter_max_bytes: int | None = None,
    ) -> None:
        if error_tolerance not in (ERRORS_NONE, ERRORS_ALL):
            raise ValueError(f"error tolerance must be 'none' or 'all', got {error_tolerance!r}")
        self._route = route
        self._fail_fast = error_tolerance == ERRORS_NONE
        self._secrets = secrets
        self._max_bytes = dead_letter_max_bytes

    def map(self, value: Sequence[Any]) -> Any:
        changes = []
        dead_letters = []
        counts: Counter[str] = Counter()
        route = self._route
        for row in value:
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
                letter = DeadLetter(record, exc.error_class, exc.message, "decode")
                dead_letters.append(dead_letter_row(letter, self._secrets, self._max_bytes))
                continue
            if isinstance(result, Skip):
                counts[f"{SKIPPED_PREFIX}{result.reason}"] += 1
                continue
            changes.append(dedup_row(result))
        counts[RECORDS_IN] = len(value)
        counts[DECODED] = len(changes)
        return batch_result(changes, dead_letters, counts)
