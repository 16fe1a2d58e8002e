"""The job's metrics reach Prometheus: Flink's Prometheus reporter (flink-conf/config.yaml) serves every metric of a
running local job on /metrics, under the names README "Monitoring" documents."""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from kafka_pinecone_flink.stack.kafka_client import produce
from kafka_pinecone_flink.stack.paths import ROOT, free_port
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


def test_each_partitions_records_lag_rises_while_the_sink_holds_the_job_back_and_falls_to_zero(
    ingest: IngestHarness,
) -> None:
    # A Pinecone that answers after 3 s holds the job back; with small groups and bundles (a Python stage takes in
    # whatever its transport buffers hold until its bundle is full: by default, megabytes), the source stops reading
    # once the buffers between it and the sink are full, and most of the backlog stays in Kafka.
    padding = "x" * 1000
    records = [(f"k{i}".encode(), value(values=[1, i % 7, 0, 0], note=padding)) for i in range(3000)]
    port = free_port()
    lag = "flink_taskmanager_job_task_operator_topic_partition_records_lag"
    seen: dict[str, Any] = {}

    def scrape(job: Any) -> None:
        started = time.monotonic()
        deadline = started + 180
        try:
            while time.monotonic() < deadline and "behind" not in seen:
                with contextlib.suppress(httpx.HTTPError):
                    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                    by_partition = {labels["partition"]: v for labels, v in samples(text, lag)}
                    # A partition appears once the source has handed on a record of it: held back from the start,
                    # the source may hand on one partition's first fetch before any record of the other.
                    if any(v >= 100 for v in by_partition.values()):
                        seen["behind"] = by_partition
                        seen["behind_after_s"] = round(time.monotonic() - started, 1)
                        seen["pending"] = total(text, "flink_taskmanager_job_task_operator_pendingRecords")
                time.sleep(0.5)
        finally:
            ingest.pinecone_admin("POST", "/admin/faults/reset")
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                seen["text"] = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                if total(seen["text"], "flink_taskmanager_job_task_operator_upserted") == len(records) and not any(
                    v for _, v in samples(seen["text"], lag)
                ):
                    seen["caught_up_after_s"] = round(time.monotonic() - started, 1)
                    return
            time.sleep(1)

    ingest.pinecone_admin("PUT", "/admin/faults", {"latency_ms": 3000})
    try:
        ingest.run(
            records,
            f"--flink.conf=metrics.reporter.prom.port={port}",
            "--metrics.partition-lag-interval-ms=500",
            "--sink.batch-size=20",
            "--sink.max-concurrency=1",
            "--batch.max-records=20",
            "--flink.conf=python.fn-execution.bundle.size=2",
            partitions=2,
            during=scrape,
            unbounded=True,
            expect_success=False,
        )
    finally:
        ingest.pinecone_admin("POST", "/admin/faults/reset")
    print({k: v for k, v in seen.items() if k != "text"})
    assert "behind" in seen, "no partition was seen behind its latest offset"
    # While held back, a partition was behind, and the source's own sum agrees that records were waiting.
    assert sum(seen["behind"].values()) <= len(records) and seen["pending"] > 0, seen
    text = seen["text"]
    assert total(text, "flink_taskmanager_job_task_operator_upserted") == len(records)
    final = samples(text, lag)
    assert sorted(labels["partition"] for labels, _ in final) == ["0", "1"], final
    assert all(v == 0 for _, v in final) and {labels["topic"] for labels, _ in final} != {""}, final
    assert all(labels["operator_name"] == "Partition_lag" for labels, _ in final), final


# --- a real Prometheus server scrapes a running job and runs the dashboard's and the rules' queries ----------------
MONITORING = ROOT / "monitoring"
DASHBOARD = MONITORING / "grafana" / "kpf-dashboard.json"
RULE_FILES = (MONITORING / "prometheus" / "rules.yml", MONITORING / "prometheus" / "alerts.yml")
EMBED_ONLY = "embed_batch_latency_ms"
"""Metrics of the embed stage, which a job whose records bring their vectors does not have."""


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def rule_queries() -> list[tuple[str, str]]:
    """(name, expression) of every recording and alert rule."""
    rules = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            rules += [(rule.get("record") or rule["alert"], rule["expr"]) for rule in group["rules"]]
    return rules


class PrometheusServer:
    """Debian's ``prometheus`` scraping one target every second, with the project's rule files."""

    def __init__(self, workdir: Path, target: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(path) for path in RULE_FILES],
                    "scrape_configs": [{"job_name": "flink", "static_configs": [{"targets": [target]}]}],
                }
            )
        )
        self.log = open(workdir / "prometheus.log", "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert answer["status"] == "success", (expr, answer)
        return [(item["metric"], float(item["value"][1])) for item in answer["data"]["result"]]

    def value(self, expr: str) -> float | None:
        try:
            result = self.query(expr)
        except (httpx.HTTPError, ValueError):
            return None
        return result[0][1] if result else None

    def wait_for(self, expr: str, accept: Callable[[float], bool], timeout_s: float = 180) -> float:
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            last = self.value(expr)
            if last is not None and accept(last):
                return last
            time.sleep(1)
        raise AssertionError(f"{expr}: last value {last} after {timeout_s} s")

    def rules(self) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/api/v1/rules", timeout=10).json()
        return [rule for group in answer["data"]["groups"] for rule in group["rules"]]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def prometheus_label(value: str) -> str:
    """A label value as Flink's Prometheus reporter writes it (characters not allowed in a name become "_")."""
    return re.sub(r"[^a-zA-Z0-9_:]", "_", value)


def vectors_around(direction: list[float], n: int, seed: int, prefix: str) -> list[tuple[bytes, bytes]]:
    rng = random.Random(seed)
    return [(f"{prefix}{i}".encode(), value(values=[d + rng.gauss(0, 0.05) for d in direction])) for i in range(n)]


@pytest.mark.skipif(
    shutil.which("prometheus") is None,
    reason="no prometheus server on PATH: scripts/setup.sh installs Debian's `prometheus` package where apt can "
    "(or run `apt-get install prometheus`); this test needs it to run the dashboard's and the rules' queries",
)
def test_prometheus_scrapes_the_job_and_every_dashboard_and_rule_query_returns_plausible_series(
    ingest: IngestHarness, tmp_path: Path
) -> None:
    reporter_port = free_port()
    topic = f"prom-{uuid.uuid4().hex[:8]}"
    first = vectors_around([1, 0, 0, 0], 150, seed=1, prefix="a")
    bad = [(b"z", value(values=[0, 0, 0, 0])), (b"n", b'{"values": "[1, NaN, 0, 0]"}'), (b"j", b"{")]
    second = vectors_around([0, 0, 1, 0], 150, seed=2, prefix="b")
    # Per-namespace rejections: one more zero vector mid-stream (a rate needs an increase Prometheus sees), and a
    # second topic (namespace) whose vectors, all fine, arrive mid-stream too.
    late_bad = [(b"z2", value(values=[0, 0, 0, 0]))]
    quiet = f"prom-quiet-{uuid.uuid4().hex[:8]}"
    quiet_vectors = vectors_around([0, 1, 0, 0], 20, seed=3, prefix="q")
    seen: dict[str, Any] = {}
    linger_s = 40 if os.environ.get("KPF_DASHBOARD_PNG") else 0  # a longer picture for README

    def observe(job: Any) -> None:
        workdir = tmp_path / "prometheus"
        workdir.mkdir()
        prometheus = PrometheusServer(workdir, f"127.0.0.1:{reporter_port}")
        try:
            written = 'sum(flink_taskmanager_job_task_operator_upserted{operator_name="Pinecone_sink_results"})'
            prometheus.wait_for(written, lambda v: v == len(first))
            # The bounded backlog is consumed: no record behind the latest offset.
            seen["lag_after_backlog"] = prometheus.wait_for("kpf:consumer_lag_records", lambda v: v == 0)
            seen["drift_before"] = prometheus.wait_for("max(kpf:embedding_drift)", lambda v: True)
            time.sleep(linger_s)
            produce(ingest.broker.bootstrap_servers, topic, second + late_bad)
            produce(ingest.broker.bootstrap_servers, quiet, quiet_vectors)
            prometheus.wait_for(written, lambda v: v == len(first) + len(second) + len(quiet_vectors))
            seen["drift_after"] = prometheus.wait_for("max(kpf:embedding_drift)", lambda v: v > 0.5)
            time.sleep(5 + linger_s)  # a few more scrapes and rule evaluations, for the rates
            seen["dashboard"] = {expr: prometheus.query(expr.replace("$job", ".+")) for expr in dashboard_queries()}
            seen["rules"] = {name: prometheus.query(expr) for name, expr in rule_queries()}
            seen["rule_states"] = prometheus.rules()
            seen["freshness"] = [prometheus.value(f"max(kpf:freshness_ms:{q})") for q in ("p50", "p95", "p99")]
            seen["lag_at_end"] = prometheus.value("kpf:consumer_lag_records")
            seen["dead_letters"] = prometheus.value("sum(kpf:dead_letters:rate5m)")
            if os.environ.get("KPF_DASHBOARD_PNG"):  # README's picture: scripts/render_dashboard.py on this run
                render = [sys.executable, str(ROOT / "scripts" / "render_dashboard.py"), "--prometheus", prometheus.url]
                subprocess.run(
                    [*render, "--out", os.environ["KPF_DASHBOARD_PNG"], "--minutes", "3"],
                    check=True,
                    timeout=120,
                )
        finally:
            prometheus.stop()

    ingest.run(
        {topic: first + bad, quiet: []},
        f"--flink.conf=metrics.reporter.prom.port={reporter_port}",
        # The sink reads back at most 16 vectors of a group (sinks.embedding_health.SAMPLE_PER_GROUP; its cap of
        # 128 a second leaves that alone for the few groups here), and each batch of 150 may arrive as one group: a
        # reference of 10 is complete after the first, and a window of 8 leaves 12% of the old direction in the
        # recent mean after 16 vectors of the new one.
        "--metrics.drift-reference-size=10",
        "--metrics.drift-window=8",
        during=observe,
        unbounded=True,
        expect_success=False,
        exact_topic_names=True,
    )
    print({k: v for k, v in seen.items() if k not in ("dashboard", "rules", "rule_states")})
    assert seen["lag_after_backlog"] == 0 and seen["lag_at_end"] == 0, seen
    assert seen["drift_before"] < 0.05 < 0.5 < seen["drift_after"] <= 2, seen
    p50, p95, p99 = seen["freshness"]
    assert 0 < p50 <= p95 <= p99, seen["freshness"]
    for expr, series in seen["dashboard"].items():
        if EMBED_ONLY in expr:
            assert series == [], expr  # no embed stage in this job
            continue
        assert series, f"the dashboard query returned no series: {expr}"
        # A partition's committed offset reads -1 until the source has committed one (at a completed checkpoint).
        low = -1 if "committedOffset" in expr else 0
        assert all(math.isfinite(v) and v >= low for _, v in series), (expr, series)
    for name, series in seen["rules"].items():
        if name.startswith("kpf:"):
            assert series, f"recording rule {name} returned no series"
            assert all(math.isfinite(v) and v >= 0 for _, v in series), (name, series)
    states = {rule["name"]: rule for rule in seen["rule_states"]}
    assert set(states) == {name for name, _ in rule_queries()}
    assert all(rule["health"] == "ok" for rule in states.values()), [r for r in states.values() if r["health"] != "ok"]
    # The drift alert's condition holds once the vectors moved (it fires after its `for:` period); the others do not.
    assert states["KpfEmbeddingDrift"]["state"] in ("pending", "firing"), states["KpfEmbeddingDrift"]
    assert all(
        states[name]["state"] == "inactive"
        for name in ("KpfConsumerLagHigh", "KpfPartitionLagHigh", "KpfPineconeRetries")
    )
    # 2 of the first 303 records read were a zero and a non-finite vector; 3 were dead letters (those and bad JSON).
    ((_, rejected),) = seen["rules"]["kpf:vectors_rejected_ratio:rate5m"]
    assert rejected > 0 and seen["dead_letters"] is not None and seen["dead_letters"] > 0, seen
    # Per namespace (label: the namespace, in which Flink's reporter writes "-" as "_"): 3 of the 303 vectors of the
    # first topic's namespace were rejected, none of the 20 of the second's.
    ratios = {labels["namespace"]: v for labels, v in seen["rules"]["kpf:namespace_vectors_rejected_ratio:rate5m"]}
    print("rejected per namespace", ratios)
    assert set(ratios) == {prometheus_label(topic), prometheus_label(quiet)}, ratios
    assert 0 < ratios[prometheus_label(topic)] < 0.1 and ratios[prometheus_label(quiet)] == 0, ratios


def test_a_standalone_clusters_jobmanager_and_taskmanager_each_serve_metrics(tmp_path: Path) -> None:
    from kafka_pinecone_flink.stack.cluster import FlinkCluster

    first = free_port()
    ports = range(first, first + 12)
    cluster = FlinkCluster(
        tmp_path / "cluster",
        rest_port=free_port(),
        rpc_port=free_port(),
        conf={"metrics.reporter.prom.port": f"{ports[0]}-{ports[-1]}"},
    )
    served: dict[int, str] = {}
    try:
        cluster.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for port in ports:
                try:
                    served[port] = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                except httpx.HTTPError:
                    continue
            texts = "\n".join(served.values())
            if "flink_jobmanager_numRegisteredTaskManagers" in texts and "flink_taskmanager_Status_JVM" in texts:
                break
            time.sleep(1)
    finally:
        cluster.stop()
    kinds = {
        port: {"jobmanager" if "flink_jobmanager_" in text else "taskmanager" if "flink_taskmanager_" in text else "?"}
        for port, text in served.items()
    }
    assert sorted(kind for found in kinds.values() for kind in found) == ["jobmanager", "taskmanager"], kinds
    (jobmanager,) = [text for text in served.values() if "flink_jobmanager_" in text]
    assert total(jobmanager, "flink_jobmanager_numRegisteredTaskManagers") == 1


def test_a_job_that_embeds_text_serves_the_embed_stages_batch_latency_and_the_norms_of_its_vectors(
    ingest: IngestHarness,
) -> None:
    titles = ["Trail rain jacket", "Espresso machine", "Desk lamp", "Wool socks", "Road bike", "Tea kettle"]
    records = [(f"k{i}".encode(), value(title=title)) for i, title in enumerate(titles)]
    port = free_port()
    operator = "flink_taskmanager_job_task_operator_"
    seen: dict[str, str] = {}

    def scrape(job: Any) -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                seen["text"] = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                if total(seen["text"], f"{operator}upserted") == len(titles) and total(
                    seen["text"], f"{operator}embed_batch_latency_ms_p99"
                ):
                    return
            time.sleep(1)

    ingest.run(
        records,
        f"--flink.conf=metrics.reporter.prom.port={port}",
        "--embedding.text-fields=title",
        dimension=384,
        during=scrape,
        unbounded=True,
        expect_success=False,
    )
    text = seen.get("text", "")
    p50, p95, p99 = (total(text, f"{operator}embed_batch_latency_ms_{q}") for q in ("p50", "p95", "p99"))
    assert 0 < p50 <= p95 <= p99, (p50, p95, p99)
    # The model normalises its vectors: every norm is 1 (x 1000).
    norms = samples(text, f"{operator}namespace_vector_norm_milli_p50")
    assert norms and all(v == 1000 for _, v in norms), norms
    assert all(labels["namespace"] for labels, _ in norms), norms
