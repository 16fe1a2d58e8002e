"""Error classification and the sink's one retry layer.

Every failure of a Pinecone call is put in exactly one class by ``classify``:

- transient (429, 408, 500, 502, 503, 504, timeouts, connection and transport errors): retried here with exponential
  backoff and full jitter; a 429's Retry-After wins when it is longer than the computed delay. When the retries run out
  the call raises ``SinkUnavailableError``: the job fails and replays from its last checkpoint, nothing is dropped.
- permanent (400, 413, 422, and the SDK's own client-side validation errors): the request is at fault, so it is not
  retried; ``RequestRejectedError`` tells the writer to narrow the request down to the offending records.
- fatal (401, 403, 404 and any other status): retrying cannot help and no record is at fault, so ``SinkFatalError``
  stops the job with a message that names the cause.

The SDK's own retries are switched off (see ``sinks.client``), so this is the only layer that retries. Messages never
contain the API key: every text taken from an exception passes through ``scrub``, and the sink's own errors are
raised ``from None`` so that a traceback cannot print an unscrubbed cause.
"""

from __future__ import annotations

import asyncio
import enum
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import httpx
from pinecone import ApiError, PineconeConnectionError, PineconeTimeoutError, PineconeTypeError, PineconeValueError
from pinecone.errors.exceptions import PineconeError

from kafka_pinecone_flink.sinks.dead_letter import scrub

T = TypeVar("T")

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
PERMANENT_STATUSES = frozenset({400, 413, 422})
FATAL_STATUSES = frozenset({401, 403, 404})
MAX_RETRY_AFTER_S = 600.0
"""A Retry-After longer than this is treated as this: a checkpoint must not wait on a server's whim for hours."""


class ErrorKind(enum.Enum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    FATAL = "fatal"


class SinkFatalError(RuntimeError):
    """The sink cannot go on (bad credentials, missing index, an unexpected status): the job must stop."""


class SinkUnavailableError(RuntimeError):
    """Pinecone stayed unavailable through every retry: the job must fail and replay from its last checkpoint."""


class RequestRejectedError(Exception):
    """Pinecone (or the SDK's client-side validation) rejected a request as malformed: narrow it to its bad records."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an SDK ``ApiError``, else None."""
    return exc.status_code if isinstance(exc, ApiError) else None


def classify(exc: BaseException) -> ErrorKind | None:
    """Which kind of failure ``exc`` is; None for an exception that is not a Pinecone or transport failure (a bug)."""
    if isinstance(exc, ApiError):
        status = exc.status_code
        if status in TRANSIENT_STATUSES:
            return ErrorKind.TRANSIENT
        if status in PERMANENT_STATUSES:
            return ErrorKind.PERMANENT
        return ErrorKind.FATAL
    if isinstance(exc, PineconeValueError | PineconeTypeError):
        return ErrorKind.PERMANENT
    # PineconeTimeoutError is also a TimeoutError; asyncio.timeout raises the builtin one.
    if isinstance(exc, PineconeConnectionError | PineconeTimeoutError | httpx.TransportError | TimeoutError):
        return ErrorKind.TRANSIENT
    if isinstance(exc, ConnectionError):
        return ErrorKind.TRANSIENT
    if isinstance(exc, PineconeError):
        return ErrorKind.FATAL
    return None


def retry_after_s(exc: BaseException) -> float | None:
    """The server's Retry-After in seconds, when it sent a usable one."""
    value = getattr(exc, "retry_after", None)
    if isinstance(value, int | float) and value >= 0:
        return min(float(value), MAX_RETRY_AFTER_S)
    return None


def describe(exc: BaseException, secrets: Iterable[str | None] = ()) -> str:
    """A short, scrubbed description of an exception: its class and text."""
    text = getattr(exc, "message", None) if isinstance(exc, ApiError) else None
    status = status_of(exc)
    body = text if isinstance(text, str) else str(exc)
    prefix = f"{type(exc).__name__} (HTTP {status})" if status is not None else type(exc).__name__
    return scrub(f"{prefix}: {body}" if body else prefix, secrets)


def fatal_message(exc: BaseException, *, index_name: str, secrets: Iterable[str | None] = ()) -> str:
    """Why the job must stop, in words an operator can act on; never the API key."""
    status = status_of(exc)
    cause = describe(exc, secrets)
    if status == 401:
        return f"Pinecone rejected the API key for index {index_name!r} (HTTP 401): check the configured key. {cause}"
    if status == 403:
        return (
            f"Pinecone refused access to index {index_name!r} (HTTP 403): the key lacks permission, a quota is "
            f"exhausted or deletion protection applies. {cause}"
        )
    if status == 404:
        return (
            f"Pinecone index {index_name!r} was not found (HTTP 404): create it or fix index_name/index_host. {cause}"
        )
    return f"unexpected Pinecone failure on index {index_name!r}; the sink cannot classify it and stops. {cause}"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter: retry ``n`` (from 0) waits ``uniform(0, min(cap, base * 2**n))``."""

    max_retries: int
    base_s: float
    cap_s: float

    def delay(self, retry: int, rng: random.Random, retry_after: float | None = None) -> float:
        # Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"): spreads synchronized clients apart.
        ceiling = min(self.cap_s, self.base_s * (2**retry))
        computed = rng.uniform(0.0, ceiling)
        if retry_after is not None and retry_after > computed:
            return retry_after
        return computed


class RetryObserver:
    """Told about each attempt and retry (the writer's stats); the default does nothing."""

    def on_attempt(self) -> None:
        return None

    def on_retry(self, delay_s: float) -> None:
        return None


NO_OBSERVER = RetryObserver()


async def call_with_retries(
    operation: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    what: str,
    index_name: str,
    timeout_s: float,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    rng: random.Random | None = None,
    observer: RetryObserver = NO_OBSERVER,
    secrets: Iterable[str | None] = (),
) -> T:
    """Run ``operation`` (one request), retrying transient failures under ``policy``.

    Each attempt is bounded by ``timeout_s`` (``asyncio.timeout``: the SDK's own timeout bounds each network phase,
    not the whole request). Raises ``RequestRejectedError`` for a permanent failure, ``SinkFatalError`` for a fatal
    one and ``SinkUnavailableError`` when a transient failure outlasts ``policy.max_retries`` retries. Exceptions that
    are not Pinecone or transport failures propagate unchanged.
    """
    secrets = tuple(secrets)
    rng = rng if rng is not None else random.Random()
    retry = 0
    while True:
        observer.on_attempt()
        try:
            async with asyncio.timeout(timeout_s):
                return await operation()
        except Exception as exc:
            kind = classify(exc)
            if kind is None:
                raise
            if kind is ErrorKind.PERMANENT:
                raise RequestRejectedError(status_of(exc), describe(exc, secrets)) from None
            if kind is ErrorKind.FATAL:
                raise SinkFatalError(fatal_message(exc, index_name=index_name, secrets=secrets)) from None
            if retry >= policy.max_retries:
                raise SinkUnavailableError(
                    f"{what} on index {index_name!r} failed after {retry + 1} attempts; the job must replay from its "
                    f"last checkpoint. Last error: {describe(exc, secrets)}"
                ) from None
            delay = policy.delay(retry, rng, retry_after_s(exc))
        observer.on_retry(delay)
        await sleep(delay)
        retry += 1
