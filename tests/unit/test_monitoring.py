"""monitoring/: the dashboard, the recording rules and the alert rules agree with each other and with README's
"Monitoring" section. (tests/integration/test_prometheus_metrics.py runs every query on a real Prometheus server.)"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from kafka_pinecone_flink.stack.paths import ROOT

pytestmark = pytest.mark.unit

MONITORING = ROOT / "monitoring"
OPERATOR_METRIC = re.compile(r"flink_taskmanager_job_task_operator_(\w+)")
RECORDED = re.compile(r"\bkpf:[\w:]+")


def rules(name: str) -> list[dict[str, Any]]:
    groups = yaml.safe_load((MONITORING / "prometheus" / name).read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_queries() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana" / "kpf-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def readme_monitoring() -> str:
    text = (ROOT / "README.md").read_text()
    return text[text.index("## Monitoring") : text.index("\n## ", text.index("## Monitoring") + 1)]


def test_every_recorded_series_used_by_the_dashboard_and_the_alerts_is_recorded() -> None:
    recorded = {rule["record"] for rule in rules("rules.yml")}
    used = {name for expr in dashboard_queries() for name in RECORDED.findall(expr)}
    used |= {name for rule in rules("alerts.yml") for name in RECORDED.findall(rule["expr"])}
    assert used - recorded == set()
    assert recorded - used <= {"kpf:records_in:rate5m", "kpf:request_latency_ms:p99", "kpf:vector_norm:p50"}


def test_every_operator_metric_queried_is_documented_in_the_readme() -> None:
    section = readme_monitoring()
    exprs = dashboard_queries() + [rule["expr"] for rule in rules("rules.yml")]
    names = {name for expr in exprs for name in OPERATOR_METRIC.findall(expr)}
    assert names
    undocumented = {
        name
        for name in names
        if re.sub(r"_(p50|p95|p99|max|window_max)$", "", name) not in section
        and name.split("_")[-1] not in section  # KafkaSourceReader_..._currentOffset is documented by its tail
    }
    assert undocumented == set()


def test_the_alerts_cover_lag_freshness_dead_letters_retries_and_drift() -> None:
    alerts = {rule["alert"]: rule for rule in rules("alerts.yml")}
    covered = {name: RECORDED.findall(rule["expr"]) for name, rule in alerts.items()}
    assert sorted(series for names in covered.values() for series in names) == sorted(
        [
            "kpf:consumer_lag_records",
            "kpf:partition_lag_records",
            "kpf:freshness_ms:p99",
            "kpf:dead_letter_ratio:rate5m",
            "kpf:retry_ratio:rate5m",
            "kpf:embedding_drift",
        ]
    )
    assert all(rule.get("for") and rule["annotations"]["summary"] for rule in alerts.values())


def test_the_dashboard_has_a_panel_for_each_signal() -> None:
    queries = "\n".join(dashboard_queries())
    for needle in (
        "kpf:records_in:rate1m",
        "kpf:freshness_ms:p50",
        "kpf:freshness_ms:p95",
        "kpf:freshness_ms:p99",
        "request_latency_ms_p99",
        "embed_batch_latency_ms_p99",
        "pendingRecords",
        "kpf:partition_lag_records",
        "topic_partition_currentOffset",
        "kpf:oldest_record_age_ms",
        "kpf:dead_letters:rate5m",
        "kpf:retry_ratio:rate5m",
        "kpf:embedding_drift",
        "namespace_vector_norm_milli_p50",
        "kpf:vectors_rejected_ratio:rate5m",
        "kpf:namespace_vectors_rejected_ratio:rate5m",
    ):
        assert needle in queries, needle
    assert all('job_name=~"$job"' in expr for expr in dashboard_queries())
