"""The dedup rule tests of tests/unit/test_dedup.py, run against the JVM rules the job uses (``Dedup.java``, through
PyFlink's Java gateway) instead of their Python oracle: every test there that takes the ``decide`` fixture is
collected here too, with this module's ``decide``."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from kafka_pinecone_flink.udfs.dedup import Decision, DedupState
from kafka_pinecone_flink.udfs.records import Change
from tests.unit import test_dedup as rules

from .jvm_dedup import dedup_package, jvm_decide

pytestmark = pytest.mark.integration

RULE_TESTS = {
    name: test
    for name, test in vars(rules).items()
    if name.startswith("test_") and callable(test) and "decide" in inspect.signature(test).parameters
}
globals().update(RULE_TESTS)


@pytest.fixture(scope="module")
def jvm() -> Any:
    return dedup_package()


@pytest.fixture
def decide(jvm: Any) -> Any:
    def on_the_jvm(state: DedupState | None, change: Change) -> Decision:
        return jvm_decide(jvm, state, change)

    return on_the_jvm


def test_every_rule_test_runs_here() -> None:
    assert len(RULE_TESTS) >= 10
