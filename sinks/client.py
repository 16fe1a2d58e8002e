"""The narrow seam between the sink and the Pinecone SDK, and the real adapter over ``pinecone`` 10.2.

``IndexClient`` is the handful of data-plane calls the sink makes; unit tests use a small fake, the job and the
integration tests use ``PineconeIndexClient`` over the SDK's asyncio data-plane client (``pinecone.AsyncIndex``).

Exactly one retry layer: the SDK retries 408/429/5xx and transport errors by itself (3 retries, plus a process-wide
per-host retry budget), and ``AsyncPinecone(retry_config=...)`` does not reach the data plane's REST client. So
``open_index`` gives the data-plane client a ``RetryConfig(max_retries=0, retryable_status_codes=frozenset())``
before its first request (its HTTP client is built lazily from that config): every failure then reaches
``sinks.retry``, which owns backoff, Retry-After and the give-up point. This touches one private attribute of the
pinned SDK; if the SDK's layout changes, ``open_index`` fails loudly instead of silently stacking two retry layers.
The control-plane describe at start keeps the SDK's own retries (it is the only layer there).

Upserts go through the data-plane client's own HTTP client (``AsyncIndex._http.post``, which ``AsyncIndex.upsert``
itself calls): its authentication, headers, timeouts and error types, with each record's JSON made once before
(``sinks.batch.encode_upsert``; by decode for records that bring their vectors) put into the body as it is
(``orjson.Fragment``). ``AsyncIndex.upsert`` takes records only as Python objects: each vector would be rebuilt from
bytes as 384 floats, checked and encoded again, ~55 µs a record, a fifth of the job's Python time on pre-computed
vectors. The body is the one ``AsyncIndex.upsert`` sends (pinned by ``tests/unit/test_sink_batch.py``); the same
layout check as for the retries guards the private attribute.

The data-plane client binds to the event loop of its first request, so ``open_index`` may run in another loop (e.g.
``asyncio.run`` in a Flink ``open()``) than the writes.

``sniffio``: httpcore (under the SDK's httpx) runs ``import sniffio`` several times per request to tell asyncio from
trio. sniffio is not installed (nothing in the lock needs it), and a failed import searches every ``sys.path`` entry
again each time: in the job's Python worker that was ~45% of the upsert path's samples (py-spy). This module marks
it absent in ``sys.modules`` (``mark_sniffio_absent``), which makes the same import fail at once; httpcore then
assumes asyncio, which is what the sink runs on, exactly as without the mark.

Request logs: httpx logs every request at INFO (``HTTP Request: POST .../vectors/upsert "HTTP/1.1 200 OK"``), and so
does the SDK. In a Flink Python worker each such line is formatted, queued, sent to the JVM over Beam's logging
channel and written to the TaskManager's log: one line per upsert, 4,744 in a 300,000-record run, and about 6% of the
sink's Python time (py-spy). ``quiet_request_logs`` raises both loggers to WARNING, so a healthy sink logs nothing
per request; failures still reach the log through ``sinks.retry`` and the task's exception.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pinecone import (
    ApiError,
    AsyncIndex,
    AsyncPinecone,
    ForbiddenError,
    NotFoundError,
    RetryConfig,
    UnauthorizedError,
)
from pinecone._internal.config import PineconeConfig
from pinecone.errors.exceptions import PineconeError

from kafka_pinecone_flink.sinks.batch import UpsertRecord, upsert_body
from kafka_pinecone_flink.sinks.config import PineconeSinkConfig
from kafka_pinecone_flink.sinks.retry import (
    ErrorKind,
    SinkFatalError,
    SinkUnavailableError,
    classify,
    describe,
    fatal_message,
)


def mark_sniffio_absent() -> bool:
    """Make ``import sniffio`` fail at once when it is not installed (see the module docstring); True if marked."""
    if "sniffio" in sys.modules or importlib.util.find_spec("sniffio") is not None:
        return False
    sys.modules["sniffio"] = None  # type: ignore[assignment]  # the import system's "known absent" marker
    return True


mark_sniffio_absent()

REQUEST_LOGGERS = ("pinecone", "httpx")
"""The loggers that log every request the sink makes at INFO."""


def quiet_request_logs() -> None:
    """Log only warnings and errors of ``REQUEST_LOGGERS`` (see the module docstring); a level set on one of them
    explicitly (not NOTSET) is kept."""
    for name in REQUEST_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


LOCAL_API_KEY = "pinecone-local-no-auth"
"""Sent when ``api_key`` is None (a local server without authentication): the SDK refuses to start without a key."""
DEFAULT_NAMESPACE_WIRE_NAME = "__default__"
"""How describe_index_stats names the default ("") namespace."""
NO_SDK_RETRIES = RetryConfig(max_retries=0, retryable_status_codes=frozenset())
UPSERT_PATH = "/vectors/upsert"


@dataclass(frozen=True, slots=True)
class IndexInfo:
    """What the job needs to know about the index at start."""

    name: str
    host: str
    dimension: int | None
    metric: str | None


class IndexClient(Protocol):
    """The data-plane calls the sink makes; failures raise the SDK exceptions that ``sinks.retry.classify`` reads."""

    async def upsert(self, records: Sequence[UpsertRecord], namespace: str) -> None: ...

    async def delete(self, ids: Sequence[str], namespace: str) -> None: ...

    async def namespaces(self) -> set[str]:
        """Names of the namespaces that exist now ("" for the default namespace)."""
        ...

    async def close(self) -> None: ...


class PineconeIndexClient:
    """``IndexClient`` over ``pinecone.AsyncIndex`` with the SDK's retries switched off."""

    def __init__(self, index: AsyncIndex, info: IndexInfo) -> None:
        self._index = index
        self.info = info

    async def upsert(self, records: Sequence[UpsertRecord], namespace: str) -> None:
        # The request AsyncIndex.upsert would send, with each record's JSON as it is (see the module docstring).
        await self._index._http.post(UPSERT_PATH, json=upsert_body(records, namespace))

    async def delete(self, ids: Sequence[str], namespace: str) -> None:
        await self._index.delete(ids=list(ids), namespace=namespace)

    async def namespaces(self) -> set[str]:
        stats = await self._index.describe_index_stats()
        return {"" if name == DEFAULT_NAMESPACE_WIRE_NAME else name for name in stats.namespaces}

    async def close(self) -> None:
        await self._index.close()

    def __repr__(self) -> str:
        return f"PineconeIndexClient(index={self.info.name!r}, host={self.info.host!r})"


def disable_sdk_retries(index: AsyncIndex) -> None:
    """Make the SDK send every data-plane request exactly once (see the module docstring)."""
    http = getattr(index, "_http", None)
    config = getattr(http, "_config", None)
    if (
        http is None
        or not isinstance(config, PineconeConfig)
        or getattr(http, "_client", "absent") is not None
        or not callable(getattr(http, "post", None))
    ):
        raise SinkFatalError(
            "the installed pinecone SDK's data-plane client is not laid out as pinecone 10.2.0's: the sink cannot "
            "switch off the SDK's retries or send its requests through it; pin pinecone==10.2.0 or update "
            "kafka_pinecone_flink.sinks.client.disable_sdk_retries"
        )
    http._config = dataclasses.replace(config, retry_config=NO_SDK_RETRIES)


def _dense_dimension_and_metric(model: object) -> tuple[int | None, str | None]:
    # IndexModel.dimension/.metric resolve the schema's sole dense field; they raise AttributeError otherwise
    # (several dense fields, or a sparse-only index, where dimension is None and metric is "dotproduct").
    try:
        dimension = model.dimension  # type: ignore[attr-defined]
    except AttributeError:
        dimension = None
    try:
        metric = model.metric  # type: ignore[attr-defined]
    except AttributeError:
        metric = None
    return dimension, metric


async def open_index(config: PineconeSinkConfig) -> PineconeIndexClient:
    """Describe ``config.index_name`` once and return a data-plane client for it.

    Raises ``SinkFatalError`` for a missing index (naming it), rejected credentials (401/403, never showing the key)
    or any other non-transient failure, and ``SinkUnavailableError`` when the control plane cannot be reached.
    """
    api_key = config.api_key or LOCAL_API_KEY
    secrets = (config.api_key,)
    try:
        async with AsyncPinecone(
            api_key=api_key, host=config.controller_host, timeout=config.request_timeout_s
        ) as control:
            model = await control.indexes.describe(config.index_name)
    except NotFoundError:
        raise SinkFatalError(
            f"Pinecone index {config.index_name!r} does not exist: create it (with the embedding model's dimension) "
            "or fix index_name"
        ) from None
    except (UnauthorizedError, ForbiddenError, ApiError) as exc:
        raise SinkFatalError(fatal_message(exc, index_name=config.index_name, secrets=secrets)) from None
    except PineconeError as exc:
        if classify(exc) is ErrorKind.TRANSIENT:
            raise SinkUnavailableError(
                f"cannot reach the Pinecone control plane to describe index {config.index_name!r}: "
                f"{describe(exc, secrets)}"
            ) from None
        raise SinkFatalError(
            f"cannot describe Pinecone index {config.index_name!r}: {describe(exc, secrets)}"
        ) from None
    host = config.index_host or model.host
    if not host:
        raise SinkFatalError(f"Pinecone index {config.index_name!r} has no data-plane host yet (is it still starting?)")
    dimension, metric = _dense_dimension_and_metric(model)
    index = AsyncIndex(host=host, api_key=api_key, timeout=config.request_timeout_s)
    disable_sdk_retries(index)
    return PineconeIndexClient(index, IndexInfo(config.index_name, host, dimension, metric))
