"""The job's JVM operators refuse a stream whose rows are not their contract's (jvm/contract/rows.txt): checked when
the graph is built, through PyFlink's Java gateway (the Python side of the contract is tested in
tests/unit/test_jvm_contract.py)."""

from __future__ import annotations

from typing import Any

import pytest
from pyflink.common import Row

from kafka_pinecone_flink.udfs import dedup, stage_batch
from kafka_pinecone_flink.udfs.records import UPSERT
from tests.unit.test_jvm_contract import _change

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env() -> Any:
    from pyflink.datastream import StreamExecutionEnvironment

    from .jvm_dedup import dedup_package

    dedup_package()  # the project's jar on the gateway's class path
    return StreamExecutionEnvironment.get_execution_environment()


def test_the_job_wires_each_jvm_operator_only_to_rows_of_its_contract(env: Any) -> None:
    from pyflink.common import Types as T

    decoded = env.from_collection([dedup.dedup_row(_change(UPSERT))], type_info=dedup.input_type())
    dedup.keyed_dedup(decoded)  # the contract's row: accepted
    raw = T.PRIMITIVE_ARRAY(T.BYTE())
    swapped = T.ROW_NAMED(
        ["key", "delete", "version", "text_hash", "content_hash", "payload"],
        [T.STRING(), T.BOOLEAN(), T.STRING(), raw, raw, raw],
    )
    other = env.from_collection([Row("ns/a", False, None, b"", b"", b"")], type_info=swapped)
    with pytest.raises(Exception, match=r"jvm/contract/rows.txt, dedup.input"):
        dedup.keyed_dedup(other)

    results = env.from_collection([], type_info=stage_batch.result_type(dedup.input_type()))
    stage_batch.batch_results(results, "decode", dedup.input_type())  # accepted
    with pytest.raises(Exception, match=r"jvm/contract/rows.txt, batch.result"):
        stage_batch.batch_results(results, "decode", swapped)
