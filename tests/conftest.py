"""Root fixtures: a real Kafka broker and a standalone Flink cluster (tests/fixtures/stack.py) and the local
Pinecone-compatible server (tests/fixtures/pinecone_local.py), all started as real processes.

The fast lane (``make check``, the tests marked ``unit``) must start none of them, nor a JVM: while a unit test or
its fixtures run, starting any program but a Python interpreter or git raises (tests/unit/test_unit_lane.py).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

pytest_plugins = ["tests.fixtures.stack", "tests.fixtures.pinecone_local"]

_ALLOWED_IN_UNIT_TESTS = ("python", "git")
_in_unit_test = False
_popen_init = subprocess.Popen.__init__


def _program(args: Any, shell: bool) -> str:
    first = args if isinstance(args, (str, bytes, os.PathLike)) else next(iter(args), "")
    text = os.fsdecode(first)
    return os.path.basename(text.split()[0] if shell or isinstance(args, (str, bytes)) else text) if text else ""


def _guarded_popen_init(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
    if _in_unit_test:
        program = _program(args, bool(kwargs.get("shell")))
        if not program.startswith(_ALLOWED_IN_UNIT_TESTS):
            raise RuntimeError(
                f"a unit test may not start {program!r} (make check starts no JVM, broker, server or Flink): "
                "move the test to tests/integration/ and mark it integration"
            )
    _popen_init(self, args, *rest, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    subprocess.Popen.__init__ = _guarded_popen_init  # type: ignore[method-assign]


def _guarded(item: pytest.Item) -> Iterator[None]:
    global _in_unit_test
    _in_unit_test = item.get_closest_marker("unit") is not None
    try:
        return (yield)
    finally:
        _in_unit_test = False


# Setup included: a module- or session-scoped fixture starts its process in the setup of the first test that asks
# for it. Teardown is not guarded: the last test of a session may be a unit test that ends other tests' services.
@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    return (yield from _guarded(item))
