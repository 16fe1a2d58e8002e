"""The writer against the real local Pinecone-compatible server, through the real SDK (``pinecone`` 10.2)."""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kafka_pinecone_flink.sinks import stats
from kafka_pinecone_flink.sinks.client import REQUEST_LOGGERS, PineconeIndexClient, open_index, quiet_request_logs
from kafka_pinecone_flink.sinks.config import PINECONE_MAX_REQUEST_BYTES, PineconeSinkConfig
from kafka_pinecone_flink.sinks.retry import SinkFatalError
from kafka_pinecone_flink.sinks.writer import DELETED, SUPERSEDED, UPDATED, UPSERTED, PineconeWriter
from kafka_pinecone_flink.udfs.records import DELETE, UPSERT, Change, DeadLetter, Op, SourceRecord
from tests.fixtures.pinecone_local import (
    LocalIndex,
    LocalServer,
    pinecone_local_index,
    pinecone_local_index_factory,
    pinecone_local_server,
    start_pinecone_local,
)

pytestmark = pytest.mark.integration

# The local server's fixtures, imported explicitly (they work with or without the root conftest's plugin).
SERVER_FIXTURES = (pinecone_local_server, pinecone_local_index, pinecone_local_index_factory)

SECRET = "pcsk_integrationSECRET_0042"


class RecordingSleep:
    """Records backoff delays and yields instead of waiting (the server's faults are request-counted, not timed)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


def vec(seed: int, dimension: int) -> list[float]:
    rng = random.Random(seed)
    values = [rng.uniform(-1.0, 1.0) for _ in range(dimension)]
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


def change(
    record_id: str,
    op: Op = UPSERT,
    *,
    dimension: int = 8,
    offset: int = 0,
    values: list[float] | None = None,
    namespace: str = "ns",
    replaces: bool = False,
    metadata: dict[str, Any] | None = None,
) -> Change:
    source = SourceRecord("docs", 0, offset, 1_000, record_id.encode(), b"{}")
    if op == UPSERT and values is None:
        values = vec(offset, dimension)
    return Change(
        op=op,
        namespace=namespace,
        id=record_id,
        source=source,
        values=values,
        metadata=dict(metadata or {}),
        replaces=replaces,
    )


def sink_config(server: LocalServer, index: LocalIndex, **overrides: Any) -> PineconeSinkConfig:
    options: dict[str, Any] = {
        "index_name": index.name,
        "controller_host": server.url,
        "retry_interval_ms": 10,
        "max_retry_interval_ms": 50,
        "request_timeout_s": 10.0,
        "error_tolerance": "all",
    }
    options.update(overrides)
    return PineconeSinkConfig(**options)


def run_writer(
    config: PineconeSinkConfig,
    body: Callable[[PineconeWriter, PineconeIndexClient], Any],
    sleep: RecordingSleep | None = None,
) -> Any:
    async def go() -> Any:
        client = await open_index(config)
        try:
            writer = PineconeWriter(client, config, sleep=sleep or RecordingSleep())
            return await body(writer, client)
        finally:
            await client.close()

    return asyncio.run(go())


def stored(index: LocalIndex, ids: list[str], namespace: str = "ns") -> dict[str, Any]:
    return dict(index.index.fetch(ids=ids, namespace=namespace).vectors)


def test_open_index_describes_dimension_metric_and_host(
    pinecone_local_server: LocalServer, pinecone_local_index: LocalIndex
) -> None:
    config = sink_config(pinecone_local_server, pinecone_local_index)

    async def go() -> Any:
        client = await open_index(config)
        await client.close()
        return client.info

    info = asyncio.run(go())
    assert (info.name, info.dimension, info.metric) == (pinecone_local_index.name, 8, "cosine")
    assert info.host.rstrip("/") == pinecone_local_index.host.rstrip("/")


def test_upserts_updates_and_deletes_reach_the_index(
    pinecone_local_server: LocalServer, pinecone_local_index: LocalIndex
) -> None:
    config = sink_config(pinecone_local_server, pinecone_local_index)

    async def body(writer: PineconeWriter, _: PineconeIndexClient) -> list[list[Any]]:
        first = await writer.write_batch(
            "ns", [change("a", offset=1, metadata={"lang": "en"}), change("b", offset=2), change("c", offset=3)]
        )
        second = await writer.write_batch(
            "ns",
            [
                change("a", offset=4, replaces=True),
                change("b", DELETE, offset=5),
                change("c", offset=6),
                change("c", DELETE, offset=7),
            ],
        )
        return [first, second]

    first, second = run_writer(config, body)
    assert first == [UPSERTED, UPSERTED, UPSERTED]
    assert second == [UPDATED, DELETED, SUPERSEDED, DELETED]
    vectors = stored(pinecone_local_index, ["a", "b", "c"])
    assert set(vectors) == {"a"}
    assert vectors["a"].values == pytest.approx(vec(4, 8), rel=1e-6)


@pytest.fixture
def unset_request_loggers() -> Iterator[None]:
    """``REQUEST_LOGGERS`` at NOTSET for the test, then back (``setLevel``: it clears logging's level cache)."""
    levels = {name: logging.getLogger(name).level for name in REQUEST_LOGGERS}
    for name in REQUEST_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize("quiet", [False, True])
def test_a_quiet_sink_logs_no_line_per_request(
    pinecone_local_server: LocalServer,
    pinecone_local_index: LocalIndex,
    caplog: pytest.LogCaptureFixture,
    unset_request_loggers: None,
    quiet: bool,
) -> None:
    """httpx logged every upsert at INFO; in the job each line crossed to the JVM and landed in the TaskManager log."""
    config = sink_config(pinecone_local_server, pinecone_local_index)
    if quiet:
        quiet_request_logs()
    caplog.set_level(logging.INFO)
    outcomes = run_writer(config, lambda w, _: w.write_batch("ns", [change("a", offset=1), change("b", offset=2)]))
    assert outcomes == [UPSERTED, UPSERTED]
    request_lines = [
        r for r in caplog.records if r.name.split(".")[0] in REQUEST_LOGGERS and r.levelno < logging.WARNING
    ]
    # The unquiet run is the control: the same requests do log a line each.
    assert bool(request_lines) is not quiet, [r.getMessage() for r in request_lines]


def test_quieting_keeps_a_level_set_explicitly(unset_request_loggers: None) -> None:
    logging.getLogger("httpx").setLevel(logging.DEBUG)
    quiet_request_logs()
    assert logging.getLogger("httpx").level == logging.DEBUG
    assert logging.getLogger("pinecone").level == logging.WARNING


def test_deleting_from_a_namespace_that_does_not_exist_succeeds(
    pinecone_local_server: LocalServer, pinecone_local_index: LocalIndex
) -> None:
    config = sink_config(pinecone_local_server, pinecone_local_index)
    outcomes = run_writer(config, lambda w, _: w.write_batch("nowhere", [change("x", DELETE, namespace="nowhere")]))
    assert outcomes == [DELETED]


def test_5xx_failures_are_retried_by_the_sink_alone(
    pinecone_local_server: LocalServer, pinecone_local_index: LocalIndex
) -> None:
    config = sink_config(pinecone_local_server, pinecone_local_index)
    pinecone_local_server.set_faults(fail_next=[{"kind": "upsert", "count": 2, "status": 503}])
    sleep = RecordingSleep()
    try:

        async def body(writer: PineconeWriter, _: PineconeIndexClient) -> Any:
            return await writer.write_batch("ns", [change("a")]), writer.metrics

        outcomes, metrics = run_writer(config, body, sleep)
    finally:
        pinecone_local_server.reset_faults()
    assert outcomes == [UPSERTED]
    # Two failed attempts seen by the sink itself: the SDK did not retry underneath (one retry layer).
    assert metrics[stats.RETRIES] == 2 and metrics[stats.REQUESTS] == 3
    assert len(sleep.delays) == 2 and all(0 <= d <= 0.05 for d in sleep.delays)
    assert set(stored(pinecone_local_index, ["a"])) == {"a"}


def test_a_429_is_retried_after_the_servers_retry_after(
    pinecone_local_server: LocalServer, pinecone_local_index: LocalIndex
) -> None:
    config = sink_config(pinecone_local_server, pinecone_local_index)
    pinecone_local_server.set_faults(fail_next=[{"kind": "upsert", "count": 1, "status": 429}])
    sleep = RecordingSleep()
    try:
        outcomes = run_writer(config, lambda w, _: w.write_batch("ns", [change("a")]), sleep)
    finally:
        pinecone_local_server.reset_faults()
    assert outcomes == [UPSERTED]
    assert sleep.delays == [1.0]  # the server's Retry-After: 1 beats the 10-50 ms backoff


def test_exhausted_retries_raise_sink_unavailable(
    pinecone_local_server: LocalServer, pinecone_local_index: LocalIndex
) -> None:
    from kafka_pinecone_flink.sinks.retry import SinkUnavailableError

    config = sink_config(pinecone_local_server, pinecone_local_index, max_retries=2)
    pinecone_local_server.set_faults(fail_next=[{"kind": "upsert", "count": 5, "status": 500}])
    try:
        with pytest.raises(SinkUnavailableError, match="failed after 3 attempts"):
            run_writer(config, lambda w, _: w.write_batch("ns", [change("a")]))
    finally:
        pinecone_local_server.reset_faults()


def test_a_400_is_narrowed_to_the_bad_record_and_the_rest_is_written(
    pinecone_local_server: LocalServer, pinecone_local_index: LocalIndex
) -> None:
    config = sink_config(pinecone_local_server, pinecone_local_index)
    changes = [change(f"id{i}", offset=i) for i in range(20)]
    changes[13] = change("id13", offset=13, values=[0.5, 0.5, 0.5])  # wrong dimension for an 8-dim index
    outcomes = run_writer(config, lambda w, _: w.write_batch("ns", changes))
    dead = [i for i, o in enumerate(outcomes) if isinstance(o, DeadLetter)]
    assert dead == [13]
    assert "HTTP 400" in outcomes[13].message and "dimension" in outcomes[13].message.lower()
    assert set(stored(pinecone_local_index, [f"id{i}" for i in range(20)])) == {f"id{i}" for i in range(20)} - {"id13"}


def test_requests_near_the_size_limit_are_accepted_by_the_server(
    pinecone_local_server: LocalServer, pinecone_local_index_factory: Callable[..., LocalIndex]
) -> None:
    index = pinecone_local_index_factory(dimension=384)
    config = sink_config(pinecone_local_server, index, batch_size=1_000)
    changes = [change(f"doc-{i}", dimension=384, offset=i, metadata={"t": "x" * 200}) for i in range(600)]

    async def body(writer: PineconeWriter, _: PineconeIndexClient) -> Any:
        return await writer.write_batch("ns", changes), writer.metrics

    outcomes, metrics = run_writer(config, body)
    assert outcomes == [UPSERTED] * 600
    assert metrics[stats.REQUESTS] >= 2  # the 600 records did not fit one request of DEFAULT_MAX_REQUEST_BYTES
    assert index.index.describe_index_stats().total_vector_count == 600


def test_requests_packed_up_to_the_largest_allowed_size_are_accepted_by_the_server(
    pinecone_local_server: LocalServer, pinecone_local_index_factory: Callable[..., LocalIndex]
) -> None:
    index = pinecone_local_index_factory(dimension=384, metric="euclidean")
    config = sink_config(pinecone_local_server, index, batch_size=1_000, max_request_bytes=PINECONE_MAX_REQUEST_BYTES)
    longest = [-1.2345678901234567e-100] * 384  # 24 JSON characters each: the size bound is exact
    changes = [change(f"doc-{i:04d}", dimension=384, offset=i, values=longest) for i in range(500)]

    async def body(writer: PineconeWriter, _: PineconeIndexClient) -> Any:
        return await writer.write_batch("ns", changes), writer.metrics

    outcomes, metrics = run_writer(config, body)
    assert outcomes == [UPSERTED] * 500
    assert metrics[stats.REQUESTS] == 3  # 9,628-byte records, at most 2,000,000 bytes a request: 207 + 207 + 86
    assert index.index.describe_index_stats().total_vector_count == 500


def test_schema_evolution_none_dead_letters_changes_of_a_missing_namespace(
    pinecone_local_server: LocalServer, pinecone_local_index: LocalIndex
) -> None:
    pinecone_local_index.index.upsert(vectors=[("seed", vec(0, 8))], namespace="known")
    config = sink_config(pinecone_local_server, pinecone_local_index, schema_evolution="none")

    async def body(writer: PineconeWriter, _: PineconeIndexClient) -> Any:
        await writer.require_namespaces(["known"])
        known = await writer.write_batch("known", [change("a", namespace="known")])
        missing = await writer.write_batch("new", [change("b", namespace="new")])
        return known, missing

    known, missing = run_writer(config, body)
    assert known == [UPSERTED]
    assert isinstance(missing[0], DeadLetter) and missing[0].error_class == "NamespaceMissingError"


def test_a_missing_index_is_a_fatal_error_naming_it(
    pinecone_local_server: LocalServer, pinecone_local_index: LocalIndex
) -> None:
    config = sink_config(pinecone_local_server, pinecone_local_index, index_name="no-such-index")
    with pytest.raises(SinkFatalError, match="Pinecone index 'no-such-index' does not exist"):
        asyncio.run(open_index(config))


def test_a_rejected_api_key_is_a_fatal_error_without_the_key(tmp_path: Any) -> None:
    server = start_pinecone_local(api_key="the-right-key", log_path=tmp_path / "server.log")
    try:
        server.client().indexes.create(name="guarded", dimension=8, metric="cosine")
        config = PineconeSinkConfig(index_name="guarded", api_key=SECRET, controller_host=server.url)
        with pytest.raises(SinkFatalError, match=r"rejected the API key for index 'guarded' \(HTTP 401\)") as info:
            asyncio.run(open_index(config))
        assert SECRET not in str(info.value)
    finally:
        server.stop()
