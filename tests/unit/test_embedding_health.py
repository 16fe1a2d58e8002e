"""Embedding health (sinks.embedding_health): norms per namespace, and drift = 1 - cos(recent centroid, reference
centroid), the reference taken over the first N vectors or given in a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from kafka_pinecone_flink.sinks.embedding_health import (
    MAX_NAMESPACES,
    EmbeddingHealth,
    ReferenceFileError,
    load_reference,
)
from kafka_pinecone_flink.udfs.records import DELETE, UPSERT, Change, SourceRecord
from tests.unit.test_window import Clock

pytestmark = pytest.mark.unit


def change(values: list[float] | None, namespace: str = "ns", op: str = UPSERT) -> Change:
    source = SourceRecord(topic="t", partition=0, offset=0, timestamp_ms=0, key=b"k", value=b"{}")
    return Change(op=op, namespace=namespace, id="a", version=0, source=source, values=values)  # type: ignore[arg-type]


def around(direction: list[float], n: int, seed: int) -> list[Change]:
    rng = np.random.default_rng(seed)
    base = np.asarray(direction, dtype=float)
    return [change((base + rng.normal(0, 0.05, base.shape)).tolist()) for _ in range(n)]


def test_drift_is_zero_while_the_distribution_holds_and_rises_when_it_moves() -> None:
    clock = Clock()
    health = EmbeddingHealth(reference_size=50, window=50, clock=clock)
    before = around([1, 0, 0, 0], 200, seed=1)
    for start in range(0, 200, 20):  # groups as the sink gets them, 16 vectors sampled from each
        health.observe(before[start : start + 20])
        clock.now += 0.2
    assert health.drift("ns") < 0.01
    after = around([0, 1, 0, 0], 300, seed=2)
    for start in range(0, 300, 20):
        health.observe(after[start : start + 20])
        clock.now += 0.2
    assert 0.9 < health.drift("ns") <= 1.05
    assert health.drift("other") == 0.0


def test_scale_alone_is_no_drift_but_shows_in_the_norms() -> None:
    health = EmbeddingHealth(reference_size=10, window=10)
    health.observe([change([3.0, 4.0])] * 20 + [change([30.0, 40.0])] * 20)
    assert health.drift("ns") == pytest.approx(0.0, abs=1e-9)
    norms = health.namespaces["ns"].norms
    assert (norms.quantile(0.5), norms.quantile(0.99)) == (5.0, 50.0)


def test_a_reference_file_fixes_the_reference_per_namespace_or_for_all(tmp_path: Path) -> None:
    path = tmp_path / "reference.json"
    path.write_text(json.dumps({"ns": [0, 2], "*": [1, 0]}))
    health = EmbeddingHealth(reference_size=10**6, window=1, reference=load_reference(path))
    health.observe([change([1.0, 0.0]), change([1.0, 0.0], namespace="b")])
    assert health.drift("ns") == pytest.approx(1.0)
    assert health.drift("b") == pytest.approx(0.0)


@pytest.mark.parametrize("content", ["[1, 2]", '{"ns": []}', '{"ns": [0, 0]}', '{"ns": ["a"]}', "{", "{}"])
def test_a_bad_reference_file_is_refused_with_a_reason(tmp_path: Path, content: str) -> None:
    path = tmp_path / "reference.json"
    path.write_text(content)
    with pytest.raises(ReferenceFileError, match="drift reference"):
        load_reference(path)


def test_deletes_and_text_only_changes_are_ignored_and_namespaces_are_capped() -> None:
    health = EmbeddingHealth(reference_size=1, window=1)
    health.observe([change(None), change(None, op=DELETE)])
    assert health.namespaces == {}
    health.observe([change([1.0, 0.0], namespace=f"n{i}") for i in range(MAX_NAMESPACES + 5)])
    assert len(health.namespaces) == MAX_NAMESPACES


def test_each_namespace_gets_its_gauges_in_a_namespace_group_registered_when_the_gauges_are_read() -> None:
    gauges: dict[tuple[str, str], Any] = {}

    class Group:
        def __init__(self, namespace: str = "") -> None:
            self.namespace = namespace

        def add_group(self, key: str, value: str) -> Group:
            assert key == "namespace"
            return Group(value)

        def gauge(self, name: str, read: Any) -> None:
            gauges[(self.namespace, name)] = read

    health = EmbeddingHealth(reference_size=1, window=1)
    health.register(Group())
    health.observe([change([1.0, 0.0]), change([0.0, 1.0])])
    # observe() runs on the sink's asyncio thread: it registers nothing itself.
    assert set(gauges) == {("", "embedding_namespaces")}
    assert gauges[("", "embedding_namespaces")]() == 1  # read at a bundle end: registers the new namespace
    assert gauges[("ns", "embedding_drift_ppm")]() == 1_000_000
    assert gauges[("ns", "vectors_observed")]() == 2
    assert gauges[("ns", "vector_norm_milli_p50")]() == 1_000
    assert gauges[("", "embedding_namespaces")]() == 1


def test_vectors_that_travel_as_request_json_are_read_back_and_large_groups_are_sampled() -> None:
    from kafka_pinecone_flink.sinks.embedding_health import SAMPLE_PER_GROUP
    from kafka_pinecone_flink.udfs.records import upsert_json

    packed = change(None)
    packed.json = upsert_json("a", [0.0, 2.0], None, None)
    health = EmbeddingHealth(reference_size=1, window=1)
    health.observe([packed])
    assert health.namespaces["ns"].norms.values() == [2.0]
    health.observe([change([1.0, 0.0])] * (SAMPLE_PER_GROUP * 3))
    assert health.observed["ns"] == 1 + SAMPLE_PER_GROUP
    health.observe([change([1.0, 0.0])] * 250)  # a full group of the Batcher: 16 of its vectors are read back
    assert health.observed["ns"] == 1 + SAMPLE_PER_GROUP + 16


def test_the_drift_options_reach_the_sink_and_a_bad_reference_file_is_refused_when_the_job_is_built(
    tmp_path: Path,
) -> None:
    from kafka_pinecone_flink.jobs.config import JobConfigError, load_job_config
    from kafka_pinecone_flink.sinks.pinecone_sink import PineconeSinkFunction

    base = ["--kafka.topics", "orders", "--pinecone.index", "products"]
    env = {"PINECONE_API_KEY": "k"}
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps({"*": [1, 0, 0]}))
    bad.write_text(json.dumps({"ns": [0, 0]}))
    config = load_job_config(
        [
            *base,
            "--metrics.drift-window=10",
            "--metrics.drift-reference-size=5",
            f"--metrics.drift-reference-file={good}",
        ],
        env,
    )
    assert (config.sink.drift_window, config.sink.drift_reference_size) == (10, 5)
    assert PineconeSinkFunction(config.sink)._drift_reference == {"*": [1.0, 0.0, 0.0]}
    with pytest.raises(JobConfigError, match="not all zero"):
        load_job_config([*base, f"--metrics.drift-reference-file={bad}"], env)


def test_sampling_is_capped_per_namespace_and_second_whatever_the_rate_of_groups() -> None:
    from kafka_pinecone_flink.sinks.embedding_health import SAMPLE_PER_GROUP, SAMPLES_PER_SECOND

    clock = Clock()
    health = EmbeddingHealth(reference_size=1, window=1, clock=clock)
    group = [change([1.0, 0.0])] * 250
    for _ in range(20):  # 20 full groups at once: the bucket's SAMPLES_PER_SECOND, then nothing
        health.observe(group)
    assert health.observed["ns"] == SAMPLES_PER_SECOND
    health.observe([change([1.0, 0.0], namespace="other")] * 250)  # another namespace has its own bucket
    assert health.observed["other"] == SAMPLE_PER_GROUP
    clock.now += 0.05  # refills 6.4 vectors: 6 are sampled, and the fraction waits
    health.observe(group)
    assert health.observed["ns"] == SAMPLES_PER_SECOND + 6
    clock.now += 0.1  # 12.8 more, with the 0.4 left over: 13
    health.observe(group)
    assert health.observed["ns"] == SAMPLES_PER_SECOND + 6 + 13
    for _ in range(100):  # 32 groups a second for about 3 s: 128 a second, never 16 per group
        clock.now += 1 / 32
        health.observe(group)
    assert health.observed["ns"] == pytest.approx(SAMPLES_PER_SECOND + 19 + 100 / 32 * SAMPLES_PER_SECOND, abs=2)
    clock.now += 60  # after a quiet minute, the bucket holds SAMPLES_PER_SECOND again, not more
    before = health.observed["ns"]
    for _ in range(20):
        health.observe(group)
    assert health.observed["ns"] - before == SAMPLES_PER_SECOND


def test_small_groups_below_the_cap_are_sampled_whole() -> None:
    clock = Clock()
    health = EmbeddingHealth(reference_size=1, window=1, clock=clock)
    for _ in range(50):  # 10 groups of 5 a second: 50 vectors a second, under the cap
        health.observe([change([1.0, 0.0])] * 5)
        clock.now += 0.1
    assert health.observed["ns"] == 250
