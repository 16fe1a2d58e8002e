"""The local broker launcher's errors, without starting a broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafka_pinecone_flink.stack import kafka
from kafka_pinecone_flink.stack.kafka import KafkaBroker, MissingPrerequisiteError

pytestmark = pytest.mark.unit


def test_a_missing_broker_classpath_says_to_run_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka, "KAFKA_CLASSPATH_DIR", tmp_path / "empty")
    with pytest.raises(MissingPrerequisiteError, match=r"Kafka broker classpath is missing .* run `make setup`"):
        KafkaBroker(tmp_path / "broker").start()


def test_a_missing_java_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingPrerequisiteError, match="java was not found on PATH"):
        KafkaBroker(tmp_path / "broker").start()


def test_status_of_a_broker_that_was_never_started_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert kafka.main(["--dir", str(tmp_path), "--port", "1", "status"]) == 1
    assert "not running" in capsys.readouterr().out


def test_the_command_line_reports_a_missing_prerequisite_with_exit_code_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(kafka, "KAFKA_CLASSPATH_DIR", tmp_path / "empty")
    assert kafka.main(["--dir", str(tmp_path), "start"]) == 2
    assert "error: the Kafka broker classpath is missing" in capsys.readouterr().err


def test_a_cluster_id_is_22_url_safe_characters_and_is_passed_so_a_leading_dash_is_no_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(kafka, "_cluster_id", lambda: "-starts-with-a-dash-xx")
    monkeypatch.setattr(KafkaBroker, "_run_tool", lambda self, java, cp, args: calls.append(args))
    monkeypatch.setattr(kafka, "_classpath", lambda: "cp")

    class Stop(Exception):
        pass

    def popen(*_args: object, **_kwargs: object) -> None:
        raise Stop

    monkeypatch.setattr(kafka.subprocess, "Popen", popen)
    with pytest.raises(Stop):
        KafkaBroker(tmp_path).start()
    assert "--cluster-id=-starts-with-a-dash-xx" in calls[0]
    ids = {kafka._cluster_id() for _ in range(200)}
    assert all(
        len(i) == 22 and set(i) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") for i in ids
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--dir", "{dir}", "--port", "1"],
        ["--dir", "{dir}", "status", "--port", "1"],
        ["--port", "1", "status", "--dir", "{dir}"],
    ],
)
def test_options_may_come_before_or_after_the_subcommand(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert kafka.main([part.replace("{dir}", str(tmp_path)) for part in argv]) == 1
    assert "Kafka broker at 127.0.0.1:1: not running" in capsys.readouterr().out


def test_an_option_after_the_subcommand_wins_over_its_default_and_one_given_before(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert kafka.main(["--port", "2", "status", "--dir", str(tmp_path), "--port", "1"]) == 1
    assert "127.0.0.1:1:" in capsys.readouterr().out


def test_create_topic_takes_the_common_options_after_its_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[tuple[str, int, int]] = []
    monkeypatch.setattr(
        KafkaBroker, "create_topics", lambda self, names, partitions=1: created.append((*names, partitions, self.port))
    )
    assert kafka.main(["create-topic", "orders", "--partitions", "3", "--port", "7", "--dir", str(tmp_path)]) == 0
    assert created == [("orders", 3, 7)]
