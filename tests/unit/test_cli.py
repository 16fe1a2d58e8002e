"""The ``kpf`` command line without processes: argument errors, ``validate``, ``run --print-flink-run``, the
dead-letter fixes and the status summary."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import orjson
import pytest

from kafka_pinecone_flink.jobs import cli, dlq_replay, status
from kafka_pinecone_flink.jobs.checkpoints import CheckpointError, find_checkpoints, latest_checkpoint
from kafka_pinecone_flink.jobs.cli_errors import CommandError
from kafka_pinecone_flink.jobs.config import OPTIONS
from kafka_pinecone_flink.stack.cluster import (
    JOB_MODULE,
    JOB_PACKAGES,
    NAMESPACE,
    build_job_archive,
    metric_operator,
    select_metric_ids,
)
from kafka_pinecone_flink.stack.paths import free_port
from kafka_pinecone_flink.udfs.records import DeadLetter, SourceRecord

pytestmark = pytest.mark.unit

VALID = ["--kafka.topics=products", "--pinecone.index=products", "--pinecone.controller-host=http://127.0.0.1:5080"]


@pytest.fixture(autouse=True)
def _no_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PINECONE_API_KEY", raising=False)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:  # argparse's own errors and --help
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


# --- arguments ----------------------------------------------------------------------------------------------------


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys)
    assert code == 2
    assert "the following arguments are required: COMMAND" in err


def test_an_unknown_flag_of_a_command_without_job_options_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "status", "--kafka.topics=x")
    assert code == 2
    assert "unrecognized arguments: --kafka.topics=x" in err


def test_an_unknown_stack_action_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "stack", "restart")
    assert code == 2
    assert "invalid choice: 'restart'" in err


HELP_COMMANDS = (["run"], ["validate"], ["checkpoints"], ["stack"], ["status"], ["dlq"], ["dlq", "replay"])


@pytest.mark.parametrize("argv", [["--help"], *([*command, "--help"] for command in HELP_COMMANDS)])
def test_every_command_has_help_and_exits_0(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, _ = _run(capsys, *argv)
    assert code == 0
    assert out.startswith("usage: kpf")


def test_run_help_lists_the_job_options(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "run", "--help")
    assert code == 0
    assert "--print-flink-run" in out
    assert "--sink.batch-size" in out and "--kafka.topics" in out


def test_a_set_value_that_is_not_json_is_a_usage_error_naming_the_quotes(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "dlq", "replay", "--set", "title=plain text", "--dry-run")
    assert code == 2
    assert "--set title: the value must be JSON" in err


def test_a_set_without_a_key_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "dlq", "replay", "--set", "=1")
    assert code == 2
    assert "expected KEY=VALUE" in err


def test_replaying_into_the_dead_letter_topic_itself_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "dlq", "replay", "--topic", "dlq", "--to", "dlq")
    assert code == 2
    assert "--to must not be the dead-letter topic itself" in err


def test_a_transform_that_cannot_be_imported_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "dlq", "replay", "--transform", "no_such_module_kpf:fix")
    assert code == 2
    assert "--transform 'no_such_module_kpf:fix'" in err and "No module named" in err


def test_a_transform_without_a_function_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "dlq", "replay", "--transform", "json")
    assert code == 2
    assert "expected module:function" in err


def _hook_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return path


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("kpf: error: ") and "Traceback" not in err
    return lines[0]


def test_a_transform_module_with_a_syntax_error_names_the_file_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _hook_module(tmp_path, monkeypatch, "kpf_bad_syntax", "def fix(dead_letter):\n    return (1,\n")
    code, _, err = _run(capsys, "dlq", "replay", "--transform", "kpf_bad_syntax:fix", "--dry-run")
    assert code == 2
    line = _one_error_line(err)
    assert "--transform 'kpf_bad_syntax:fix'" in line and f"{path}, line 2" in line and "SyntaxError" in line


def test_a_transform_module_that_raises_on_import_names_the_module_and_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _hook_module(tmp_path, monkeypatch, "kpf_bad_import", "X = 1\nraise RuntimeError('no config here')\n")
    code, _, err = _run(capsys, "dlq", "replay", "--transform", "kpf_bad_import:fix")
    assert code == 2
    line = _one_error_line(err)
    assert f"importing kpf_bad_import raised RuntimeError: no config here ({path}, line 2)" in line


@pytest.mark.parametrize(
    ("returned", "expected"),
    [
        ("(b'k', b'v', b'extra')", "a tuple of 3 items"),
        ("b'value only'", "bytes"),
        ("('key', b'v')", "a str as the key"),
        ("{'key': b'k'}", "a dict"),
    ],
)
def test_a_transform_returning_the_wrong_shape_says_what_was_expected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, returned: str, expected: str
) -> None:
    path = _hook_module(tmp_path, monkeypatch, "kpf_bad_shape", f"def fix(dead_letter):\n    return {returned}\n")
    args = _replay_args(transform="kpf_bad_shape:fix")
    with pytest.raises(CommandError) as info:
        dlq_replay.plan_replay([_dead_letter(b"{}")], args)
    message = str(info.value)
    assert message.startswith("dead letter of products[0]@7: --transform 'kpf_bad_shape:fix' returned ")
    assert expected in message and "expected None or a (key, value) pair of bytes or None" in message
    assert str(path) in message


def test_a_bad_kafka_property_is_a_one_line_usage_error_without_its_value(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "dlq", "replay", "--property", "security.protocol=NOT-A-PROTOCOL-xyz")
    assert code == 2
    line = _one_error_line(err)
    assert "security.protocol" in line and "NOT-A-PROTOCOL-xyz" not in line


@pytest.mark.parametrize("value", ["0", "-1", "nan", "soon"])
def test_a_replay_timeout_that_is_not_a_positive_number_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    code, _, err = _run(capsys, "dlq", "replay", "--timeout-s", value)
    assert code == 2
    assert "--timeout-s: expected a positive number of seconds" in err


def test_replay_from_a_broker_that_is_down_is_one_line_and_exit_2_within_the_timeout(
    capfd: pytest.CaptureFixture[str],
) -> None:
    port = free_port()
    code = cli.main(["dlq", "replay", "--bootstrap-servers", f"127.0.0.1:{port}", "--timeout-s", "2"])
    out, err = capfd.readouterr()  # librdkafka writes to the file descriptor itself, not to sys.stderr
    assert code == 2
    line = _one_error_line(err)
    assert line.startswith(f"kpf: error: cannot reach Kafka at 127.0.0.1:{port}: ")
    assert "Connection refused" in line and out == ""


def _with_dead_letters(monkeypatch: pytest.MonkeyPatch, letters: list[DeadLetter]) -> None:
    monkeypatch.setattr(
        dlq_replay, "read_dead_letters", lambda *_args, **_kwargs: [(None, letter) for letter in letters]
    )


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_a_filter_that_matches_nothing_says_so_and_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, dry_run: list[str]
) -> None:
    letters = [_dead_letter(b"{}", error="InvalidVectorError"), _dead_letter(b"{}", error="MissingIdError")] * 2
    _with_dead_letters(monkeypatch, letters)
    code, out, err = _run(capsys, "dlq", "replay", "--error-class", "InvalidVectorErorr", *dry_run)
    assert code == 1
    assert "no dead letter matched the filter" in err and "nowhere" not in out + err
    assert "InvalidVectorError (2)" in err and "MissingIdError (2)" in err
    assert "did you mean InvalidVectorError?" in err


def test_an_empty_dead_letter_topic_is_nothing_to_replay_and_exits_0(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _with_dead_letters(monkeypatch, [])
    code, out, _ = _run(capsys, "dlq", "replay")
    assert code == 0
    assert "no dead letters in pinecone-dead-letter: nothing to replay" in out


def test_a_transform_that_leaves_out_every_selected_record_says_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _with_dead_letters(monkeypatch, [_dead_letter(b'{"other": 1}')])
    code, out, _ = _run(capsys, "dlq", "replay", "--transform", f"{__name__}:fix_title")
    assert code == 0
    assert "nothing to replay: --transform left out all 1 selected dead letter(s)" in out and "nowhere" not in out


def test_replay_help_says_that_transform_runs_the_named_module(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _run(capsys, "dlq", "replay", "--help")
    assert "imports and runs" in " ".join(out.split()) and "even with --dry-run" in " ".join(out.split())


# --- validate -----------------------------------------------------------------------------------------------------


def test_validate_prints_a_good_configuration_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "validate", *VALID, "--sink.batch-size=250")
    assert code == 0
    assert out.startswith("configuration is valid:")
    assert "batch_size=250" in out and "topics=('products',)" in out


def test_validate_masks_secret_kafka_properties_and_the_api_key(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PINECONE_API_KEY", "pcsk_very_secret_key")
    code, out, err = _run(capsys, "validate", *VALID, "--kafka.property", "sasl.jaas.config=hunter2-jaas")
    assert code == 0
    assert "hunter2-jaas" not in out + err and "pcsk_very_secret_key" not in out + err
    assert "'sasl.jaas.config': '***'" in out


TOKEN_URL = "https://client-7:s3cr3t-pw@idp.example.com/token?audience=kafka&client_secret=cs-999&sig=sg-777"
URL_SECRETS = ("s3cr3t-pw", "client-7", "cs-999", "sg-777", "pc-pass-1")


def test_validate_masks_credentials_inside_urls_of_any_property(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(
        capsys,
        "validate",
        "--kafka.topics=products",
        "--pinecone.index=products",
        "--pinecone.controller-host=http://admin:pc-pass-1@127.0.0.1:5080",
        "--kafka.property",
        f"sasl.oauthbearer.token.endpoint.url={TOKEN_URL}",
    )
    assert code == 0, err
    assert not [secret for secret in URL_SECRETS if secret in out + err]
    assert "https://***@idp.example.com/token?audience=kafka&client_secret=***&sig=***" in out
    assert "controller_host='http://***@127.0.0.1:5080'" in out


def test_validate_rejects_a_bad_option_with_exit_2_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "validate", *VALID, "--sink.batch-size=5000")
    assert code == 2
    assert out == ""
    assert "--sink.batch-size" in err and "5000" in err


def test_validate_rejects_a_missing_required_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "validate", "--kafka.topics=products")
    assert code == 2
    assert "--pinecone.index is required" in err


def test_validate_rejects_a_mistyped_option_suggesting_the_right_one(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "validate", *VALID, "--sink.batch-sise=5")
    assert code == 2
    assert "--sink.batch-size" in err


def test_validate_reads_a_config_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = tmp_path / "job.yaml"
    config.write_text("kafka.topics: [orders]\npinecone:\n  index: orders\n  controller-host: http://h:1\n")
    code, out, _ = _run(capsys, "validate", "--config", str(config))
    assert code == 0
    assert "topics=('orders',)" in out


# --- run --print-flink-run ----------------------------------------------------------------------------------------


def test_print_flink_run_prints_the_submission_with_the_job_options_unchanged(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    archive = tmp_path / "job.zip"
    code, out, _ = _run(capsys, "run", "--print-flink-run", "--archive", str(archive), *VALID, "--sink.batch-size=7")
    assert code == 0
    command = shlex.split(out)
    assert command[0].endswith("/bin/flink") and command[1:3] == ["run", "-d"]
    assert command[command.index("-pym") + 1] == JOB_MODULE
    assert command[command.index("-pyfs") + 1] == str(archive)
    assert "flink-sql-connector-kafka" in command[command.index("-j") + 1]
    assert command[command.index("--") + 1 :] == [*VALID, "--sink.batch-size=7"]
    assert archive.exists()


def test_print_flink_run_with_a_savepoint_and_another_flink_binary(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = _run(
        capsys,
        "run",
        "--print-flink-run",
        "--archive",
        str(tmp_path / "a.zip"),
        "--flink",
        "/opt/flink/bin/flink",
        "--savepoint",
        "file:/sp/savepoint-1",
        *VALID,
    )
    assert code == 0
    command = shlex.split(out)
    assert command[:5] == ["/opt/flink/bin/flink", "run", "-d", "-s", "file:/sp/savepoint-1"]


def test_print_flink_run_masks_secret_values(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = _run(
        capsys,
        "run",
        "--print-flink-run",
        "--archive",
        str(tmp_path / "a.zip"),
        *VALID,
        "--kafka.property",
        "ssl.key.password=topsecret1",
    )
    assert code == 0
    assert "topsecret1" not in out + err
    assert "ssl.key.password=***" in out
    assert "secret values are shown as ***" in err


def test_print_flink_run_masks_credentials_inside_urls(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = _run(
        capsys,
        "run",
        "--print-flink-run",
        "--archive",
        str(tmp_path / "a.zip"),
        "--kafka.topics=products",
        "--pinecone.index=products",
        "--pinecone.controller-host=http://admin:pc-pass-1@127.0.0.1:5080",
        f"--kafka.property=sasl.oauthbearer.token.endpoint.url={TOKEN_URL}",
        "--flink.conf=s3.secret-key=aws-secret-3",
    )
    assert code == 0, err
    assert not [secret for secret in (*URL_SECRETS, "aws-secret-3") if secret in out + err]
    assert "--pinecone.controller-host=http://***@127.0.0.1:5080" in shlex.split(out)
    assert "--flink.conf=s3.secret-key=***" in shlex.split(out)
    assert "secret values are shown as ***" in err


def test_print_flink_run_masks_short_secrets_by_their_key_without_mangling_other_arguments(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = _run(
        capsys,
        "run",
        "--print-flink-run",
        "--archive",
        str(tmp_path / "a.zip"),
        *VALID,
        "--kafka.property",
        "ssl.key.password=pr",
        "--flink.conf=s3.secret-key=ts",
    )
    assert code == 0
    command = shlex.split(out)
    tail = command[command.index("--") + 1 :]
    assert tail == [*VALID, "--kafka.property", "ssl.key.password=***", "--flink.conf=s3.secret-key=***"]


def test_print_flink_run_refuses_an_invalid_configuration_with_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    archive = tmp_path / "a.zip"
    code, out, err = _run(capsys, "run", "--print-flink-run", "--archive", str(archive), "--kafka.topics=x")
    assert code == 2
    assert out == "" and "--pinecone.index is required" in err
    assert not archive.exists()


def test_the_job_archive_holds_the_packages_under_the_namespace_and_is_reproducible(tmp_path: Path) -> None:
    first = build_job_archive(tmp_path / "a.zip")
    second = build_job_archive(tmp_path / "b.zip")
    assert first.read_bytes() == second.read_bytes()
    names = zipfile.ZipFile(first).namelist()
    assert {name.split("/")[0] for name in names} == {NAMESPACE}
    assert {name.split("/")[1] for name in names if name.count("/") > 1} == set(JOB_PACKAGES)
    assert f"{NAMESPACE}/__init__.py" in names
    assert f"{NAMESPACE}/jobs/ingest_job.py" in names and f"{NAMESPACE}/udfs/decode.py" in names
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
    # The job module imports from the archive alone (-P: not from the clone), as on a worker.
    found = subprocess.run(
        [sys.executable, "-P", "-c", f"import importlib.util; print(importlib.util.find_spec({JOB_MODULE!r}).origin)"],
        env={**os.environ, "PYTHONPATH": str(first)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert found.stdout.strip() == str(first / NAMESPACE / "jobs" / "ingest_job.py")


def test_every_printed_job_option_exists() -> None:
    names = {option.flag for option in OPTIONS}
    assert {arg.split("=")[0] for arg in VALID} <= names


# --- dead-letter fixes --------------------------------------------------------------------------------------------


def _dead_letter(value: bytes | None, topic: str = "products", error: str = "InvalidVectorError") -> DeadLetter:
    source = SourceRecord(
        topic=topic,
        partition=0,
        offset=7,
        timestamp_ms=1,
        key=b"k",
        value=value,
        headers=(("trace", b"t1"), ("kpf.stale", b"x")),
    )
    return DeadLetter(source=source, error_class=error, message="bad", stage="decode")


def _replay_args(**overrides: Any) -> argparse.Namespace:
    values: dict[str, Any] = {"set": [], "transform": None, "to": None, "error_class": [], "stage": None}
    values["source_topic"] = None
    values.update(overrides)
    return argparse.Namespace(**values)


def fix_title(dead_letter: DeadLetter) -> tuple[bytes | None, bytes | None] | None:
    """A --transform hook for the tests: drops records without a title, upper-cases the others'."""
    document = orjson.loads(dead_letter.source.value or b"{}")
    if "title" not in document:
        return None
    document["title"] = document["title"].upper()
    return b"new-key", orjson.dumps(document)


def explode(_: DeadLetter) -> None:
    raise KeyError("boom")


def test_set_replaces_fields_and_creates_nested_ones() -> None:
    args = _replay_args(set=[dlq_replay._set_item("values=[0.5,1]"), dlq_replay._set_item('meta.source="replay"')])
    [replay] = dlq_replay.plan_replay([_dead_letter(b'{"values": "oops", "title": "t"}')], args)
    assert orjson.loads(replay.value or b"") == {"values": [0.5, 1], "title": "t", "meta": {"source": "replay"}}
    assert replay.key == b"k" and replay.topic == "products"


def test_replayed_records_keep_their_headers_without_the_kpf_ones() -> None:
    [replay] = dlq_replay.plan_replay([_dead_letter(b"{}")], _replay_args())
    assert replay.headers == [("trace", b"t1")]
    assert replay.value == b"{}"


def test_to_sends_every_record_to_one_topic() -> None:
    plan = dlq_replay.plan_replay(
        [_dead_letter(b"{}", topic="a"), _dead_letter(b"{}", topic="b")], _replay_args(to="c")
    )
    assert [replay.topic for replay in plan] == ["c", "c"]


def test_set_on_a_value_that_is_not_a_json_object_fails_the_whole_replay() -> None:
    args = _replay_args(set=[dlq_replay._set_item("a=1")])
    with pytest.raises(CommandError, match=r"products\[0\]@7: the value is not a JSON object"):
        dlq_replay.plan_replay([_dead_letter(b'{"ok": 1}'), _dead_letter(b"[1, 2]")], args)


def test_a_transform_hook_fixes_or_leaves_out_each_record() -> None:
    args = _replay_args(transform=f"{__name__}:fix_title")
    plan = dlq_replay.plan_replay([_dead_letter(b'{"title": "lamp"}'), _dead_letter(b'{"other": 1}')], args)
    assert len(plan) == 1
    assert (plan[0].key, orjson.loads(plan[0].value or b"")) == (b"new-key", {"title": "LAMP"})


def test_a_transform_hook_that_raises_fails_the_replay_naming_the_record() -> None:
    args = _replay_args(transform=f"{__name__}:explode")
    with pytest.raises(CommandError, match=r"products\[0\]@7: --transform raised KeyError") as info:
        dlq_replay.plan_replay([_dead_letter(b"{}")], args)
    assert f"({__file__}, line " in str(info.value)


def test_filters_select_by_error_class_stage_and_source_topic() -> None:
    wanted = _dead_letter(b"{}", topic="a", error="X")
    assert dlq_replay._selected(wanted, _replay_args(error_class=["X", "Y"], stage="decode", source_topic="a"))
    assert not dlq_replay._selected(wanted, _replay_args(error_class=["Y"]))
    assert not dlq_replay._selected(wanted, _replay_args(stage="sink"))
    assert not dlq_replay._selected(wanted, _replay_args(source_topic="b"))


# --- status -------------------------------------------------------------------------------------------------------


class _FakeRest:
    """The ingest job's vertices and their metrics' ids as the REST API gives them (``<subtask>.<operator>.<name>``):
    ``split``, the keyed exchange's shape, the source's vertex and Dedup's; else parallelism 1's, one vertex."""

    SOURCE = {
        "0.Decode_JVM.records_in": 10.0,
        "0.Decode_results.records_in": 5.0,
        "0.Decode_results.dead_lettered": 2.0,
        "0.Decode_results.skipped_tombstone_ignored": 1.0,
        "0.Source__kafka_source[1].pendingRecords": 4.0,
        "1.Source__kafka_source[1].pendingRecords": 3.0,
        "0.numRecordsIn": 99.0,
    }
    DEDUP = {
        "0.Dedup.records_in": 12.0,
        "0.Dedup.skipped_unchanged": 2.0,
        "0.Pinecone_sink_results.upserted": 6.0,
        "0.Pinecone_sink_results.updated": 1.0,
        "0.Pinecone_sink_results.deleted": 1.0,
        "0.Pinecone_sink_results.dead_lettered": 1.0,
        "0.Pinecone_sink.lag_ms": 30.0,
        "1.Pinecone_sink.lag_ms": 120.0,
        "0.Pinecone_sink.requests": 9.0,
        "0.Pinecone_sink.freshness_ms_p99": 800.0,
        "1.Pinecone_sink.freshness_ms_p99": 1500.0,
        "0.Pinecone_sink.freshness_ms_p50": 400.0,
        "0.Pinecone_sink.embedding_drift_ppm": 1000.0,
        "1.Pinecone_sink.embedding_drift_ppm": 250000.0,
    }

    def __init__(self, split: bool) -> None:
        self.reported = {"v1": self.SOURCE, "v2": self.DEDUP} if split else {"v1": {**self.SOURCE, **self.DEDUP}}
        self.calls = 0

    def vertices(self, _: str) -> list[dict[str, str]]:
        return [{"id": vertex, "name": " -> ".join(self.reported[vertex])} for vertex in self.reported]

    def metric_values(self, _: str, vertex_id: str, match: Any, operators: Any = None) -> dict[str, float]:
        self.calls += 1
        reported = self.reported[vertex_id]
        return {metric_id: reported[metric_id] for metric_id in select_metric_ids(reported, match, operators)}


@pytest.mark.parametrize("split", [True, False], ids=["keyed exchange", "one vertex at parallelism 1"])
def test_the_status_summary_counts_records_in_once_and_adds_up_every_stage(split: bool) -> None:
    # With the dedup in the source's task, Dedup's records_in is in the decoders' vertex: it counted them twice.
    rest = _FakeRest(split)
    summary = status.job_summary(rest, "job")
    assert rest.calls == len(rest.reported)  # one read of each vertex's metrics
    assert summary == {
        "records_in": 15.0,
        "upserted": 6.0,
        "updated": 1.0,
        "deleted": 1.0,
        "dead_lettered": 3.0,
        "skipped_": 3.0,
        "lag_ms": 120.0,
        "pendingRecords": 7.0,
        "freshness_ms_p99": 1500.0,
        "embedding_drift_ppm": 250000.0,
    }


def test_metric_ids_are_selected_by_name_and_by_operator() -> None:
    ids = ["0.Decode_JVM.records_in", "1.Dedup.records_in", "0.numRecordsIn", "1.Decode_results.records_in"]
    assert select_metric_ids(ids, "records_in".__eq__) == [ids[0], ids[1], ids[3]]
    assert select_metric_ids(ids, "records_in".__eq__, ["Decode JVM", "Decode results"]) == [ids[0], ids[3]]
    assert select_metric_ids(ids, "numRecordsIn".__eq__, ["Dedup"]) == []  # a task's own metric has no operator
    assert metric_operator("Pinecone sink results") == "Pinecone_sink_results"


def test_status_picks_the_newest_running_job_unless_one_is_named() -> None:
    jobs = [{"jid": "b", "state": "FINISHED"}, {"jid": "a", "state": "RUNNING"}]
    assert status.pick_job(jobs, None)["jid"] == "a"
    assert status.pick_job(jobs, "b")["jid"] == "b"
    with pytest.raises(CommandError, match="no job c on this cluster"):
        status.pick_job(jobs, "c")
    with pytest.raises(CommandError, match="no job on this cluster"):
        status.pick_job([], None)


def test_status_of_an_unreachable_cluster_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "status", "--rest-url", "http://127.0.0.1:9")
    assert code == 2
    assert _one_error_line(err).startswith("kpf: error: cannot reach the Flink REST API at http://127.0.0.1:9: ")


def test_status_with_a_rest_url_that_is_no_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "status", "--rest-url", "127.0.0.1:8081")
    assert code == 2
    assert "--rest-url: expected an http:// or https:// URL" in err


def test_status_never_prints_the_credentials_of_the_rest_url(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "status", "--rest-url", "http://admin:rest-pw-1@127.0.0.1:9")
    assert code == 2
    assert "rest-pw-1" not in out + err and "http://***@127.0.0.1:9" in err


# --- checkpoints and --resume-from-latest -------------------------------------------------------------------------


def _checkpoint(root: Path, job: str, number: int, completed_at: float | None) -> Path:
    folder = root / job / f"chk-{number}"
    folder.mkdir(parents=True)
    if completed_at is not None:
        (folder / "_metadata").write_bytes(b"m")
        os.utime(folder / "_metadata", (completed_at, completed_at))
    return folder


def _run_dir(tmp_path: Path) -> tuple[Path, Path]:
    """A run directory whose checkpoints are: job A's chk-7 (complete, older) and chk-8 (incomplete, the highest
    number of all), job B's chk-2 (complete, newest: B was started later and counts from 1 again), and the folders
    Flink keeps next to them."""
    run_dir = tmp_path / "run"
    checkpoints = run_dir / "checkpoints"
    _checkpoint(checkpoints, "a" * 32, 7, 1_000.0)
    _checkpoint(checkpoints, "a" * 32, 8, None)
    newest = _checkpoint(checkpoints, "b" * 32, 2, 2_000.0)
    for extra in ("shared", "taskowned"):
        (checkpoints / ("b" * 32) / extra).mkdir()
    (checkpoints / "stray-file").write_text("")
    return run_dir, newest


def test_the_latest_checkpoint_is_the_last_completed_one_of_any_job_not_the_highest_number(tmp_path: Path) -> None:
    run_dir, newest = _run_dir(tmp_path)
    latest = latest_checkpoint(run_dir / "checkpoints")
    assert (latest.path, latest.job_id, latest.number) == (newest, "b" * 32, 2)
    assert [(c.number, c.complete) for c in find_checkpoints(run_dir / "checkpoints")] == [
        (2, True),
        (7, True),
        (8, False),
    ]


def test_checkpoints_completed_in_the_same_instant_are_told_apart_by_number(tmp_path: Path) -> None:
    _checkpoint(tmp_path, "job", 9, 5_000.0)
    ten = _checkpoint(tmp_path, "job", 10, 5_000.0)
    assert latest_checkpoint(tmp_path).path == ten


def test_no_complete_checkpoint_is_an_error_saying_what_is_there(tmp_path: Path) -> None:
    _checkpoint(tmp_path, "job", 3, None)
    with pytest.raises(CheckpointError, match=r"no complete checkpoint under .*: 1 checkpoint\(s\) without _metadata"):
        latest_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint directory"):
        latest_checkpoint(tmp_path / "absent")


def test_run_resume_from_latest_restores_the_job_from_that_checkpoint(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kafka_pinecone_flink.jobs.ingest_job

    run_dir, newest = _run_dir(tmp_path)
    started: list[list[str]] = []
    monkeypatch.setattr(kafka_pinecone_flink.jobs.ingest_job, "main", lambda argv: started.append(list(argv)) or 0)
    code, out, err = _run(capsys, "run", "--resume-from-latest", *VALID, f"--flink.run-dir={run_dir}")
    assert code == 0, err
    assert started == [[*VALID, f"--flink.run-dir={run_dir}", f"--flink.conf={STATE_RECOVERY}={newest.as_uri()}"]]
    assert f"resuming from the latest complete checkpoint: {newest} (job {'b' * 32}, checkpoint 2, completed " in out


STATE_RECOVERY = "execution.state-recovery.path"


def test_the_resume_setting_is_the_one_the_job_hands_to_flink(tmp_path: Path) -> None:
    from kafka_pinecone_flink.jobs.config import load_job_config

    _, newest = _run_dir(tmp_path)
    config = load_job_config([*VALID, f"--flink.conf={STATE_RECOVERY}={newest.as_uri()}"], {})
    assert config.flink_overrides()[STATE_RECOVERY] == newest.as_uri()


def test_resume_from_latest_with_print_flink_run_adds_it_as_s(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run_dir, newest = _run_dir(tmp_path)
    archive = ["--archive", str(tmp_path / "a.zip")]
    code, out, _ = _run(
        capsys,
        "run",
        "--print-flink-run",
        *archive,
        "--resume-from-latest",
        "--checkpoint-dir",
        str(run_dir / "checkpoints"),
        *VALID,
    )
    assert code == 0
    command = shlex.split(out.splitlines()[-1])
    assert command[command.index("-s") + 1] == newest.as_uri()


def test_resume_from_latest_looks_in_the_configured_checkpoint_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kafka_pinecone_flink.jobs.ingest_job

    elsewhere = _checkpoint(tmp_path / "elsewhere", "job", 4, 3_000.0)
    started: list[list[str]] = []
    monkeypatch.setattr(kafka_pinecone_flink.jobs.ingest_job, "main", lambda argv: started.append(list(argv)) or 0)
    setting = f"--flink.conf=execution.checkpointing.dir={(tmp_path / 'elsewhere').as_uri()}"
    code, _, err = _run(capsys, "run", "--resume-from-latest", *VALID, setting)
    assert code == 0, err
    assert started[0][-1] == f"--flink.conf={STATE_RECOVERY}={elsewhere.as_uri()}"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--savepoint", "file:///sp"], "--resume-from-latest and --savepoint both name where to resume from"),
        ([f"--flink.conf={STATE_RECOVERY}=file:///x"], "both name where to resume from"),
        (["--flink.conf=execution.checkpointing.dir=s3://bucket/ckpt"], "only a local directory can be searched"),
    ],
)
def test_resume_from_latest_refuses_a_second_place_to_resume_from(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, extra: list[str], message: str
) -> None:
    run_dir, _ = _run_dir(tmp_path)
    code, _, err = _run(capsys, "run", "--resume-from-latest", *VALID, f"--flink.run-dir={run_dir}", *extra)
    assert code == 2
    assert message in err


def test_resume_from_latest_without_a_complete_checkpoint_exits_2_starting_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kafka_pinecone_flink.jobs.ingest_job

    _checkpoint(tmp_path / "run" / "checkpoints", "job", 1, None)
    monkeypatch.setattr(
        kafka_pinecone_flink.jobs.ingest_job, "main", lambda argv: pytest.fail("the job must not start")
    )
    code, _, err = _run(capsys, "run", "--resume-from-latest", *VALID, f"--flink.run-dir={tmp_path / 'run'}")
    assert code == 2
    assert "no complete checkpoint under" in _one_error_line(err)


def test_checkpoints_lists_the_complete_ones_newest_first_then_the_incomplete(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run_dir, newest = _run_dir(tmp_path)
    code, out, _ = _run(capsys, "checkpoints", "--run-dir", str(run_dir))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"{newest} (job {'b' * 32}, checkpoint 2, completed ")
    assert "chk-7 (job" in lines[1] and lines[2].endswith("chk-8 (incomplete: no _metadata)")
    code, _, err = _run(capsys, "checkpoints", "--run-dir", str(tmp_path / "empty"))
    assert code == 1 and "no complete checkpoint under" in err


def test_the_replay_defaults_are_the_job_option_defaults() -> None:
    # Repeated in jobs.dlq_replay so that kpf dlq replay does not import the job's configuration (a slow import).
    defaults = {option.name: option.default for option in OPTIONS}
    assert defaults["errors.dead-letter-topic"] == dlq_replay.DEFAULT_DEAD_LETTER_TOPIC
    assert defaults["kafka.bootstrap-servers"] == dlq_replay.DEFAULT_BOOTSTRAP_SERVERS


# --- --savepoint and --allow-non-restored-state ---------------------------------------------------------------------


IGNORE_UNCLAIMED = "execution.state-recovery.ignore-unclaimed-state"


def test_run_with_a_savepoint_restores_the_local_job_from_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before 2026-12-07 a local run ignored --savepoint and started without the savepoint's offsets and dedup state.
    import kafka_pinecone_flink.jobs.ingest_job

    started: list[list[str]] = []
    monkeypatch.setattr(kafka_pinecone_flink.jobs.ingest_job, "main", lambda argv: started.append(list(argv)) or 0)
    code, _, err = _run(capsys, "run", "--savepoint", "file:///sp/savepoint-1", *VALID)
    assert code == 0, err
    assert started == [[*VALID, f"--flink.conf={STATE_RECOVERY}=file:///sp/savepoint-1"]]
    code, _, err = _run(capsys, "run", "--savepoint", "file:///sp/savepoint-1", "--allow-non-restored-state", *VALID)
    assert code == 0, err
    assert started[1][-2:] == [
        f"--flink.conf={STATE_RECOVERY}=file:///sp/savepoint-1",
        f"--flink.conf={IGNORE_UNCLAIMED}=true",
    ]


def test_print_flink_run_with_allow_non_restored_state_adds_n(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    archive = ["--archive", str(tmp_path / "a.zip")]
    code, out, _ = _run(
        capsys, "run", "--print-flink-run", *archive, "--savepoint", "file:/sp/1", "--allow-non-restored-state", *VALID
    )
    assert code == 0
    command = shlex.split(out)
    assert command[2:6] == ["-d", "-s", "file:/sp/1", "-n"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--allow-non-restored-state"], "--allow-non-restored-state applies to a restore"),
        (["--archive", "a.zip"], "--archive applies to --print-flink-run only"),
        (["--flink", "/opt/flink/bin/flink"], "--flink applies to --print-flink-run only"),
        (["--checkpoint-dir", "/ckpt"], "--checkpoint-dir applies to --resume-from-latest only"),
        (
            ["--savepoint", "file:///sp", f"--flink.conf={STATE_RECOVERY}=file:///x"],
            "--savepoint and --flink.conf=execution.state-recovery.path=... both name where to resume from",
        ),
    ],
)
def test_run_refuses_options_that_would_be_ignored_or_name_the_restore_twice(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    import kafka_pinecone_flink.jobs.ingest_job

    monkeypatch.setattr(
        kafka_pinecone_flink.jobs.ingest_job, "main", lambda argv: pytest.fail("the job must not start")
    )
    code, _, err = _run(capsys, "run", *args, *VALID)
    assert code == 2
    assert message in _one_error_line(err)
