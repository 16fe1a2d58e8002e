"""The job's metrics reach Prometheus: Flink's Prometheus reporter (flink-conf/config.yaml) serves every metric of a
running local job on /metrics, under the names README "Monitoring" documents."""

from __future__ import annotations

import os
import re
import time
from typing import Any

import httpx
import pytest

from kafka_pinecone_flink.stack.paths import free_port
from tests.integration.ingest_harness import IngestHarness, value

pytestmark = pytest.mark.integration

SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)$", re.M)


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The samples of metric ``name`` in Prometheus's text format: (labels, value)."""
    found = []
    for match in SAMPLE.finditer(text):
        if match["name"] == name:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match["labels"] or ""))
            found.append((labels, float(match["value"])))
    return found


def total(text: str, name: str) -> float:
    return sum(v for _, v in samples(text, name))


def test_a_running_job_serves_its_metrics_on_the_prometheus_endpoint(ingest: IngestHarness) -> None:
    records = [(f"k{i}".encode(), value(values=[1, i, 0, 0])) for i in range(40)]
    port = free_port()
    seen: dict[str, str] = {}

    def scrape(job: Any) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                seen["text"] = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            except httpx.HTTPError:
                pass
            else:
                if total(seen["text"], "flink_taskmanager_job_task_operator_upserted") == 40:
                    return
            time.sleep(1)

    ingest.run(
        records,
        f"--flink.conf=metrics.reporter.prom.port={port}",
        during=scrape,
        unbounded=True,
        expect_success=False,
    )
    text = seen.get("text", "")
    if os.environ.get("KPF_DUMP_METRICS"):
        with open(os.environ["KPF_DUMP_METRICS"], "w") as handle:
            handle.write(text)
    assert total(text, "flink_taskmanager_job_task_operator_upserted") == 40, text[-2000:]
    operator = "flink_taskmanager_job_task_operator_"
    # Freshness (Kafka timestamp to Pinecone's acknowledgement) and request latency as per-subtask percentiles.
    for histogram in ("freshness_ms", "request_latency_ms", "flush_latency_ms"):
        p50, p95, p99 = (total(text, f"{operator}{histogram}_{q}") for q in ("p50", "p95", "p99"))
        assert 0 < p50 <= p95 <= p99, (histogram, p50, p95, p99)
    ((labels, _),) = samples(text, f"{operator}freshness_ms_p99")
    assert labels["job_name"] == "kafka_pinecone_ingest" and labels["subtask_index"] == "0", labels
    # Consumer lag: records behind the latest offset per source subtask, offsets per topic and partition.
    assert samples(text, f"{operator}pendingRecords") and total(text, f"{operator}pendingRecords") == 0
    offsets = samples(text, f"{operator}KafkaSourceReader_topic_partition_currentOffset")
    assert [(o["partition"], v) for o, v in offsets] == [("0", 39.0)], offsets
    assert samples(text, f"{operator}lag_ms")
