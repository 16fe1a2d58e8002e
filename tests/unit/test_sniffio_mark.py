"""The sink marks the uninstalled ``sniffio`` absent, so httpcore's per-request probe for it costs nothing."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from kafka_pinecone_flink.sinks import client

pytestmark = pytest.mark.unit


@pytest.mark.skipif(importlib.util.find_spec("sniffio") is not None, reason="sniffio is installed here")
def test_an_uninstalled_sniffio_fails_to_import_at_once_and_httpcore_still_picks_asyncio() -> None:
    from httpcore._synchronization import current_async_library

    assert "sniffio" in sys.modules and sys.modules["sniffio"] is None  # marked when the sink's client was imported
    assert client.mark_sniffio_absent() is False  # already marked: nothing to do
    with pytest.raises(ModuleNotFoundError):
        import sniffio  # noqa: F401
    assert current_async_library() == "asyncio"
