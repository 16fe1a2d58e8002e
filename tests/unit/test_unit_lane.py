"""The fast lane (``make check``: the tests marked ``unit``) starts no JVM, broker, server or Flink: tests/conftest.py
refuses any process but a Python interpreter or git while a unit test (or its fixtures) runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("argv", [["java", "-version"], ["/usr/bin/env", "java", "-version"], ["bash", "-c", "true"]])
def test_a_unit_test_cannot_start_another_program(argv: list[str]) -> None:
    with pytest.raises(RuntimeError, match="a unit test may not start"):
        subprocess.run(argv, capture_output=True, check=False, timeout=30)


def test_a_unit_test_may_run_a_python_subprocess() -> None:
    result = subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "42"


def test_every_test_module_here_is_in_the_fast_lane() -> None:
    # A module here without the mark runs outside `make check`, in the slow pass with the integration tests.
    unmarked = [
        path.name
        for path in sorted(Path(__file__).parent.glob("test_*.py"))
        if "pytestmark = pytest.mark.unit" not in path.read_text()
    ]
    assert unmarked == []
