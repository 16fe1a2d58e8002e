"""pytest fixtures that run pinecone_local as a real subprocess.

Register with ``pytest_plugins = ["pinecone_local.pytest_plugin"]`` in the root ``conftest.py``.

* ``pinecone_local_server`` (session): an in-memory server on a free port, shared by the whole run.
* ``pinecone_local_index`` (function): a fresh, uniquely named 8-dimensional cosine index on that server,
  deleted afterwards; ``pinecone_local_index_factory(dimension=..., metric=...)`` makes others.
* ``start_pinecone_local(...)`` starts a dedicated server (own data directory, API key, fault flags) for tests that
  kill or restart it; the returned ``LocalServer`` can ``kill()`` (SIGKILL), ``stop()`` and ``restart()``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from .launcher import LocalServer, start_pinecone_local, unique_index_name

__all__ = ["LocalIndex", "LocalServer", "start_pinecone_local", "unique_index_name"]


@dataclass
class LocalIndex:
    """An index created for one test: its name, host and an SDK ``Index`` on it."""

    name: str
    host: str
    index: Any
    dimension: int
    metric: str


@pytest.fixture(scope="session")
def pinecone_local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A shared in-memory pinecone_local process for the whole test session."""
    log_path = tmp_path_factory.mktemp("pinecone-local") / "server.log"
    server = start_pinecone_local(log_path=log_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pinecone_local_index_factory(pinecone_local_server: LocalServer) -> Iterator[Callable[..., LocalIndex]]:
    """Create uniquely named indexes (deleted after the test): ``factory(dimension=8, metric="cosine", **create)``."""
    client = pinecone_local_server.client()
    created: list[str] = []

    def create(dimension: int = 8, metric: str = "cosine", **kwargs: Any) -> LocalIndex:
        name = unique_index_name()
        model = client.indexes.create(name=name, dimension=dimension, metric=metric, **kwargs)
        created.append(name)
        return LocalIndex(
            name=name, host=model.host, index=client.index(host=model.host), dimension=dimension, metric=metric
        )

    yield create
    for name in created:
        with contextlib.suppress(Exception):  # cleanup must not mask the test's own failure
            client.indexes.delete(name)


@pytest.fixture
def pinecone_local_index(pinecone_local_index_factory: Callable[..., LocalIndex]) -> LocalIndex:
    """A fresh 8-dimensional cosine index on the shared server."""
    return pinecone_local_index_factory()
