"""``kpf`` against real processes: the local stack's start/status/stop, and dead-letter replay end to end through
the session's Kafka broker (dead letters written with the job's own format, replayed, read back)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from kafka_pinecone_flink.jobs import cli
from kafka_pinecone_flink.jobs.checkpoints import find_checkpoints
from kafka_pinecone_flink.sinks.dead_letter import to_kafka
from kafka_pinecone_flink.stack.flink import job_process_environment
from kafka_pinecone_flink.stack.kafka import KafkaBroker
from kafka_pinecone_flink.stack.kafka_client import Message, consume, produce
from kafka_pinecone_flink.stack.paths import ROOT, free_port
from kafka_pinecone_flink.udfs.ids import uuid_for
from kafka_pinecone_flink.udfs.records import DeadLetter, SourceRecord
from tests.integration.ingest_harness import IngestHarness, value

pytestmark = pytest.mark.integration

STACK_TIMEOUT_S = 180


def _kpf(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "kafka_pinecone_flink.jobs.cli", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=STACK_TIMEOUT_S,
        check=False,
    )


def test_stack_start_status_and_stop_run_a_broker_and_the_local_server(tmp_path: Path) -> None:
    ports = ["--kafka-port", str(free_port()), "--kafka-controller-port", str(free_port())]
    ports += ["--pinecone-port", str(free_port())]
    where = ["--dir", str(tmp_path / "run"), *ports]
    try:
        started = _kpf("stack", "start", *where)
        assert started.returncode == 0, started.stdout + started.stderr
        assert "Kafka broker ready" in started.stdout and "pinecone_local running" in started.stdout
        status = _kpf("stack", "status", *where)
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.count(": ready") == 2
        assert (tmp_path / "run" / "pinecone").is_dir(), "the Pinecone server is durable under --dir"
    finally:
        stopped = _kpf("stack", "stop", *where)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    after = _kpf("stack", "status", *where)
    assert after.returncode == 1
    assert after.stdout.count("not running") == 2


def _dead_letter(topic: str, offset: int, key: bytes, value: bytes, error: str, stage: str = "decode") -> DeadLetter:
    source = SourceRecord(topic, 0, offset, 1_700_000_000_000, key, value, (("trace-id", f"t{offset}".encode()),))
    return DeadLetter(source=source, error_class=error, message=f"bad record {offset}", stage=stage)  # type: ignore[arg-type]


@pytest.fixture
def dead_letters(kafka_broker: KafkaBroker, kafka_topic: Callable[..., str]) -> tuple[str, str, str]:
    """A dead-letter topic holding two InvalidVectorErrors and one MissingIdError from source topic ``src``, one
    sink error from ``other``, and one record that is not a dead letter. Returns (dlq, src, other)."""
    dlq, source, other = kafka_topic("dlq"), kafka_topic("src"), kafka_topic("other")
    letters = [
        _dead_letter(source, 3, b"k3", b'{"values": "oops", "title": "a"}', "InvalidVectorError"),
        _dead_letter(source, 4, b"k4", b'{"title": "b"}', "MissingIdError"),
        _dead_letter(source, 5, b"k5", b'{"values": [1, 2], "title": "c"}', "InvalidVectorError"),
        _dead_letter(other, 9, b"k9", b'{"values": [0, 0]}', "PineconeRejectedError", stage="sink"),
    ]
    records = [to_kafka(letter) for letter in letters]
    produce(kafka_broker.bootstrap_servers, dlq, [*records, (b"stray", b"not a dead letter")])  # type: ignore[list-item]
    return dlq, source, other


def _headers(message: Message) -> dict[str, bytes | None]:
    return dict(message.headers)


def test_dlq_replay_fixes_the_selected_dead_letters_and_reproduces_them_to_their_source_topic(
    kafka_broker: KafkaBroker, dead_letters: tuple[str, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    dlq, source, other = dead_letters
    code = cli.main(
        [
            "dlq",
            "replay",
            "--bootstrap-servers",
            kafka_broker.bootstrap_servers,
            "--topic",
            dlq,
            "--error-class",
            "InvalidVectorError",
            "--set",
            "values=[0.1, 0.2, 0.3, 0.4]",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"replayed 2 of 4 dead letter(s) to {source} (2)" in out
    assert "1 record(s)" in out and "are not dead letters" in out
    replayed = consume(kafka_broker.bootstrap_servers, source, expected=2, timeout_s=30)
    assert [m.key for m in replayed] == [b"k3", b"k5"]
    assert [orjson.loads(m.value or b"") for m in replayed] == [
        {"values": [0.1, 0.2, 0.3, 0.4], "title": "a"},
        {"values": [0.1, 0.2, 0.3, 0.4], "title": "c"},
    ]
    assert [_headers(m) for m in replayed] == [{"trace-id": b"t3"}, {"trace-id": b"t5"}], "no kpf.* headers"
    assert consume(kafka_broker.bootstrap_servers, other, timeout_s=3) == []


def test_dlq_replay_to_another_topic_keeps_values_byte_for_byte(
    kafka_broker: KafkaBroker,
    kafka_topic: Callable[..., str],
    dead_letters: tuple[str, str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    dlq, _, other = dead_letters
    target = kafka_topic("fixed")
    servers = ["--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic", dlq]
    code = cli.main(["dlq", "replay", *servers, "--stage", "sink", "--source-topic", other, "--to", target])
    assert code == 0, capsys.readouterr()
    [message] = consume(kafka_broker.bootstrap_servers, target, expected=1, timeout_s=30)
    assert (message.key, message.value) == (b"k9", b'{"values": [0, 0]}')


def test_dlq_replay_dry_run_lists_and_produces_nothing(
    kafka_broker: KafkaBroker, dead_letters: tuple[str, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    dlq, source, _ = dead_letters
    servers = ["--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic", dlq]
    code = cli.main(["dlq", "replay", *servers, "--source-topic", source, "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"{source}[0]@4 MissingIdError (decode): bad record 4 -> {source}" in out
    assert "3 of 4 dead letter(s) would be replayed (dry run: nothing produced)" in out
    assert consume(kafka_broker.bootstrap_servers, source, timeout_s=3) == []


def test_dlq_replay_of_a_topic_that_does_not_exist_exits_1(
    kafka_broker: KafkaBroker, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["dlq", "replay", "--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic", "no-such-dlq"])
    assert code == 1
    assert "dead-letter topic 'no-such-dlq' does not exist" in capsys.readouterr().err


# --- the documented command: <clone>/.venv/bin/kpf ----------------------------------------------------------------

VENV_KPF = ROOT / ".venv" / "bin" / "kpf"


def _fake_clone(where: Path, says: str) -> Path:
    """A directory that looks like a clone (jobs/cli.py, scripts/setup.sh, .venv linked to the shared environment)
    whose kpf prints ``says``: which clone's code a launcher runs is then visible."""
    (where / "jobs").mkdir(parents=True)
    (where / "jobs" / "__init__.py").write_text("")
    (where / "jobs" / "cli.py").write_text(f"import sys\nprint({says!r}, sys.argv[1:])\n")
    (where / "scripts").mkdir()
    (where / "scripts" / "setup.sh").write_text("")
    (where / ".venv").symlink_to((ROOT / ".venv").resolve())
    return where


def _launch(executable: Path, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run(
        [str(executable), *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_after_set_up_the_documented_kpf_command_runs_help(tmp_path: Path) -> None:
    result = _launch(VENV_KPF, "--help", cwd=tmp_path)  # from outside the clone, as the README shows it
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("usage: kpf") and "dlq" in result.stdout
    relative = _launch(Path(".venv/bin/kpf"), "validate", "--help", cwd=ROOT)
    assert relative.returncode == 0, relative.stderr
    assert "--sink.batch-size" in relative.stdout


def test_each_clones_kpf_runs_that_clones_code_though_they_share_one_environment(tmp_path: Path) -> None:
    clone = _fake_clone(tmp_path / "other-clone", "the other clone")
    through_its_venv = _launch(clone / ".venv" / "bin" / "kpf", "status", cwd=ROOT)  # ROOT's code must not shadow
    assert through_its_venv.returncode == 0, through_its_venv.stderr
    assert through_its_venv.stdout.strip() == "the other clone ['status']"
    # Called by the environment's own path (an activated venv, PATH=~/.cache/.../bin): the clone of the current
    # directory.
    shared = (ROOT / ".venv").resolve() / "bin" / "kpf"
    from_inside = _launch(shared, "x", cwd=clone / "jobs")
    assert from_inside.stdout.strip() == "the other clone ['x']", from_inside.stderr
    nowhere = _launch(shared, "--help", cwd=tmp_path)
    assert nowhere.returncode == 2
    assert "cannot tell which kafka-pinecone-flink clone to run" in nowhere.stderr


def test_the_launcher_runs_the_cli_under_the_namespace_in_a_clone_that_has_it(tmp_path: Path) -> None:
    clone = _fake_clone(tmp_path / "namespaced-clone", "unused")
    (clone / "jobs" / "cli.py").write_text("import sys\nprint(__spec__.name, sys.argv[1:])\n")
    # This clone's launcher, in an environment of its own: the shared environment's kpf is the one of whichever
    # clone ran set-up last. Its python is the shared one (the fake cli needs nothing installed).
    own = tmp_path / "own-env" / "bin"
    own.mkdir(parents=True)
    (own / "python").symlink_to(sys.executable)
    shutil.copy(ROOT / "scripts" / "kpf-launcher.sh", own / "kpf")
    (clone / ".venv").unlink()
    (clone / ".venv").symlink_to(own.parent)
    old_layout = _launch(clone / ".venv" / "bin" / "kpf", "status", cwd=ROOT)
    assert old_layout.stdout.strip() == "jobs.cli ['status']", old_layout.stderr  # a clone from before the namespace
    (clone / "kafka_pinecone_flink").mkdir()
    (clone / "kafka_pinecone_flink" / "__init__.py").write_text("")
    (clone / "kafka_pinecone_flink" / "jobs").symlink_to(Path("..") / "jobs")
    result = _launch(clone / ".venv" / "bin" / "kpf", "status", cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "kafka_pinecone_flink.jobs.cli ['status']"


def test_the_launcher_finds_a_transform_module_in_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "kpf_cwd_hook.py").write_text("def fix(dead_letter):\n    return (1,\n")
    result = _launch(VENV_KPF, "dlq", "replay", "--transform", "kpf_cwd_hook:fix", cwd=tmp_path)
    assert result.returncode == 2
    assert f"SyntaxError in {tmp_path / 'kpf_cwd_hook.py'}, line 2" in result.stderr


def test_dlq_replay_with_a_filter_that_matches_nothing_exits_1_and_produces_nothing(
    kafka_broker: KafkaBroker, dead_letters: tuple[str, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    dlq, source, _ = dead_letters
    servers = ["--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic", dlq]
    code = cli.main(["dlq", "replay", *servers, "--error-class", "MissingIdErorr"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "no dead letter matched the filter (--error-class MissingIdErorr) (did you mean MissingIdError?)" in err
    assert "InvalidVectorError (2), MissingIdError (1), PineconeRejectedError (1)" in err
    assert "replayed" not in out
    assert consume(kafka_broker.bootstrap_servers, source, timeout_s=3) == []


def test_dlq_replay_to_a_topic_that_does_not_exist_fails_before_producing_anything(
    kafka_broker: KafkaBroker, dead_letters: tuple[str, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    dlq, _, _ = dead_letters
    servers = ["--bootstrap-servers", kafka_broker.bootstrap_servers, "--topic", dlq]
    code = cli.main(["dlq", "replay", *servers, "--to", "kpf-no-such-topic"])
    assert code == 1
    assert "topic(s) kpf-no-such-topic do not exist on Kafka" in capsys.readouterr().err


# --- kpf run --resume-from-latest on a real run -------------------------------------------------------------------

RESUME_TIMEOUT_S = 300


def _wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def test_run_resume_from_latest_restores_a_killed_runs_last_complete_checkpoint(ingest: IngestHarness) -> None:
    """A first run writes a and is stopped after a checkpoint that holds it; a is then removed from the index and b
    produced. ``kpf run --resume-from-latest`` (new consumer group, starting position earliest) must start from that
    checkpoint: b arrives, a does not come back (a fresh start would re-read and re-write it)."""
    run_dir = ingest.tmp_path / "resumed-run"
    checkpoints = run_dir / "checkpoints"
    name, index = ingest.create_index(4)
    a_id, b_id = uuid_for(b"a"), uuid_for(b"b")

    def checkpoint_after_a(job: Any) -> None:
        _wait(lambda: bool(job.index.fetch(ids=[a_id], namespace=topic[0]).vectors), RESUME_TIMEOUT_S, "a in the index")
        written = time.time()
        _wait(
            lambda: any(c.complete and (c.completed_at or 0) > written for c in find_checkpoints(checkpoints)),
            RESUME_TIMEOUT_S,
            "a checkpoint after a was written",
        )

    topic = [f"resume-{uuid.uuid4().hex[:8]}"]
    ingest.run(
        {topic[0]: [(b"a", value(values=[1, 0, 0, 0]))]},
        f"--flink.run-dir={run_dir}",
        exact_topic_names=True,
        index=(name, index),
        during=checkpoint_after_a,
        unbounded=True,
        expect_success=False,  # stopped by SIGTERM
    )
    picked = find_checkpoints(checkpoints)[0]
    index.delete(ids=[a_id], namespace=topic[0])
    produce(ingest.broker.bootstrap_servers, topic[0], [(b"b", value(values=[0, 1, 0, 0]))])

    command = [
        sys.executable,
        "-m",
        "kafka_pinecone_flink.jobs.cli",
        "run",
        "--resume-from-latest",
        f"--kafka.bootstrap-servers={ingest.broker.bootstrap_servers}",
        f"--kafka.topics={topic[0]}",
        f"--kafka.group-id=resume-{uuid.uuid4().hex[:8]}",
        "--kafka.starting-position=earliest",
        f"--pinecone.index={name}",
        f"--pinecone.controller-host={ingest.pinecone_url}",
        "--errors.tolerance=all",
        f"--errors.dead-letter-topic={ingest.topic('dlq')}",
        "--flink.checkpoint-interval-ms=1000",
        f"--flink.rest-port={free_port()}",
        f"--flink.run-dir={run_dir}",
    ]
    env = job_process_environment({"PINECONE_API_KEY": "local-test-key"})
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as job:
        try:
            _wait(
                lambda: job.poll() is not None or bool(index.fetch(ids=[b_id], namespace=topic[0]).vectors),
                RESUME_TIMEOUT_S,
                "b in the index",
            )
        finally:
            job.terminate()
            out, err = job.communicate(timeout=60)
    assert f"resuming from the latest complete checkpoint: {picked.path} (job {picked.job_id}" in out, out + err
    assert index.fetch(ids=[b_id], namespace=topic[0]).vectors, out[-2000:] + err[-4000:]
    assert not index.fetch(ids=[a_id], namespace=topic[0]).vectors, "a fresh start re-read a: not restored"
