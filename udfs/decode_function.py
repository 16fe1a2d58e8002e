"""The decode stage as a Flink function: Kafka source rows in, dedup rows out, bad records to a side output.

Rows come straight from the Kafka table (see ``jobs/kafka_io.py``); turning them into ``SourceRecord`` here rather
than in an operator of its own saves one Python hop per record.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pyflink.common import Types
from pyflink.datastream import OutputTag, ProcessFunction, RuntimeContext

from udfs.decode import Skip, decode
from udfs.dedup import dedup_row
from udfs.errors import RecordError, RecordRejectedError
from udfs.records import DeadLetter, row_to_source_record
from udfs.route_config import RouteConfig

DEAD_LETTERS = OutputTag("dead-letters", Types.PICKLED_BYTE_ARRAY())
"""Side output of every stage that rejects records before the sink."""

ERRORS_NONE = "none"
ERRORS_ALL = "all"


class DecodeFunction(ProcessFunction):
    """Decodes, validates and routes each record (``udfs.decode.decode``) and emits each change as the row the JVM
    dedup operator reads (``udfs.dedup.dedup_row``).

    A record that cannot be decoded goes to ``DEAD_LETTERS`` (error tolerance ``all``) or stops the job with a
    ``RecordRejectedError`` naming its Kafka coordinates (``none``). A counted skip (a tombstone while deletes are
    disabled) emits nothing. Metrics: ``records_in``, ``decoded``, ``dead_lettered``, ``skipped_<reason>``.
    """

    def __init__(self, route: RouteConfig, error_tolerance: str) -> None:
        if error_tolerance not in (ERRORS_NONE, ERRORS_ALL):
            raise ValueError(f"error tolerance must be 'none' or 'all', got {error_tolerance!r}")
        self._route = route
        self._fail_fast = error_tolerance == ERRORS_NONE
        self._metrics: Any = None
        self._counters: dict[str, Any] = {}

    def open(self, runtime_context: RuntimeContext) -> None:
        self._metrics = runtime_context.get_metrics_group()
        for name in ("records_in", "decoded", "dead_lettered"):
            self._counters[name] = self._metrics.counter(name)

    def _count(self, name: str) -> None:
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters[name] = self._metrics.counter(name)
        counter.inc()

    def process_element(self, value: Any, ctx: ProcessFunction.Context) -> Iterator[Any]:
        record = row_to_source_record(value)
        self._count("records_in")
        try:
            result = decode(record, self._route)
        except RecordError as exc:
            if self._fail_fast:
                raise RecordRejectedError(record.coordinates, exc.error_class, exc.message, "decode") from None
            self._count("dead_lettered")
            yield DEAD_LETTERS, DeadLetter(record, exc.error_class, exc.message, "decode")
            return
        if isinstance(result, Skip):
            self._count(f"skipped_{result.reason}")
            return
        self._count("decoded")
        yield dedup_row(result)
