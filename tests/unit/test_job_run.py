"""What the driver prints when a job fails, and what it keeps out of the workers' environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kafka_pinecone_flink.jobs.dead_letter_topic import DeadLetterTarget
from kafka_pinecone_flink.jobs.job_run import cause_chain, failure_report, withhold_secrets_from_workers
from kafka_pinecone_flink.jobs.kafka_io import librdkafka_config

pytestmark = pytest.mark.unit


class FakeJavaThrowable:
    """The py4j view of a java.lang.Throwable: getClass().getName(), getMessage(), getCause()."""

    def __init__(self, name: str, message: str | None, cause: FakeJavaThrowable | None = None) -> None:
        self._name, self._message, self._cause = name, message, cause

    def getClass(self) -> FakeJavaThrowable:
        return self

    def getName(self) -> str:
        return self._name

    def getMessage(self) -> str | None:
        return self._message

    def getCause(self) -> FakeJavaThrowable | None:
        return self._cause

    def hashCode(self) -> int:
        return id(self)


class FakePy4JError(Exception):
    def __init__(self, java_exception: FakeJavaThrowable) -> None:
        super().__init__("An error occurred while calling o107.execute.")
        self.java_exception = java_exception


def _py4j(*chain: tuple[str, str | None]) -> FakePy4JError:
    cause: FakeJavaThrowable | None = None
    for name, message in reversed(chain):
        cause = FakeJavaThrowable(name, message, cause)
    assert cause is not None
    return FakePy4JError(cause)


def test_a_jvm_failure_prints_its_root_cause_first_then_the_chain() -> None:
    error = _py4j(
        ("java.util.concurrent.ExecutionException", "org.apache.flink...JobExecutionException: Job failed"),
        ("org.apache.flink.runtime.client.JobExecutionException", "Job execution failed."),
        ("org.apache.flink.runtime.JobException", "Recovery is suppressed by NoRestartBackoffTimeStrategy"),
        ("org.apache.kafka.common.errors.RecordTooLargeException", "The message is 1049876 bytes when serialized"),
    )
    lines = failure_report(error)
    assert lines[0] == (
        "error: the job failed: org.apache.kafka.common.errors.RecordTooLargeException: The message is 1049876 "
        "bytes when serialized"
    )
    assert lines[1] == "caused by (outermost first):"
    assert lines[3].startswith("  org.apache.flink.runtime.client.JobExecutionException: Job execution failed.")
    assert "o107" not in "\n".join(lines)


def test_a_python_error_inside_the_chain_is_the_root_cause() -> None:
    traceback = (
        'Traceback (most recent call last):\n  File "x.py", line 1, in f\n'
        "udfs.errors.RecordRejectedError: record t[0]@2 rejected in decode: InvalidJsonError: bad\n"
    )
    error = _py4j(
        ("org.apache.flink.runtime.client.JobExecutionException", "Job execution failed."),
        ("java.lang.RuntimeException", "Error received from SDK harness for instruction 4: " + traceback),
        ("java.lang.RuntimeException", traceback),
    )
    lines = failure_report(error)
    assert lines[0] == (
        "error: the job failed: udfs.errors.RecordRejectedError: record t[0]@2 rejected in decode: "
        "InvalidJsonError: bad"
    )


def test_secrets_are_scrubbed_from_every_printed_line() -> None:
    secret = "pcsk_abc123SECRET"
    error = _py4j(
        ("org.apache.flink.runtime.client.JobExecutionException", f"failed with {secret}"),
        ("java.io.IOException", f"Unauthorized: Api-Key {secret} refused, password=hunter22"),
    )
    text = "\n".join(failure_report(error, secrets=("hunter22",)))
    assert secret not in text and "hunter22" not in text and "IOException" in text


def test_a_cyclic_java_cause_chain_ends() -> None:
    first = FakeJavaThrowable("A", "a")
    second = FakeJavaThrowable("B", "b", first)
    first._cause = second
    assert [name for name, _ in cause_chain(FakePy4JError(first))] == ["A", "B"]


def test_a_python_exception_is_walked_by_its_causes() -> None:
    try:
        try:
            raise KeyError("inner")
        except KeyError as exc:
            raise RuntimeError("outer") from exc
    except RuntimeError as exc:
        assert failure_report(exc)[0] == "error: the job failed: KeyError: 'inner'"


def test_variables_holding_a_secret_are_removed_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PINECONE_API_KEY", "kpf-secret-marker-1")
    monkeypatch.setenv("OTHER_NAME_FOR_IT", "prefix kpf-secret-marker-1 suffix")
    monkeypatch.setenv("HARMLESS", "kpf")
    removed = withhold_secrets_from_workers(["kpf-secret-marker-1", "", "ab"])
    assert sorted(removed) == ["OTHER_NAME_FOR_IT", "PINECONE_API_KEY"]
    assert "PINECONE_API_KEY" not in os.environ and os.environ["HARMLESS"] == "kpf"


def test_the_admin_check_uses_the_jobs_security_settings_in_librdkafkas_names() -> None:
    config = librdkafka_config(
        "b:9093",
        {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.jaas.config": 'org.apache.kafka.common.security.scram.ScramLoginModule required username="u" '
            'password="p\\"w";',
            "ssl.truststore.location": "/java/only.jks",
            "max.request.size": "5000000",
        },
    )
    assert config == {
        "bootstrap.servers": "b:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "u",
        "sasl.password": 'p"w',
    }


def test_the_dead_letter_producer_is_sized_above_the_topics_limit_unless_told_otherwise() -> None:
    target = DeadLetterTarget(max_message_bytes=5_000_000)
    assert int(target.producer_properties({"acks": "all"})["max.request.size"]) > 5_000_000
    assert target.producer_properties({"max.request.size": "100"})["max.request.size"] == "100"
    assert 4_990_000 < target.record_max_bytes({}) < 5_000_000
    assert target.record_max_bytes({"max.request.size": "2000000"}) < 2_000_000


def test_the_cluster_daemons_do_not_inherit_the_api_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from kafka_pinecone_flink.stack.cluster import FlinkCluster

    monkeypatch.setenv("PINECONE_API_KEY", "kpf-secret-marker-2")
    cluster = FlinkCluster(tmp_path, rest_port=18081, rpc_port=16123)
    assert "PINECONE_API_KEY" not in cluster.daemon_environment()
    assert cluster.environment()["PINECONE_API_KEY"] == "kpf-secret-marker-2"  # flink run's driver reads it
