"""Configuration of the Pinecone sink, validated once before the job graph is built.

Every default and every external limit is a named constant here. Validation errors name the option, the bad value
and the allowed range; the API key is never part of a message or of ``repr`` (it shows as ``'***'``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

from kafka_pinecone_flink.sinks import embedding_health

ErrorTolerance = Literal["none", "all"]
SchemaEvolution = Literal["basic", "none"]

# --- Pinecone's limits (shared/design/PINECONE.md) -------------------------------------------------------------------
PINECONE_MAX_UPSERT_RECORDS = 1_000
PINECONE_MAX_DELETE_IDS = 1_000
PINECONE_MAX_REQUEST_BYTES = 2_000_000
"""Pinecone documents "2 MB" per upsert request; the decimal reading is the stricter one."""
PINECONE_MAX_INDEX_NAME_CHARS = 45

# --- defaults and allowed ranges --------------------------------------------------------------------------------------
DEFAULT_BATCH_SIZE = 250
"""Ids per request: one Batcher group's worth (``batch.max-records``). Pinecone advises large upsert batches, up to
1,000 records (docs.pinecone.io, "Increase throughput"), and the 2 MB cut (``max_request_bytes``) bounds a request
of long vectors. Against 100, (a) ran at +5% records/s on -4% CPU (BENCHMARKS.md, "Fewer, larger requests"): each
request costs the SDK's HTTP client and the server a fixed share whatever its size."""
DEFAULT_MAX_REQUEST_BYTES = 1_950_000
"""The packer bounds the SDK's JSON body from above (see ``sinks.batch``); the 50 kB of headroom covers a server that
counts differently."""
MIN_MAX_REQUEST_BYTES = 1_024
DEFAULT_LINGER_MS = 100
"""Longest wait of a partial group before the sink. Under a backlog a group should fill: with 50 ms, each sink
subtask of the standalone cluster at parallelism 2 (about 3,000-3,500 records/s each on (a)) got groups of 150-200
records, and the job ran 12-30% slower on 15% more CPU than with 100 or 150 ms, whose groups held 230-245
(BENCHMARKS.md, "The sink's linger at parallelism 2"). At parallelism 1 the groups filled within 50 ms either way. A
lone record waits at most this long at low load."""
DEFAULT_MAX_CONCURRENCY = 4
"""Requests in flight per namespace. One is latency-bound (an upsert to Pinecone takes tens of ms). Groups that fit one
request and share no id go side by side, whole; when changes wait, ids are spread over the lanes by a hash, so the
writes of one id stay in order (``sinks.writer``)."""
MAX_MAX_CONCURRENCY = 64
MAX_LINGER_MS = 10_000
DEFAULT_MAX_RETRIES = 3
MAX_MAX_RETRIES = 100
DEFAULT_RETRY_INTERVAL_MS = 1_000
DEFAULT_MAX_RETRY_INTERVAL_MS = 30_000
MAX_RETRY_INTERVAL_MS = 600_000
DEFAULT_REQUEST_TIMEOUT_S = 30.0
MAX_REQUEST_TIMEOUT_S = 600.0
DEFAULT_ERROR_TOLERANCE: ErrorTolerance = "none"
DEFAULT_SCHEMA_EVOLUTION: SchemaEvolution = "basic"
ERROR_TOLERANCES: tuple[ErrorTolerance, ...] = ("none", "all")
SCHEMA_EVOLUTIONS: tuple[SchemaEvolution, ...] = ("basic", "none")

MASK = "***"


class ConfigError(ValueError):
    """A sink option is invalid. The message names the option, the bad value and the allowed range."""


def _int_in(name: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"{name} must be an integer in {low}..{high}, got {value!r}")


def host_problem(value: object) -> str | None:
    """What a host override must be, when ``value`` is not one; None when it is fine."""
    if not isinstance(value, str) or not value or value != value.strip() or " " in value:
        return "a non-empty URL without spaces (e.g. 'http://127.0.0.1:5080')"
    return None


def index_name_problem(value: object) -> str | None:
    """What an index name must be, when ``value`` is not one; None when it is fine."""
    ok = (
        isinstance(value, str)
        and 1 <= len(value) <= PINECONE_MAX_INDEX_NAME_CHARS
        and value.isascii()
        and all(c.islower() or c.isdigit() or c == "-" for c in value)
        and not value.startswith("-")
        and not value.endswith("-")
    )
    if ok:
        return None
    return f"1..{PINECONE_MAX_INDEX_NAME_CHARS} lowercase letters, digits or '-' (not starting or ending with '-')"


def _host(name: str, value: str | None) -> None:
    problem = None if value is None else host_problem(value)
    if problem is not None:
        raise ConfigError(f"{name} must be {problem}, got {value!r}")


def _index_name(value: object) -> None:
    problem = index_name_problem(value)
    if problem is not None:
        raise ConfigError(f"index_name must be {problem}, got {value!r}")


@dataclass(frozen=True, slots=True)
class PineconeSinkConfig:
    """Everything the Pinecone sink needs; immutable and validated on construction.

    ``api_key`` may be None for the local Pinecone-compatible server (a placeholder is then sent). ``index_host``
    overrides the data-plane host that describing the index returns; ``controller_host`` overrides the control plane
    (e.g. ``"http://127.0.0.1:5080"``). Retries use exponential backoff with full jitter starting from
    ``retry_interval_ms`` and capped at ``max_retry_interval_ms``; a 429's Retry-After wins when it is longer.
    ``error_tolerance``: ``"none"`` stops the job on a record Pinecone rejects, ``"all"`` dead-letters it.
    ``schema_evolution``: ``"basic"`` lets upserts create namespaces, ``"none"`` requires them to exist.
    """

    index_name: str
    api_key: str | None = None
    index_host: str | None = None
    controller_host: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    linger_ms: int = DEFAULT_LINGER_MS
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    max_retries: int = DEFAULT_MAX_RETRIES
    retry_interval_ms: int = DEFAULT_RETRY_INTERVAL_MS
    max_retry_interval_ms: int = DEFAULT_MAX_RETRY_INTERVAL_MS
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    error_tolerance: ErrorTolerance = DEFAULT_ERROR_TOLERANCE
    schema_evolution: SchemaEvolution = DEFAULT_SCHEMA_EVOLUTION
    drift_reference_size: int = embedding_health.DEFAULT_REFERENCE_SIZE
    """Embedding drift (``sinks.embedding_health``): vectors per namespace that make up the reference centroid."""
    drift_window: int = embedding_health.DEFAULT_WINDOW
    """Embedding drift: each new vector weighs 1/``drift_window`` in the recent centroid."""
    drift_reference_file: str | None = None
    """Embedding drift: a JSON file of reference centroids per namespace, read when the job is built."""

    def __post_init__(self) -> None:
        if self.api_key is not None and (
            not isinstance(self.api_key, str) or not self.api_key or self.api_key != self.api_key.strip()
        ):
            # The value itself is a secret: say what is wrong, never what it is.
            raise ConfigError(
                "api_key must be None or a non-empty string without surrounding whitespace (value hidden)"
            )
        _index_name(self.index_name)
        _host("index_host", self.index_host)
        _host("controller_host", self.controller_host)
        _int_in("batch_size", self.batch_size, 1, PINECONE_MAX_UPSERT_RECORDS)
        _int_in("drift_reference_size", self.drift_reference_size, 1, embedding_health.MAX_REFERENCE_SIZE)
        _int_in("drift_window", self.drift_window, 1, embedding_health.MAX_WINDOW)
        _int_in("max_request_bytes", self.max_request_bytes, MIN_MAX_REQUEST_BYTES, PINECONE_MAX_REQUEST_BYTES)
        _int_in("linger_ms", self.linger_ms, 0, MAX_LINGER_MS)
        _int_in("max_concurrency", self.max_concurrency, 1, MAX_MAX_CONCURRENCY)
        _int_in("max_retries", self.max_retries, 0, MAX_MAX_RETRIES)
        _int_in("retry_interval_ms", self.retry_interval_ms, 1, MAX_RETRY_INTERVAL_MS)
        _int_in("max_retry_interval_ms", self.max_retry_interval_ms, self.retry_interval_ms, MAX_RETRY_INTERVAL_MS)
        timeout = self.request_timeout_s
        if (
            not isinstance(timeout, int | float)
            or isinstance(timeout, bool)
            or not 0 < timeout <= MAX_REQUEST_TIMEOUT_S
        ):
            raise ConfigError(f"request_timeout_s must be a number in (0, {MAX_REQUEST_TIMEOUT_S:g}], got {timeout!r}")
        if self.error_tolerance not in ERROR_TOLERANCES:
            raise ConfigError(f"error_tolerance must be one of {list(ERROR_TOLERANCES)}, got {self.error_tolerance!r}")
        if self.schema_evolution not in SCHEMA_EVOLUTIONS:
            raise ConfigError(
                f"schema_evolution must be one of {list(SCHEMA_EVOLUTIONS)}, got {self.schema_evolution!r}"
            )

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            parts.append(f"{f.name}={MASK!r}" if f.name == "api_key" and value is not None else f"{f.name}={value!r}")
        return f"PineconeSinkConfig({', '.join(parts)})"

    __str__ = __repr__
