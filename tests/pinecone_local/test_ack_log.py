"""``--ack-log``: an opt-in line per written record, after it is applied, with the server's wall-clock time."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kafka_pinecone_flink.pinecone_local.launcher import start_pinecone_local

pytestmark = pytest.mark.integration


def _lines(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()]


def test_the_ack_log_has_one_line_per_upserted_and_updated_record_and_nothing_else(tmp_path: Path) -> None:
    log = tmp_path / "acks.tsv"
    server = start_pinecone_local(extra_args=("--ack-log", str(log)))
    try:
        pc = server.client()
        pc.create_index(name="acks", dimension=2, metric="cosine", spec={"serverless": {"cloud": "aws", "region": "x"}})
        index = pc.index(name="acks")
        before = time.time()
        index.upsert(vectors=[("a", [1.0, 0.0]), ("b", [0.0, 1.0])], namespace="ns")
        after_upsert = time.time()
        index.update(id="a", set_metadata={"k": "v"}, namespace="ns")
        index.fetch(ids=["a"], namespace="ns")  # reads write nothing
        index.delete(ids=["b"], namespace="ns")  # deletes are not acknowledgements of a write
        lines = _lines(log)
    finally:
        server.stop()
    assert [line[1:] for line in lines] == [["acks", "ns", "a"], ["acks", "ns", "b"], ["acks", "ns", "a"]]
    stamps = [float(line[0]) for line in lines]
    assert before <= stamps[0] == stamps[1] <= after_upsert <= stamps[2]
