"""Fixtures for the pinecone_local tests (the plugin's fixtures, imported because only the root conftest may use
``pytest_plugins``), plus a reset of the SDK's process-wide retry budget between tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.fixtures.pinecone_local import (  # noqa: F401 - re-exported fixtures
    LocalServer,
    pinecone_local_index,
    pinecone_local_index_factory,
    pinecone_local_server,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "integration: starts a pinecone_local server process")
    config.addinivalue_line("markers", "unit: pure in-process test")


@pytest.fixture(autouse=True)
def _fresh_sdk_retry_budget() -> Iterator[None]:
    """The SDK keeps one retry budget per host name for the whole process (private API, SDK 10.2.0); fault tests
    drain it on purpose, so every test starts with a full one."""
    from pinecone._internal.http_client import get_budget_registry

    get_budget_registry()._reset()
    yield


@pytest.fixture
def raw(pinecone_local_server: LocalServer) -> Iterator[httpx.Client]:  # noqa: F811
    """A raw HTTP client for requests the SDK refuses to send."""
    with httpx.Client(timeout=10) as client:
        yield client
