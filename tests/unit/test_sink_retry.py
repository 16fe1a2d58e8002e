from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import httpx
import pytest
from pinecone import (
    ApiError,
    AsyncIndex,
    ForbiddenError,
    NotFoundError,
    PineconeConnectionError,
    PineconeTimeoutError,
    PineconeValueError,
    RateLimitError,
    ServiceError,
    UnauthorizedError,
)

from kafka_pinecone_flink.sinks.client import NO_SDK_RETRIES, disable_sdk_retries
from kafka_pinecone_flink.sinks.retry import (
    ErrorKind,
    RequestRejectedError,
    RetryObserver,
    RetryPolicy,
    SinkFatalError,
    SinkUnavailableError,
    call_with_retries,
    classify,
)

pytestmark = pytest.mark.unit

KEY = "pcsk_4ABCDEFsecretKEY123"


class Sleeps:
    """A fake ``asyncio.sleep`` that records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class Counting(RetryObserver):
    def __init__(self) -> None:
        self.attempts = 0
        self.retries = 0

    def on_attempt(self) -> None:
        self.attempts += 1

    def on_retry(self, delay_s: float) -> None:
        self.retries += 1


def failing(*errors: BaseException, result: str = "ok") -> Callable[[], Awaitable[str]]:
    """An operation that raises ``errors`` one per call, then returns ``result``."""
    queue = list(errors)

    async def operation() -> str:
        if queue:
            raise queue.pop(0)
        return result

    return operation


def run(
    operation: Callable[[], Awaitable[str]],
    *,
    max_retries: int = 3,
    base_s: float = 1.0,
    cap_s: float = 30.0,
    sleeps: Sleeps | None = None,
    observer: RetryObserver | None = None,
    timeout_s: float = 5.0,
) -> str:
    return asyncio.run(
        call_with_retries(
            operation,
            policy=RetryPolicy(max_retries, base_s, cap_s),
            what="upsert of 3 records",
            index_name="docs",
            timeout_s=timeout_s,
            sleep=sleeps or Sleeps(),
            rng=random.Random(7),
            observer=observer or RetryObserver(),
            secrets=(KEY,),
        )
    )


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_throttling_timeouts_and_server_errors_are_transient(status: int) -> None:
    assert classify(ApiError("x", status)) is ErrorKind.TRANSIENT


@pytest.mark.parametrize(
    "error",
    [
        PineconeConnectionError("refused"),
        PineconeTimeoutError("timed out"),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        TimeoutError(),
        ConnectionResetError(),
    ],
)
def test_transport_failures_are_transient(error: BaseException) -> None:
    assert classify(error) is ErrorKind.TRANSIENT


@pytest.mark.parametrize("status", [400, 413, 422])
def test_malformed_request_statuses_are_permanent(status: int) -> None:
    assert classify(ApiError("x", status)) is ErrorKind.PERMANENT


def test_the_sdks_client_side_validation_errors_are_permanent() -> None:
    assert classify(PineconeValueError("bad id")) is ErrorKind.PERMANENT


@pytest.mark.parametrize("status", [401, 403, 404, 409, 412])
def test_auth_missing_index_and_unexpected_statuses_are_fatal(status: int) -> None:
    assert classify(ApiError("x", status)) is ErrorKind.FATAL


def test_an_exception_that_is_not_a_pinecone_failure_is_not_classified() -> None:
    assert classify(KeyError("bug")) is None


def test_backoff_is_full_jitter_below_the_exponential_bound_and_the_cap() -> None:
    policy = RetryPolicy(max_retries=10, base_s=1.0, cap_s=30.0)
    rng = random.Random(1)
    for retry in range(8):
        bound = min(30.0, 2.0**retry)
        delays = [policy.delay(retry, rng) for _ in range(2_000)]
        assert all(0.0 <= d <= bound for d in delays)
        assert max(delays) > 0.9 * bound  # the whole range is used, not a fixed delay
        assert min(delays) < 0.1 * bound


def test_a_retry_after_longer_than_the_computed_delay_wins() -> None:
    policy = RetryPolicy(max_retries=3, base_s=0.001, cap_s=0.001)
    assert policy.delay(0, random.Random(1), retry_after=5.0) == 5.0


def test_a_retry_after_shorter_than_the_computed_delay_does_not_shorten_it() -> None:
    policy = RetryPolicy(max_retries=3, base_s=100.0, cap_s=100.0)
    rng = random.Random(3)
    expected = RetryPolicy(max_retries=3, base_s=100.0, cap_s=100.0).delay(0, random.Random(3))
    assert policy.delay(0, rng, retry_after=0.5) == expected > 0.5


def test_transient_failures_are_retried_until_the_call_succeeds() -> None:
    sleeps, observer = Sleeps(), Counting()
    result = run(failing(ServiceError(), RateLimitError()), sleeps=sleeps, observer=observer)
    assert result == "ok"
    assert observer.attempts == 3 and observer.retries == 2
    assert len(sleeps.delays) == 2
    assert 0 <= sleeps.delays[0] <= 1.0 and 0 <= sleeps.delays[1] <= 2.0


def test_a_429_waits_at_least_its_retry_after() -> None:
    sleeps = Sleeps()
    run(failing(RateLimitError(retry_after=7.0)), base_s=0.01, cap_s=0.01, sleeps=sleeps)
    assert sleeps.delays == [7.0]


def test_exhausted_retries_raise_sink_unavailable_after_max_retries_plus_one_attempts() -> None:
    sleeps, observer = Sleeps(), Counting()
    with pytest.raises(
        SinkUnavailableError, match=r"upsert of 3 records on index 'docs' failed after 4 attempts"
    ) as info:
        run(failing(*(ServiceError(f"boom {i}", 503) for i in range(10))), sleeps=sleeps, observer=observer)
    assert observer.attempts == 4 and len(sleeps.delays) == 3
    assert "boom 3" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_zero_max_retries_means_a_single_attempt() -> None:
    observer = Counting()
    with pytest.raises(SinkUnavailableError, match="after 1 attempts"):
        run(failing(ServiceError()), max_retries=0, observer=observer)
    assert observer.attempts == 1


def test_an_attempt_that_hangs_is_cut_off_by_the_request_timeout_and_retried() -> None:
    calls = 0

    async def hangs_once() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(60)
        return "ok"

    assert run(hangs_once, timeout_s=0.05) == "ok"
    assert calls == 2


@pytest.mark.parametrize(
    ("error", "fragment"),
    [
        (UnauthorizedError(f"Invalid API key {KEY}"), "rejected the API key for index 'docs' (HTTP 401)"),
        (ForbiddenError(f"key {KEY} may not write"), "refused access to index 'docs' (HTTP 403)"),
        (NotFoundError("Index not found"), "index 'docs' was not found (HTTP 404)"),
    ],
)
def test_auth_and_missing_index_failures_stop_the_job_without_the_key(error: ApiError, fragment: str) -> None:
    observer = Counting()
    with pytest.raises(SinkFatalError) as info:
        run(failing(error), observer=observer)
    message = str(info.value)
    assert fragment in message
    assert KEY not in message and "4ABCDEF" not in message
    assert observer.attempts == 1
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_a_malformed_request_is_not_retried_and_is_handed_back_for_narrowing() -> None:
    observer = Counting()
    with pytest.raises(RequestRejectedError) as info:
        run(failing(ApiError("Vector dimension 3 does not match the dimension of the index 8", 400)), observer=observer)
    assert info.value.status == 400
    assert "ApiError (HTTP 400): Vector dimension 3 does not match" in info.value.message
    assert observer.attempts == 1


def test_an_unexpected_exception_propagates_unchanged() -> None:
    with pytest.raises(KeyError, match="bug"):
        run(failing(KeyError("bug")))


def test_the_sdk_data_plane_client_is_configured_to_send_each_request_exactly_once() -> None:
    index = AsyncIndex(host="http://127.0.0.1:9", api_key=KEY)
    assert index._http._config.retry_config.max_retries == 3  # the SDK's default, which would stack on ours
    disable_sdk_retries(index)
    assert index._http._config.retry_config == NO_SDK_RETRIES
    assert NO_SDK_RETRIES.max_retries == 0 and not NO_SDK_RETRIES.retryable_status_codes


def test_a_request_through_the_configured_sdk_client_is_attempted_once() -> None:
    index = AsyncIndex(host="http://127.0.0.1:9", api_key=KEY, timeout=2.0)
    disable_sdk_retries(index)
    attempts = 0
    original = httpx.AsyncHTTPTransport.handle_async_request

    async def counting(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        return httpx.Response(503, json={"code": 14, "message": "unavailable"}, request=request)

    async def go() -> None:
        httpx.AsyncHTTPTransport.handle_async_request = counting  # type: ignore[method-assign]
        try:
            await index.delete(ids=["a"], namespace="ns")
        finally:
            httpx.AsyncHTTPTransport.handle_async_request = original  # type: ignore[method-assign]
            await index.close()

    with pytest.raises(ServiceError):
        asyncio.run(go())
    assert attempts == 1


def test_disabling_sdk_retries_fails_loudly_if_the_client_was_already_used() -> None:
    index = AsyncIndex(host="http://127.0.0.1:9", api_key=KEY)
    index._http._ensure_client()
    with pytest.raises(SinkFatalError, match="cannot switch off the SDK's retries"):
        disable_sdk_retries(index)
