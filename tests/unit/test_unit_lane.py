"""The fast lane (``make check``: the tests marked ``unit``) starts no JVM, broker, server or Flink: tests/conftest.py
refuses any process but a Python interpreter or git while a unit test (or its fixtures) runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("argv", [["java", "-version"], ["/usr/bin/env", "java", "-version"], ["bash", "-c", "true"]])
def test_a_unit_test_cannot_start_another_program(argv: list[str]) -> None:
    with pytest.raises(RuntimeError, match="a unit test may not start"):
        subprocess.run(argv, capture_output=True, check=False, timeout=30)


def test_a_unit_test_may_run_a_python_subprocess() -> None:
    result = subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "42"
